"""The database file's life: lock, open and replay the journal, back up, flush, checkpoint.

``Database`` keeps the store's ``Ledger`` durable (see ``digest.store.store`` for
why a journal, and ``digest.store.ledger`` for the ops); ``Store`` adds what is
stored on top of it. Only this module locks and backs up the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

from digest import atomic
from digest.errors import StoreCorruptError, StoreError, StoreLockedError
from digest.store.ledger import SCHEMA, Ledger, LedgerError
from digest.store.storage import (
    AtomicJSONStorage,
    JournalStorage,
    TinyDB,
    backup_path,
    corrupt,
    parse_journal,
    snapshot_db,
)

log = logging.getLogger("digest.store.store")

BACKUP_EVERY = timedelta(days=1)
# A store kept open across many cycles folds its journal once it is this big.
JOURNAL_FOLD_BYTES = 64 * 2**20


class Database:
    """One process's open database: the ledger in memory, durable through the journal."""

    def __init__(
        self, path: Path, *, readonly: bool = False, storage: JournalStorage | None = None
    ) -> None:
        self.path = path
        self.readonly = readonly
        self._lock_fd: int | None = None
        self.storage: JournalStorage = storage or AtomicJSONStorage(path, readonly=readonly)
        self._on_disk = isinstance(self.storage, AtomicJSONStorage)
        self._ledger: Ledger | None = None
        self._pending: list[list[Any]] = []  # ops not yet in the journal
        self._folded = True  # False while the main file lags the ledger
        self.journal_lines = 0

    @classmethod
    @contextlib.contextmanager
    def open(
        cls,
        path: Path,
        *,
        readonly: bool = False,
        now: datetime | None = None,
        storage: JournalStorage | None = None,
    ) -> Iterator[Self]:
        store = cls(path, readonly=readonly, storage=storage)
        try:
            store._open(now or datetime.now(UTC))
            yield store
            if not readonly:
                store.flush()
                store.checkpoint()
        finally:
            store.close()

    # -- life cycle --------------------------------------------------------

    def _open(self, now: datetime) -> None:
        if self._on_disk and not self.readonly:
            folder = self.path.parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the database folder {folder}: {exc}") from exc
            self._lock()
            self._remove_stale_temps()
        # both are read, and both must parse, before anything is written
        data = self.storage.read()
        journal = self.storage.read_journal()
        ops = parse_journal(journal, self._journal_name())
        metas = list((data or {}).get("meta", {}).values())
        schema = metas[0].get("schema", SCHEMA) if metas and isinstance(metas[0], dict) else SCHEMA
        if isinstance(schema, int) and schema > SCHEMA:
            raise StoreError(
                f"the database {self.path} was written by a newer digest (schema {schema}); "
                "upgrade digest"
            )
        try:
            ledger, migrated = Ledger.from_data(data)
        except (LedgerError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise corrupt(self.path, f"a document has the wrong shape: {exc}") from exc
        if self._on_disk and not self.readonly and data is not None:
            self._backup(now)  # only a file that reads back whole is worth keeping
        for n, op in enumerate(ops, 1):
            try:
                ledger.apply(op)
            except LedgerError as exc:
                name = self._journal_name()
                raise StoreCorruptError(
                    f"the journal {name} is unreadable (change {n}: {exc}); digest left it and "
                    f"the database untouched. To recover, move it aside (mv {name} "
                    f"{name}.broken): deliveries recorded since the last cycle may be sent again"
                ) from exc
        self._ledger = ledger
        if ops:
            log.info("replayed %d changes from the journal %s", len(ops), self._journal_name())
        if (migrated or journal) and not self.readonly:
            self._folded = False
            self.checkpoint()  # fold now: the journal starts every run empty and whole

    def _journal_name(self) -> str:
        if isinstance(self.storage, AtomicJSONStorage):
            return str(self.storage.journal_path)
        return "in memory"

    def _lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open the lock file {lock_path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreLockedError(
                f"the database {self.path} is in use by digest (pid {holder}); "
                "wait for it to finish, or stop the service first"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError as exc:  # a full disk: the pid that names the owner does not fit
            os.close(fd)
            raise StoreError(f"cannot write the lock file {lock_path}: {exc}") from exc
        self._lock_fd = fd

    def _remove_stale_temps(self) -> None:
        # left behind by a process killed between mkstemp and os.replace
        for tmp in self.path.parent.glob(atomic.temp_glob(self.path)):
            with contextlib.suppress(OSError):
                tmp.unlink()
                log.info("removed stale temporary file %s", tmp)

    def _backup(self, now: datetime) -> None:
        """Copy the database aside once per ``BACKUP_EVERY`` of the injected clock."""
        backup = backup_path(self.path)
        try:
            if backup.exists() and 0 <= now.timestamp() - backup.stat().st_mtime < (
                BACKUP_EVERY.total_seconds()
            ):
                return
            tmp = backup.with_name(atomic.TMP_PREFIX + backup.name)
            shutil.copyfile(self.path, tmp)
            os.chmod(tmp, 0o600)  # readers' addresses: owner-only, like the database
            os.utime(tmp, (now.timestamp(), now.timestamp()))  # the backup's age, by `now`
            os.replace(tmp, backup)
        except OSError as exc:
            log.warning("could not back up %s: %s", self.path, exc)

    def flush(self) -> None:
        """Make every change so far durable: one fsynced journal line, O(size of the changes)."""
        if self._ledger is None or self.readonly or not self._pending:
            return
        line = json.dumps(self._pending, ensure_ascii=False, separators=(",", ":")) + "\n"
        self.storage.append_journal(line.encode("utf-8"))
        self._pending.clear()
        self.journal_lines += 1
        if self.storage.journal_size() > JOURNAL_FOLD_BYTES:
            try:
                self.checkpoint()
            except StoreError as exc:  # the line above is durable: this flush succeeded
                log.warning("could not fold the journal yet: %s", exc)

    def checkpoint(self) -> None:
        """Fold everything into the database file (one rewrite) and empty the journal.

        Call once per cycle, at its end; ``close()`` does it too. Does nothing
        when the file is already up to date.
        """
        if self._ledger is None or self.readonly or self._folded:
            return
        # the journal must hold every op the file will: were the journal to lack the
        # newest, replaying it over the new file (a crash before it is emptied)
        # would set older values back
        self.flush()
        self.storage.write(self._ledger.to_data())
        self._pending.clear()  # in the file now
        self.storage.clear_journal()
        self._folded = True

    def close(self) -> None:
        if self._ledger is not None and not self.readonly:
            try:
                self.flush()
                self.checkpoint()
            except StoreError as exc:
                log.error("%s", exc)
        self._ledger = None
        self.storage.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            raise StoreError("the database is closed")
        return self._ledger

    @property
    def db(self) -> TinyDB:
        """A TinyDB snapshot of the current state, for inspection (changes to it are not kept)."""
        return snapshot_db(self.ledger.to_data())

    @property
    def writes(self) -> int:
        """How many times the main database file was rewritten."""
        return int(getattr(self.storage, "writes", 0))

    def _change(self, *op: Any) -> None:
        self.ledger.apply(list(op))
        self._pending.append(list(op))
        self._folded = False
