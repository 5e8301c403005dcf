"""A full cycle at scale: wall time, peak RSS and the split of the cycle, with baseline.

A full cycle (fetch, match, plan, compose, send, record, housekeeping) for N
readers following 3 to 5 of 50 keywords, on a realistic day of 900 papers
(the recorded "testing" answer re-numbered and re-dated, 9 copies), against
a loopback arXiv (request interval 0, requests counted) and a loopback
aiosmtpd that counts and discards. Both servers run in a process of their
own, and every scenario in a fresh child process, so the peak RSS printed is
the cycle's alone. Beside each figure: the baseline, the same scenario run
with the code of another git revision (default ``main``, checked out into a
temporary ``git worktree``).

Also the daemon's memory: RSS after start, after a cycle, and its growth
over many in-process cycles.

    python benchmarks/cycle_at_scale.py           # 1,000 and 10,000 readers, 200 cycles
    python benchmarks/cycle_at_scale.py --quick   # seconds: 30 readers, 5 cycles, no baseline
    python benchmarks/cycle_at_scale.py --readers 1000 --baseline main
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("fetch", "match", "plan", "compose", "send", "record", "housekeeping")

KEYWORDS = [
    "testing",
    "software testing",
    "deep learning",
    "neural network",
    "test case",
    "fuzzing",
    "language model",
    "mutation testing",
    "regression",
    "unit test",
    "reinforcement learning",
    "quantum",
    "benchmark",
    "verification",
    "automated",
    "large language model",
    "code generation",
    "program repair",
    "test generation",
    "agent",
    "security",
    "vulnerability",
    "static analysis",
    "formal verification",
    "smart contract",
    "autonomous driving",
    "simulation",
    "android",
    "web application",
    "API",
    "compiler",
    "performance",
    "flaky test",
    "test oracle",
    "coverage",
    "symbolic execution",
    "search-based",
    "machine learning",
    "dataset",
    "evaluation",
    "robustness",
    "adversarial",
    "empirical study",
    "continuous integration",
    "microservice",
    "requirements",
    "debugging",
    "fault localization",
    "specification",
    "hypothesis testing",
]
assert len(KEYWORDS) == 50


# --------------------------------------------------------------------------
# The servers' process


def corpus(copies: int) -> tuple[bytes, list[bytes]]:
    from tests.support.arxiv_server import load_entries, redate

    header, entries = load_entries(["api_new_2026-04_all-testing_start-0_max-100.xml"])
    now = datetime.now(UTC)
    out = []
    for c in range(copies):
        for i, e in enumerate(entries):
            e = re.sub(
                rb"abs/(\d{4}\.\d{4,5})", lambda m, c=c, i=i: b"abs/26%02d.%05d" % (11 - c, i), e
            )
            # a day and a half of submissions: all inside the fetch window
            out.append(redate(e, now - timedelta(minutes=2 * (c * len(entries) + i + 1))))
    return header, out


class _Discard(list[Any]):
    """``SmtpServer.received`` that counts and keeps nothing (10,000 digests are 1 GB)."""

    count = 0

    def append(self, item: Any) -> None:
        self.count += 1


class _Sink(asyncio.Protocol):
    """An SMTP server that accepts and discards, at C speed (one buffer scan per message).

    aiosmtpd reads DATA line by line in Python: about 30 digests/s of 130 KB
    on this machine, which would measure aiosmtpd, not digest.
    """

    accepted = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""
        self.in_data = False
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                self.buffer = self.buffer[end + 5 :]
                self.in_data = False
                _Sink.accepted += 1
                self.transport.write(b"250 2.0.0 accepted\r\n")
                continue
            line, sep, rest = self.buffer.partition(b"\r\n")
            if not sep:
                return
            self.buffer = rest
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.transport.write(b"250-sink\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n")
            elif verb == b"DATA":
                self.in_data = True
                self.transport.write(b"354 go on\r\n")
            elif verb == b"QUIT":
                self.transport.write(b"221 bye\r\n")
                self.transport.close()
                return
            else:
                self.transport.write(b"250 OK\r\n")


def serve(copies: int, smtp_kind: str) -> None:
    """Run both servers until stdin closes; print their addresses as one JSON line."""
    sys.path.insert(0, str(ROOT))
    import threading

    from tests.support.arxiv_server import ArxivServer
    from tests.support.smtp_server import SmtpServer

    header, entries = corpus(copies)
    with ArxivServer(header, entries) as arxiv, contextlib.ExitStack() as stack:
        if smtp_kind == "aiosmtpd":
            smtp = stack.enter_context(SmtpServer())
            smtp.received = _Discard()
            port = smtp.port
        else:
            loop = asyncio.new_event_loop()
            server = loop.run_until_complete(loop.create_server(_Sink, "127.0.0.1", 0))
            port = server.sockets[0].getsockname()[1]
            threading.Thread(target=loop.run_forever, daemon=True).start()
        print(json.dumps({"arxiv": arxiv.url, "smtp": port}), flush=True)
        sys.stdin.read()


@contextlib.contextmanager
def servers(copies: int, smtp_kind: str) -> Iterator[dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(copies), smtp_kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------
# One scenario, in a child process running some revision's code


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scenario(code: Path, readers: int, cycles: int, small: int, addr: dict[str, Any]) -> None:
    """One full cycle for ``readers``, then ``cycles`` small ones; print figures as JSON."""
    sys.path.insert(0, str(code))
    # the package's face: the baseline revision's modules may be laid out otherwise
    from digest.cycle import Options, collaborators, run_cycle
    from digest.models import ArxivSettings, Config, Settings, SmtpSettings, Subscriber
    from digest.store.store import Store

    start_rss = _rss_mib()

    def config(n: int, db: Path) -> Config:
        rng = random.Random(n)
        subs = tuple(
            Subscriber(f"u{i}@example.org", tuple(rng.sample(KEYWORDS, rng.randint(3, 5))))
            for i in range(n)
        )
        settings = Settings(
            database=db,
            lookback_days=7,
            arxiv=ArxivSettings(
                api_url=addr["arxiv"], request_interval=0.0, page_size=1000, timeout=30
            ),
            smtp=SmtpSettings(
                host="127.0.0.1", port=addr["smtp"], sender="P <papers@digest.test>", connections=2
            ),
        )
        return Config(settings=settings, subscribers=subs, path=db.parent / "subscribers.yaml")

    def cycle(n: int) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = config(n, Path(tmp) / "digest.json")

            async def go(store: Store) -> Any:
                now = datetime.now(UTC)
                async with collaborators(cfg.settings, Options(), now=now) as collab:
                    return await run_cycle(cfg, store, collab, now=now)

            t0 = time.perf_counter()
            with Store.open(cfg.settings.database) as store:
                report = asyncio.run(go(store))
            wall = time.perf_counter() - t0
            db_mib = cfg.settings.database.stat().st_size / 2**20
        counts: dict[str, int] = {}
        for r in report.subscribers:
            counts[r.status] = counts.get(r.status, 0) + 1
        sent = [r.papers for r in report.subscribers if r.status == "sent"]
        return {
            "papers_per_digest": sum(sent) / max(1, len(sent)),
            "db_mib": db_mib,
            "wall": wall,
            "requests": report.requests,
            "fetched": report.fetched,
            "counts": counts,
            "timings": dict(getattr(report, "timings", {}) or {}),
        }

    out: dict[str, Any] = {"start_rss": start_rss}
    if readers:
        out["big"] = cycle(readers)
        out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        gc.collect()
        out["after_rss"] = _rss_mib()
    if cycles:
        rss = []
        for i in range(cycles):
            cycle(small)
            if i in (max(1, cycles // 10), cycles - 1):
                gc.collect()
                rss.append(_rss_mib())
        out["small_rss"] = rss
    print(json.dumps(out))


def run_child(code: Path, readers: int, cycles: int, small: int, addr: dict[str, Any]) -> Any:
    args = [sys.executable, __file__, "--child", str(code), str(readers), str(cycles), str(small)]
    env = {**os.environ, "BENCH_ADDR": json.dumps(addr)}
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False, cwd=code)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the scenario at {code} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """``ref``'s tree in a temporary worktree (never touching this one)."""
    with tempfile.TemporaryDirectory(prefix="digest-base-") as tmp:
        path = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(path), ref],
            check=True,
        )
        try:
            yield path
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False
            )


# --------------------------------------------------------------------------
# Printing


def _split(t: dict[str, float]) -> str:
    return " ".join(f"{k} {t[k]:.2f}" for k in PHASES if k in t) or "(no timings in this revision)"


def print_big(label: str, n: int, r: dict[str, Any], base: dict[str, Any] | None) -> None:
    big = r["big"]
    line = (
        f"{label:>9} {n:>6} readers: {big['wall']:7.2f} s wall, peak RSS {r['peak_rss']:6.0f} MiB,"
        f" {big['requests']} arXiv requests, {big['fetched']} papers, {big['counts']},"
        f" {big['papers_per_digest']:.0f} papers per digest, store {big['db_mib']:.0f} MiB"
    )
    print(line)
    print(f"{'':>9} split (s): {_split(big['timings'])}")
    if base is not None:
        b = base["big"]
        print(
            f"{'baseline':>9} {n:>6} readers: {b['wall']:7.2f} s wall, peak RSS "
            f"{base['peak_rss']:6.0f} MiB, {b['requests']} arXiv requests, {b['counts']},"
            f" {b['papers_per_digest']:.0f} papers per digest, store {b['db_mib']:.0f} MiB"
        )
        print(f"{'':>9} split (s): {_split(b['timings'])}")
        print(
            f"{'':>9} -> {b['wall'] / big['wall']:.1f}x faster, "
            f"{base['peak_rss'] / r['peak_rss']:.1f}x less peak memory"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a few seconds, for .ci/run")
    ap.add_argument("--readers", type=int, nargs="+")
    ap.add_argument("--cycles", type=int, help="in-process cycles for the memory growth")
    ap.add_argument("--baseline", help="git revision to compare with (default: main; none)")
    ap.add_argument("--baseline-max", type=int, default=1000, help="largest baseline run")
    ap.add_argument(
        "--smtp",
        choices=("sink", "aiosmtpd"),
        default="sink",
        help="the loopback SMTP server: a C-speed discarding sink (default) or aiosmtpd",
    )
    ap.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:
        return serve(int(args.serve[0]), args.serve[1])
    if args.child:
        code, readers, cycles, small = args.child
        addr = json.loads(os.environ["BENCH_ADDR"])
        return scenario(Path(code), int(readers), int(cycles), int(small), addr)

    readers = args.readers or ([30] if args.quick else [1000, 10000])
    cycles = args.cycles if args.cycles is not None else (5 if args.quick else 200)
    baseline = args.baseline or (None if args.quick else "main")
    if baseline == "none":
        baseline = None
    copies = 1 if args.quick else 9
    print(
        f"full cycles: 50 keywords (3-5 per reader), {copies * 100} papers, loopback arXiv "
        f"(interval 0) and SMTP ({args.smtp}, 2 connections), each in a fresh process"
    )
    with contextlib.ExitStack() as stack:
        base_code = stack.enter_context(checkout(baseline)) if baseline else None
        addr = stack.enter_context(servers(copies, args.smtp))
        for n in readers:
            r = run_child(ROOT, n, 0, 0, addr)
            b = None
            if base_code is not None and n <= args.baseline_max:
                b = run_child(base_code, n, 0, 0, addr)
            print_big("this tree", n, r, b)
        if not cycles:
            return
        print()
        small = 5 if args.quick else 10
        print(f"daemon memory: RSS after start, after a {readers[0]}-reader cycle, and over")
        print(
            f"{cycles} in-process cycles of {small} readers "
            f"(after cycle {max(1, cycles // 10)} -> last)"
        )
        for label, code in (("this tree", ROOT), ("baseline", base_code)):
            if code is None:
                continue
            m = run_child(code, readers[0], cycles, small, addr)
            a, z = m["small_rss"][0], m["small_rss"][-1]
            print(
                f"{label:>9}: start {m['start_rss']:.0f} MiB, after the big cycle "
                f"{m['after_rss']:.0f} MiB, cycles {a:.1f} -> {z:.1f} MiB "
                f"(growth {z - a:+.1f} MiB)"
            )


if __name__ == "__main__":
    main()
