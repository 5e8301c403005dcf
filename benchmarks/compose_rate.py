"""Digests composed per second on one core: a 20-paper digest with math, many readers.

The 20 papers are the first recorded ones (tests/fixtures) with LaTeX in
their title or abstract (``$`` or a backslash); each of N readers follows 3
keywords drawn from a small pool (so readers share papers and highlighted
terms, as on a real day) and gets all 20 papers, ranked once per reader as
the cycle does (outside the clock).
What is timed is what the compose pool does per reader: ``compose`` with
the reader's reply links, then ``build_message``, for N readers in a row in
one fresh process (so per-cycle caches start cold, as in a new worker).

Before and after in the same run: the baseline is main's code (``git
archive main`` unpacked in a temporary directory, run in a subprocess with
that directory first on ``sys.path``), interleaved with the working tree's,
ROUNDS runs each, median reported; then a cProfile top-15 (by own time) of
each side.

    .venv/bin/python benchmarks/compose_rate.py [--quick] [--rounds N] [--base REF]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAPERS = 20
KEYWORDS = ("quantum", "model", "energy", "field", "network", "learning", "graph", "testing")


def _workload(readers: int) -> list[tuple[object, object, object]]:
    """(subscriber, ranked, link maker) per reader, built with whatever ``digest`` is imported."""
    from datetime import date
    from email.headerregistry import Address
    from inspect import signature

    from digest import ranking as rank
    from digest.arxiv.feed import parse_page
    from digest.errors import ArxivQueryError
    from digest.models import Match, Paper, Subscriber, format_sender
    from digest.replies.commands import reader_links
    from digest.replies.tokens import ReplySecret

    papers: dict[str, Paper] = {}
    for path in sorted((ROOT / "tests" / "fixtures").glob("api_*.xml")):
        try:
            page = parse_page(path.read_bytes())
        except ArxivQueryError:
            continue
        for p in page.papers:
            math = "$" in p.title or "$" in p.abstract or "\\" in p.abstract
            if math and len(papers) < PAPERS:
                papers.setdefault(p.id, p)
    chosen = list(papers.values())
    assert len(chosen) == PAPERS, f"only {len(chosen)} papers with math in the fixtures"
    corpus = rank.build_corpus(chosen)
    secret = ReplySecret(b"compose-rate-benchmark-secret-0123456789")
    # a baseline from before tokens carried their issue day takes no ``issued``
    dated = {"issued": date(2026, 12, 3)} if "issued" in signature(reader_links).parameters else {}
    operator: Address = format_sender("Daily Papers <papers@digest.example.org>")
    out = []
    for i in range(readers):
        keywords = tuple(KEYWORDS[(i + k) % len(KEYWORDS)] for k in (0, 2, 5))
        email = f"reader{i}@example.org"
        sub = Subscriber(email=email, name=f"Reader {i}", keywords=keywords)
        matches = []
        for p in chosen:
            text = f"{p.title} {p.abstract}".lower()
            hit = tuple(k for k in keywords if k in text) or keywords[:1]
            matches.append(Match(paper=p, keywords=hit))
        ranked = rank.rank(matches, corpus)

        def links(ids: tuple[str, ...], email: str = email) -> object:
            return reader_links(secret, operator, email, ids, **dated)

        out.append((sub, ranked, links))
    return out


def _run(readers: int, profiler: Any = None) -> float:
    """Digests per second (CPU time of this process) composing and serialising each reader's.

    ``profiler`` (a ``cProfile.Profile``) is on only while the digests are composed.
    """
    from datetime import UTC, datetime

    from digest.compose.render import build_message, compose
    from digest.models import Settings, SmtpSettings

    settings = Settings(smtp=SmtpSettings(sender="Daily Papers <papers@digest.example.org>"))
    created = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    work = _workload(readers)
    if profiler is not None:
        profiler.enable()
    start = time.process_time()
    for sub, ranked, links in work:
        digest, rendered = compose(
            sub,  # type: ignore[arg-type]
            ranked,  # type: ignore[arg-type]
            settings,
            cycle_id="20261130.bench",
            created=created,
            links=links,  # type: ignore[arg-type]
        )
        build_message(digest, rendered, settings)
    elapsed = time.process_time() - start
    if profiler is not None:
        profiler.disable()
    return readers / elapsed


def _profile(readers: int) -> str:
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    _run(readers, prof)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
    return buf.getvalue()


def _child(code: Path, readers: int, profile: bool) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    args = [sys.executable, __file__, "--child", str(readers)] + (["--profile"] if profile else [])
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{code}: the benchmark failed:\n{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout)
    assert Path(str(result["code"])).resolve().is_relative_to(code.resolve()), result["code"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="20 readers, one round")
    parser.add_argument("--base", default="main", help="the baseline's git ref (default: main)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side (default: 3)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child is not None:
        import digest

        result: dict[str, object] = {"code": str(Path(digest.__file__).parent.parent)}
        if opts.profile:
            result["profile"] = _profile(opts.child)
        else:
            result["rate"] = _run(opts.child)
        print(json.dumps(result))
        return
    readers, rounds = (20, 1) if opts.quick else (200, opts.rounds)
    with tempfile.TemporaryDirectory(prefix="compose-base-") as tmp:
        base = Path(tmp)
        archive = subprocess.run(
            ["git", "archive", opts.base, "digest", "templates"], cwd=ROOT, capture_output=True
        )
        if archive.returncode != 0:
            if not opts.quick:
                raise SystemExit(f"no baseline: git archive {opts.base}: {archive.stderr!r}")
            # a CI checkout may have no such branch: the smoke run measures this tree alone
            print(f"(no baseline: {opts.base} is not in this checkout)")
        else:
            with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                tar.extractall(base, filter="data")
        sides = [("current", ROOT)] if archive.returncode else [("base", base), ("current", ROOT)]
        rates: dict[str, list[float]] = {side: [] for side, _ in sides}
        for _ in range(rounds):
            for side, code in sides:
                rates[side].append(float(str(_child(code, readers, False)["rate"])))
        print(f"{PAPERS}-paper digest with math, {readers} readers, CPU time, {rounds} round(s)")
        for side in rates:
            runs = ", ".join(f"{r:.0f}" for r in rates[side])
            label = f"{opts.base} (before)" if side == "base" else "working tree"
            print(f"{label:>20}: {statistics.median(rates[side]):6.1f} digests/s  (runs: {runs})")
        if "base" in rates:
            ratio = statistics.median(rates["current"]) / statistics.median(rates["base"])
            print(f"{'speed-up':>20}: {ratio:.2f}x")
        if opts.quick:
            return
        for side, code in sides:
            print(f"\n--- cProfile, {side}: top 15 by own time ---")
            print(str(_child(code, readers, True)["profile"]).strip())


if __name__ == "__main__":
    main()
