"""Which papers a digest shows, and in which section: pure.

Each paper once, under the reader's first keyword it matched (or under the
authors they follow), sections in the reader's keyword order and each in
rank order; the first ``max_per_keyword`` in full, the rest as compact rows,
and ``full``/``shown`` let compose's size fitting cap both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from digest.models import Digest, Match, Ranked, Section, Subscriber
from digest.rank import order_section

AUTHORS_SECTION = "Authors you follow"


def _by_section(subscriber: Subscriber, ranked: Sequence[Ranked]) -> dict[str, tuple[Ranked, ...]]:
    """Each match under the first of its keywords (author-only matches last), best first."""
    groups: dict[str, list[Ranked]] = {k: [] for k in subscriber.keywords}
    groups[AUTHORS_SECTION] = []
    for r in ranked:
        keywords = r.match.keywords
        groups[keywords[0] if keywords else AUTHORS_SECTION].append(r)
    return {key: order_section(rs) for key, rs in groups.items() if rs}


def build_digest(
    subscriber: Subscriber,
    ranked: Sequence[Ranked],
    *,
    max_per_keyword: int,
    cycle_id: str,
    created: datetime,
    revisions: Sequence[Match] = (),
    empty_reason: str | None = None,
    full: int | None = None,
    shown: int | None = None,
) -> Digest:
    """Group ranked matches into sections, in the subscriber's keyword order.

    Each paper appears once, under the first of its keywords, most relevant
    first (``rank.order_section``); author-only matches get a section of
    their own at the end. In each section the first ``full`` papers (default
    ``max_per_keyword``) are shown in full, the rest as compact rows; with
    ``shown`` set, papers past that many are left out (the size limit's last
    resort: ``compose``). ``revisions`` are papers sent before that have a
    newer version, newest update first, held to ``max_per_keyword`` (those
    left out are not recorded and come in a later digest).
    """
    full = max_per_keyword if full is None else full
    sections = []
    for key, rs in _by_section(subscriber, ranked).items():
        keep = rs if shown is None else rs[:shown]
        sections.append(
            Section(
                keyword=key,
                full=keep[:full],
                compact=keep[full:],
                left_out=rs[len(keep) :],
            )
        )
    return Digest(
        subscriber=subscriber,
        sections=tuple(sections),
        cycle_id=cycle_id,
        created=created,
        revisions=tuple(
            sorted(revisions, key=lambda m: (m.paper.updated, m.paper.id), reverse=True)
        )[:max_per_keyword],
        empty_reason=empty_reason,
    )
