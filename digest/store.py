"""The TinyDB database: paper cache, deliveries, watermarks, the cycle record.

TinyDB's own JSONStorage rewrites the file in place, so a SIGKILL mid-write
leaves invalid JSON (tinydb #301, #383, #461), and it is neither thread- nor
process-safe. Hence:

* ``AtomicJSONStorage`` writes a temporary file, fsyncs it, ``os.replace``s
  it over the database and fsyncs the folder: a crash at any moment leaves
  either the old or the new file, never a torn one.
* ``CachingMiddleware`` keeps the data in memory and writes only on
  ``flush()``, so a cycle writes a handful of times, not once per paper.
* ``fcntl.flock`` on a separate ``.lock`` file (``os.replace`` swaps the
  data file's inode) makes a second process fail at once with a clear error.
* A file that does not parse is never replaced: the operator is told which
  file and what to do.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.middlewares import CachingMiddleware
from tinydb.storages import Storage

from digest.errors import StoreCorruptError, StoreError, StoreLockedError, StoreUnreadableError
from digest.models import Paper

log = logging.getLogger(__name__)

SCHEMA = 1
# Delivery records older than this are dropped. It must stay well above the
# widest fetch window (query.MAX_WINDOW_DAYS): a paper still fetchable must
# still be known as sent.
RETENTION_DAYS = 180
BACKUP_EVERY = timedelta(days=1)
_TMP_PREFIX = ".tmp-"


# --------------------------------------------------------------------------
# Storage


class AtomicJSONStorage(Storage):
    """JSON storage that replaces the file atomically on every write."""

    def __init__(self, path: str | os.PathLike[str], readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.writes = 0

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            return None
        except UnicodeDecodeError as exc:
            raise _corrupt(self.path, f"not UTF-8 text at byte {exc.start}") from exc
        except (PermissionError, IsADirectoryError) as exc:
            # not transient: exit 78 so systemd does not restart-loop on it
            raise StoreUnreadableError(
                f"cannot read the database {self.path} ({exc.strerror}); digest left it "
                "untouched. Give the user digest runs as read and write access to it"
            ) from exc
        except OSError as exc:
            raise StoreError(f"cannot read the database {self.path}: {exc}") from exc
        if not text.strip():
            raise _corrupt(self.path, "the file is empty")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _corrupt(
                self.path, f"invalid JSON at line {exc.lineno}, column {exc.colno}"
            ) from exc
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise _corrupt(self.path, "not a TinyDB database (expected tables of documents)")
        return data

    def write(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        if self.readonly:
            raise StoreError(f"the database {self.path} was opened read-only")
        folder = self.path.parent
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_TMP_PREFIX + self.path.name + ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                # dumps, not dump: json.dump streams through the pure-Python
                # encoder, about ten times slower on a large database
                f.write(json.dumps(data, ensure_ascii=False, separators=(",", ":")))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(folder)  # make the rename itself durable
        self.writes += 1

    def close(self) -> None:
        pass


def _fsync_dir(folder: Path) -> None:
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _corrupt(path: Path, why: str) -> StoreCorruptError:
    backup = _backup_path(path)
    hint = (
        f"restore the backup ({backup}) with: cp {backup} {path}"
        if backup.exists()
        else f"move it aside (mv {path} {path}.broken) to start afresh; every "
        "subscriber then starts again at lookback_days"
    )
    return StoreCorruptError(
        f"the database {path} is unreadable ({why}); digest left it untouched. To recover, {hint}"
    )


def _backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


class _FlushOnDemand(CachingMiddleware):
    """CachingMiddleware that writes only when told to (never "every 1000 writes")."""

    WRITE_CACHE_SIZE = 2**62


# --------------------------------------------------------------------------
# Serialisation


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def _dt(s: str) -> datetime:
    t = datetime.fromisoformat(s)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def paper_to_doc(p: Paper) -> dict[str, Any]:
    return {
        "id": p.id,
        "version": p.version,
        "title": p.title,
        "abstract": p.abstract,
        "authors": list(p.authors),
        "categories": list(p.categories),
        "primary_category": p.primary_category,
        "published": _iso(p.published),
        "updated": _iso(p.updated),
        "comment": p.comment,
        "journal_ref": p.journal_ref,
        "doi": p.doi,
    }


def paper_from_doc(d: Mapping[str, Any]) -> Paper:
    return Paper(
        id=d["id"],
        version=int(d["version"]),
        title=d["title"],
        abstract=d["abstract"],
        authors=tuple(d["authors"]),
        categories=tuple(d["categories"]),
        primary_category=d["primary_category"],
        published=_dt(d["published"]),
        updated=_dt(d["updated"]),
        comment=d.get("comment"),
        journal_ref=d.get("journal_ref"),
        doi=d.get("doi"),
    )


@dataclass(frozen=True, slots=True)
class SubscriberState:
    """What the store knows of one subscriber."""

    email: str
    delivered: Mapping[str, int] = field(default_factory=dict)  # id -> version sent
    delivered_at: Mapping[str, datetime] = field(default_factory=dict)  # id -> when
    watermarks: Mapping[str, datetime] = field(default_factory=dict)  # term key -> start
    last_sent: datetime | None = None
    first_seen: datetime | None = None
    served_slot: datetime | None = None  # the weekly slot last served (weekly cadence)
    last_empty: str | None = None  # the day (YYYY-MM-DD) of the last "nothing new" mail


# --------------------------------------------------------------------------
# The store


class Store:
    """The open database of one process. Use ``Store.open`` as a context manager."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._lock_fd: int | None = None
        self.storage: AtomicJSONStorage | None = None
        self._db: TinyDB | None = None
        self._paper_ids: dict[str, int] = {}
        self._sub_ids: dict[str, int] = {}

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, path: Path, *, readonly: bool = False, now: datetime | None = None
    ) -> Iterator[Store]:
        store = cls(path, readonly=readonly)
        store._open(now or datetime.now(UTC))
        try:
            yield store
            if not readonly:
                store.flush()
        finally:
            store.close()

    # -- life cycle --------------------------------------------------------

    def _open(self, now: datetime) -> None:
        folder = self.path.parent
        if not self.readonly:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the database folder {folder}: {exc}") from exc
            self._lock()
            self._remove_stale_temps()
        storage = AtomicJSONStorage(self.path, readonly=self.readonly)
        data = storage.read()  # raises StoreCorruptError before anything is written
        if not self.readonly and data is not None:
            self._backup(now)
        self._cache = _FlushOnDemand(lambda: storage)
        self._db = TinyDB(storage=self._cache)
        self.storage = storage
        meta = self._meta()
        schema = meta.get("schema", SCHEMA)
        if schema > SCHEMA:
            raise StoreError(
                f"the database {self.path} was written by a newer digest (schema {schema}); "
                "upgrade digest"
            )
        if not meta:
            self._db.table("meta").insert({"schema": SCHEMA})
        self._paper_ids = {d["id"]: d.doc_id for d in self._db.table("papers").all()}
        self._sub_ids = {d["email"]: d.doc_id for d in self._db.table("subscribers").all()}

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
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _remove_stale_temps(self) -> None:
        # left behind by a process killed between mkstemp and os.replace
        for tmp in self.path.parent.glob(_TMP_PREFIX + self.path.name + ".*"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                log.info("removed stale temporary file %s", tmp)

    def _backup(self, now: datetime) -> None:
        backup = _backup_path(self.path)
        try:
            if (
                backup.exists()
                and time.time() - backup.stat().st_mtime < BACKUP_EVERY.total_seconds()
            ):
                return
            tmp = backup.with_name(_TMP_PREFIX + backup.name)
            shutil.copy2(self.path, tmp)
            os.replace(tmp, backup)
        except OSError as exc:
            log.warning("could not back up %s: %s", self.path, exc)

    def flush(self) -> None:
        """Write pending changes to disk (atomically), if there are any."""
        if self._db is not None and not self.readonly:
            self._cache.flush()

    def close(self) -> None:
        if self._db is not None:
            if not self.readonly:
                with contextlib.suppress(StoreError):
                    self._cache.flush()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def db(self) -> TinyDB:
        if self._db is None:
            raise StoreError("the database is closed")
        return self._db

    @property
    def writes(self) -> int:
        return self.storage.writes if self.storage else 0

    # -- meta ----------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        docs = self.db.table("meta").all()
        return dict(docs[0]) if docs else {}

    def _set_meta(self, **values: Any) -> None:
        table = self.db.table("meta")
        docs = table.all()
        if docs:
            table.update(values, doc_ids=[docs[0].doc_id])
        else:
            table.insert({"schema": SCHEMA, **values})

    def last_fetch(self) -> datetime | None:
        v = self._meta().get("last_fetch")
        return _dt(v) if v else None

    def set_last_fetch(self, when: datetime) -> None:
        self._set_meta(last_fetch=_iso(when))

    def last_slot(self) -> datetime | None:
        """The scheduled slot of the last cycle the daemon completed."""
        v = self._meta().get("last_slot")
        return _dt(v) if v else None

    def set_last_slot(self, slot: datetime) -> None:
        self._set_meta(last_slot=_iso(slot))

    def last_cycle(self) -> dict[str, Any] | None:
        return self._meta().get("last_cycle")

    def set_last_cycle(self, record: Mapping[str, Any]) -> None:
        self._set_meta(last_cycle=dict(record))

    # -- papers --------------------------------------------------------------

    def add_papers(self, papers: Iterable[Paper], now: datetime) -> int:
        """Cache papers (a newer version replaces an older one); returns how many were new."""
        table = self.db.table("papers")
        new: list[dict[str, Any]] = []
        for p in papers:
            doc_id = self._paper_ids.get(p.id)
            if doc_id is None:
                new.append({**paper_to_doc(p), "first_seen": _iso(now)})
                continue
            old = table.get(doc_id=doc_id)
            if old is not None and int(old["version"]) < p.version:
                table.update(paper_to_doc(p), doc_ids=[doc_id])
        if new:
            ids = table.insert_multiple(new)
            self._paper_ids.update({d["id"]: i for d, i in zip(new, ids, strict=True)})
        return len(new)

    def papers(self) -> tuple[Paper, ...]:
        """Every cached paper, newest submission first."""
        docs = self.db.table("papers").all()
        return tuple(
            sorted(
                (paper_from_doc(d) for d in docs), key=lambda p: (p.published, p.id), reverse=True
            )
        )

    def paper(self, paper_id: str) -> Paper | None:
        doc_id = self._paper_ids.get(paper_id)
        doc = self.db.table("papers").get(doc_id=doc_id) if doc_id is not None else None
        return paper_from_doc(doc) if doc else None

    # -- subscribers -----------------------------------------------------------

    def subscriber(self, email: str) -> SubscriberState:
        doc_id = self._sub_ids.get(email)
        doc = self.db.table("subscribers").get(doc_id=doc_id) if doc_id is not None else None
        if doc is None:
            return SubscriberState(email=email)
        delivered = doc.get("delivered", {})
        return SubscriberState(
            email=email,
            delivered={k: int(v[0]) for k, v in delivered.items()},
            delivered_at={k: _dt(v[1]) for k, v in delivered.items()},
            watermarks={k: _dt(v) for k, v in doc.get("watermarks", {}).items()},
            last_sent=_dt(doc["last_sent"]) if doc.get("last_sent") else None,
            first_seen=_dt(doc["first_seen"]) if doc.get("first_seen") else None,
            served_slot=_dt(doc["served_slot"]) if doc.get("served_slot") else None,
            last_empty=doc.get("last_empty"),
        )

    def subscriber_emails(self) -> tuple[str, ...]:
        return tuple(self._sub_ids)

    def _update_subscriber(self, email: str, change: dict[str, Any]) -> None:
        table = self.db.table("subscribers")
        doc_id = self._sub_ids.get(email)
        if doc_id is None:
            self._sub_ids[email] = table.insert(
                {"email": email, "delivered": {}, "watermarks": {}, **change}
            )
        else:
            table.update(change, doc_ids=[doc_id])

    def _doc(self, email: str) -> dict[str, Any]:
        doc_id = self._sub_ids.get(email)
        doc = self.db.table("subscribers").get(doc_id=doc_id) if doc_id is not None else None
        return dict(doc) if doc else {}

    def ensure_watermarks(
        self, email: str, keys: Iterable[str], start: datetime, now: datetime | None = None
    ) -> dict[str, datetime]:
        """Give every term key that has none the watermark ``start``; return them all.

        A subscriber seen for the first time also gets ``first_seen`` (``now``).
        """
        doc = self._doc(email)
        marks = dict(doc.get("watermarks", {}))
        added = {k: _iso(start) for k in keys if k not in marks}
        if added or not doc:
            marks.update(added)
            change: dict[str, Any] = {"watermarks": marks}
            if not doc:
                change["first_seen"] = _iso(now or start)
            self._update_subscriber(email, change)
        return {k: _dt(v) for k, v in marks.items()}

    def record_delivery(
        self,
        email: str,
        sent: Mapping[str, int],
        when: datetime,
        served_slot: datetime | None = None,
    ) -> None:
        """Mark ``sent`` (id -> version) as delivered to ``email`` (call after SMTP said yes).

        A paper sent again as a revision gets its new version recorded.
        """
        doc = self._doc(email)
        delivered = dict(doc.get("delivered", {}))
        for paper_id, version in sent.items():
            delivered[paper_id] = [version, _iso(when)]
        change: dict[str, Any] = {"delivered": delivered, "last_sent": _iso(when)}
        if served_slot is not None:
            change["served_slot"] = _iso(served_slot)
        self._update_subscriber(email, change)

    def mark_served(
        self, email: str, served_slot: datetime | None = None, empty_day: str | None = None
    ) -> None:
        """Remember a weekly slot served without a delivery, or the day of a "nothing new" mail."""
        change: dict[str, Any] = {}
        if served_slot is not None:
            change["served_slot"] = _iso(served_slot)
        if empty_day is not None:
            change["last_empty"] = empty_day
        if change:
            self._update_subscriber(email, change)

    # -- housekeeping ------------------------------------------------------------

    def prune(
        self,
        now: datetime,
        retention_days: int = RETENTION_DAYS,
        keep: Iterable[str] = (),
    ) -> tuple[int, int]:
        """Drop papers and delivery records older than the retention; returns the counts.

        Papers in ``keep`` (those the Daily Papers page shows) stay whatever their age.
        """
        cutoff = now - timedelta(days=retention_days)
        keep = set(keep)
        papers = self.db.table("papers")
        old = [
            d.doc_id
            for d in papers.all()
            if d["id"] not in keep
            and _dt(d["published"]) < cutoff
            and _dt(d.get("first_seen", d["published"])) < cutoff
        ]
        if old:
            papers.remove(doc_ids=old)
            self._paper_ids = {d["id"]: d.doc_id for d in papers.all()}
        dropped = 0
        for email in list(self._sub_ids):
            doc = self._doc(email)
            delivered = doc.get("delivered", {})
            keep = {k: v for k, v in delivered.items() if _dt(v[1]) >= cutoff}
            if len(keep) != len(delivered):
                dropped += len(delivered) - len(keep)
                self._update_subscriber(email, {"delivered": keep})
        return len(old), dropped
