"""The store: journal and checkpoints under SIGKILL and ENOSPC, migration, seams, the lock."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from digest.errors import StoreCorruptError, StoreError, StoreLockedError
from digest.models import Paper
from digest.store.format import SCHEMA, decode_ids
from digest.store.storage import AtomicJSONStorage, JournalStorage, MemoryStorage, snapshot_db
from digest.store.store import Store
from tests.support.paths import FIXTURES, ROOT

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


class Backend:
    """One database, on disk or in memory, that tests open again and again."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.path = tmp_path / "digest.json"
        self.memory = MemoryStorage() if kind == "memory" else None

    def open(self, now: datetime = NOW, readonly: bool = False) -> AbstractContextManager[Store]:
        return Store.open(self.path, now=now, readonly=readonly, storage=self.memory)

    def storage(self) -> JournalStorage:
        return self.memory or AtomicJSONStorage(self.path)

    def set_journal(self, data: bytes) -> None:
        if self.memory is not None:
            self.memory.journal[:] = data
        else:
            self.path.with_name("digest.json.journal").write_bytes(data)

    def load(self, data: dict[str, Any]) -> None:
        if self.memory is not None:
            self.memory.memory = data
        else:
            self.path.write_text(json.dumps(data))


@pytest.fixture(params=["json", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, tmp_path)


def everything(backend: Backend) -> dict[str, Any]:
    with backend.open(readonly=True) as store:
        return store.ledger.to_data()


# -- meaning ------------------------------------------------------------------------


def test_round_trip_papers_deliveries_and_watermarks(backend: Backend) -> None:
    with backend.open() as store:
        assert store.add_papers([paper(1), paper(2)], NOW) == 2
        assert store.add_papers([paper(1, version=2)], NOW) == 0
        store.ensure_watermarks("a@x.org", ["k:graph"], NOW - timedelta(days=2))
        store.record_delivery("a@x.org", {"2611.00001": 2}, NOW)
        store.set_last_fetch(NOW)
    with backend.open() as store:
        assert store.paper("2611.00001").version == 2
        state = store.subscriber("a@x.org")
        assert state.delivered == {"2611.00001": 2}
        assert state.delivered_at == {"2611.00001": NOW}
        assert state.watermarks == {"k:graph": NOW - timedelta(days=2)}
        assert store.last_fetch() == NOW
        # an existing watermark is never moved
        store.ensure_watermarks("a@x.org", ["k:graph", "k:new"], NOW)
        assert store.subscriber("a@x.org").watermarks["k:graph"] == NOW - timedelta(days=2)


def test_a_subscriber_state_is_a_snapshot(backend: Backend) -> None:
    with backend.open() as store:
        store.record_delivery("a@x.org", {"2611.00001": 1}, NOW)
        before = store.subscriber("a@x.org")
        store.record_delivery("a@x.org", {"2611.00002": 1}, NOW + timedelta(days=1))
        assert dict(before.delivered) == {"2611.00001": 1}
        assert set(before.delivered_at) == {"2611.00001"}
        assert len(store.subscriber("a@x.org").delivered) == 2


def test_one_timestamp_per_delivery_batch(backend: Backend) -> None:
    with backend.open() as store:
        store.record_delivery("a@x.org", {"2611.00001": 1, "2611.00002": 1}, NOW)
        store.record_delivery("a@x.org", {"2611.00001": 2}, NOW + timedelta(days=1))
    (doc,) = everything(backend)["subscribers"].values()
    assert doc["batches"] == [  # arXiv's notation: the version only when above 1
        {"at": "2026-11-30T07:00:00+00:00", "ids": "2611.00001 2611.00002"},
        {"at": "2026-12-01T07:00:00+00:00", "ids": "2611.00001v2"},
    ]
    with backend.open() as store:
        state = store.subscriber("a@x.org")
        assert state.delivered == {"2611.00001": 2, "2611.00002": 1}
        assert state.delivered_at["2611.00001"] == NOW + timedelta(days=1)


def test_delivered_since_reads_only_recent_batches(backend: Backend) -> None:
    with backend.open() as store:
        for day in range(5):
            sent = {f"2611.0000{day}": 1, "2611.00009": day + 1}
            store.record_delivery("a@x.org", sent, NOW + timedelta(days=day))
    with backend.open() as store:  # batches read back from the file, still encoded
        assert store.delivered_since("a@x.org", NOW + timedelta(days=3)) == {
            "2611.00003": 1,
            "2611.00004": 1,
            "2611.00009": 5,
        }
        assert store.delivered_since("nobody@x.org", NOW) == {}


def test_prune_drops_only_what_is_past_retention(backend: Backend) -> None:
    with backend.open() as store:
        store.add_papers([paper(1, days_ago=400), paper(2, days_ago=1)], NOW - timedelta(days=400))
        store.record_delivery("a@x.org", {"2611.00001": 1}, NOW - timedelta(days=400))
        store.record_delivery("a@x.org", {"2611.00002": 1}, NOW)
        assert store.prune(NOW) == (1, 1)
        assert [p.id for p in store.papers()] == ["2611.00002"]
        assert store.subscriber("a@x.org").delivered == {"2611.00002": 1}
    with backend.open() as store:  # and the pruned state is what was written
        assert [p.id for p in store.papers()] == ["2611.00002"]
        assert store.subscriber("a@x.org").delivered == {"2611.00002": 1}


def test_a_clock_200_days_ahead_prunes_nothing_a_later_cycle_could_send_again(
    backend: Backend,
) -> None:
    # age counts from arXiv's newest paper when the clock runs ahead of it
    with backend.open() as store:
        store.add_papers([paper(1, days_ago=3), paper(2, days_ago=1)], NOW)
        store.record_delivery("a@x.org", {"2611.00001": 1, "2611.00002": 1}, NOW)
        store.record_skipped("a@x.org", {"2611.00003": 1}, NOW)
        assert store.prune(NOW + timedelta(days=200)) == (0, 0)
        assert len(store.papers()) == 2
        assert store.subscriber("a@x.org").delivered == {"2611.00001": 1, "2611.00002": 1}
        assert dict(store.subscriber("a@x.org").skipped) == {"2611.00003": 1}
        # half a year on, newer papers are cached and those records age out as before
        store.add_papers([paper(3, days_ago=-181)], NOW + timedelta(days=181))
        assert store.prune(NOW + timedelta(days=182)) == (2, 2)
        assert dict(store.subscriber("a@x.org").skipped) == {}


def test_watermarks_reset_only_when_told_and_first_seen_with_them(backend: Backend) -> None:
    ahead = NOW + timedelta(days=7)
    with backend.open() as store:
        store.ensure_watermarks("a@x.org", ["k:graph", "k:test"], ahead - timedelta(days=2), ahead)
        # the next cycle, on a right clock: a start of its own is no reason to move them
        marks = store.ensure_watermarks("a@x.org", ["k:graph", "k:test"], NOW, NOW)
        assert set(marks.values()) == {ahead - timedelta(days=2)}
        marks = store.ensure_watermarks(
            "a@x.org", ["k:graph", "k:test"], NOW, NOW, reset=["k:graph"], reset_first_seen=True
        )
        assert marks == {"k:graph": NOW, "k:test": ahead - timedelta(days=2)}
        assert store.subscriber("a@x.org").first_seen == NOW
    with backend.open() as store:  # journaled like any change
        assert store.subscriber("a@x.org").watermarks["k:graph"] == NOW


def test_a_readers_cadence_and_its_change_are_stored(backend: Backend) -> None:
    with backend.open() as store:
        store.set_cadence("a@x.org", "daily", None)
        store.set_cadence("a@x.org", "weekly:mon", NOW)
    with backend.open() as store:
        state = store.subscriber("a@x.org")
        assert (state.cadence, state.cadence_since) == ("weekly:mon", NOW)


def test_the_tinydb_view_shows_the_current_state(backend: Backend) -> None:
    with backend.open() as store:
        store.record_delivery("a@x.org", {"2611.00001": 1}, NOW)
        (doc,) = snapshot_db(store.ledger.to_data()).table("subscribers").all()
        assert doc["email"] == "a@x.org" and doc["batches"][0]["ids"] == "2611.00001"


def test_a_newer_schema_is_refused(backend: Backend) -> None:
    backend.load({"meta": {"1": {"schema": 99}}})
    with pytest.raises(StoreError, match="written by a newer digest"), backend.open():
        pass


# -- the journal ------------------------------------------------------------------------


def test_flush_appends_one_journal_line_and_never_rewrites_the_file(backend: Backend) -> None:
    with backend.open() as store:
        store.add_papers([paper(i) for i in range(500)], NOW)
        for i in range(50):
            store.record_delivery("a@x.org", {f"2611.{i:05d}": 1}, NOW)
            store.flush()
        store.flush()  # nothing changed since: nothing written
        assert store.writes == 0
        assert store.storage.read_journal().count(b"\n") == 50
        store.checkpoint()
        assert store.writes == 1
        assert store.storage.read_journal() == b""
        store.checkpoint()  # already folded: no second rewrite
        assert store.writes == 1


def test_a_cycle_rewrites_the_main_file_at_most_once(backend: Backend) -> None:
    with backend.open() as store:
        store.record_delivery("old@x.org", {"2611.09999": 1}, NOW - timedelta(days=400))
    with backend.open() as store:
        start = store.writes
        store.add_papers([paper(i) for i in range(100)], NOW)
        store.set_last_fetch(NOW)
        store.flush()
        for i in range(100):
            store.ensure_watermarks(f"u{i}@x.org", ["k:graph"], NOW)
        store.flush()
        for i in range(100):
            store.record_delivery(f"u{i}@x.org", {f"2611.{i:05d}": 1}, NOW)
            store.flush()
        store.set_last_cycle({"started": NOW.isoformat()})
        assert store.prune(NOW) == (0, 1)
        store.checkpoint()
        assert store.writes - start == 1
    assert backend.storage().read_journal() == b""


def test_the_journal_is_replayed_after_a_crash(backend: Backend) -> None:
    with backend.open() as store:
        store.record_delivery("a@x.org", {"2611.00001": 1}, NOW)
    with backend.open() as store:
        store.record_delivery("a@x.org", {"2611.00002": 1}, NOW + timedelta(days=1))
        store.flush()
        journal = store.storage.read_journal()
    # as if killed before the checkpoint: the file lacks the second delivery
    backend.set_journal(journal)
    with backend.open() as store:
        assert store.subscriber("a@x.org").delivered == {"2611.00001": 1, "2611.00002": 1}
    assert backend.storage().read_journal() == b""  # folded on open


def test_replaying_a_journal_twice_changes_nothing(backend: Backend) -> None:
    with backend.open() as store:
        store.add_papers([paper(1)], NOW)
        store.ensure_watermarks("a@x.org", ["k:graph"], NOW, now=NOW)
        store.record_delivery("a@x.org", {"2611.00001": 1}, NOW)
        store.add_papers([paper(1, version=2)], NOW + timedelta(days=1))
        store.record_delivery("a@x.org", {"2611.00001": 2}, NOW + timedelta(days=1))
        store.mark_served("a@x.org", empty_day="2026-11-30")
        store.set_last_fetch(NOW)
        store.flush()
        journal = store.storage.read_journal()
    folded = everything(backend)
    # as if killed after the file was written but before the journal was emptied
    backend.set_journal(journal)
    assert everything(backend) == folded
    with backend.open():
        pass
    backend.set_journal(journal + journal)
    with backend.open():
        pass
    assert everything(backend) == folded


def test_offered_papers_are_journaled_apart_from_deliveries_and_age_out(backend: Backend) -> None:
    with backend.open() as store:
        store.record_offered("a@x.org", {"2611.00004": 1}, NOW - timedelta(days=200))
        store.record_delivery("a@x.org", {"2611.00001": 1}, NOW)
        store.record_offered("a@x.org", {"2611.00002": 1, "2611.00003": 2}, NOW)
        store.flush()
        journal = store.storage.read_journal()
    backend.set_journal(journal + journal)  # replayed twice: the same
    with backend.open() as store:
        state = store.subscriber("a@x.org")
        assert dict(state.delivered) == {"2611.00001": 1}
        assert dict(state.offered) == {"2611.00002": 1, "2611.00003": 2, "2611.00004": 1}
        assert not state.skipped
        store.prune(NOW)
        assert dict(store.subscriber("a@x.org").offered) == {"2611.00002": 1, "2611.00003": 2}


def test_a_checkpoint_journals_its_unflushed_changes_first(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    with backend.open() as store:
        store.set_last_fetch(NOW)
        store.flush()
        store.set_last_fetch(NOW + timedelta(days=1))  # not flushed
        # killed after the file was written, before the journal was emptied
        monkeypatch.setattr(type(store.storage), "clear_journal", lambda self: None)
        store.checkpoint()
        monkeypatch.undo()
    with backend.open() as store:  # the replay must not set the older time back
        assert store.last_fetch() == NOW + timedelta(days=1)


def test_a_torn_last_line_is_ignored(backend: Backend) -> None:
    with backend.open() as store:
        store.record_delivery("a@x.org", {"2611.00001": 1}, NOW)
        store.flush()
        whole = store.storage.read_journal()
        store.record_delivery("a@x.org", {"2611.00002": 1}, NOW)
        store.flush()
        both = store.storage.read_journal()
    torn = both[: len(whole) + (len(both) - len(whole)) // 2]
    backend.set_journal(torn)
    backend.load({})
    with backend.open() as store:
        assert store.subscriber("a@x.org").delivered == {"2611.00001": 1}
        # the fragment is gone: the next line starts a line of its own
        store.record_delivery("a@x.org", {"2611.00003": 1}, NOW)
        store.flush()
        assert store.storage.read_journal().count(b"\n") == 1


def test_a_corrupt_journal_is_reported_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    with Store.open(db, now=NOW) as store:
        store.record_delivery("a@x.org", {"2611.00001": 1}, NOW)
    journal = db.with_name("digest.json.journal")
    journal.write_bytes(b'[["deliver","a@x.org"\n[["meta",{}]]\n')
    before = db.read_bytes(), journal.read_bytes()
    with pytest.raises(StoreCorruptError) as info, Store.open(db, now=NOW):
        pass
    msg = str(info.value)
    assert f"the journal {journal} is unreadable (line 1" in msg and "left it" in msg
    assert "run digest restore" in msg
    assert (db.read_bytes(), journal.read_bytes()) == before
    journal.rename(tmp_path / "broken")
    with Store.open(db, now=NOW) as store:  # the failed open released the lock
        assert store.subscriber("a@x.org").delivered == {"2611.00001": 1}


def test_a_journal_change_of_the_wrong_shape_is_corrupt_too(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    db.with_name("digest.json.journal").write_bytes(b'[["deliver",42]]\n')
    with (
        pytest.raises(StoreCorruptError, match=r"journal .* is unreadable \(change 1"),
        Store.open(db, now=NOW),
    ):
        pass


def test_a_reader_sees_what_the_writer_flushed_without_the_lock(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    with Store.open(db, now=NOW) as writer:
        writer.add_papers([paper(1)], NOW)
        writer.record_delivery("a@x.org", {"2611.00001": 1}, NOW)
        writer.flush()
        with Store.open(db, readonly=True) as reader:
            assert len(reader.papers()) == 1
            assert reader.subscriber("a@x.org").delivered == {"2611.00001": 1}
        assert writer.storage.read_journal()  # the reader folded nothing


# -- SIGKILL at every point of a cycle ------------------------------------------------

CHILD = """
import os, sys, time
from datetime import UTC, datetime
from pathlib import Path
from digest.store.storage import AtomicJSONStorage
from digest.store.store import Store
db, n, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
now = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
def stop(marker):
    print(marker, flush=True)
    time.sleep(60)  # the parent's SIGKILL lands here
with Store.open(db, now=now) as store:
    for i in range(n):
        store.record_delivery(f"u{i % 3}@x.org", {f"2611.{i:05d}": 1}, now)
        store.flush()
        print(f"acked {i}", flush=True)
    if mode == "between":
        stop("killme")
    if mode == "mid":
        real = os.write
        def half(fd, data):
            real(fd, bytes(data[: len(data) // 2]))
            stop("killme")
        os.write = half
        store.record_delivery("u0@x.org", {"2611.99999": 1}, now)
        store.flush()
    if mode == "fold":
        AtomicJSONStorage.clear_journal = lambda self: stop("killme")
        store.checkpoint()
"""


def killed_at(db: Path, n: int, mode: str) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), str(n), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    acked = []
    try:
        for line in proc.stdout:
            if line.startswith("acked"):
                acked.append(f"2611.{int(line.split()[1]):05d}")
            elif line.strip() == "killme":
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(10)
    return acked


@pytest.mark.parametrize("mode", ["between", "mid", "fold"])
@pytest.mark.parametrize("lines", [0, 1, 2, 3])
def test_sigkill_anywhere_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, lines: int, mode: str
) -> None:
    db = tmp_path / "digest.json"
    with Store.open(db, now=NOW) as store:  # a database from an earlier cycle
        store.record_delivery("u0@x.org", {"2611.88888": 1}, NOW - timedelta(days=1))
    acked = killed_at(db, lines, mode)
    assert len(acked) == lines
    with Store.open(db, now=NOW) as store:
        got = [pid for e in store.subscriber_emails() for pid in store.subscriber(e).delivered]
        batches = [
            pid
            for r in store.ledger.readers.values()
            for _, ids in r.batches
            for pid in decode_ids(ids)
        ]
    assert sorted(got) == sorted(batches) == sorted([*acked, "2611.88888"])
    once = everything_on_disk(db)
    with Store.open(db, now=NOW):  # reopening again changes nothing
        pass
    assert everything_on_disk(db) == once
    assert not list(tmp_path.glob(".tmp-*"))


def everything_on_disk(db: Path) -> dict[str, Any]:
    with Store.open(db, readonly=True) as store:
        return store.ledger.to_data()


WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from digest.models import Paper
from digest.store.store import Store
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
        if i % 20 == 0:
            store.checkpoint()
"""


@pytest.mark.parametrize("delay", [0.05, 0.21, 0.5])
def test_sigkill_during_writes_leaves_a_readable_database(tmp_path: Path, delay: float) -> None:
    db = tmp_path / "digest.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)
    if db.exists():
        json.loads(db.read_text())  # valid JSON, whatever the moment
    with Store.open(db) as store:  # and stale temp files are cleaned up
        n = len(store.papers())
        # every paper is recorded in the same flush as its delivery
        assert len(store.subscriber("a@x.org").delivered) == n
    assert not list(tmp_path.glob(".tmp-*"))


# -- ENOSPC ---------------------------------------------------------------------------


@contextmanager
def disk_full(monkeypatch: pytest.MonkeyPatch, target: Callable[[str], bool]) -> Iterator[None]:
    """os.write writes half, then fails with ENOSPC, for files whose name matches."""
    real = os.write

    def write(fd: int, data: Any) -> int:
        if target(os.readlink(f"/proc/self/fd/{fd}")):
            real(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", write)
        yield


def test_enospc_on_the_journal_is_a_clear_error_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "digest.json"
    journal = db.with_name("digest.json.journal")
    with Store.open(db, now=NOW) as store:
        store.record_delivery("a@x.org", {"2611.00001": 1}, NOW)
        store.flush()
        before = journal.read_bytes()
        store.record_delivery("a@x.org", {"2611.00002": 1}, NOW)
        with (
            disk_full(monkeypatch, lambda name: name.endswith(".journal")),
            pytest.raises(StoreError) as info,
        ):
            store.flush()
        assert f"cannot append to the journal {journal}" in str(info.value)
        assert "No space left on device" in str(info.value)
        assert journal.read_bytes() == before  # no torn line left behind
        store.flush()  # space again: the kept change goes out
    with Store.open(db, now=NOW) as store:
        assert store.subscriber("a@x.org").delivered == {"2611.00001": 1, "2611.00002": 1}


def test_enospc_on_the_database_is_a_clear_error_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "digest.json"
    with Store.open(db, now=NOW) as store:
        store.record_delivery("a@x.org", {"2611.00001": 1}, NOW)
    before = db.read_bytes()
    with Store.open(db, now=NOW) as store:
        store.record_delivery("a@x.org", {"2611.00002": 1}, NOW)
        store.flush()
        with (
            disk_full(monkeypatch, lambda name: ".tmp-digest.json." in name),
            pytest.raises(StoreError) as info,
        ):
            store.checkpoint()
        assert f"cannot write the database {db}" in str(info.value)
        assert "Nothing was lost" in str(info.value)
        assert db.read_bytes() == before
        assert store.storage.read_journal()  # the journal still holds the change
        assert not list(tmp_path.glob(".tmp-*"))
    with Store.open(db, now=NOW) as store:
        assert store.subscriber("a@x.org").delivered == {"2611.00001": 1, "2611.00002": 1}


# -- migration, seams, the lock, corruption --------------------------------------------


def test_a_schema_1_file_opens_with_the_same_meaning(backend: Backend, tmp_path: Path) -> None:
    # written by main's store.py before the journal (see the test's fixture)
    old = json.loads((FIXTURES / "store_schema1.json").read_text())
    backend.load(old)
    day = timedelta(days=1)
    with backend.open() as store:
        a = store.subscriber("a@x.org")
        assert a.delivered == {"2611.00001": 2, "2611.00002": 1, "2611.00003": 1}
        assert a.delivered_at == {"2611.00001": NOW, "2611.00002": NOW - day, "2611.00003": NOW}
        assert a.watermarks == {"k:graph": NOW - 7 * day}
        assert (a.first_seen, a.last_sent) == (NOW - 2 * day, NOW)
        assert a.served_slot == NOW - timedelta(hours=1)
        assert store.subscriber("b@x.org").last_empty == "2026-11-29"
        assert store.paper("2611.00001").version == 2
        assert (store.last_fetch(), store.last_slot()) == (NOW, NOW - timedelta(hours=1))
        assert store.last_cycle() == {"started": NOW.isoformat(), "fetched": 3}
    new = backend.storage().read()
    assert new["meta"]["1"]["schema"] == SCHEMA
    assert all("delivered" not in d for d in new["subscribers"].values())


def test_migration_keeps_the_old_file_as_the_backup(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    shutil.copyfile(FIXTURES / "store_schema1.json", db)
    with Store.open(db, now=NOW):
        pass
    assert json.loads(db.with_name("digest.json.bak").read_text())["meta"]["1"]["schema"] == 1


def test_memory_storage_touches_no_file(tmp_path: Path) -> None:
    memory = MemoryStorage()
    with Store.open(tmp_path / "digest.json", storage=memory, now=NOW) as store:
        store.record_delivery("a@x.org", {"2611.00001": 1}, NOW)
        store.flush()
    assert list(tmp_path.iterdir()) == []
    assert memory.writes == 1 and memory.journal == b""


def test_the_daily_backup_follows_the_injected_clock(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    backup = db.with_name("digest.json.bak")
    then = datetime(2020, 1, 1, 7, 0, tzinfo=UTC)  # years before the real clock
    with Store.open(db, now=then) as store:
        store.record_delivery("a@x.org", {"2611.00001": 1}, then)
    with Store.open(db, now=then) as store:  # the first backup, dated `then`
        store.record_delivery("a@x.org", {"2611.00002": 1}, then)
    assert backup.stat().st_mtime == then.timestamp()
    first = backup.read_bytes()
    with Store.open(db, now=then + timedelta(hours=23)):  # same day by the clock: kept
        pass
    assert backup.read_bytes() == first
    with Store.open(db, now=then + timedelta(hours=25)):  # a day later: refreshed
        pass
    assert backup.read_bytes() == db.read_bytes() != first


def test_a_second_process_gets_a_clear_lock_error(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from digest.store.store import Store
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
        pytest.raises(StoreCorruptError, match=r"To recover, run digest restore: it puts"),
        Store.open(db),
    ):
        pass


def test_wrong_shape_is_corrupt_too(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    db.write_text("[1, 2, 3]")
    with pytest.raises(StoreCorruptError, match="not a TinyDB database"), Store.open(db):
        pass


def test_a_document_of_the_wrong_shape_is_corrupt_and_not_backed_up(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    db.write_text('{"meta": {"1": {"schema": 2}}, "subscribers": {"1": {"batches": []}}}')
    with pytest.raises(StoreCorruptError, match="a document has the wrong shape"), Store.open(db):
        pass
    assert not db.with_name("digest.json.bak").exists()
