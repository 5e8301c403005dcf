"""The bytes: the TinyDB JSON file, its journal, or both in memory (tinydb is imported here only).

``AtomicJSONStorage`` replaces the database file atomically (``digest.atomic``)
because TinyDB's own JSONStorage rewrites it in place and a SIGKILL mid-write
leaves invalid JSON (tinydb #301, #383, #461). Beside it, ``<file>.journal``
takes one fsynced line per ``Store.flush``, and ``<file>.bak.journal`` keeps
every change folded in since the daily backup ``<file>.bak`` was taken, so
that ``digest restore`` can put the database back together from the two
(``digest.store.restore``). ``MemoryStorage`` is tinydb's own, with the
journal kept in the object, so tests run without files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import MemoryStorage as TinyMemoryStorage
from tinydb.storages import Storage

from digest import atomic
from digest.errors import StoreCorruptError, StoreError, StoreUnreadableError

log = logging.getLogger(__name__)


class JournalStorage(Storage):
    """A TinyDB storage that also keeps the journal of changes since the last write."""

    name = "memory"

    def read_journal(self) -> bytes:
        raise NotImplementedError

    def append_journal(self, line: bytes) -> None:
        raise NotImplementedError

    def clear_journal(self) -> None:
        raise NotImplementedError

    def journal_size(self) -> int:
        raise NotImplementedError

    def keep_since_backup(self, changes: bytes) -> None:
        """Add folded journal lines to the record kept since the backup (if one is kept)."""


class AtomicJSONStorage(JournalStorage):
    """The database file, replaced atomically on every write, and ``<file>.journal``."""

    def __init__(self, path: str | os.PathLike[str], readonly: bool = False) -> None:
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.since_backup_path = since_backup_path(self.path)
        self.name = str(self.path)
        self.readonly = readonly
        self.writes = 0
        self._jfd: int | None = None
        self._jsize = 0

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except (PermissionError, IsADirectoryError) as exc:
            # not transient: exit 78 so systemd does not restart-loop on it
            raise StoreUnreadableError(
                f"cannot read the database {self.path} ({exc.strerror}); digest left it "
                "untouched. Give the user digest runs as read and write access to it"
            ) from exc
        except OSError as exc:
            raise StoreError(f"cannot read the database {self.path}: {exc}") from exc
        if not text.strip():
            raise corrupt(self.path, "the file is empty")
        try:
            data = json.loads(text)
        except UnicodeDecodeError as exc:
            raise corrupt(self.path, f"not UTF-8 text ({exc.reason})") from exc
        except json.JSONDecodeError as exc:
            raise corrupt(
                self.path, f"invalid JSON at line {exc.lineno}, column {exc.colno}"
            ) from exc
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise corrupt(self.path, "not a TinyDB database (expected tables of documents)")
        return data

    def write(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        if self.readonly:
            raise StoreError(f"the database {self.path} was opened read-only")
        # dumps, not dump: json.dump streams through the pure-Python encoder
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        try:
            atomic.write_atomic(self.path, payload)
        except OSError as exc:
            raise StoreError(
                f"cannot write the database {self.path}: {exc}. Nothing was lost: the old "
                f"file and the journal {self.journal_path} still hold every change"
            ) from exc
        self.writes += 1

    def read_journal(self) -> bytes:
        return _read_or_empty(self.journal_path, f"the journal {self.journal_path}")

    def _journal_fd(self) -> int:
        if self._jfd is None:
            created = not self.journal_path.exists()
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            self._jfd = os.open(self.journal_path, flags, 0o600)
            self._jsize = os.fstat(self._jfd).st_size
            if created:
                atomic.fsync_dir(self.path.parent)  # the journal's name must survive too
        return self._jfd

    def append_journal(self, line: bytes) -> None:
        if self.readonly:
            raise StoreError(f"the database {self.path} was opened read-only")
        try:
            fd = self._journal_fd()
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fdatasync(fd)
        except OSError as exc:
            # leave no torn line behind: the next append must start on a line of its own
            if self._jfd is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._jfd, self._jsize)
            raise StoreError(
                f"cannot append to the journal {self.journal_path}: {exc}. The change is "
                "kept in memory and will be written by the next flush or checkpoint"
            ) from exc
        self._jsize += len(line)

    def clear_journal(self) -> None:
        if self._jfd is None and not self.journal_path.exists():
            return
        try:
            fd = self._journal_fd()
            os.ftruncate(fd, 0)
            os.fsync(fd)
        except OSError as exc:
            raise StoreError(f"cannot empty the journal {self.journal_path}: {exc}") from exc
        self._jsize = 0

    def journal_size(self) -> int:
        return self._jsize

    def back_up(self, data: bytes, taken: float) -> None:
        """Make ``data`` (the database as read) the backup, and start its record afresh.

        The record's first line names the backup it belongs to (its SHA-256),
        so a restore never replays changes over a backup they do not follow.
        Raises ``OSError``; a record left unstarted is removed, never trusted.
        """
        backup = backup_path(self.path)
        tmp = backup.with_name(atomic.TMP_PREFIX + backup.name)
        # readers' addresses: owner-only from the first byte, like the database
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.utime(tmp, (taken, taken))  # the backup's age, by the injected clock
        os.replace(tmp, backup)
        header = {"backup": hashlib.sha256(data).hexdigest(), "taken": taken}
        try:
            atomic.write_atomic(self.since_backup_path, json.dumps(header) + "\n", mode=0o600)
        except OSError:
            with contextlib.suppress(OSError):
                self.since_backup_path.unlink()
            raise

    def keep_since_backup(self, changes: bytes) -> None:
        if not changes or not self.since_backup_path.exists():
            return  # no backup taken by this digest yet: nothing to extend
        try:
            fd = os.open(self.since_backup_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            try:
                view = memoryview(changes)
                while view:
                    view = view[os.write(fd, view) :]
                os.fdatasync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            # an incomplete record must not pass for a whole one at a restore
            with contextlib.suppress(OSError):
                self.since_backup_path.unlink()
            log.warning(
                "could not keep the changes since the backup in %s (%s): a restore from "
                "today's backup would not replay them",
                self.since_backup_path,
                exc,
            )

    def read_since_backup(self) -> bytes:
        return _read_or_empty(self.since_backup_path, str(self.since_backup_path))

    def close(self) -> None:
        if self._jfd is not None:
            os.close(self._jfd)
            self._jfd = None


class MemoryStorage(JournalStorage, TinyMemoryStorage):
    """tinydb's MemoryStorage with a journal beside it; survives reopening the same object.

    ``write`` stores a JSON round trip, as a file would, so later changes in
    memory never leak into what was "written".
    """

    def __init__(self) -> None:
        self.memory: dict[str, dict[str, Any]] | None = None
        self.journal = bytearray()
        self.writes = 0

    def write(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        self.memory = json.loads(json.dumps(data))
        self.writes += 1

    def read_journal(self) -> bytes:
        return bytes(self.journal)

    def append_journal(self, line: bytes) -> None:
        self.journal += line

    def clear_journal(self) -> None:
        self.journal.clear()

    def journal_size(self) -> int:
        return len(self.journal)


def corrupt(path: Path, why: str) -> StoreCorruptError:
    backup = backup_path(path)
    hint = (
        "run digest restore: it puts the backup back, replays the changes recorded since it "
        "was taken and says whether any will be sent again"
        if backup.exists()
        else f"move it aside (mv {path} {path}.broken) to start afresh; every "
        "subscriber then starts again at lookback_days"
    )
    return StoreCorruptError(
        f"the database {path} is unreadable ({why}); digest left it untouched. To recover, {hint}"
    )


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def since_backup_path(path: Path) -> Path:
    """The record of the changes folded into ``path`` since its backup was taken."""
    return path.with_name(path.name + ".bak.journal")


def journal_line(ops: Sequence[Sequence[Any]]) -> bytes:
    """One journal line: the ops of one flush, as a JSON list, ended by a newline."""
    return (json.dumps(ops, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def parse_journal(text: bytes, name: str) -> list[list[Any]]:
    """The ops of every complete line; a torn last line (no newline) is dropped."""
    *lines, torn = text.split(b"\n")
    if torn:
        log.warning("ignored a torn last line in the journal %s (a write cut short)", name)
    ops: list[list[Any]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            batch = json.loads(line)
            if not isinstance(batch, list) or not all(isinstance(op, list) for op in batch):
                raise ValueError("not a list of changes")
        except ValueError as exc:
            raise StoreCorruptError(
                f"the journal {name} is unreadable (line {n}: {exc}); digest left it and the "
                "database untouched. To recover, run digest restore: it replays every line "
                "that reads, keeps the journal aside and says what may be sent again"
            ) from None
        ops.extend(batch)
    return ops


def snapshot_db(data: Mapping[str, Mapping[str, Any]]) -> TinyDB:
    """A TinyDB over a copy of ``data``, for inspection: changes to it are not kept."""
    db = TinyDB(storage=TinyMemoryStorage)
    db.storage.write(json.loads(json.dumps(data)))
    return db


def _read_or_empty(path: Path, what: str) -> bytes:
    """A file that may not exist yet (a journal, its record since the backup): empty then."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise StoreError(f"cannot read {what}: {exc}") from exc
