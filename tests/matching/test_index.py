"""The cycle's keyword index gives exactly the paper-by-paper definition's answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.arxiv.feed import parse_page
from digest.cycle.plan import candidates, pending_indexed, term_key, term_keys
from digest.matching.rules import match_paper, normalize_words
from digest.models import Match, Paper, Subscriber
from tests.support.paths import FIXTURES


def pending_matches(
    sub: Subscriber,
    papers: Iterable[Paper],
    delivered: Mapping[str, int],
    watermarks: Mapping[str, datetime],
    global_categories: Sequence[str] = (),
    texts: Mapping[str, str] | None = None,
) -> tuple[Match, ...]:
    """The matches ``sub`` has not been sent, each keyword counted from its watermark.

    A paper submitted before a keyword's watermark (the keyword is newer
    than ``lookback_days`` allows) does not count for that keyword. This is
    the definition, paper by paper, that ``plan.pending_indexed`` must agree with.
    """
    oldest = min(watermarks.values(), default=None)
    out = []
    for p in papers:
        if p.id in delivered or (oldest is not None and p.published < oldest):
            continue
        m = match_paper(p, sub, global_categories, texts.get(p.id) if texts else None)
        if m is None:
            continue
        kws = tuple(k for k in m.keywords if p.published >= watermarks[term_key("k", k)])
        aus = tuple(a for a in m.authors if p.published >= watermarks[term_key("a", a)])
        if kws or aus:
            out.append(Match(paper=p, keywords=kws, authors=aus))
    return tuple(out)


RECORDINGS = (
    "api_new_2026-04_all-testing_start-0_max-100.xml",
    "api_new_2025-11_search_electron-AND-proton_10-entries_links-without-rel.xml",
    "api_legacy_2017-08_cat-OR-query_10-entries.xml",
    "api_legacy_2016-10_au-ANDNOT-parenthesized-OR_10-of-24.xml",
    "api_new_2026-04_idlist-one-missing-one-found_utf8-authors.xml",
)


def recorded_papers() -> tuple[Paper, ...]:
    out: dict[str, Paper] = {}
    for name in RECORDINGS:
        for p in parse_page((FIXTURES / name).read_bytes()).papers:
            out.setdefault(p.id, p)
    return tuple(out.values())


PAPERS = recorded_papers()
POOL = candidates(PAPERS, ())
# Phrases that occur in the papers (one to three adjacent title words), a few
# that do not, and the papers' own author names spelt several ways.
_WORDS = sorted({w for p in PAPERS for w in p.title.split() if w.isalpha()})
_PHRASES = sorted(
    {" ".join(p.title.split()[i : i + n]) for p in PAPERS[:40] for n in (1, 2, 3) for i in (0, 2)}
)
_AUTHORS = sorted({a for p in PAPERS for a in p.authors})
_CATEGORIES = sorted({c for p in PAPERS for c in p.categories} | {"cs", "physics", "hep-ph"})
phrases = st.sampled_from([*_WORDS, *_PHRASES, "graph neural network", "--", 'Schr\\"odinger'])
authors = (
    st.sampled_from(_AUTHORS)
    .map(lambda a: st.sampled_from([a, a.split()[-1], a[0] + ". " + a.split()[-1]]))
    .flatmap(lambda s: s)
)


@st.composite
def subscribers(draw: st.DrawFn) -> Subscriber:
    return Subscriber(
        "reader@example.org",
        tuple(draw(st.lists(phrases, max_size=8))),
        exclude=tuple(draw(st.lists(phrases, max_size=2))),
        categories=tuple(draw(st.lists(st.sampled_from(_CATEGORIES), max_size=2))),
        authors=tuple(draw(st.lists(authors, max_size=3))),
    )


@settings(max_examples=300, deadline=None)
@given(
    sub=subscribers(),
    delivered=st.sets(st.sampled_from([p.id for p in PAPERS]), max_size=60),
    marks=st.lists(st.sampled_from(sorted({p.published for p in PAPERS})), max_size=12),
    global_categories=st.lists(st.sampled_from(_CATEGORIES), max_size=2),
)
def test_indexed_pending_equals_paper_by_paper_pending(
    sub: Subscriber, delivered: set[str], marks: list[datetime], global_categories: list[str]
) -> None:
    # watermarks on papers' own dates (the boundary counts), the rest long ago
    oldest = min(p.published for p in PAPERS) - timedelta(days=1)
    watermarks = {
        key: marks[i] if i < len(marks) else oldest for i, key in enumerate(term_keys(sub))
    }
    done = dict.fromkeys(delivered, 1)
    want = pending_matches(sub, POOL.ordered, done, watermarks, global_categories, POOL.texts)
    assert pending_indexed(sub, POOL, done, watermarks, global_categories) == want


def test_index_answers_each_phrase_from_the_normalised_texts() -> None:
    ids = POOL.index.phrase("Testing")
    assert ids and all(" testing " in POOL.texts[i] for i in ids)
    assert ids == POOL.index.phrase("TESTING")  # spelling variants share one entry
    assert normalize_words("--") == () and POOL.index.phrase("--") == frozenset()
