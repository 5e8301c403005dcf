"""Visibility and cost of ranked digests that never hide a paper.

Visibility: how many of a reader's matches their one mail shows (in full or
as a compact row), and its HTML size against the 100 KB limit:

* one reader with 150 matches in a day, and one with 600;
* a realistic day: the 2026-06-09 arXiv listing plus the recorded API
  responses of tests/fixtures (the ranking_quality.py "A" day), 50 readers
  with one or two keywords each. The share of matches shown is printed
  for digest before this change (``--before-rev``, default the commit that
  added the ranking core: compose cut sections to 25 papers and lower,
  then "and N more" with an arXiv search link; run in a subprocess from
  ``git archive``) and after. A paper counts as shown when its abs link
  is in the HTML.

Space by relevance: three heavy readers of that day (robotics, nine
keywords; NLP, three; LLM, two), each liking papers of their field
from another day, with reply links as mailed: how many papers are shown in
full, whether those are the mail's best-ranked, and where the three best
stand in the mail; before (``--space-rev``, default main before space went
by relevance: per-section caps, keyword order, authors last) and after.

Beyond the keywords: for the heavy readers and three more (vision, safety,
medical: one keyword each, likes from the same listing), how many papers of
their liked categories match none of their keywords, how many of those the
ranker finds close to a liked paper when scored among the reader's matches
(as the cycle scores them; ``selection.pick_beyond``), and the titles offered.

Cost: two real cycles in the same run, against the loopback arXiv server
(the day's papers as Atom entries) and a loopback aiosmtpd, with 1,000
readers (1-2 keywords, half of them with 8 liked papers): one ranked, one
with ranking switched off (matches in date order, no corpus, no profiles).

    python benchmarks/visibility.py [--readers 1000] [--no-cost] [--no-before]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEFORE_REV = "0259e1a"  # main with the ranking core, before ranked digests
SPACE_REV = "ec9e41f"  # main before space went by relevance
# Heavy readers: (name, keywords, words in the titles of the papers they like)
HEAVY = [
    (
        "robotics",
        (
            "robot",
            "manipulation",
            "navigation",
            "autonomous driving",
            "control",
            "planning",
            "policy",
            "reinforcement learning",
            "trajectory",
        ),
        ("robot", "embodied", "manipulation"),
    ),
    ("NLP", ("embedding", "retrieval", "question answering"), ("language model",)),
    ("LLM", ("retrieval", "LLM"), ("language model",)),
]
# What readers follow: keywords with 2 to 80 matches on the day (counted
# beside each). The 100+ ones ("LLM" 181, "language model" 224) are the
# one-reader figures' job.
KEYWORDS = [
    "transformer",  # 43
    "diffusion",  # 43
    "segmentation",  # 27
    "medical",  # 32
    "graph",  # 33
    "3D",  # 43
    "embedding",  # 43
    "safety",  # 46
    "vision-language",  # 48
    "retrieval",  # 53
    "video",  # 58
    "prompt",  # 63
    "alignment",  # 73
    "multimodal",  # 78
    "reinforcement learning",  # 41
    "deep learning",  # 26
    "neural network",  # 22
    "hallucination",  # 20
    "quantum",  # 18
    "causal",  # 25
    "speech",  # 12
    "privacy",  # 13
    "question answering",  # 13
    "point cloud",  # 13
    "object detection",  # 11
    "autonomous driving",  # 13
    "test generation",  # 15
    "software testing",  # 14
    "metamorphic testing",  # 9
    "chain-of-thought",  # 11
    "sentiment",  # 10
    "robot",  # 7
    "fairness",  # 8
    "code generation",  # 9
    "image generation",  # 8
    "knowledge graph",  # 6
    "machine translation",  # 5
    "pose estimation",  # 6
    "explainability",  # 6
    "tokenizer",  # 5
]
N_READERS = 50
_ABS = re.compile(r'href="https://arxiv\.org/abs/([^"]+)"')


def readers(n: int, seed: int = 50) -> list[tuple[str, tuple[str, ...]]]:
    rng = random.Random(seed)
    return [(f"r{i}@example.org", tuple(rng.sample(KEYWORDS, rng.randint(1, 2)))) for i in range(n)]


def the_day() -> list[Any]:
    """The ranking_quality.py "A" day: a listing plus the recorded API papers, one date."""
    import dataclasses
    from datetime import UTC, datetime, timedelta

    from digest.arxiv.feed import MalformedPage, parse_page
    from digest.errors import ArxivQueryError

    sys.path.insert(0, str(ROOT))
    from benchmarks.ranking_quality import DAYS, load

    day = DAYS[0]
    recorded: dict[str, Any] = {}  # every paper of the recorded API answers (143, mostly cs.SE)
    for path in sorted((ROOT / "tests" / "fixtures").glob("api_*.xml")):
        try:
            recorded.update((p.id, p) for p in parse_page(path.read_bytes()).papers)
        except (MalformedPage, ArxivQueryError):
            continue  # the error responses
    mixed = load(day) + sorted(recorded.values(), key=lambda p: p.id)
    random.Random(day).shuffle(mixed)
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return [
        dataclasses.replace(p, published=start + timedelta(seconds=i), updated=start)
        for i, p in enumerate(mixed)
    ]


def mail(sub: Any, papers: list[Any], *, ranked: bool) -> tuple[Any, Any, int]:
    """(digest, rendered, matches) as ``digest once`` composes the mail."""
    from datetime import UTC, datetime

    from digest.compose.render import compose
    from digest.matching.rules import match_all
    from digest.models import Settings

    matches = match_all(papers, sub)
    items: Any = matches
    if ranked:
        from digest import ranking as rank

        items = rank.rank(matches, rank.build_corpus(papers))
    created = datetime(2026, 6, 10, 7, tzinfo=UTC)
    digest, rendered = compose(sub, items, Settings(), cycle_id="bench", created=created)
    return digest, rendered, len(matches)


def shown_in(html: str, papers: list[Any]) -> int:
    ids = {p.id for p in papers}
    return len(set(_ABS.findall(html)) & ids)


def day_shares(ranked: bool) -> dict[str, Any]:
    """Matches and matches shown per reader of the realistic day."""
    from digest.matching.rules import match_all
    from digest.models import Subscriber

    papers = the_day()
    out = []
    for email, kws in readers(N_READERS):
        sub = Subscriber(email, kws)
        if not match_all(papers, sub):
            continue
        _, rendered, n = mail(sub, papers, ranked=ranked)
        out.append([email, " / ".join(kws), n, shown_in(rendered.html, papers)])
    return {"papers": len(papers), "readers": out}


def heavy_readers() -> dict[str, Any]:
    """Per heavy reader: matches, KB, in full (how many of the best), rows, the best 3's places."""
    from datetime import UTC, datetime

    from digest import ranking as rank

    # digest first: in ``before`` it is the earlier revision's, on PYTHONPATH
    from digest.compose.render import compose
    from digest.matching.rules import contains_phrase, match_all
    from digest.models import Liked, Settings, SmtpSettings, Subscriber
    from digest.replies import ReplySecret, reader_links

    sys.path.insert(0, str(ROOT))
    from benchmarks.ranking_quality import DAYS, load

    papers = the_day()
    corpus = rank.build_corpus(papers)
    pool = load(DAYS[1])  # the likes come from another day
    settings = Settings(smtp=SmtpSettings(sender="Daily Papers <papers@digest.example.org>"))
    secret = ReplySecret(b"visibility-benchmark-secret-0123")
    out = {}
    for name, keywords, field in HEAVY:
        liked = [p for p in pool if any(contains_phrase(p.title, w) for w in field)]
        liked = random.Random(name).sample(liked, min(8, len(liked)))
        likes = tuple(Liked(p.id, p.title, p.abstract) for p in liked)
        sub = Subscriber(f"{name}@example.org", keywords, likes=likes)
        ranked = rank.rank(match_all(papers, sub), corpus, rank.build_profile(corpus, likes))

        when = datetime(2026, 6, 10, 7, tzinfo=UTC)

        def links(ids: tuple[str, ...], email: str = sub.email) -> Any:
            issued = datetime(2026, 6, 10, tzinfo=UTC).date()
            return reader_links(secret, "papers@digest.example.org", email, ids, issued=issued)

        digest, rendered = compose(sub, ranked, settings, cycle_id="b", created=when, links=links)
        full = {r.match.paper.id for s in digest.sections for r in s.full}
        best = [r.match.paper.id for r in sorted(ranked, key=lambda r: -r.score)]
        mail = [r.match.paper.id for r in digest.shown]
        out[name] = {
            "matches": len(ranked),
            "kb": len(rendered.html.encode()) / 1000,
            "full": len(full),
            "rows": digest.count - len(full),
            "left_out": digest.left_out,
            "best_in_full": len(full & set(best[: len(full)])),
            "best_three_at": [mail.index(i) + 1 if i in mail else None for i in best[:3]],
        }
    return out


BEYOND_READERS = [
    *HEAVY,
    ("vision", ("segmentation",), ("diffusion",)),
    ("safety", ("safety",), ("alignment",)),
    ("medical", ("medical",), ("medical",)),
]


def beyond_the_keywords() -> None:
    """How many papers of the readers' liked categories are close to a liked paper, and offered."""
    from digest import ranking as rank
    from digest.compose.selection import pick_beyond
    from digest.cycle.plan import Beyond, beyond_candidates, liked_categories
    from digest.matching.rules import contains_phrase, match_all
    from digest.models import Liked, Match, Subscriber
    from digest.ranking import FIELD_REASON

    sys.path.insert(0, str(ROOT))
    from benchmarks.ranking_quality import DAYS, load

    papers = the_day()
    corpus = rank.build_corpus(papers)
    pool = load(DAYS[1])  # the likes come from another day
    known = {p.id: p for p in (*papers, *pool)}
    beyond = Beyond.of(papers, known)
    print(f"\nBeyond the keywords: {len(papers)} papers")
    for name, keywords, field in BEYOND_READERS:
        liked = [p for p in pool if any(contains_phrase(p.title, w) for w in field)]
        liked = random.Random(name).sample(liked, min(8, len(liked)))
        sub = Subscriber(f"{name}@example.org", keywords, likes=tuple(Liked(p.id) for p in liked))
        matches = match_all(papers, sub)
        categories = liked_categories(sub.likes, known)
        handled = {m.paper.id: 1 for m in matches}
        candidates = beyond_candidates(sub, handled, beyond, categories)
        profile = rank.build_profile(corpus, sub.likes, papers=known)
        scored = rank.rank((*matches, *(Match(p, ()) for p in candidates)), corpus, profile)
        passing = sum(
            1
            for r in scored
            if not r.match.keywords and r.reason and not r.reason.startswith(FIELD_REASON)
        )
        offers = pick_beyond(scored, categories)
        print(
            f"  {name:<9} {len(matches):>3} matches; {len(candidates)} papers of "
            f"{', '.join(categories)} match no keyword, {passing} close to a liked paper"
        )
        for o in offers:
            print(f"      {o.ranked.score:.2f}  {o.ranked.match.paper.title[:80]}")


def print_heavy(label: str, result: dict[str, Any]) -> None:
    for name, r in result.items():
        print(
            f"  {label:<16} {name:<9} {r['matches']} matches, {r['kb']:.1f} KB: "
            f"{r['full']} in full ({r['best_in_full']} of them among the {r['full']} best), "
            f"{r['rows']} rows, {r['left_out']} left out; the 3 best at places "
            f"{r['best_three_at']}"
        )


def before(rev: str, flag: str = "--day-shares-only") -> dict[str, Any]:
    """``day_shares`` (or what ``flag`` asks for) by digest at ``rev``, in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "digest", "templates"],
            capture_output=True,
            check=True,
        ).stdout
        with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        env = {**os.environ, "PYTHONPATH": tmp}
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), flag],
            env=env,
            capture_output=True,
            check=True,
            cwd=tmp,
        )
        result: dict[str, Any] = json.loads(done.stdout)
        return result


def print_day(label: str, result: dict[str, Any]) -> float:
    rows = result["readers"]
    matches = sum(r[2] for r in rows)
    shown = sum(r[3] for r in rows)
    full = sum(1 for r in rows if r[3] == r[2])
    worst = min(rows, key=lambda r: r[3] / r[2])
    print(
        f"  {label:<7} {shown:>5} of {matches} matches shown ({shown / matches:.1%}); "
        f"{full} of {len(rows)} readers see all theirs; worst: {worst[1]!r} "
        f"{worst[3]} of {worst[2]}"
    )
    return float(shown / matches)


def one_reader(n: int) -> None:
    """A reader with ``n`` matches in a day (the day's papers, re-titled to match)."""
    import dataclasses

    from digest.models import Subscriber

    papers = [dataclasses.replace(p, title=f"{p.title} (compiler track)") for p in the_day()[:n]]
    sub = Subscriber("busy@example.org", ("compiler",))
    digest, rendered, matches = mail(sub, papers, ranked=True)
    full = sum(len(s.full) for s in digest.sections)
    rows = sum(len(s.compact) for s in digest.sections)
    size = len(rendered.html.encode())
    print(
        f"  {matches} matches: one mail, HTML {size / 1000:.1f} KB (limit 100 KB); "
        f"{full} in full + {rows} compact rows = {full + rows} shown "
        f"({shown_in(rendered.html, papers)} abs links), {digest.left_out} left out "
        f"(recorded skipped)"
    )


def visibility(rev: str, space_rev: str | None) -> None:
    print("Space by relevance: heavy readers, reply links as mailed")
    if space_rev:
        print_heavy(f"before ({space_rev})", before(space_rev, "--heavy-only"))
    print_heavy("after", heavy_readers())
    beyond_the_keywords()
    print("\nVisibility: one reader's one mail")
    one_reader(150)
    one_reader(600)
    after = day_shares(ranked=True)
    print(
        f"\nA realistic day: {after['papers']} papers, {len(after['readers'])} readers "
        f"with matches ({N_READERS} with 1-2 keywords each)"
    )
    print_day(f"before ({rev})", before(rev))
    print_day("after", after)


# --------------------------------------------------------------------------
# Cost: a cycle at 1,000 readers with and without ranking


def cost(n: int) -> None:
    import asyncio
    from datetime import UTC, datetime, timedelta

    sys.path.insert(0, str(ROOT))
    from benchmarks.ranking_quality import DAYS, load
    from digest.cycle import stream as compose_stream
    from digest.cycle.inputs import Hooks, Options, collaborators
    from digest.cycle.run import run_cycle
    from digest.models import (
        ArxivSettings,
        Config,
        Liked,
        Ranked,
        Settings,
        SmtpSettings,
        Subscriber,
    )
    from digest.store.store import Store
    from tests.support.arxiv_server import ArxivServer, load_entries, make_entry
    from tests.support.smtp_server import SmtpServer

    now = datetime.now(UTC)
    papers = the_day()
    entries = [
        make_entry(
            p.id,
            p.title,
            p.abstract,
            authors=p.authors,
            categories=p.categories,
            published=now - timedelta(minutes=i + 1),
        )
        for i, p in enumerate(papers)
    ]
    header, _ = load_entries(["api_new_2026-04_all-testing_start-0_max-10.xml"])
    pool = load(DAYS[2])
    rng = random.Random(n)
    subs = []
    for i, (email, kws) in enumerate(readers(n, seed=1000)):
        liked = rng.sample(pool, 8) if i % 2 else []
        likes = tuple(Liked(None, p.title, p.abstract) for p in liked)
        subs.append(Subscriber(email, kws, likes=likes))
    unranked = compose_stream._rank

    def date_order(matched: Any, plan: Any, configured: Any = None) -> tuple[Any, ...]:
        # compose sorts equal scores newest first; nothing beyond the keywords
        return tuple(Ranked(m, 0.0) for m in plan.matches), ()

    inside = [0.0]  # seconds spent ranking (the corpus is built on the first call)

    def timed(matched: Any, plan: Any, configured: Any = None) -> tuple[Any, ...]:
        t = time.perf_counter()
        try:
            return unranked(matched, plan, configured)
        finally:
            inside[0] += time.perf_counter() - t

    def run(ranked: bool) -> tuple[float, int, int]:
        inside[0] = 0.0
        compose_stream._rank = timed if ranked else date_order
        with (
            tempfile.TemporaryDirectory() as tmp,
            ArxivServer(header, entries) as arxiv,
            SmtpServer() as smtp,
        ):
            settings = Settings(
                database=Path(tmp) / "digest.json",
                lookback_days=2,
                arxiv=ArxivSettings(api_url=arxiv.url, request_interval=0.0, page_size=1000),
                smtp=SmtpSettings(host="127.0.0.1", port=smtp.port, sender="P <p@digest.test>"),
            )
            cfg = Config(settings, tuple(subs), Path(tmp) / "subscribers.yaml")

            async def go(store: Store) -> Any:
                async with collaborators(settings, Options(), now=now) as collab:
                    return await run_cycle(cfg, store, collab, now=now, hooks=Hooks())

            t0 = time.perf_counter()
            with Store.open(settings.database, now=now) as store:
                report = asyncio.run(go(store))
            elapsed = time.perf_counter() - t0
            shown = sum(r.papers for r in report.subscribers)
            return elapsed, len(smtp.received), shown

    print(
        f"\nCost: one cycle, {len(papers)} papers on the loopback arXiv, {n} readers "
        "(1-2 keywords, half with 8 liked papers), loopback SMTP; wall seconds"
    )
    # off, on, on, off: warm-up and drift fall on both sides alike
    times: dict[bool, list[float]] = {False: [], True: []}
    for ranked in (False, True, True, False):
        elapsed, msgs, shown = run(ranked)
        times[ranked].append(elapsed)
        label = "ranked" if ranked else "ranking off (date order)"
        spent = f"  ({inside[0]:.1f} s of it ranking)" if ranked else ""
        print(f"  {label:<25} {elapsed:7.1f} s  {msgs} mails, {shown} papers shown{spent}")
    compose_stream._rank = unranked
    without, with_ = (sum(times[k]) / 2 for k in (False, True))
    print(
        f"  mean: off {without:.1f} s, ranked {with_:.1f} s: ranking adds "
        f"{(with_ - without) / without:+.1%} to the cycle's wall time"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readers", type=int, default=1000, help="readers for the cost figure")
    ap.add_argument("--no-cost", action="store_true", help="visibility only")
    ap.add_argument("--before-rev", default=BEFORE_REV, help="digest before ranked digests")
    ap.add_argument("--space-rev", default=SPACE_REV, help="digest before space by relevance")
    ap.add_argument("--no-before", action="store_true", help="no runs of earlier revisions")
    ap.add_argument("--day-shares-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--heavy-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.day_shares_only:  # inside ``before``: whatever digest is on PYTHONPATH
        json.dump(day_shares(ranked=False), sys.stdout)
        return
    if args.heavy_only:  # inside ``before`` too
        json.dump(heavy_readers(), sys.stdout)
        return
    sys.path.insert(0, str(ROOT))
    visibility(args.before_rev, None if args.no_before else args.space_rev)
    if not args.no_cost:
        cost(args.readers)


if __name__ == "__main__":
    main()
