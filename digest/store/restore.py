"""Putting the database back together: its backup, the changes kept since, the journal.

``digest restore`` is the advice of every "unreadable" error. It starts from
the newest state that reads: the database itself when only its journal is
damaged, else the daily backup (``<db>.bak``) with the changes every
checkpoint has kept since that backup was taken (``<db>.bak.journal``, whose
first line names the backup it follows); then every journal line that reads.
A change replayed is never sent again. What cannot be replayed (a backup
taken before digest kept that record, a damaged line) is named in
``Restored.lost``, and the command then shows what the next cycle will send.
The unreadable files are moved aside, never deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from digest.errors import StoreCorruptError, StoreUnreadableError
from digest.store.ledger import Ledger, LedgerError
from digest.store.storage import AtomicJSONStorage, backup_path, journal_line


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore did, for the operator."""

    rebuilt: bool  # False: the database and its journal read; nothing was changed
    from_backup: bool = False
    backup_taken: datetime | None = None
    replayed: int = 0  # changes applied over the database or the backup
    lost: tuple[str, ...] = ()  # what could not be replayed, each worded for the operator
    kept: tuple[Path, ...] = ()  # the unreadable files, moved aside


def readable_ops(text: bytes) -> tuple[list[list[Any]], int]:
    """The changes of every whole line that parses, and how many lines did not.

    A torn last line (no newline) was never acknowledged, so it is not lost:
    its changes are still in the journal, or were never made.
    """
    *lines, _torn = text.split(b"\n")
    ops: list[list[Any]] = []
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            batch = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(batch, list) and all(isinstance(op, list) for op in batch):
            ops.extend(batch)
        else:
            bad += 1
    return ops, bad


def since_backup(record: bytes, backup: bytes) -> tuple[list[list[Any]], datetime | None, str]:
    """The changes kept since ``backup``, when it was taken, and why not all ("" when all)."""
    if not record:
        return (
            [],
            None,
            (
                "digest kept no record of the changes since the backup (it was taken by an older "
                "digest, or the record could not be written)"
            ),
        )
    first, _, rest = record.partition(b"\n")
    try:
        header = json.loads(first)
        digest, taken = str(header["backup"]), datetime.fromtimestamp(header["taken"], UTC)
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        return [], None, "the record of the changes since the backup does not read"
    if digest != hashlib.sha256(backup).hexdigest():
        return [], None, "the record of the changes since the backup follows another backup"
    ops, bad = readable_ops(rest)
    return ops, taken, f"{bad} lines of the record since the backup do not read" if bad else ""


def rebuild(storage: AtomicJSONStorage, now: datetime) -> Restored:
    """Restore the database of ``storage`` (the caller holds its lock)."""
    path = storage.path
    if not path.exists() and not backup_path(path).exists():
        return Restored(rebuilt=False)  # nothing was ever written: nothing to restore
    journal, bad_lines = readable_ops(storage.read_journal())
    base = _database(storage)
    from_backup = base is None
    kept_ops: list[list[Any]] = []
    taken: datetime | None = None
    why = ""
    if base is None:
        base, kept_ops, taken, why = _backup(storage)
    lost = [why] if why else []
    replayed = failed = 0
    for op in (*kept_ops, *journal):
        try:
            base.apply(op)
            replayed += 1
        except LedgerError:
            failed += 1
    if bad_lines:
        lost.append(f"{bad_lines} lines of the journal {storage.journal_path} do not read")
    if failed:
        lost.append(f"{failed} recorded changes do not apply")
    if not from_backup and not lost:
        return Restored(rebuilt=False)
    # The unreadable files are kept for the operator, but moved out of the way
    # only once the restored database is written: should that fail (a full
    # disk), the damaged file still stands under its name, so no cycle starts
    # afresh from nothing, and the journal still holds every change for the
    # next restore. The database keeps a second name (a hard link: no space
    # needed) that the atomic write leaves behind when it replaces the first.
    kept: list[Path] = []
    if from_backup and path.exists():
        kept.append(_keep(path, now))
    storage.write(base.to_data())
    if bad_lines or failed:
        kept.append(_aside(storage.journal_path, now))
    if why:
        # the backup and its record no longer add up to the database: a record that
        # could pass for whole at the next restore would hide what is lost
        storage.since_backup_path.unlink(missing_ok=True)
    elif journal:
        storage.keep_since_backup(journal_line(journal))
    storage.clear_journal()
    if from_backup and taken is None:
        taken = datetime.fromtimestamp(backup_path(path).stat().st_mtime, UTC)
    return Restored(True, from_backup, taken, replayed, tuple(lost), tuple(kept))


def _database(storage: AtomicJSONStorage) -> Ledger | None:
    """The database as a ledger, or None when it does not read (or is gone)."""
    if not storage.path.exists():
        return None
    try:
        data = storage.read()
        ledger, _ = Ledger.from_data(data)
    except StoreUnreadableError:
        raise  # a permission to fix, not a file to replace
    except (StoreCorruptError, LedgerError, KeyError, TypeError, ValueError, AttributeError):
        return None
    return ledger


def _backup(storage: AtomicJSONStorage) -> tuple[Ledger, list[list[Any]], datetime | None, str]:
    """The backup as a ledger, the changes kept since it, when it was taken, what is missing."""
    path = storage.path
    backup = backup_path(path)
    start_afresh = (
        f"move them aside (mv {path} {path}.broken) to start afresh; every subscriber then "
        "starts again at lookback_days"
    )
    try:
        raw = backup.read_bytes()
    except OSError as exc:
        raise StoreCorruptError(
            f"the database {path} is unreadable and there is no backup to restore ({backup}: "
            f"{exc.strerror}); {start_afresh}"
        ) from exc
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise TypeError("not a TinyDB database (expected tables of documents)")
        ledger, _ = Ledger.from_data(data)
    except (LedgerError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StoreCorruptError(
            f"the database {path} and its backup {backup} are both unreadable ({exc}); "
            f"{start_afresh}"
        ) from exc
    ops, taken, why = since_backup(storage.read_since_backup(), raw)
    return ledger, ops, taken, why


def _broken_name(path: Path, now: datetime) -> Path:
    """Where an unreadable file is kept: ``<name>.broken-<time>``, never over another."""
    target = path.with_name(f"{path.name}.broken-{now:%Y%m%dT%H%M%S}")
    n = 1
    while target.exists():  # a restore run again within the second
        n += 1
        target = path.with_name(f"{path.name}.broken-{now:%Y%m%dT%H%M%S}-{n}")
    return target


def _keep(path: Path, now: datetime) -> Path:
    """Give an unreadable file a second name, for the operator; it stays where it is."""
    target = _broken_name(path, now)
    os.link(path, target)
    return target


def _aside(path: Path, now: datetime) -> Path:
    """Move an unreadable file out of the way, keeping it for the operator."""
    target = _broken_name(path, now)
    os.replace(path, target)
    return target
