"""The TinyDB database: paper cache, deliveries, watermarks, the cycle record.

A delivery is recorded only after the server accepted the message, and must
be durable before the next message goes out. Rewriting the whole database
for that costs O(database) per message, so:

* every change is also an op (see ``digest.store.ledger``); ``flush()`` appends the
  ops since the last flush as ONE fsynced line to ``<db>.journal``: O(1) per
  message whatever the database's size;
* ``checkpoint()`` folds the journal into the TinyDB file once per cycle
  (``close()`` does it too): the file is written to a temporary file,
  fsynced and renamed over the old one (``digest.atomic``), then the journal
  is emptied. A crash between the two only means the next open replays ops
  already folded in, which changes nothing;
* opening replays the journal after a crash. A torn last line (killed
  mid-write) was never acknowledged and is ignored; any other line that does
  not parse stops the open with the file named and left untouched;
* the data lives in memory (``Ledger``) with per-reader maps, so a lookup
  is O(1) and a new reader is a dict insert, not a TinyDB table rebuild;
* ``fcntl.flock`` on a separate ``.lock`` file (``os.replace`` swaps the
  data file's inode) makes a second process fail at once with a clear error.

``Store`` is one class: the file's life (lock, open and replay, backup,
flush, checkpoint, close) and what is stored (meta, papers, readers'
deliveries and reply state, pruning). The state in memory and its ops are
``digest.store.ledger``, how values are written ``digest.store.format``, the
bytes ``digest.store.storage``. Tests inject ``storage=MemoryStorage()``,
tinydb's own pattern, to run without files; the journal then lives in that
object too.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Self

from digest import atomic
from digest.errors import StoreCorruptError, StoreError, StoreLockedError
from digest.models import Paper, ReaderState
from digest.store.format import (
    SCHEMA,
    iso,
    json_copy,
    maybe_time,
    paper_from_doc,
    paper_to_doc,
    parse_time,
    reader_state_from_doc,
    reader_state_to_doc,
    schema_of,
)
from digest.store.ledger import DeliveredAt, Ledger, LedgerError, set_aside_ids
from digest.store.restore import Restored, rebuild
from digest.store.storage import (
    AtomicJSONStorage,
    JournalStorage,
    backup_path,
    corrupt,
    journal_line,
    parse_journal,
)

log = logging.getLogger(__name__)

BACKUP_EVERY = timedelta(days=1)
# A store kept open across many cycles folds its journal once it is this big.
JOURNAL_FOLD_BYTES = 64 * 2**20

# Delivery records and cached papers older than this are dropped. It must stay
# well above the widest fetch window (query.MAX_WINDOW_DAYS, 60): a paper still
# fetchable must still be known as sent.
RETENTION_DAYS = 180


@dataclass(frozen=True, slots=True)
class SubscriberState:
    """What the store knows of one subscriber (a snapshot: later changes do not show)."""

    email: str
    delivered: Mapping[str, int] = field(default_factory=dict)  # id -> version sent
    delivered_at: Mapping[str, datetime] = field(default_factory=dict)  # id -> when
    # id -> version: left out of a mail for its size, never to be offered again
    skipped: Mapping[str, int] = field(default_factory=dict)
    # id -> version: shown beyond the reader's keywords (not a match, not delivered),
    # never to be offered there again
    offered: Mapping[str, int] = field(default_factory=dict)
    watermarks: Mapping[str, datetime] = field(default_factory=dict)  # term key -> start
    last_sent: datetime | None = None
    first_seen: datetime | None = None
    served_slot: datetime | None = None  # the weekly slot last served (weekly cadence)
    last_empty: str | None = None  # the day (YYYY-MM-DD) of the last "nothing new" mail
    cadence: str | None = None  # "daily" or "weekly:mon": as the last cycle planned them
    cadence_since: datetime | None = None  # when a cycle first planned that cadence (a change)


class Store:
    """The open database of one process. Use ``Store.open`` as a context manager."""

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
        self._papers_cache: tuple[int, tuple[Paper, ...]] | None = None
        self._paper_objs: dict[str, Paper] = {}

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

    @classmethod
    def restore(cls, path: Path, now: datetime) -> Restored:
        """Put an unreadable database (or journal) back together; see ``digest.store.restore``.

        Holds the lock while it works, like any writer.
        """
        store = cls(path)
        try:
            store._lock()
            assert isinstance(store.storage, AtomicJSONStorage)
            return rebuild(store.storage, now)
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
        schema = schema_of(data)
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
                    "the database untouched. To recover, run digest restore: it replays every "
                    "change that reads, keeps the journal aside and says what may be sent again"
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
        """Copy the database aside once per ``BACKUP_EVERY`` of the injected clock.

        From then on every checkpoint also adds its changes to the record kept
        since the backup, so that a restore loses nothing (``digest.store.restore``).
        """
        assert isinstance(self.storage, AtomicJSONStorage)
        backup = backup_path(self.path)
        try:
            if backup.exists() and 0 <= now.timestamp() - backup.stat().st_mtime < (
                BACKUP_EVERY.total_seconds()
            ):
                return
            self.storage.back_up(self.path.read_bytes(), now.timestamp())
        except OSError as exc:
            log.warning("could not back up %s: %s", self.path, exc)

    def flush(self) -> None:
        """Make every change so far durable: one fsynced journal line, O(size of the changes)."""
        if self._ledger is None or self.readonly or not self._pending:
            return
        self.storage.append_journal(journal_line(self._pending))
        self._pending.clear()
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
        # before the journal is emptied: a crash in between only keeps them twice,
        # and replaying a change twice changes nothing
        self.storage.keep_since_backup(self.storage.read_journal())
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
    def writes(self) -> int:
        """How many times the main database file was rewritten."""
        return int(getattr(self.storage, "writes", 0))

    def _change(self, *op: Any) -> None:
        self.ledger.apply(list(op))
        self._pending.append(list(op))
        self._folded = False

    # -- meta ----------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        return self.ledger.meta

    def last_fetch(self) -> datetime | None:
        return maybe_time(self._meta().get("last_fetch"))

    def set_last_fetch(self, when: datetime) -> None:
        self._change("meta", {"last_fetch": iso(when)})

    def last_slot(self) -> datetime | None:
        """The scheduled slot of the last cycle the daemon completed."""
        return maybe_time(self._meta().get("last_slot"))

    def set_last_slot(self, slot: datetime) -> None:
        self._change("meta", {"last_slot": iso(slot)})

    def last_cycle(self) -> dict[str, Any] | None:
        record = self._meta().get("last_cycle")
        return dict(record) if record is not None else None

    def set_last_cycle(self, record: Mapping[str, Any]) -> None:
        self._change("meta", {"last_cycle": json_copy(record)})

    # -- papers --------------------------------------------------------------

    def add_papers(self, papers: Iterable[Paper], now: datetime) -> int:
        """Cache papers (a newer version replaces an older one); returns how many were new."""
        cached = self.ledger.papers
        new = 0
        for p in papers:
            have = cached.get(p.id)
            if have is None:
                new += 1
                self._change("paper", paper_to_doc(p, first_seen=now))
            elif int(have["version"]) < p.version:
                self._change("paper", paper_to_doc(p))
            else:
                continue
            self._paper_objs.pop(p.id, None)
        return new

    def papers(self) -> tuple[Paper, ...]:
        """Every cached paper, newest submission first."""
        version = self.ledger.version
        if self._papers_cache is None or self._papers_cache[0] != version:
            ps = (self._paper_obj(pid) for pid in self.ledger.papers)
            ordered = tuple(sorted(ps, key=lambda p: (p.published, p.id), reverse=True))
            self._papers_cache = (version, ordered)
        return self._papers_cache[1]

    def paper(self, paper_id: str) -> Paper | None:
        return self._paper_obj(paper_id) if paper_id in self.ledger.papers else None

    def _paper_obj(self, paper_id: str) -> Paper:
        p = self._paper_objs.get(paper_id)
        if p is None:
            p = self._paper_objs[paper_id] = paper_from_doc(self.ledger.papers[paper_id])
        return p

    # -- subscribers -----------------------------------------------------------

    def subscriber(self, email: str) -> SubscriberState:
        """A snapshot of ``email``'s record, in O(1) of its delivery history."""
        r = self.ledger.get(email)
        if r is None:
            return SubscriberState(email=email)
        f = r.fields
        return SubscriberState(
            email=email,
            delivered=MappingProxyType(r.delivered),
            delivered_at=DeliveredAt(r.batches),
            skipped=set_aside_ids(r, "skipped"),
            offered=set_aside_ids(r, "offered"),
            watermarks={k: parse_time(v) for k, v in (f.get("watermarks") or {}).items()},
            last_sent=maybe_time(f.get("last_sent")),
            first_seen=maybe_time(f.get("first_seen")),
            served_slot=maybe_time(f.get("served_slot")),
            last_empty=f.get("last_empty"),
            cadence=f.get("cadence"),
            cadence_since=maybe_time(f.get("cadence_since")),
        )

    def subscriber_emails(self) -> tuple[str, ...]:
        return tuple(self.ledger.readers)

    def delivered_since(self, email: str, since: datetime) -> Mapping[str, int]:
        """id -> version of what ``email`` was sent at or after ``since``; reads only those batches.

        This is the O(new papers) diff: a paper is delivered after it is
        published, so whether a fetched paper was sent is answered by the
        batches since the oldest fetched paper's submission (less a day for
        clocks), and the revision watch by those since the watch began. The
        whole history (``subscriber().delivered``) is never decoded.
        """
        r = self.ledger.get(email)
        return r.delivered_since(iso(since)) if r else {}

    def ensure_watermarks(
        self,
        email: str,
        keys: Iterable[str],
        start: datetime,
        now: datetime | None = None,
        *,
        reset: Iterable[str] = (),
        reset_first_seen: bool = False,
    ) -> dict[str, datetime]:
        """Give every term key that has none the watermark ``start``; return them all.

        A subscriber seen for the first time also gets ``first_seen`` (``now``).
        ``reset`` names keys whose watermark goes back to ``start``, and
        ``reset_first_seen`` takes ``first_seen`` back to ``now``: the cycle
        found them in the future of its checked clock (``digest.cycle.clock``).
        A watermark never moves forward.
        """
        r = self.ledger.get(email)
        marks = (r.fields.get("watermarks") or {}) if r else {}
        again = set(reset)
        added = {k: iso(start) for k in keys if k not in marks or k in again}
        # a record made by a reply (set_reader_state) has no first_seen yet
        new_reader = r is None or "first_seen" not in r.fields
        if added or new_reader or reset_first_seen:
            first_seen = iso(now or start) if new_reader or reset_first_seen else None
            self._change("marks", email, added, first_seen)
            marks = self.ledger.reader(email).fields["watermarks"]
        return {k: parse_time(v) for k, v in marks.items()}

    def set_cadence(self, email: str, cadence: str, since: datetime | None) -> None:
        """Remember ``email``'s cadence as a cycle planned it, and since when (None: always)."""
        self._change("cadence", email, cadence, iso(since) if since is not None else None)

    def record_delivery(
        self,
        email: str,
        sent: Mapping[str, int],
        when: datetime,
        served_slot: datetime | None = None,
    ) -> None:
        """Mark ``sent`` (id -> version) as delivered to ``email`` (call after SMTP said yes).

        A paper sent again as a revision gets its new version recorded. Durable
        once ``flush()`` returns.
        """
        slot = iso(served_slot) if served_slot is not None else None
        self._change("deliver", email, iso(when), dict(sent), slot)

    def record_skipped(self, email: str, skipped: Mapping[str, int], when: datetime) -> None:
        """Mark ``skipped`` (id -> version) as left out of ``email``'s mail for its size.

        Call with the delivery it belongs to: the mail said these matches were
        left out, so they are not offered again (but they are not delivered:
        no revision notice follows them). Journaled like a delivery.
        """
        if skipped:
            self._change("skip", email, iso(when), dict(skipped))

    def record_offered(self, email: str, offered: Mapping[str, int], when: datetime) -> None:
        """Mark ``offered`` (id -> version) as shown to ``email`` beyond their keywords.

        Call with the delivery of the mail that showed them: they match none
        of the reader's keywords, so they are not delivered (no revision
        notice follows them, ``digest status`` does not count them), and they
        are not offered again. Journaled like a delivery.
        """
        if offered:
            self._change("offer", email, iso(when), dict(offered))

    def mark_served(
        self, email: str, served_slot: datetime | None = None, empty_day: str | None = None
    ) -> None:
        """Remember a weekly slot served without a delivery, or the day of a "nothing new" mail."""
        if served_slot is not None or empty_day is not None:
            slot = iso(served_slot) if served_slot is not None else None
            self._change("served", email, slot, empty_day)

    # -- what readers chose by mail ------------------------------------------------

    def reader_state(self, email: str) -> ReaderState:
        """What ``email`` chose by mail; ``ReaderState()`` when nothing is stored.

        Whether ``email`` is a subscriber at all is the caller's question
        (the configuration knows, the store does not). A damaged record is
        decoded only when asked for, so that it stops no one else's mail and
        can itself be started afresh.
        """
        r = self.ledger.get(email)
        doc = r.fields.get("replies") if r else None
        if not doc:
            return ReaderState()
        try:
            return reader_state_from_doc(doc)
        except (TypeError, ValueError) as exc:
            raise StoreCorruptError(
                f"the stored reply state of {email} is damaged: {exc}; "
                f"digest readers {email} --resume starts it afresh"
            ) from exc

    def set_reader_state(self, email: str, state: ReaderState) -> None:
        """Replace ``email``'s choices (``ReaderState()`` clears them); durable once flushed."""
        self._change("replies", email, reader_state_to_doc(state))

    def readers_with_state(self) -> tuple[str, ...]:
        """Every address with stored choices (``digest readers``), none of them decoded."""
        return tuple(email for email, r in self.ledger.readers.items() if r.fields.get("replies"))

    # -- housekeeping ------------------------------------------------------------

    def prune(
        self,
        now: datetime,
        retention_days: int = RETENTION_DAYS,
        keep: Iterable[str] = (),
    ) -> tuple[int, int]:
        """Drop papers and delivery records older than the retention; returns the counts.

        Age is counted back from ``now`` or from the newest cached paper's
        submission, whichever is earlier: arXiv's clock bounds ours, so a clock
        that runs ahead cannot age out the record of a paper a later cycle could
        fetch (and send) again. Papers in ``keep`` (those the Daily Papers page
        shows) stay whatever their age. Not journaled: it reaches the file at the
        next checkpoint, and if a crash comes first the next cycle simply prunes
        again.
        """
        version = self.ledger.version
        papers = self.papers()  # newest submission first
        anchor = min(now, papers[0].published) if papers else now
        counts = self.ledger.prune(anchor - timedelta(days=retention_days), set(keep))
        if self.ledger.version != version:
            self._folded = False
            self._paper_objs = {
                k: v for k, v in self._paper_objs.items() if k in self.ledger.papers
            }
        return counts
