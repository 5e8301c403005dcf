"""Which papers a digest shows, and in which section: pure.

Each paper once, under the reader's first keyword it matched (or under the
authors they follow), sections in the reader's keyword order and each in
rank order; the first ``max_per_keyword`` in full, the rest as compact rows,
and ``full``/``shown`` let compose's size fitting cap both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from digest.models import Digest, Match, Ranked, Section, Subscriber
from digest.ranking import order_section

AUTHORS_SECTION = "Authors you follow"
# Gmail clips HTML over ~102 KB, which hides the footer.
HTML_LIMIT = 100_000


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
    away: Sequence[Match] = (),
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
        away=tuple(away),
    )


def fit_to_limit(
    build: Callable[..., Digest],
    html_of: Callable[[Digest], str],
    digest: Digest,
    html: str,
    limit: int,
) -> tuple[Digest, str]:
    """``digest`` (whose ``html`` is over ``HTML_LIMIT``) cut down until it fits.

    ``build(full=, shown=)`` makes the digest with those caps per section. Full
    entries become rows, the lowest-ranked of every section first; only if
    every paper as a row is still too much are the lowest-ranked rows left out.
    """
    lengths = [len(s.full) + len(s.compact) for s in digest.sections]
    rows = build(full=0)
    rows_html = html_of(rows)
    if fits(rows_html):
        return _fit(lambda k: build(full=k), html_of, lengths, (0, rows, rows_html), limit, html)
    bare = build(full=0, shown=0)
    return _fit(
        lambda n: build(full=0, shown=n),
        html_of,
        lengths,
        (0, bare, html_of(bare)),
        max(lengths),
        rows_html,
    )


def fits(html: str) -> bool:
    return len(html.encode()) <= HTML_LIMIT


def _fit(
    build: Callable[[int], Digest],
    render_html: Callable[[Digest], str],
    lengths: Sequence[int],
    low: tuple[int, Digest, str],
    high: int,
    high_html: str,
) -> tuple[Digest, str]:
    """The digest of the largest ``x`` in [low, high) whose HTML fits (or ``low``, the floor).

    ``x`` caps every section (papers in full, or papers shown); the size is
    taken as linear in the number of papers the cap lets through, each guess
    checked by a render and the line refitted through it when it is over.
    """

    def through(x: int) -> int:
        return sum(min(x, n) for n in lengths)

    x0, digest, html = low
    size0, size1 = len(html.encode()), len(high_html.encode())
    while True:
        per_paper = (size1 - size0) / max(through(high) - through(x0), 1)
        room = HTML_LIMIT * 0.98 - size0  # aim a little low: rows differ in length
        x = max(
            (x for x in range(x0 + 1, high) if per_paper * (through(x) - through(x0)) <= room),
            default=x0,
        )
        if x == x0:
            return digest, html
        guess = build(x)
        guess_html = render_html(guess)
        if fits(guess_html):
            return guess, guess_html
        high, size1 = x, len(guess_html.encode())
