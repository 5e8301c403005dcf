"""Restoring the database: the backup, the changes kept since it, the journal's lines that read."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.errors import StoreCorruptError, StoreError
from digest.store.restore import readable_ops, since_backup
from digest.store.store import Store

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def deliver(db: Path, now: datetime, email: str, paper_id: str) -> None:
    """One run that opens the database (taking the day's backup) and records a delivery."""
    with Store.open(db, now=now) as store:
        store.record_delivery(email, {paper_id: 1}, now)
        store.flush()


def delivered(db: Path) -> dict[str, dict[str, int]]:
    with Store.open(db, readonly=True) as store:
        return {e: dict(store.subscriber(e).delivered) for e in store.subscriber_emails()}


def journal_unfolded(db: Path) -> Path:
    """The journal of a process killed mid-cycle: b@x.org's delivery of 2611.00003, never folded."""
    journal = db.with_name("digest.json.journal")
    op = ["deliver", "b@x.org", (NOW + DAY).isoformat(), {"2611.00003": 1}, None]
    journal.write_bytes(json.dumps([op]).encode() + b"\n")
    return journal


def break_it(db: Path) -> None:
    db.write_bytes(b"\xff\xfe" + db.read_bytes()[:50])


def test_a_restore_replays_every_change_kept_since_the_backup(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    deliver(db, NOW, "a@x.org", "2611.00001")  # no file yet: no backup
    deliver(db, NOW + DAY, "a@x.org", "2611.00002")  # the backup is taken as it opens
    deliver(db, NOW + DAY, "b@x.org", "2611.00003")  # the same day: after the backup
    want = delivered(db)
    break_it(db)
    done = Store.restore(db, NOW + DAY)
    assert done.rebuilt and done.from_backup and done.lost == ()
    assert done.backup_taken == NOW + DAY and done.replayed > 0
    assert delivered(db) == want
    (kept,) = done.kept
    assert kept.name == "digest.json.broken-20261201T070000"
    assert kept.read_bytes()[:2] == b"\xff\xfe"
    # the backup and what is kept since still add up: a second break, a second restore
    deliver(db, NOW + DAY, "c@x.org", "2611.00004")
    want = delivered(db)
    break_it(db)
    assert Store.restore(db, NOW + DAY + timedelta(hours=1)).lost == ()
    assert delivered(db) == want


def test_the_journal_not_yet_folded_is_replayed_too(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    deliver(db, NOW, "a@x.org", "2611.00001")
    deliver(db, NOW + DAY, "a@x.org", "2611.00002")
    # a process killed mid-cycle: a delivery flushed to the journal, never folded
    journal = journal_unfolded(db)
    break_it(db)
    assert Store.restore(db, NOW + DAY).lost == ()
    assert delivered(db)["b@x.org"] == {"2611.00003": 1}
    assert journal.read_bytes() == b""
    # and it is in the record since the backup now, like every folded change
    break_it(db)
    assert Store.restore(db, NOW + DAY).lost == ()
    assert delivered(db)["b@x.org"] == {"2611.00003": 1}


def test_a_backup_without_its_record_is_restored_and_what_is_lost_is_said(
    tmp_path: Path,
) -> None:
    db = tmp_path / "digest.json"
    deliver(db, NOW, "a@x.org", "2611.00001")
    deliver(db, NOW + DAY, "a@x.org", "2611.00002")
    record = db.with_name("digest.json.bak.journal")
    record.unlink()  # a backup taken by a digest that kept no record
    break_it(db)
    done = Store.restore(db, NOW + DAY)
    assert done.rebuilt and done.from_backup
    assert done.lost == (
        "digest kept no record of the changes since the backup (it was taken by an older "
        "digest, or the record could not be written)",
    )
    assert done.backup_taken == NOW + DAY  # the backup's own time
    assert delivered(db) == {"a@x.org": {"2611.00001": 1}}


def test_a_record_that_follows_another_backup_is_never_replayed(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    deliver(db, NOW, "a@x.org", "2611.00001")
    deliver(db, NOW + DAY, "a@x.org", "2611.00002")
    backup = db.with_name("digest.json.bak")
    backup.write_bytes(backup.read_bytes().replace(b"2611.00001", b"2611.00009"))
    break_it(db)
    done = Store.restore(db, NOW + DAY)
    assert done.lost == ("the record of the changes since the backup follows another backup",)
    assert delivered(db) == {"a@x.org": {"2611.00009": 1}}
    # no longer a record of what followed this backup: gone, so it cannot pass for one
    assert not db.with_name("digest.json.bak.journal").exists()


def test_a_journal_line_that_does_not_read_is_skipped_and_kept_aside(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    deliver(db, NOW, "a@x.org", "2611.00001")
    journal = db.with_name("digest.json.journal")
    good = json.dumps([["deliver", "b@x.org", NOW.isoformat(), {"2611.00002": 1}, None]])
    journal.write_bytes(b'[["deliver","a@x.org"\n' + good.encode() + b"\n")
    with pytest.raises(StoreCorruptError, match="run digest restore"), Store.open(db, now=NOW):
        pass
    done = Store.restore(db, NOW)
    assert done.rebuilt and not done.from_backup
    assert done.lost == (f"1 lines of the journal {journal} do not read",)
    assert [p.name for p in done.kept] == ["digest.json.journal.broken-20261130T070000"]
    assert delivered(db) == {"a@x.org": {"2611.00001": 1}, "b@x.org": {"2611.00002": 1}}


def test_a_database_that_reads_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    assert not Store.restore(db, NOW).rebuilt  # nothing ever written
    deliver(db, NOW, "a@x.org", "2611.00001")
    before = db.read_bytes()
    assert not Store.restore(db, NOW).rebuilt
    assert db.read_bytes() == before


def test_a_backup_that_does_not_read_either_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    deliver(db, NOW, "a@x.org", "2611.00001")
    break_it(db)
    with pytest.raises(StoreCorruptError, match=r"there is no backup to restore"):
        Store.restore(db, NOW)
    db.with_name("digest.json.bak").write_text("[]")
    with pytest.raises(StoreCorruptError, match=r"and its backup .* are both unreadable"):
        Store.restore(db, NOW)


def test_a_record_that_cannot_be_extended_is_removed_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "digest.json"
    deliver(db, NOW, "a@x.org", "2611.00001")
    deliver(db, NOW + DAY, "a@x.org", "2611.00002")
    record = db.with_name("digest.json.bak.journal")
    real = os.fdatasync

    def full_disk(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == str(record):
            raise OSError(28, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", full_disk)
    deliver(db, NOW + DAY, "b@x.org", "2611.00003")
    assert not record.exists()
    monkeypatch.undo()
    break_it(db)
    assert "digest kept no record" in Store.restore(db, NOW + DAY).lost[0]


def test_readable_ops_skip_a_bad_line_and_ignore_a_torn_last_one() -> None:
    ops, bad = readable_ops(b'[["meta",{}]]\nnot json\n{"a": 1}\n[["meta",{"x":1}]]\n[["me')
    assert ops == [["meta", {}], ["meta", {"x": 1}]] and bad == 2


def test_the_record_names_its_backup_and_when_it_was_taken() -> None:
    backup = b'{"meta": {}}'
    header = {"backup": hashlib.sha256(backup).hexdigest(), "taken": NOW.timestamp()}
    record = json.dumps(header).encode() + b'\n[["meta",{}]]\n'
    assert since_backup(record, backup) == ([["meta", {}]], NOW, "")
    assert since_backup(b"garbage\n", backup)[2] == (
        "the record of the changes since the backup does not read"
    )


def test_a_restore_that_cannot_write_leaves_everything_where_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a full disk while the restored database is written: the damaged file and the
    # journal stay under their names (the next cycle refuses them, exit 78, and
    # sends nothing), so running restore again once there is room loses nothing
    db = tmp_path / "digest.json"
    deliver(db, NOW, "a@x.org", "2611.00001")
    deliver(db, NOW + DAY, "a@x.org", "2611.00002")
    journal = journal_unfolded(db)
    want = {"a@x.org": {"2611.00001": 1, "2611.00002": 1}, "b@x.org": {"2611.00003": 1}}
    break_it(db)
    damaged = db.read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", full_disk)
        with pytest.raises(StoreError, match="No space"):
            Store.restore(db, NOW + DAY)
    assert db.read_bytes() == damaged and journal.read_bytes() != b""
    with pytest.raises(StoreCorruptError), Store.open(db, now=NOW + DAY):
        pass
    assert Store.restore(db, NOW + DAY + timedelta(minutes=1)).lost == ()
    assert delivered(db) == want
