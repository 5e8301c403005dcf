"""The store at a year's scale: open, "who got what", record, rewrites, memory.

Builds, through ``Store``'s own API, R readers x D delivered papers each (in
20 batches, one every 9 days over the 180-day retention, each of papers
submitted in the 9 days before it, drawn from 90,000: 500 a day) plus the
newest papers as the cache, then runs the store's part of one cycle and prints each figure beside
the baseline measured in the same run: the store as it was before the
journal (``digest/store.py`` at commit ``BASELINE``, loaded from git into a
temporary module).

The cycle, as the daemon runs it: open (replay + fold), cache a 2,000-paper
fetch, give every reader its watermarks, compute for every reader which of
the 2,000 fetched papers it has not been sent ("who got what"), record M
accepted messages (``record_delivery`` + ``flush`` each: the durability
contract), save the cycle record, prune, close. "Who got what" asks digest's
store only for the batches since the oldest fetched paper's submission
(``delivered_since``); the baseline can only read each reader's whole
history. Both must find the same pending pairs. Each phase runs in a fresh
subprocess so that peak RSS is that phase's own.

The baseline rewrites the whole file on every flush (1.5 s each at 1M
records), so its record time is measured on a few messages and multiplied
out ("est."); at 10,000 readers it is not built at all (``--no-baseline``).

    python benchmarks/store_at_scale.py            # 1,000 x 1,000 + 8,300 papers
    python benchmarks/store_at_scale.py --readers 10000 --no-baseline
    python benchmarks/store_at_scale.py --quick    # small numbers, for CI
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.models import Paper  # noqa: E402

BASELINE = "23904f1"  # main before the journal: one whole-file rewrite per flush
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
BATCHES = 20  # deliveries per reader, one every 9 days over the retention period
SPAN = timedelta(days=180)  # the retention period
ID_POOL = 90_000  # papers announced over it (500 a day), numbered oldest first
FETCH = 2_000
PER_MESSAGE = 20  # papers per recorded message
SAMPLE = 3  # baseline messages actually recorded (each rewrites the file)


def paper(n: int, published: datetime) -> Paper:
    rng = random.Random(n)
    words = [
        rng.choice(("graph", "neural", "quantum", "model", "learning", "test")) for _ in range(180)
    ]
    return Paper(
        id=f"26{n // 100_000:02d}.{n % 100_000:05d}",
        version=1,
        title=" ".join(words[:12]).capitalize(),
        abstract=" ".join(words),
        authors=tuple(f"Author {rng.randrange(10_000)}" for _ in range(5)),
        categories=("cs.LG", "stat.ML"),
        primary_category="cs.LG",
        published=published,
        updated=published,
        comment="12 pages, 4 figures",
    )


def pid(n: int) -> str:
    return f"26{n // 100_000:02d}.{n % 100_000:05d}"


def published(n: int) -> datetime:
    return NOW - SPAN * (ID_POOL - 1 - n) / ID_POOL


def load_impl(name: str, work: Path) -> ModuleType:
    if name == "new":
        import digest.store.store

        return digest.store.store
    source = subprocess.run(
        ["git", "show", f"{BASELINE}:digest/store.py"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    path = work / "baseline_store.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("baseline_store", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_store"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def build(impl: ModuleType, db: Path, readers: int, per_reader: int, cached: int) -> dict[str, Any]:
    rng = random.Random(1)
    t0 = time.perf_counter()
    with impl.Store.open(db, now=NOW) as store:
        newest = range(ID_POOL - cached, ID_POOL)
        store.add_papers([paper(n, published(n)) for n in newest], NOW)
        per_batch = max(1, per_reader // BATCHES)
        step = ID_POOL // BATCHES
        for r in range(readers):
            email = f"reader{r}@example.org"
            store.ensure_watermarks(
                email, [f"k:term{r % 50}", "k:graph"], NOW - timedelta(days=180)
            )
            for b in range(BATCHES):
                # the last batch is sent at NOW: papers go out within 9 days of submission
                when = NOW - SPAN * (BATCHES - 1 - b) / BATCHES
                ids = rng.sample(range(b * step, (b + 1) * step), per_batch)
                store.record_delivery(email, {pid(n): 1 for n in ids}, when)
    return {"build_s": time.perf_counter() - t0, "file_mb": db.stat().st_size / 1e6}


def cycle(impl: ModuleType, db: Path, readers: int, messages: int, sampled: bool) -> dict[str, Any]:
    now = NOW + timedelta(days=1)
    fetched = [paper(ID_POOL + i, now - timedelta(hours=i / 100)) for i in range(FETCH // 2)]
    # half new, half submitted in the last two days (and partly delivered): windows overlap
    fetched += [paper(n, published(n)) for n in range(ID_POOL - FETCH // 2, ID_POOL)]
    emails = [f"reader{r}@example.org" for r in range(readers)]
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    with impl.Store.open(db, now=now) as store:
        out["open_s"] = time.perf_counter() - t0
        t = time.perf_counter()
        store.add_papers(fetched, now)
        store.set_last_fetch(now)
        store.flush()
        for e in emails:
            store.ensure_watermarks(e, ["k:graph", "k:new"], now)
        store.flush()
        out["cache_s"] = time.perf_counter() - t
        t = time.perf_counter()
        ids = [p.id for p in fetched]
        fetched_ids = set(ids)
        pending = 0
        # a paper is delivered after its submission: only batches since the oldest
        # fetched one can hold it (the baseline has no such query: whole history)
        since = min(p.published for p in fetched) - timedelta(days=1)
        recent = getattr(store, "delivered_since", None)
        for e in emails:
            sent = recent(e, since) if recent else store.subscriber(e).delivered
            pending += len(fetched_ids - sent.keys())
        out["diff_s"] = time.perf_counter() - t
        out["pending"] = pending
        todo = emails[: SAMPLE if sampled else messages]
        before = store.writes
        SYNCED[0] = 0.0
        t = time.perf_counter()
        for n, e in enumerate(todo):
            sent = {ids[(n * PER_MESSAGE + k) % len(ids)]: 1 for k in range(PER_MESSAGE)}
            store.record_delivery(e, sent, now)
            store.flush()
        elapsed = time.perf_counter() - t
        out["fsync_share"] = SYNCED[0] / elapsed if elapsed else 0.0
        per_message = (store.writes - before) / len(todo)
        out["record_s"] = elapsed * messages / len(todo)
        out["record_estimated"] = sampled
        store.set_last_cycle({"started": now.isoformat()})
        t = time.perf_counter()
        store.prune(now)
    out["close_s"] = time.perf_counter() - t
    # every rewrite of this store's life: the fold on open, flushes, the fold on close;
    # the baseline's unsampled messages would each have cost what the sampled ones did
    out["rewrites"] = round(store.writes + (messages - len(todo)) * per_message)
    out["file_mb_after"] = db.stat().st_size / 1e6
    return out


SYNCED = [0.0]  # seconds spent in fsync/fdatasync: the disk's share of recording


def timed_syncs() -> None:
    for name in ("fsync", "fdatasync"):
        real = getattr(os, name)

        def synced(fd: int, real: Any = real) -> None:
            t = time.perf_counter()
            real(fd)
            SYNCED[0] += time.perf_counter() - t

        setattr(os, name, synced)


def child(args: argparse.Namespace) -> None:
    timed_syncs()
    work = Path(args.work)
    impl = load_impl(args.impl, work)
    db = work / f"{args.impl}.json"
    if args.child == "build":
        out = build(impl, db, args.readers, args.per_reader, args.papers)
    else:
        out = cycle(impl, db, args.readers, args.messages, sampled=args.impl == "old")
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def run(phase: str, impl: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", phase, "--impl", impl, "--work", str(work)]
    cmd += ["--readers", str(args.readers), "--per-reader", str(args.per_reader)]
    cmd += ["--papers", str(args.papers), "--messages", str(args.messages)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{impl} {phase} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readers", type=int, default=1000)
    ap.add_argument("--per-reader", type=int, default=1000)
    ap.add_argument("--papers", type=int, default=8300, help="cached papers")
    ap.add_argument("--messages", type=int, default=1000, help="accepted messages to record")
    ap.add_argument("--quick", action="store_true", help="small numbers, for CI")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--child", choices=["build", "cycle"], help=argparse.SUPPRESS)
    ap.add_argument("--impl", choices=["new", "old"], help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.readers, args.per_reader, args.papers, args.messages = 50, 100, 500, 50
    impls = ["new"] if args.no_baseline else ["new", "old"]
    if "old" in impls:
        probe = subprocess.run(["git", "cat-file", "-e", f"{BASELINE}:digest/store.py"], cwd=ROOT)
        if probe.returncode:
            print(f"baseline commit {BASELINE} not available: measuring digest's store only")
            impls = ["new"]
    print(
        f"store at scale: {args.readers} readers x {args.per_reader} delivered papers "
        f"({args.readers * args.per_reader:,} records), {args.papers} cached papers; "
        f"cycle: {FETCH}-paper fetch, {args.messages} messages recorded"
    )
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for impl in impls:
            b = run("build", impl, Path(tmp), args)
            c = run("cycle", impl, Path(tmp), args)
            results[impl] = {**b, **c}
    rows = [
        ("file size (MB)", "file_mb", "{:.1f}"),
        ("open (s)", "open_s", "{:.2f}"),
        ("cache fetch + watermarks (s)", "cache_s", "{:.2f}"),
        ("who got what, all readers (s)", "diff_s", "{:.2f}"),
        (f"record {args.messages} messages (s)", "record_s", "{:.2f}"),
        ("  of which in fsync", "fsync_share", "{:.0%}"),
        ("prune + close (s)", "close_s", "{:.2f}"),
        ("main-file rewrites per cycle", "rewrites", "{}"),
        ("peak RSS during the cycle (MiB)", "rss_mb", "{:.0f}"),
        ("build through the API (s)", "build_s", "{:.1f}"),
    ]
    header = f"{'':34} {'digest':>10}"
    if "old" in results:
        header += f" {'baseline':>14}"
    print(header)
    for label, key, fmt in rows:
        line = f"{label:34} {fmt.format(results['new'][key]):>10}"
        if "old" in results:
            old = results["old"]
            estimated = key in ("record_s", "rewrites") and old.get("record_estimated")
            mark = " est." if estimated else ""
            line += f" {fmt.format(old[key]) + mark:>14}"
        print(line)
    new = results["new"]
    total = new["diff_s"] + new["record_s"]
    print(f"diff + record: {total:.2f} s; pending pairs found: {new['pending']:,}")
    if "old" in results:
        assert results["old"]["pending"] == new["pending"], "the two stores disagree"


if __name__ == "__main__":
    main()
