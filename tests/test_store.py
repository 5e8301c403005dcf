"""The TinyDB store: atomic writes under SIGKILL, the lock, corruption, batching, pruning."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.errors import StoreCorruptError, StoreLockedError
from digest.models import Paper
from digest.store import Store

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


def paper(i: int, version: int = 1, days_ago: float = 1) -> Paper:
    t = NOW - timedelta(days=days_ago)
    return Paper(
        id=f"2611.{i:05d}",
        version=version,
        title=f"Paper {i}",
        abstract="text",
        authors=("A",),
        categories=("cs.LG",),
        primary_category="cs.LG",
        published=t,
        updated=t,
    )


def test_round_trip_papers_deliveries_and_watermarks(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    with Store.open(db, now=NOW) as store:
        assert store.add_papers([paper(1), paper(2)], NOW) == 2
        assert store.add_papers([paper(1, version=2)], NOW) == 0
        store.ensure_watermarks("a@x.org", ["k:graph"], NOW - timedelta(days=2))
        store.record_delivery("a@x.org", {"2611.00001": 2}, NOW)
    with Store.open(db, now=NOW) as store:
        assert store.paper("2611.00001").version == 2
        state = store.subscriber("a@x.org")
        assert state.delivered == {"2611.00001": 2}
        assert state.watermarks == {"k:graph": NOW - timedelta(days=2)}
        # an existing watermark is never moved
        store.ensure_watermarks("a@x.org", ["k:graph", "k:new"], NOW)
        assert store.subscriber("a@x.org").watermarks["k:graph"] == NOW - timedelta(days=2)


def test_writes_are_batched_not_per_paper(tmp_path: Path) -> None:
    with Store.open(tmp_path / "digest.json", now=NOW) as store:
        store.add_papers([paper(i) for i in range(500)], NOW)
        for i in range(50):
            store.record_delivery("a@x.org", {f"2611.{i:05d}": 1}, NOW)
        assert store.writes == 0
        store.flush()
        store.flush()  # nothing changed since: no second write
        assert store.writes == 1


def test_a_second_process_gets_a_clear_lock_error(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from digest.store import Store
            with Store.open(Path({str(db)!r})):
                print("locked", flush=True)
                time.sleep(30)
        """),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError) as info, Store.open(db):
            pass
        assert f"is in use by digest (pid {holder.pid})" in str(info.value)
        assert "stop the service first" in str(info.value)
    finally:
        holder.kill()
        holder.wait(5)
    with Store.open(db):  # the lock died with its process
        pass


def test_readers_do_not_need_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    with Store.open(db, now=NOW) as writer:
        writer.add_papers([paper(1)], NOW)
        writer.flush()
        with Store.open(db, readonly=True) as reader:
            assert len(reader.papers()) == 1


WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from digest.models import Paper
from digest.store import Store
now = datetime.now(UTC)
with Store.open(Path(sys.argv[1])) as store:
    i = 0
    print("ready", flush=True)
    while True:
        i += 1
        p = Paper(id=f"2611.{i:05d}", version=1, title="t" * 2000, abstract="a" * 5000,
                  authors=("A",), categories=("cs.LG",), primary_category="cs.LG",
                  published=now, updated=now)
        store.add_papers([p], now)
        store.record_delivery("a@x.org", {p.id: 1}, now)
        store.flush()
"""


@pytest.mark.parametrize("delay", [0.05, 0.13, 0.21, 0.37, 0.5])
def test_sigkill_during_writes_leaves_a_readable_database(tmp_path: Path, delay: float) -> None:
    db = tmp_path / "digest.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)
    json.loads(db.read_text())  # valid JSON, whatever the moment
    with Store.open(db) as store:  # and stale temp files are cleaned up
        n = len(store.papers())
        # every paper is recorded in the same flush as its delivery
        assert len(store.subscriber("a@x.org").delivered) == n
    assert not list(tmp_path.glob(".tmp-*"))


def test_corrupt_database_is_reported_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    db.write_text('{"papers": {"1": {"id": "x"')
    before = db.read_bytes()
    with pytest.raises(StoreCorruptError) as info, Store.open(db):
        pass
    msg = str(info.value)
    assert str(db) in msg and "invalid JSON at line 1" in msg and "left it untouched" in msg
    assert f"mv {db} {db}.broken" in msg
    assert db.read_bytes() == before


def test_corrupt_database_points_at_the_backup_when_there_is_one(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    with Store.open(db, now=NOW) as store:
        store.add_papers([paper(1)], NOW)
    with Store.open(db, now=NOW):  # opening a good file keeps a backup
        pass
    assert (tmp_path / "digest.json.bak").exists()
    db.write_text("not json")
    with (
        pytest.raises(StoreCorruptError, match=r"restore the backup .*digest.json.bak"),
        Store.open(db),
    ):
        pass


def test_wrong_shape_is_corrupt_too(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    db.write_text("[1, 2, 3]")
    with pytest.raises(StoreCorruptError, match="not a TinyDB database"), Store.open(db):
        pass


def test_prune_drops_only_what_is_past_retention(tmp_path: Path) -> None:
    with Store.open(tmp_path / "digest.json", now=NOW) as store:
        store.add_papers([paper(1, days_ago=400), paper(2, days_ago=1)], NOW - timedelta(days=400))
        store.record_delivery("a@x.org", {"2611.00001": 1}, NOW - timedelta(days=400))
        store.record_delivery("a@x.org", {"2611.00002": 1}, NOW)
        assert store.prune(NOW) == (1, 1)
        assert [p.id for p in store.papers()] == ["2611.00002"]
        assert store.subscriber("a@x.org").delivered == {"2611.00002": 1}
