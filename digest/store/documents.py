"""How the store writes its values as JSON: times, a batch's ids, papers; and a reader's snapshot.

arXiv's "id, and vN when N > 1" notation keeps a delivery batch one string
(see ``digest.store.ledger`` for why). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from digest.models import Paper


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def parse_time(s: str) -> datetime:
    t = datetime.fromisoformat(s)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


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


def paper_to_doc(p: Paper) -> dict[str, Any]:
    return {
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


def maybe_time(v: Any) -> datetime | None:
    return parse_time(v) if v else None
