"""The section beyond a reader's keywords, composed: chosen by score, labelled, never a match."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from digest.compose.render import compose
from digest.compose.selection import BEYOND_PAPERS, HTML_LIMIT, pick_beyond
from digest.models import Match, Offer, Paper, Ranked, Settings, SmtpSettings, Subscriber
from digest.replies import ReplySecret, reader_links

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
SETTINGS = Settings(smtp=SmtpSettings(sender="Daily Papers <papers@digest.test>"))
READER = Subscriber(email="r@example.org", keywords=("compiler",))
SECRET = ReplySecret(b"beyond-test-secret-0123456789abcdef")


def paper(i: int, title: str, abstract: str = "An abstract.", cats=("cs.PL",)) -> Paper:
    t = NOW - timedelta(hours=i)
    return Paper(f"2611.{i:05d}", 1, title, abstract, ("A. Author",), cats, cats[0], t, t)


def matched(i: int, title: str, score: float = 1.0, abstract: str = "An abstract.") -> Ranked:
    return Ranked(Match(paper(i, title, abstract), ("compiler",)), score)


def unmatched(
    i: int, score: float, like: str | None = "like: A liked paper", cats=("cs.CL",)
) -> Ranked:
    return Ranked(Match(paper(i, f"Parsing with attention, part {i}", cats=cats), ()), score, like)


def links(ids: tuple[str, ...]):
    return reader_links(SECRET, "papers@digest.test", READER.email, ids, issued=NOW.date())


def test_up_to_five_close_to_a_liked_paper_best_first_and_only_papers_that_matched_nothing() -> (
    None
):
    scored = [unmatched(i, s) for i, s in enumerate((0.9, 0.3, 0.7, 0.6, 0.55, 0.52, 0.51), 1)]
    scored.append(replace(matched(20, "A compiler"), score=2.0))  # a match is never offered
    scored.append(unmatched(21, 0.95, cats=("math.AG",)))  # outside the liked categories
    offers = pick_beyond(scored, ("cs.CL",))
    assert len(offers) == BEYOND_PAPERS == 5
    assert [o.ranked.score for o in offers] == [0.9, 0.7, 0.6, 0.55, 0.52]
    assert all(o.category == "cs.CL" for o in offers)
    # the field alone, or no reason at all, is not closeness to a paper the reader likes
    assert (
        pick_beyond([unmatched(1, 3.0, like="your field: Computation and Language")], ("cs.CL",))
        == ()
    )
    assert pick_beyond([unmatched(1, 3.0, like=None)], ("cs.CL",)) == ()


def test_the_section_is_labelled_gives_each_reason_and_links_and_is_not_counted() -> None:
    offers = pick_beyond(
        [unmatched(11, 0.9, like="like: Attention is all you need"), unmatched(12, 0.6)], ("cs.CL",)
    )
    ranked = [matched(1, "A compiler"), matched(2, "Another compiler")]
    digest, rendered = compose(
        READER, ranked, SETTINGS, cycle_id="c", created=NOW, links=links, beyond=offers
    )
    assert digest.count == 2 and set(digest.delivers) == {"2611.00001", "2611.00002"}
    assert digest.offers == {"2611.00011": 1, "2611.00012": 1}
    assert rendered.subject == "2 new arXiv papers: compiler"
    for part in (rendered.html, " ".join(rendered.text.split())):
        heading = " ".join(re.sub(r"<[^>]+>", "", part).split()).casefold()
        assert "beyond your keywords (2)" in heading
        assert "in cs.CL, a category of papers you like; like: Attention is all you need" in part
        assert part.index("abs/2611.00002") < part.index("abs/2611.00011")  # after the matches
    html = rendered.html
    beyond = html[html.index("Beyond your keywords") : html.index('class="pad footer"')]
    assert beyond.count("More like this") == 2 and beyond.count("Less like this") == 2
    assert "more%202611.00012" in beyond  # its own tokened link


def test_no_section_when_nothing_is_offered() -> None:
    _, rendered = compose(READER, [matched(1, "A compiler")], SETTINGS, cycle_id="c", created=NOW)
    assert "Beyond your keywords" not in rendered.html + rendered.text


def test_over_the_size_limit_the_section_gives_way_before_any_match_loses_room() -> None:
    long = "We study the compiler and its passes in depth. " * 20
    ranked = [matched(i, f"A compiler study, part {i}", abstract=long) for i in range(1, 151)]
    offers = pick_beyond([unmatched(900 + i, 0.9) for i in range(5)], ("cs.CL",))
    alone, _ = compose(READER, ranked, SETTINGS, cycle_id="c", created=NOW)
    digest, rendered = compose(READER, ranked, SETTINGS, cycle_id="c", created=NOW, beyond=offers)
    assert len(rendered.html.encode()) <= HTML_LIMIT
    assert digest.beyond == () and digest.offers == {}  # shown nowhere: not recorded offered
    assert [len(s.full) for s in digest.sections] == [len(s.full) for s in alone.sections]


def test_a_small_digest_keeps_the_section() -> None:
    offers = pick_beyond([unmatched(11, 0.9)], ("cs.CL",))
    digest, _ = compose(
        READER, [matched(1, "A compiler")], SETTINGS, cycle_id="c", created=NOW, beyond=offers
    )
    assert digest.beyond == offers and isinstance(offers[0], Offer)
