"""Which papers a digest shows, where, and how much of each: pure.

Space goes by relevance, not by section. Every match appears once, and:

* the mail opens with the reader's best papers of the day ("Top of today",
  ``TOP_PAPERS`` of them) when their matches fall in more than one section;
  a single section is already best first;
* then the authors they follow, then one section per keyword in the
  reader's order, each paper under the first keyword it matched (author-only
  matches under the authors), best first;
* the papers shown in full are the best-ranked of the mail, wherever their
  section is: ``max_per_keyword`` for each section the matches fill, so a
  section of strong papers takes the full entries a weak one leaves; the
  rest follow in their sections as compact rows;
* the size limit takes from the least relevant first: ``full`` and ``shown``
  cap the mail's full entries and papers, in rank order (``fit_to_limit``).

Beyond the matches, a reader with likes may be offered up to
``BEYOND_PAPERS`` papers of the categories they like that matched none of
their keywords (``pick_beyond``): a section of its own, never a match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from digest.models import Digest, Match, Offer, Ranked, Section, Subscriber
from digest.ranking import FIELD_REASON, order_section

TOP_SECTION = "Top of today"
AUTHORS_SECTION = "Authors you follow"
# The best papers that open a mail spanning several sections: about what a
# first screen holds in full.
TOP_PAPERS = 3
# Gmail clips HTML over ~102 KB, which hides the footer.
HTML_LIMIT = 100_000
BEYOND_PAPERS = 5
# A paper offered beyond the keywords must be close to a paper the reader
# likes, which the ranker names as its reason ("like: <title>", "by <author
# of one>", "you asked for more like <title>"): being in a liked category
# alone lifts every paper of it ("your field: …"), so that reason does not
# qualify. A "like:" needs a cosine of 0.1 to one liked paper, which a day's
# papers reach at about the 99.5th percentile (digest.ranking.relevance).


def home(r: Ranked) -> str:
    """The section a match belongs to: its first keyword, or the authors it came by."""
    keywords = r.match.keywords
    return keywords[0] if keywords else AUTHORS_SECTION


def _places(kept: Sequence[Ranked]) -> list[str]:
    """Where each kept match is shown (in rank order): the top, or its own section."""
    homes = [home(r) for r in kept]
    if len(kept) > TOP_PAPERS and len(set(homes)) > 1:
        return [TOP_SECTION] * TOP_PAPERS + homes[TOP_PAPERS:]
    return homes


def pick_beyond(scored: Iterable[Ranked], categories: Sequence[str]) -> tuple[Offer, ...]:
    """What to offer beyond the keywords: up to ``BEYOND_PAPERS`` of ``scored``, best first.

    Only papers that matched no keyword and no followed author, that carry
    one of ``categories`` (the reader's liked ones), and whose reason names a
    paper the reader likes (see above); none at all when nothing does.
    """
    out: list[Offer] = []
    for r in order_section(scored):
        if len(out) == BEYOND_PAPERS:
            break
        if not r.reason or r.reason.startswith(FIELD_REASON):
            continue
        category = next((c for c in r.match.paper.categories if c in categories), None)
        if not (r.match.keywords or r.match.authors) and category is not None:
            out.append(Offer(r, category))
    return tuple(out)


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
    beyond: Sequence[Offer] = (),
) -> Digest:
    """The digest of ``ranked`` (see the module docstring for where each paper goes).

    ``full`` caps the papers shown in full, ``shown`` the papers shown at
    all, both counted over the whole mail in rank order (the size limit's
    levers: ``fit_to_limit``); those past ``shown`` are left out, in their
    sections. ``revisions`` are papers sent before that have a newer version,
    newest update first, held to ``max_per_keyword`` (those left out are not
    recorded and come in a later digest). ``beyond``: ``pick_beyond``'s offers.
    """
    order = order_section(ranked)
    kept, left = (order, ()) if shown is None else (order[:shown], order[shown:])
    places = _places(kept)
    in_full = max_per_keyword * len({home(r) for r in order})
    if full is not None:
        in_full = min(in_full, full)
    names = [TOP_SECTION, AUTHORS_SECTION, *subscriber.keywords]
    parts: dict[str, tuple[list[Ranked], list[Ranked], list[Ranked]]] = {
        name: ([], [], []) for name in names
    }
    for i, (r, place) in enumerate(zip(kept, places, strict=True)):
        parts[place][0 if i < in_full else 1].append(r)
    for r in left:
        parts[home(r)][2].append(r)
    sections = tuple(
        Section(keyword=name, full=tuple(f), compact=tuple(c), left_out=tuple(lo))
        for name, (f, c, lo) in parts.items()
        if f or c or lo
    )
    return Digest(
        subscriber=subscriber,
        sections=sections,
        cycle_id=cycle_id,
        created=created,
        revisions=tuple(
            sorted(revisions, key=lambda m: (m.paper.updated, m.paper.id), reverse=True)
        )[:max_per_keyword],
        empty_reason=empty_reason,
        away=tuple(away),
        beyond=tuple(beyond),
    )


def fit_to_limit(
    build: Callable[..., Digest],
    html_of: Callable[[Digest], str],
    digest: Digest,
    html: str,
) -> tuple[Digest, str]:
    """``digest`` (whose ``html`` is over ``HTML_LIMIT``) cut down until it fits.

    ``build(full=, shown=)`` makes the digest with those caps over the whole
    mail. Full entries become rows, the lowest-ranked first; only if every
    paper as a row is still too much are the lowest-ranked rows left out.
    """
    in_full = sum(len(s.full) for s in digest.sections)
    rows = build(full=0)
    rows_html = html_of(rows)
    if fits(rows_html):
        return _largest(lambda k: build(full=k), html_of, (0, rows, rows_html), (in_full, html))
    bare = build(full=0, shown=0)
    return _largest(
        lambda n: build(full=0, shown=n),
        html_of,
        (0, bare, html_of(bare)),
        (digest.count, rows_html),
    )


def fits(html: str) -> bool:
    return len(html.encode()) <= HTML_LIMIT


def _largest(
    build: Callable[[int], Digest],
    render_html: Callable[[Digest], str],
    low: tuple[int, Digest, str],
    high: tuple[int, str],
) -> tuple[Digest, str]:
    """The digest of the largest ``x`` in [low, high) whose HTML fits (or ``low``'s, the floor).

    ``x`` is a number of papers (in full, or shown); the size is taken as
    linear in it, each guess checked by a render and the line refitted
    through it: from below when it fits, from above when it is over.
    """
    x0, digest, html = low
    x1, html1 = high
    size0, size1 = len(html.encode()), len(html1.encode())
    while True:
        per_paper = (size1 - size0) / max(x1 - x0, 1)
        room = HTML_LIMIT * 0.98 - size0  # aim a little low: papers differ in length
        x = min(x1 - 1, x0 + int(room / per_paper)) if per_paper > 0 else x1 - 1
        if x <= x0:
            return digest, html
        guess = build(x)
        guess_html = render_html(guess)
        if fits(guess_html):
            x0, digest, html, size0 = x, guess, guess_html, len(guess_html.encode())
        else:
            x1, size1 = x, len(guess_html.encode())
