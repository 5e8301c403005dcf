"""The store's state in memory, and the one way it changes: ``Ledger.apply(op)``.

Every change the store makes is an *op*, a small JSON list such as
``["deliver", email, at, {id: version}, slot]``. The live store applies it
here and appends it to the journal; a restart after a crash applies the
journal's ops again, through the same code. Ops set values (a newer paper
version, the higher delivered version, a watermark only where none exists),
so applying one twice changes nothing: a journal already folded into the
database can be replayed safely.

Readers are keyed by their address's identity (``digest.models.address_key``):
an op under any spelling of an address reaches the one reader, and a
database written when readers were keyed as spelt has the records of one
mailbox merged on load (``merged``): every delivery of either, the earliest
start of each term, and the most restrictive reply state.

Deliveries are kept per reader as batches, one timestamp per accepted
message (``digest.store.format`` says how they are written). A batch read
from the file stays encoded until someone asks; the merged ``delivered`` map
(O(1) "was it sent") is built on first use. Maps and batches are replaced,
never mutated, so a ``SubscriberState`` handed out earlier stays a true
snapshot. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from digest.models import Frequency, ReaderState, address_key
from digest.store.format import (
    SCHEMA,
    Batch,
    decode_ids,
    documents,
    encode_ids,
    merged_ids,
    parse_time,
    reader_state_from_doc,
    reader_state_to_doc,
    subscriber_from_doc,
    subscriber_to_doc,
    tables,
)


class LedgerError(ValueError):
    """An op or a stored document has the wrong shape."""


@dataclass(slots=True)
class Reader:
    """One subscriber's record. ``fields`` holds the JSON-ready scalars."""

    email: str
    fields: dict[str, Any] = field(default_factory=lambda: {"watermarks": {}})
    batches: tuple[Batch, ...] = ()
    _delivered: Mapping[str, int] | None = None

    def delivered_since(self, since: str) -> dict[str, int]:
        """id -> version over the batches at or after ``since`` (ISO), newest first."""
        start = parse_time(since)
        recent = []
        for batch in reversed(self.batches):
            if parse_time(batch[0]) < start:
                break
            recent.append(batch)
        return merged_ids(ids for _, ids in reversed(recent))

    @property
    def delivered(self) -> Mapping[str, int]:
        """id -> version sent, merged over the batches on first use."""
        if self._delivered is None:
            self._delivered = merged_ids(ids for _, ids in self.batches)
        return self._delivered


class DeliveredAt(Mapping[str, datetime]):
    """id -> time of its latest delivery, built on first use (most callers never ask)."""

    def __init__(self, batches: tuple[Batch, ...]) -> None:
        self._batches = batches
        self._map: dict[str, datetime] | None = None

    def _built(self) -> dict[str, datetime]:
        if self._map is None:
            self._map = {}
            for at, ids in self._batches:  # chronological: the latest wins
                when = parse_time(at)
                self._map.update(dict.fromkeys(decode_ids(ids), when))
        return self._map

    def __getitem__(self, key: str) -> datetime:
        return self._built()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


class Ledger:
    """Meta, paper cache and readers, with ``apply`` as the only mutation besides pruning."""

    def __init__(self) -> None:
        self.meta: dict[str, Any] = {"schema": SCHEMA}
        self.papers: dict[str, dict[str, Any]] = {}
        self.readers: dict[str, Reader] = {}
        self.version = 0  # bumped on every change, so caches know when to rebuild

    # -- loading and saving --------------------------------------------------

    @classmethod
    def from_data(cls, data: Mapping[str, Mapping[str, Any]] | None) -> tuple[Ledger, bool]:
        """Build from a TinyDB document tree; True when it was in an older format."""
        ledger = cls()
        if not data:
            return ledger, False
        meta = documents(data, "meta")
        ledger.meta = dict(meta[0]) if meta else {}
        old = int(ledger.meta.get("schema", 1)) < SCHEMA
        for doc in documents(data, "papers"):
            have = ledger.papers.get(doc["id"])
            if have is None or int(have["version"]) < int(doc["version"]):
                ledger.papers[doc["id"]] = dict(doc)
        for doc in documents(data, "subscribers"):
            email, fields, batches = subscriber_from_doc(doc)
            key = address_key(email)
            old |= key != email  # kept as spelt (schema 2): written back under the key
            reader = Reader(key, fields, batches)
            twin = ledger.readers.get(key)
            ledger.readers[key] = reader if twin is None else merged(twin, reader)
        ledger.meta["schema"] = max(SCHEMA, int(ledger.meta.get("schema", SCHEMA)))
        return ledger, old

    def to_data(self) -> dict[str, dict[str, Any]]:
        """The TinyDB document tree (tables of documents keyed by id) to write."""
        return tables(
            self.meta,
            self.papers.values(),
            (subscriber_to_doc(r.email, r.fields, r.batches) for r in self.readers.values()),
        )

    # -- the one mutation path -------------------------------------------------

    def apply(self, op: list[Any]) -> None:
        """Apply one op (live or replayed); raises ``LedgerError`` on a malformed one."""
        try:
            kind, *args = op
            handler = _OPS[kind]
        except (TypeError, ValueError, KeyError):
            raise LedgerError(f"unknown change {str(op)[:80]}") from None
        try:
            handler(self, *args)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise LedgerError(f"malformed change {str(op)[:80]}: {exc}") from exc
        self.version += 1

    def reader(self, email: str) -> Reader:
        """``email``'s record, under any spelling of the address; made when there is none."""
        key = address_key(email)
        r = self.readers.get(key)
        if r is None:
            r = self.readers[key] = Reader(key)
        return r

    def get(self, email: str) -> Reader | None:
        """``email``'s record, under any spelling of the address, or None."""
        return self.readers.get(address_key(email))

    def _meta(self, values: Mapping[str, Any]) -> None:
        self.meta.update(values)

    def _paper(self, doc: Mapping[str, Any]) -> None:
        have = self.papers.get(doc["id"])
        if have is None:
            self.papers[doc["id"]] = dict(doc)
        elif int(have["version"]) < int(doc["version"]):
            # a newer version keeps the date it was first cached
            self.papers[doc["id"]] = {**doc, "first_seen": have.get("first_seen")}

    def _deliver(
        self, email: str, at: str, sent: Mapping[str, int], slot: str | None = None
    ) -> None:
        r = self.reader(email)
        sent = {str(k): int(v) for k, v in sent.items()}
        batches = list(r.batches)
        for i in range(len(batches) - 1, -1, -1):
            if batches[i][0] == at:  # a replay, or a second message in the same batch
                merged = dict(decode_ids(batches[i][1]))
                for k, v in sent.items():
                    merged[k] = max(v, merged.get(k, 0))
                batches[i] = (at, merged)
                break
        else:
            batches.append((at, sent))
            if len(batches) > 1 and parse_time(batches[-2][0]) > parse_time(at):
                batches.sort(key=lambda b: parse_time(b[0]))
        r.batches = tuple(batches)
        if r._delivered is not None:  # else it is built from the batches when asked for
            delivered = dict(r._delivered)
            for k, v in sent.items():
                if delivered.get(k, 0) < v:
                    delivered[k] = v
            r._delivered = delivered
        if r.fields.get("last_sent") is None or parse_time(r.fields["last_sent"]) < parse_time(at):
            r.fields["last_sent"] = at
        if slot is not None:
            r.fields["served_slot"] = slot

    def _skip(self, email: str, at: str, skipped: Mapping[str, int]) -> None:
        self._set_aside(email, "skipped", at, skipped)

    def _offer(self, email: str, at: str, offered: Mapping[str, int]) -> None:
        self._set_aside(email, "offered", at, offered)

    def _set_aside(self, email: str, key: str, at: str, ids: Mapping[str, int]) -> None:
        # papers a mail dealt with but did not deliver (``SET_ASIDE``), kept as
        # (at, encoded ids) pairs in the reader's fields: a reader who follows
        # a broad keyword can have hundreds a day, like deliveries
        r = self.reader(email)
        pairs = [tuple(p) for p in r.fields.get(key) or ()]
        if pairs and pairs[-1][0] == at:  # a replay: the same ids again
            merged = {**decode_ids(pairs[-1][1]), **{str(k): int(v) for k, v in ids.items()}}
            pairs[-1] = (at, encode_ids(merged))
        else:
            pairs.append((at, encode_ids({str(k): int(v) for k, v in ids.items()})))
        r.fields[key] = [list(p) for p in pairs]

    def _marks(self, email: str, added: Mapping[str, str], first_seen: str | None = None) -> None:
        r = self.reader(email)
        marks = dict(r.fields.get("watermarks") or {})
        for k, v in added.items():
            # never moved forward; moved back only when a cycle found it in the
            # future of its checked clock (so applying an op twice changes nothing)
            marks[k] = _earlier(marks.get(k), v)
        r.fields["watermarks"] = marks
        if first_seen is not None:
            r.fields["first_seen"] = _earlier(r.fields.get("first_seen"), first_seen)

    def _cadence(self, email: str, cadence: str, since: str | None = None) -> None:
        r = self.reader(email)
        r.fields["cadence"] = str(cadence)
        if since is None:
            r.fields.pop("cadence_since", None)
        else:
            r.fields["cadence_since"] = since

    def _replies(self, email: str, state: Mapping[str, Any]) -> None:
        """A reader's choices by mail (as ``format`` writes them), replaced whole; {} clears."""
        if not isinstance(state, Mapping):
            raise TypeError(f"a reader state must be an object, not {type(state).__name__}")
        r = self.reader(email)
        if state:
            r.fields["replies"] = dict(state)
        else:
            r.fields.pop("replies", None)

    def _served(self, email: str, slot: str | None = None, empty: str | None = None) -> None:
        r = self.reader(email)
        if slot is not None:
            r.fields["served_slot"] = slot
        if empty is not None:
            r.fields["last_empty"] = empty

    # -- housekeeping ------------------------------------------------------------

    def prune(self, cutoff: datetime, keep: set[str]) -> tuple[int, int]:
        """Drop papers and delivery batches older than ``cutoff``; returns the counts."""
        old = [
            pid
            for pid, d in self.papers.items()
            if pid not in keep
            and parse_time(d["published"]) < cutoff
            and parse_time(d.get("first_seen") or d["published"]) < cutoff
        ]
        for pid in old:
            del self.papers[pid]
        dropped, changed = 0, False
        for r in self.readers.values():
            # batches are chronological: only a reader whose first is old has work
            if r.batches and parse_time(r.batches[0][0]) < cutoff:
                before = len(r.delivered)
                r.batches = tuple(b for b in r.batches if parse_time(b[0]) >= cutoff)
                r._delivered = None
                dropped += before - len(r.delivered)
            # set-aside records age like deliveries (not counted: they were never sent)
            for key in SET_ASIDE:
                pairs = r.fields.get(key)
                if pairs and parse_time(pairs[0][0]) < cutoff:
                    r.fields[key] = [p for p in pairs if parse_time(p[0]) >= cutoff]
                    changed = True
        if old or dropped or changed:
            self.version += 1
        return len(old), dropped


# -- one mailbox kept as two records (before schema 3) ---------------------------------


def merged(a: Reader, b: Reader) -> Reader:
    """The one record of a mailbox that was kept as two (case or IDNA variants).

    Nothing either knew is lost: every delivery and skip of either (a paper
    sent to one spelling is sent), each term from the earlier of its two
    starts, the first first-seen and the last sending, and the most
    restrictive reply state (``strictest``).
    """
    fields = {**b.fields, **a.fields}
    marks = dict(b.fields.get("watermarks") or {})
    for term, start in (a.fields.get("watermarks") or {}).items():
        if term not in marks or parse_time(start) < parse_time(marks[term]):
            marks[term] = start
    fields["watermarks"] = marks
    for name, pick in (
        ("first_seen", min),
        ("last_sent", max),
        ("served_slot", max),
        ("last_empty", max),
    ):
        values = [v for v in (a.fields.get(name), b.fields.get(name)) if v]
        if values:
            order = str if name == "last_empty" else parse_time  # a day, or a time
            fields[name] = pick(values, key=order)
    for key in SET_ASIDE:  # matches left out for size, papers offered beyond the keywords
        kept = _merged_batches(
            [(str(at), str(ids)) for at, ids in (a.fields.get(key) or ())]
            + [(str(at), str(ids)) for at, ids in (b.fields.get(key) or ())]
        )
        if kept:
            fields[key] = [[at, encode_ids(ids)] for at, ids in kept]
    replies = _merged_replies(a.fields.get("replies"), b.fields.get("replies"))
    if replies:
        fields["replies"] = replies
    return Reader(a.email, fields, _merged_batches([*a.batches, *b.batches]))


def _merged_batches(batches: Sequence[Batch]) -> tuple[Batch, ...]:
    """Batches of two records in time order; two of the same moment become one."""
    by_time: dict[str, Batch] = {}
    for at, ids in batches:
        have = by_time.get(at)
        if have is None:
            by_time[at] = (at, ids)
        else:
            both = merged_ids([have[1], ids])
            by_time[at] = (at, encode_ids(both))
    return tuple(sorted(by_time.values(), key=lambda b: parse_time(b[0])))


def _merged_replies(a: Any, b: Any) -> Any:
    """Two stored reply states as one, the most restrictive; a damaged one is kept as it is.

    A state that does not decode cannot be weighed, so it wins: the reader
    is then not mailed until the operator looks (``digest readers EMAIL
    --resume``), which errs on the side of an unsubscribe.
    """
    if not a or not b:
        return a or b
    try:
        first, second = reader_state_from_doc(a), reader_state_from_doc(b)
    except (TypeError, ValueError):
        try:
            reader_state_from_doc(a)
        except (TypeError, ValueError):
            return a
        return b
    return reader_state_to_doc(strictest(first, second))


def strictest(a: ReaderState, b: ReaderState) -> ReaderState:
    """The reply state that mails least: an unsubscribe, pause or suspension in either stays."""
    return ReaderState(
        unsubscribed_at=_latest(a.unsubscribed_at, b.unsubscribed_at),
        suspended_at=_latest(a.suspended_at, b.suspended_at),
        paused_until=_latest(a.paused_until, b.paused_until),
        hard_bounces=tuple(sorted({*a.hard_bounces, *b.hard_bounces})),
        likes=tuple(dict.fromkeys((*a.likes, *b.likes))),
        dislikes=tuple(dict.fromkeys((*a.dislikes, *b.dislikes))),
        frequency=_fewer_mails(a.frequency, b.frequency),
        confirmations=tuple(sorted({*a.confirmations, *b.confirmations})),
        handled=tuple(dict.fromkeys((*a.handled, *b.handled))),
    )


def _fewer_mails(a: Frequency | None, b: Frequency | None) -> Frequency | None:
    # weekly mails less than daily; None (as subscribers.yaml says) only if both are
    return "weekly" if "weekly" in (a, b) else a or b


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(a, b) if a is not None and b is not None else a or b


def _earlier(have: str | None, new: str) -> str:
    """The earlier of two stored times (ISO); ``new`` when there is none yet."""
    return new if have is None or parse_time(new) < parse_time(have) else have


# What a mail dealt with without delivering it, by the reader's field that holds it:
# "skipped", matches left out for size; "offered", papers shown beyond the
# reader's keywords (not matches, so never delivered).
SET_ASIDE = ("skipped", "offered")


def set_aside_ids(reader: Reader, key: str) -> dict[str, int]:
    """id -> version of the papers set aside under ``key`` (one of ``SET_ASIDE``)."""
    return merged_ids(str(ids) for _, ids in reader.fields.get(key) or ())


_OPS: dict[str, Any] = {
    "meta": Ledger._meta,
    "paper": Ledger._paper,
    "deliver": Ledger._deliver,
    "skip": Ledger._skip,
    "offer": Ledger._offer,
    "marks": Ledger._marks,
    "served": Ledger._served,
    "cadence": Ledger._cadence,
    "replies": Ledger._replies,
}
