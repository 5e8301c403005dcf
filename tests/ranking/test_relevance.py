"""Relevance order: keywords, the reader's field and words, dislikes, reasons, determinism."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from digest import ranking
from digest.models import Liked, Ranked
from tests.support.paths import ROOT
from tests.support.ranking_data import (
    DAYS_PAPERS,
    GRAPHS,
    LIKED_GRAPH,
    ROBOTS,
    SPEECH,
    VISION,
    day_matches,
    ids,
    liked_by_graph,
    match,
    paper,
)

# -- keywords alone ------------------------------------------------------------


def test_a_title_hit_ranks_above_an_abstract_mention() -> None:
    in_title = paper("2606.00010", "Graph learning", GRAPHS)
    in_abstract = paper("2606.00011", "Molecules", "Graph learning. " + GRAPHS, minutes=5)
    corpus = ranking.build_corpus([in_title, in_abstract])
    ranked = ranking.rank(
        [match(in_abstract, "graph learning"), match(in_title, "graph learning")], corpus
    )
    assert ids(ranked) == ["2606.00010", "2606.00011"]


def test_more_of_the_readers_keywords_rank_higher() -> None:
    one = paper("2606.00020", "Graph pooling", GRAPHS, minutes=9)
    two = paper("2606.00021", "Graph pooling with message passing", GRAPHS)
    corpus = ranking.build_corpus([one, two])
    ranked = ranking.rank(
        [match(one, "graph pooling"), match(two, "graph pooling", "message passing")], corpus
    )
    assert ids(ranked) == ["2606.00021", "2606.00020"]


def test_a_followed_author_raises_a_paper() -> None:
    plain = paper("2606.00030", "Graph pooling", GRAPHS, minutes=9)
    followed = paper("2606.00031", "Graph pooling", GRAPHS)
    corpus = ranking.build_corpus([plain, followed])
    ranked = ranking.rank(
        [
            match(plain, "graph pooling"),
            match(followed, "graph pooling", authors=("Author of 2606.00031",)),
        ],
        corpus,
    )
    assert ids(ranked)[0] == "2606.00031"


def test_a_rare_keyword_outweighs_a_broad_one() -> None:
    # "learning" is in every paper of the day; "phoneme" in two
    corpus = ranking.build_corpus(DAYS_PAPERS)
    broad = match(DAYS_PAPERS[0], "learning")
    rare = match(paper("2606.00007", "Phonemes", "Learning. " + SPEECH), "learning", "phoneme")
    ranked = ranking.rank([broad, rare, *(match(p, "learning") for p in DAYS_PAPERS[1:])], corpus)
    assert ids(ranked)[0] == "2606.00007"


def test_without_likes_equal_strength_reads_newest_first() -> None:
    corpus = ranking.build_corpus(DAYS_PAPERS)
    ranked = ranking.rank(day_matches(), corpus)
    assert ids(ranked) == [p.id for p in reversed(DAYS_PAPERS)]


def test_without_likes_the_fields_take_turns_at_the_top() -> None:
    # six equally strong vision papers, newest first, and one older robotics
    # paper: a reader who told nothing of their field sees it second, not last
    vision = [
        paper(
            f"2606.0011{i}", "Pixels", "Learning. " + VISION, minutes=10 + i, categories=("cs.CV",)
        )
        for i in range(6)
    ]
    robot = paper("2606.00120", "Robots", "Learning. " + ROBOTS, categories=("cs.RO",))
    ranked = ranking.rank(
        [match(p, "learning") for p in [*vision, robot]], ranking.build_corpus([])
    )
    assert ids(ranked)[:2] == ["2606.00115", "2606.00120"]
    assert all(r.reason is None for r in ranked)
    assert ranking.order_section(ranked) == ranked  # the scores say the same order


# -- the reader's field and words ----------------------------------------------------


def test_likes_move_similar_papers_up_and_say_so() -> None:
    ranked = ranking.rank(day_matches(), ranking.build_corpus(DAYS_PAPERS), liked_by_graph())
    assert set(ids(ranked)[:2]) == {"2606.00001", "2606.00004"}
    assert ranked[0].reason == "like: Graph networks for chemistry"
    far = [r for r in ranked if GRAPHS not in r.match.paper.abstract]
    assert [r.reason for r in far] == [None] * 4


def test_a_paper_of_the_readers_field_outranks_one_that_shares_their_words() -> None:
    # the reader likes robotics; one paper shares their words ("grasping",
    # "policies", "demonstrations") from another field, one is robotics in
    # other words
    liked = paper("2605.00001", "Dexterous grasping", ROBOTS, categories=("cs.RO", "cs.LG"))
    wordy = paper(
        "2606.00201",
        "Path loss prediction",
        "Learning policies from demonstrations for grasping radio path loss.",
        categories=("cs.IT",),
        minutes=5,
    )
    field = paper(
        "2606.00202",
        "Quadruped gait",
        "Learning stable gaits for a quadruped on rough terrain.",
        categories=("cs.RO",),
    )
    filler = [paper(f"2606.0030{i}", "Pixels", VISION, categories=("cs.CV",)) for i in range(8)]
    corpus = ranking.build_corpus([wordy, field, *filler])
    profile = ranking.build_profile(corpus, [Liked(liked.id)], papers={liked.id: liked})
    ranked = ranking.rank([match(wordy, "learning"), match(field, "learning")], corpus, profile)
    assert ids(ranked) == ["2606.00202", "2606.00201"]
    assert ranked[0].reason == "your field: Robotics"


def test_a_cross_list_to_a_rare_field_counts_as_that_field() -> None:
    liked = paper("2605.00002", "Grasping", ROBOTS, categories=("cs.RO",))
    cross = paper("2606.00401", "Depth", "Learning depth. " + VISION, categories=("cs.CV", "cs.RO"))
    plain = paper(
        "2606.00402", "Depth", "Learning depth. " + VISION, categories=("cs.CV",), minutes=1
    )
    filler = [paper(f"2606.0041{i}", "Pixels", VISION, categories=("cs.CV",)) for i in range(8)]
    corpus = ranking.build_corpus([cross, plain, *filler])
    profile = ranking.build_profile(corpus, [Liked(liked.id)], papers={liked.id: liked})
    ranked = ranking.rank([match(plain, "learning"), match(cross, "learning")], corpus, profile)
    assert ids(ranked) == ["2606.00401", "2606.00402"]


def test_an_author_of_a_liked_paper_lifts_their_paper_in_that_field() -> None:
    liked = paper(
        "2605.00003", "Grasping", ROBOTS, categories=("cs.RO",), authors=("Ada Lovelace",)
    )
    theirs = paper(
        "2606.00501", "Gaits", "Learning gaits.", categories=("cs.RO",), authors=("Ada Lovelace",)
    )
    other = paper("2606.00502", "Gaits", "Learning gaits.", categories=("cs.RO",), minutes=1)
    elsewhere = paper(
        "2606.00503", "Pixels", VISION, categories=("cs.CV",), authors=("Ada Lovelace",), minutes=2
    )
    corpus = ranking.build_corpus([theirs, other, elsewhere])
    profile = ranking.build_profile(corpus, [Liked(liked.id)], papers={liked.id: liked})
    ranked = ranking.rank(
        [match(p, "learning") for p in (other, theirs, elsewhere)], corpus, profile
    )
    assert ids(ranked) == ["2606.00501", "2606.00502", "2606.00503"]
    assert ranked[0].reason == "by Ada Lovelace"
    # the same name in another field is likely someone else: no lift, no "by"
    assert ranked[2].reason is None


def test_a_paper_the_reader_asked_more_of_names_that_request() -> None:
    asked = paper("2605.00004", LIKED_GRAPH.title, LIKED_GRAPH.abstract)
    corpus = ranking.build_corpus(DAYS_PAPERS)
    profile = ranking.build_profile(
        corpus, [Liked(asked.id)], papers={asked.id: asked}, asked={asked.id}
    )
    ranked = ranking.rank(day_matches(), corpus, profile)
    assert ranked[0].reason == f"you asked for more like {asked.title}"


def test_less_like_this_lowers_that_field_not_papers_sharing_words() -> None:
    # the reader likes robotics; they ask for less of an astronomy paper that
    # says "robot" and "telescope": other astronomy goes down, robotics stays
    liked = paper("2605.00005", "Grasping", ROBOTS, categories=("cs.RO",))
    stars = "A robotic telescope survey of variable stars with photometric pipelines."
    disliked = paper("2605.00006", "Robotic telescope", stars, categories=("astro-ph.IM",))
    astro = paper("2606.00601", "Sky survey", "Learning. " + stars, categories=("astro-ph.IM",))
    robot = paper(
        "2606.00602", "Robotic telescope arm", "Learning. " + ROBOTS, categories=("cs.RO",)
    )
    vision = paper("2606.00603", "Pixels", "Learning. " + VISION, categories=("cs.CV",))
    known = {p.id: p for p in (liked, disliked)}
    corpus = ranking.build_corpus([astro, robot, vision])
    matches = [match(p, "learning") for p in (astro, robot, vision)]
    before = ranking.build_profile(corpus, [Liked(liked.id)], papers=known)
    after = ranking.build_profile(corpus, [Liked(liked.id)], dislikes=[disliked.id], papers=known)
    scores = {
        name: {r.match.paper.id: r.score for r in ranking.rank(matches, corpus, profile)}
        for name, profile in (("before", before), ("after", after))
    }
    assert scores["after"]["2606.00601"] < scores["before"]["2606.00601"]
    assert scores["after"]["2606.00602"] == scores["before"]["2606.00602"]
    assert scores["after"]["2606.00603"] == scores["before"]["2606.00603"]
    assert ids(ranking.rank(matches, corpus, after))[-1] == "2606.00601"


def test_a_disliked_paper_that_matches_again_sinks() -> None:
    corpus = ranking.build_corpus(DAYS_PAPERS)
    profile = ranking.build_profile(corpus, [], dislikes=["2606.00006"])
    assert ids(ranking.rank(day_matches(), corpus, profile))[-1] == "2606.00006"


def test_a_liked_paper_that_matches_again_is_not_like_itself() -> None:
    again = DAYS_PAPERS[0]
    corpus = ranking.build_corpus(DAYS_PAPERS)
    profile = ranking.build_profile(corpus, [Liked(again.id, again.title, again.abstract)])
    first = ranking.rank(day_matches(), corpus, profile)
    assert {r.match.paper.id: r.reason for r in first}[again.id] != f"like: {again.title}"


def test_an_empty_corpus_still_ranks_by_keywords() -> None:
    corpus = ranking.build_corpus([])
    in_title = paper("2606.00040", "Graph pooling", GRAPHS)
    in_abstract = paper("2606.00041", "Molecules", "graph pooling " + GRAPHS, minutes=1)
    profile = ranking.build_profile(corpus, [LIKED_GRAPH])
    ranked = ranking.rank(
        [match(in_abstract, "graph pooling"), match(in_title, "graph pooling")], corpus, profile
    )
    assert ids(ranked) == ["2606.00040", "2606.00041"]


def test_nothing_to_rank_gives_nothing() -> None:
    corpus = ranking.build_corpus(DAYS_PAPERS)
    assert ranking.rank([], corpus) == ()
    assert ranking.rank([], corpus, liked_by_graph()) == ()


def test_ties_break_by_published_then_id_newest_first() -> None:
    same = [paper(f"2606.0005{i}", "Graph pooling", GRAPHS) for i in range(3)]
    later = paper("2606.00049", "Graph pooling", GRAPHS, minutes=1)
    ranked = ranking.order_section(Ranked(match(p, "graph pooling"), 0.5) for p in [*same, later])
    assert ids(ranked) == ["2606.00049", "2606.00052", "2606.00051", "2606.00050"]


_ORDER_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from tests.support.ranking_data import DAYS_PAPERS, day_matches, liked_by_graph
from digest import ranking
corpus = ranking.build_corpus(DAYS_PAPERS)
for profile in (ranking.NO_PROFILE, liked_by_graph()):
    print([(r.match.paper.id, r.score) for r in ranking.rank(day_matches(), corpus, profile)])
"""


def test_the_order_does_not_depend_on_string_hashing() -> None:
    script = _ORDER_SCRIPT.format(root=str(ROOT))
    runs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(runs) == 1


WORDS = ["graph", "pooling", "image", "speech", "learning", "message", "pixel", "audio"]
CATEGORIES = ["cs.LG", "cs.CV", "cs.RO", "eess.AS"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(WORDS), min_size=1, max_size=6),
            st.lists(st.sampled_from(WORDS), min_size=0, max_size=30),
            st.integers(min_value=0, max_value=5),
            st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=3, unique=True),
        ),
        max_size=12,
    ),
    st.lists(st.sampled_from(WORDS), max_size=10),
    st.booleans(),
)
def test_the_order_is_a_permutation_of_the_matches_and_agrees_with_its_scores(
    specs: list[tuple[list[str], list[str], int, list[str]]], liked_words: list[str], liked: bool
) -> None:
    papers = [
        paper(f"2606.{i:05d}", " ".join(t), " ".join(a), minutes=m, categories=tuple(c))
        for i, (t, a, m, c) in enumerate(specs)
    ]
    matches = [match(p, "graph") for p in papers]
    corpus = ranking.build_corpus(papers)
    profile = (
        ranking.build_profile(
            corpus,
            [Liked(title=" ".join(liked_words))],
            dislikes=["2606.00000"],
            papers={p.id: p for p in papers},
        )
        if liked
        else ranking.NO_PROFILE
    )
    ranked = ranking.rank(matches, corpus, profile)
    assert sorted(ids(ranked)) == sorted(p.id for p in papers)
    assert ranking.order_section(ranked) == ranked
