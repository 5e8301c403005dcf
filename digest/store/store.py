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

Tests inject ``storage=MemoryStorage()``, tinydb's own pattern, to run
without files; the journal then lives in that object too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from digest.models import Paper
from digest.store.database import BACKUP_EVERY as BACKUP_EVERY
from digest.store.database import JOURNAL_FOLD_BYTES as JOURNAL_FOLD_BYTES
from digest.store.database import Database
from digest.store.format import (
    iso,
    json_copy,
    maybe_time,
    paper_from_doc,
    paper_to_doc,
    parse_time,
)
from digest.store.ledger import DeliveredAt, skipped_ids
from digest.store.storage import AtomicJSONStorage as AtomicJSONStorage
from digest.store.storage import JournalStorage as JournalStorage
from digest.store.storage import MemoryStorage as MemoryStorage

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
    watermarks: Mapping[str, datetime] = field(default_factory=dict)  # term key -> start
    last_sent: datetime | None = None
    first_seen: datetime | None = None
    served_slot: datetime | None = None  # the weekly slot last served (weekly cadence)
    last_empty: str | None = None  # the day (YYYY-MM-DD) of the last "nothing new" mail


class Store(Database):
    """The open database of one process. Use ``Store.open`` as a context manager.

    What is stored (meta, papers, readers' deliveries and reply state) and its
    pruning; the file's life (journal, checkpoint, lock, backup) is ``Database``.
    """

    def __init__(
        self, path: Path, *, readonly: bool = False, storage: JournalStorage | None = None
    ) -> None:
        super().__init__(path, readonly=readonly, storage=storage)
        self._papers_cache: tuple[int, tuple[Paper, ...]] | None = None
        self._paper_objs: dict[str, Paper] = {}

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
        r = self.ledger.readers.get(email)
        if r is None:
            return SubscriberState(email=email)
        f = r.fields
        return SubscriberState(
            email=email,
            delivered=MappingProxyType(r.delivered),
            delivered_at=DeliveredAt(r.batches),
            skipped=skipped_ids(r),
            watermarks={k: parse_time(v) for k, v in (f.get("watermarks") or {}).items()},
            last_sent=maybe_time(f.get("last_sent")),
            first_seen=maybe_time(f.get("first_seen")),
            served_slot=maybe_time(f.get("served_slot")),
            last_empty=f.get("last_empty"),
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
        r = self.ledger.readers.get(email)
        return r.delivered_since(iso(since)) if r else {}

    def ensure_watermarks(
        self, email: str, keys: Iterable[str], start: datetime, now: datetime | None = None
    ) -> dict[str, datetime]:
        """Give every term key that has none the watermark ``start``; return them all.

        A subscriber seen for the first time also gets ``first_seen`` (``now``).
        """
        r = self.ledger.readers.get(email)
        marks = (r.fields.get("watermarks") or {}) if r else {}
        added = {k: iso(start) for k in keys if k not in marks}
        # a record made by a reply (set_reader_state) has no first_seen yet
        new_reader = r is None or "first_seen" not in r.fields
        if added or new_reader:
            self._change("marks", email, added, iso(now or start) if new_reader else None)
            marks = self.ledger.readers[email].fields["watermarks"]
        return {k: parse_time(v) for k, v in marks.items()}

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

    def mark_served(
        self, email: str, served_slot: datetime | None = None, empty_day: str | None = None
    ) -> None:
        """Remember a weekly slot served without a delivery, or the day of a "nothing new" mail."""
        if served_slot is not None or empty_day is not None:
            slot = iso(served_slot) if served_slot is not None else None
            self._change("served", email, slot, empty_day)

    # -- what readers chose by mail ------------------------------------------------

    def reader_state(self, email: str) -> Mapping[str, Any] | None:
        """The stored ``readers.to_dict`` of ``email``; None when nothing is stored.

        Whether ``email`` is a subscriber at all is the caller's question
        (the configuration knows, the store does not).
        """
        r = self.ledger.readers.get(email)
        state = r.fields.get("replies") if r else None
        return MappingProxyType(state) if state else None

    def set_reader_state(self, email: str, state: Mapping[str, Any]) -> None:
        """Replace ``email``'s stored choices; durable once ``flush()`` returns."""
        self._change("replies", email, json_copy(state))

    def reader_states(self) -> dict[str, Mapping[str, Any]]:
        """Every address with stored choices (``digest readers``)."""
        return {
            email: MappingProxyType(r.fields["replies"])
            for email, r in self.ledger.readers.items()
            if r.fields.get("replies")
        }

    # -- housekeeping ------------------------------------------------------------

    def prune(
        self,
        now: datetime,
        retention_days: int = RETENTION_DAYS,
        keep: Iterable[str] = (),
    ) -> tuple[int, int]:
        """Drop papers and delivery records older than the retention; returns the counts.

        Papers in ``keep`` (those the Daily Papers page shows) stay whatever their
        age. Not journaled: it reaches the file at the next checkpoint, and if a
        crash comes first the next cycle simply prunes again.
        """
        version = self.ledger.version
        counts = self.ledger.prune(now - timedelta(days=retention_days), set(keep))
        if self.ledger.version != version:
            self._folded = False
            self._paper_objs = {
                k: v for k, v in self._paper_objs.items() if k in self.ledger.papers
            }
        return counts
