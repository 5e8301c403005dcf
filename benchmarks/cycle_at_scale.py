"""Cycle time, messages per second, database writes and memory at scale.

Runs real cycles in-process against the loopback arXiv server (300 recorded
papers, re-dated and re-numbered) and a real aiosmtpd server, for growing
numbers of subscribers, and prints beside each figure the baseline it is
compared against in the same run:

* store: digest's batched atomic writes versus TinyDB's default JSONStorage
  written once per paper (what a naive client does);
* sending: one SMTP connection versus two in parallel.

    python benchmarks/cycle_at_scale.py [--subscribers 50 200]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import resource
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tinydb import TinyDB  # noqa: E402

from digest.cycle import Hooks, Options, collaborators, run_cycle  # noqa: E402
from digest.models import ArxivSettings, Config, Settings, SmtpSettings, Subscriber  # noqa: E402
from digest.report import CycleReport  # noqa: E402
from digest.store import Store, paper_to_doc  # noqa: E402
from tests.support.arxiv_server import ArxivServer, load_entries, redate  # noqa: E402
from tests.support.smtp_server import SmtpServer  # noqa: E402

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
]


def corpus(copies: int = 3) -> tuple[bytes, list[bytes]]:
    header, entries = load_entries(["api_new_2026-04_all-testing_start-0_max-100.xml"])
    now = datetime.now(UTC)
    out = []
    for c in range(copies):
        for i, e in enumerate(entries):
            e = re.sub(
                rb"abs/(\d{4}\.\d{4,5})", lambda m, c=c, i=i: b"abs/26%02d.%05d" % (11 - c, i), e
            )
            out.append(redate(e, now - timedelta(minutes=10 * (c * len(entries) + i + 1))))
    return header, out


def config(n: int, arxiv_url: str, smtp_port: int, db: Path) -> Config:
    rng = random.Random(n)
    subs = tuple(Subscriber(f"u{i}@example.org", tuple(rng.sample(KEYWORDS, 3))) for i in range(n))
    settings = Settings(
        database=db,
        lookback_days=7,
        arxiv=ArxivSettings(api_url=arxiv_url, request_interval=0.0, page_size=200, timeout=10),
        smtp=SmtpSettings(host="127.0.0.1", port=smtp_port, sender="P <papers@digest.test>"),
    )
    return Config(settings=settings, subscribers=subs, path=db.parent / "subscribers.yaml")


def one_cycle(n: int, connections: int) -> dict[str, float]:
    header, entries = corpus()
    with (
        tempfile.TemporaryDirectory() as tmp,
        ArxivServer(header, entries) as arxiv,
        SmtpServer() as smtp,
    ):
        db = Path(tmp) / "digest.json"
        cfg = config(n, arxiv.url, smtp.port, db)
        sends: list[float] = []
        t0 = time.perf_counter()
        hooks = Hooks(send_progress=lambda d, t: sends.append(time.perf_counter()))
        settings = replace(cfg.settings, smtp=replace(cfg.settings.smtp, connections=connections))

        async def go(store: Store) -> CycleReport:
            now = datetime.now(UTC)
            async with collaborators(settings, Options(), now=now, hooks=hooks) as collab:
                return await run_cycle(cfg, store, collab, now=now, hooks=hooks)

        with Store.open(db) as store:
            report = asyncio.run(go(store))
            writes = store.writes
        total = time.perf_counter() - t0
        send_time = (sends[-1] - sends[0]) if len(sends) > 1 else float("nan")
        return {
            "subscribers": n,
            "papers": report.fetched,
            "requests": report.requests,
            "messages": len(smtp.received),
            "cycle_s": total,
            "msgs_per_s": (len(sends) - 1) / send_time if len(sends) > 1 else float("nan"),
            "writes": writes,
            "db_kb": db.stat().st_size / 1024,
        }


def naive_store_seconds(papers: int) -> tuple[float, int]:
    """Baseline: TinyDB's default JSONStorage, one insert (one full rewrite) per paper."""
    header, entries = corpus()
    from digest.feed import parse_page

    ps = parse_page(header + b"".join(entries[:papers]) + b"</feed>").papers
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        db = TinyDB(Path(tmp) / "naive.json")
        for p in ps:
            db.table("papers").insert(paper_to_doc(p))
        db.close()
        return time.perf_counter() - t0, len(ps)


def batched_store_seconds(papers: int) -> float:
    header, entries = corpus()
    from digest.feed import parse_page

    ps = parse_page(header + b"".join(entries[:papers]) + b"</feed>").papers
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with Store.open(Path(tmp) / "digest.json") as store:
            store.add_papers(ps, now)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, nargs="+", default=[50, 200])
    args = ap.parse_args()
    print("full cycles (loopback arXiv with 300 papers, loopback aiosmtpd):")
    print(
        f"{'subs':>5} {'conns':>5} {'papers':>6} {'reqs':>4} {'msgs':>5} {'cycle s':>8} "
        f"{'msg/s':>7} {'writes':>6} {'db KiB':>7}"
    )
    for n in args.subscribers:
        for conns in (1, 2):
            r = one_cycle(n, conns)
            print(
                f"{n:>5} {conns:>5} {r['papers']:>6} {r['requests']:>4} {r['messages']:>5} "
                f"{r['cycle_s']:>8.2f} {r['msgs_per_s']:>7.1f} {r['writes']:>6} "
                f"{r['db_kb']:>7.0f}"
            )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {rss:.0f} MiB")
    print()
    naive, count = naive_store_seconds(300)
    batched = batched_store_seconds(300)
    print(
        f"caching {count} papers: digest batched {batched:.3f} s (1 write) versus "
        f"baseline TinyDB JSONStorage per paper {naive:.3f} s ({count} writes): "
        f"{naive / batched:.0f}x"
    )


if __name__ == "__main__":
    main()
