"""How every stored value is written as JSON, and read back: the database's format.

The file is TinyDB's: a table per kind (``meta``, ``papers``, ``subscribers``),
its documents keyed by a number. Times are ISO 8601 in UTC. A delivery batch
is ``{"at": time, "ids": "2611.00001 2611.00002v2"}``, arXiv's own "id, and vN
when N > 1" notation in one string: a JSON object per paper parses ten times
slower (1.2 s against 0.1 s for a million records) and takes half as much
space again. A reader's choices by mail (``ReaderState``) sit in their
record as ``replies``. Schema 1 kept deliveries as ``{id: [version, at]}``
per reader; it is read and written back as the current schema. Schema 2 kept
a reader under their address as subscribers.yaml spelt it; schema 3 under
its identity (``digest.models.address_key``), the records of one mailbox
merged (``digest.store.ledger.merged``). Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from digest.models import Paper, ReaderState, ReplyNote

# 1: deliveries as {id: [version, at]} per paper; 2: batches; 3: readers keyed by identity
# (an older digest must not open it: it would take a reader's history for a stranger's)
SCHEMA = 3

# (ISO time, id -> version), the ids still encoded when read from the file
Batch = tuple[str, "str | Mapping[str, int]"]


# -- times ------------------------------------------------------------------------


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def parse_time(s: str) -> datetime:
    t = datetime.fromisoformat(s)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def maybe_time(v: Any) -> datetime | None:
    return parse_time(v) if v else None


# -- a batch's ids ----------------------------------------------------------------


def encode_ids(ids: str | Mapping[str, int]) -> str:
    if isinstance(ids, str):
        return ids
    return " ".join(k if v == 1 else f"{k}v{v}" for k, v in ids.items())


def decode_ids(ids: str | Mapping[str, int]) -> Mapping[str, int]:
    if not isinstance(ids, str):
        return ids
    if "v" not in ids:
        return dict.fromkeys(ids.split(), 1)
    out: dict[str, int] = {}
    for token in ids.split():
        head, v, tail = token.rpartition("v")
        if v and head and tail.isdigit():
            out[head] = int(tail)
        else:  # an old-style id with a "v" in its archive name (solv-int/9901001)
            out[token] = 1
    return out


def merged_ids(batches: Iterable[str | Mapping[str, int]]) -> dict[str, int]:
    """id -> highest version over many batches' ids (a paper's version only grows)."""
    batches = tuple(batches)
    # most batches are all version 1: one split over all of them is the fast path
    plain = [ids for ids in batches if isinstance(ids, str) and "v" not in ids]
    # interned: readers share papers, so 10M records hold ~100k distinct strings
    out = dict.fromkeys(map(sys.intern, " ".join(plain).split()), 1)
    for ids in batches:
        if not isinstance(ids, str) or "v" in ids:
            for k, v in decode_ids(ids).items():
                if out.get(k, 0) < v:
                    out[k] = v
    return out


# -- papers -----------------------------------------------------------------------


def paper_to_doc(p: Paper, first_seen: datetime | None = None) -> dict[str, Any]:
    """A cached paper; ``first_seen`` (when it was first cached) is written once, by the first."""
    doc: dict[str, Any] = {
        "id": p.id,
        "version": p.version,
        "title": p.title,
        "abstract": p.abstract,
        "authors": list(p.authors),
        "categories": list(p.categories),
        "primary_category": p.primary_category,
        "published": iso(p.published),
        "updated": iso(p.updated),
        "comment": p.comment,
        "journal_ref": p.journal_ref,
        "doi": p.doi,
    }
    if first_seen is not None:
        doc["first_seen"] = iso(first_seen)
    return doc


def paper_from_doc(d: Mapping[str, Any]) -> Paper:
    return Paper(
        id=d["id"],
        version=int(d["version"]),
        title=d["title"],
        abstract=d["abstract"],
        authors=tuple(d["authors"]),
        categories=tuple(d["categories"]),
        primary_category=d["primary_category"],
        published=parse_time(d["published"]),
        updated=parse_time(d["updated"]),
        comment=d.get("comment"),
        journal_ref=d.get("journal_ref"),
        doi=d.get("doi"),
    )


# -- what a reader chose by mail ------------------------------------------------------


def reader_state_to_doc(state: ReaderState) -> dict[str, Any]:
    """Only the fields that hold something: a reader who chose nothing is ``{}``."""
    doc: dict[str, Any] = {}
    for name in ("unsubscribed_at", "suspended_at", "paused_until", "acknowledged_at"):
        value = getattr(state, name)
        if value is not None:
            doc[name] = iso(value)
    if state.hard_bounces:
        doc["hard_bounces"] = [iso(t) for t in state.hard_bounces]
    if state.confirmations:
        # the reader's own as a bare time, as before who asked was kept
        doc["confirmations"] = [[iso(t), who] if who else iso(t) for t, who in state.confirmations]
    for name in ("likes", "dislikes", "handled"):
        values = getattr(state, name)
        if values:
            doc[name] = list(values)
    if state.frequency:
        doc["frequency"] = state.frequency
    if state.away:
        doc["away"] = [[iso(start), None if end is None else iso(end)] for start, end in state.away]
    if state.last_replies:
        doc["last_replies"] = [[iso(n.at), n.what, n.done] for n in state.last_replies]
    return doc


def reader_state_from_doc(doc: Mapping[str, Any]) -> ReaderState:
    """The inverse of ``reader_state_to_doc``; TypeError or ValueError when damaged."""
    frequency = doc.get("frequency")
    if frequency not in (None, "daily", "weekly"):
        raise ValueError(f"frequency {frequency!r}")
    return ReaderState(
        unsubscribed_at=_maybe_stamp(doc.get("unsubscribed_at")),
        suspended_at=_maybe_stamp(doc.get("suspended_at")),
        paused_until=_maybe_stamp(doc.get("paused_until")),
        hard_bounces=tuple(_stamp(v) for v in doc.get("hard_bounces", ())),
        likes=_strings(doc.get("likes", ())),
        dislikes=_strings(doc.get("dislikes", ())),
        frequency=frequency,
        confirmations=tuple(_confirmation(v) for v in doc.get("confirmations", ())),
        handled=_strings(doc.get("handled", ())),
        away=tuple((_stamp(start), _maybe_stamp(end)) for start, end in doc.get("away", ())),
        acknowledged_at=_maybe_stamp(doc.get("acknowledged_at")),
        last_replies=tuple(_note(v) for v in doc.get("last_replies", ())),
    )


def _stamp(value: object) -> datetime:
    # checked here, not left to fromisoformat: the message reaches the operator
    if not isinstance(value, str):
        raise TypeError(f"expected a time, got {value!r}")
    return parse_time(value)


def _confirmation(value: object) -> tuple[datetime, str]:
    if isinstance(value, list) and len(value) == 2 and isinstance(value[1], str):
        return _stamp(value[0]), value[1]
    return _stamp(value), ""


def _note(value: object) -> ReplyNote:
    if not isinstance(value, list) or len(value) != 3:
        raise TypeError(f"expected [time, what, done], got {value!r}")
    at, what, done = value
    if not isinstance(what, str) or not isinstance(done, str):
        raise TypeError(f"expected [time, what, done], got {value!r}")
    return ReplyNote(_stamp(at), what, done)


def _maybe_stamp(value: object) -> datetime | None:
    return None if value is None else _stamp(value)


def _strings(values: object) -> tuple[str, ...]:
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise TypeError(f"expected a list of strings, got {values!r}")
    return tuple(values)


# -- a subscriber's record -----------------------------------------------------------


def subscriber_to_doc(
    email: str, fields: Mapping[str, Any], batches: Iterable[Batch]
) -> dict[str, Any]:
    """One ``subscribers`` document: the address, its JSON-ready fields, its batches."""
    return {
        "email": email,
        **fields,
        "batches": [{"at": at, "ids": encode_ids(ids)} for at, ids in batches],
    }


def subscriber_from_doc(doc: Mapping[str, Any]) -> tuple[str, dict[str, Any], tuple[Batch, ...]]:
    """The address, the fields and the batches (chronological) of a document of either schema."""
    fields = {k: v for k, v in doc.items() if k not in ("email", "batches", "delivered")}
    fields.setdefault("watermarks", {})
    batches: tuple[Batch, ...]
    if "delivered" in doc:  # schema 1: {id: [version, at]}, one timestamp per paper
        grouped: dict[str, dict[str, int]] = {}
        for pid, (version, at) in doc["delivered"].items():
            grouped.setdefault(at, {})[pid] = int(version)
        batches = tuple(sorted(grouped.items(), key=lambda b: parse_time(b[0])))
    else:
        batches = tuple((str(b["at"]), _checked(b["ids"])) for b in doc.get("batches", ()))
    return doc["email"], fields, batches


def _checked(ids: Any) -> str:
    if not isinstance(ids, str):
        raise TypeError(f"a batch's ids must be a string, not {type(ids).__name__}")
    return ids


# -- the file: TinyDB's tables of documents ------------------------------------------


def documents(data: Mapping[str, Mapping[str, Any]] | None, table: str) -> list[Any]:
    """The documents of one table, in file order (TinyDB keys them by number)."""
    return list((data or {}).get(table, {}).values())


def tables(
    meta: Mapping[str, Any],
    papers: Iterable[Mapping[str, Any]],
    readers: Iterable[Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """The document tree to write: one meta document, the papers, the readers."""
    return {
        "meta": {"1": meta},
        "papers": {str(i): d for i, d in enumerate(papers, 1)},
        "subscribers": {str(i): d for i, d in enumerate(readers, 1)},
    }


def schema_of(data: Mapping[str, Mapping[str, Any]] | None) -> object:
    """The schema the file says it has (an empty file is the current one)."""
    metas = documents(data, "meta")
    return metas[0].get("schema", SCHEMA) if metas and isinstance(metas[0], dict) else SCHEMA


def json_copy(value: Mapping[str, Any]) -> dict[str, Any]:
    """A free-form record as a reopened store would read it back (tuples become lists)."""
    copied: dict[str, Any] = json.loads(json.dumps(dict(value)))
    return copied
