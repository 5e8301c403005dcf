"""A reader's profile: likes by id or by text, followed authors and categories, dislikes."""

from __future__ import annotations

from digest import ranking
from digest.models import Liked
from tests.support.ranking_data import (
    DAYS_PAPERS,
    LIKED_GRAPH,
    ROBOTS,
    VISION,
    day_matches,
    ids,
    match,
    paper,
)

ROBOT = paper("2605.00010", "Grasping", ROBOTS, categories=("cs.RO", "cs.LG"))


def test_a_like_known_only_by_id_takes_its_text_and_fields_from_the_papers() -> None:
    categories = ("cs.LG", "q-bio.BM")  # every paper of the day is cs.LG: that tells nothing
    cached = paper("2501.00002", LIKED_GRAPH.title, LIKED_GRAPH.abstract, categories=categories)
    corpus = ranking.build_corpus(DAYS_PAPERS)
    profile = ranking.build_profile(corpus, [Liked(arxiv_id=cached.id)], papers={cached.id: cached})
    assert set(profile.fields) == {"q-bio.BM"}
    assert set(ids(ranking.rank(day_matches(), corpus, profile))[:2]) == {
        "2606.00001",
        "2606.00004",
    }


def test_a_like_neither_cached_nor_described_is_left_out() -> None:
    corpus = ranking.build_corpus(DAYS_PAPERS)
    profile = ranking.build_profile(corpus, [Liked(arxiv_id="2501.09999")])
    assert profile.empty
    assert ranking.rank(day_matches(), corpus, profile) == ranking.rank(day_matches(), corpus)


def test_a_library_entry_without_an_id_brings_its_words_only() -> None:
    profile = ranking.build_profile(
        ranking.build_corpus(DAYS_PAPERS), [Liked(title="Graph pooling")]
    )
    assert profile.query and not profile.fields and not profile.authors


def test_followed_authors_papers_stand_in_when_nothing_is_liked() -> None:
    theirs = paper("2606.00701", "Gaits", "Learning gaits. " + ROBOTS, categories=("cs.RO",))
    robot = paper("2606.00702", "Arms", "Learning to reach.", categories=("cs.RO",), minutes=1)
    vision = paper("2606.00703", "Pixels", "Learning. " + VISION, categories=("cs.CV",), minutes=2)
    corpus = ranking.build_corpus([theirs, robot, vision])
    matches = [match(robot, "learning"), match(vision, "learning")]
    followed = ranking.build_profile(corpus, [], followed=[theirs])
    assert ids(ranking.rank(matches, corpus, followed)) == ["2606.00702", "2606.00703"]
    assert ids(ranking.rank(matches, corpus)) == ["2606.00703", "2606.00702"]
    # once the reader likes something, their likes speak for them
    liked = ranking.build_profile(
        corpus, [Liked(ROBOT.id)], papers={ROBOT.id: ROBOT}, followed=[vision]
    )
    assert "cs.CV" not in liked.fields


def test_configured_categories_are_a_field_and_archives_are_not() -> None:
    corpus = ranking.build_corpus(
        [ROBOT, paper("2605.00013", "Pixels", VISION, categories=("cs.CV",))]
    )
    assert set(ranking.build_profile(corpus, [], categories=["cs.RO", "cs"]).fields) == {"cs.RO"}


def test_a_dislike_in_the_readers_own_field_does_not_shun_it() -> None:
    dud = paper("2605.00011", "Another grasp", ROBOTS, categories=("cs.RO",))
    stars = paper("2605.00012", "Stars", "Stars.", categories=("astro-ph.SR", "cs.RO"))
    corpus = ranking.build_corpus([ROBOT, dud, stars])
    known = {p.id: p for p in (ROBOT, dud, stars)}
    profile = ranking.build_profile(
        corpus, [Liked(ROBOT.id)], dislikes=[dud.id, stars.id], papers=known
    )
    assert set(profile.shunned) == {"astro-ph.SR"}
    assert profile.disliked == {dud.id, stars.id}
