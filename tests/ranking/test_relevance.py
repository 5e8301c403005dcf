"""Relevance order: keyword strength, likes and dislikes, the "like:" line, determinism."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.models import Liked, Match, Paper
from digest.ranking import relevance as rank
from tests.support.paths import ROOT

DAY = datetime(2026, 6, 9, tzinfo=UTC)

GRAPHS = (
    "We study graph neural networks for message passing on molecular graphs, "
    "with node embeddings and graph pooling for chemistry."
)
VISION = (
    "A convolutional network for image segmentation of street scenes, trained on "
    "pixel labels with a vision transformer backbone."
)
SPEECH = (
    "An end-to-end speech recognition system with acoustic features, phoneme "
    "decoding and audio augmentation for noisy recordings."
)


def paper(
    pid: str, title: str, abstract: str, *, minutes: int = 0, categories: tuple[str, ...] = ()
) -> Paper:
    when = DAY + timedelta(minutes=minutes)
    return Paper(
        id=pid,
        version=1,
        title=title,
        abstract=abstract,
        authors=("A. Author",),
        categories=categories or ("cs.LG",),
        primary_category=(categories or ("cs.LG",))[0],
        published=when,
        updated=when,
    )


def match(p: Paper, *keywords: str, authors: tuple[str, ...] = ()) -> Match:
    return Match(paper=p, keywords=keywords, authors=authors)


def ids(ranked: tuple[rank.Ranked, ...]) -> list[str]:
    return [r.match.paper.id for r in ranked]


# a day of papers that all mention "learning" once, in three fields
DAYS_PAPERS = [
    paper("2606.00001", "Pooling for molecules", "Learning on graphs. " + GRAPHS, minutes=1),
    paper("2606.00002", "Street scenes", "Learning to segment. " + VISION, minutes=2),
    paper("2606.00003", "Noisy audio", "Learning to listen. " + SPEECH, minutes=3),
    paper("2606.00004", "Message passing", "Learning messages. " + GRAPHS, minutes=4),
    paper("2606.00005", "Pixels", "Learning pixels. " + VISION, minutes=5),
    paper("2606.00006", "Phonemes", "Learning phonemes. " + SPEECH, minutes=6),
]
LIKED_GRAPH = Liked(
    arxiv_id="2501.00001",
    title="Graph networks for chemistry",
    abstract="Message passing graph neural networks with node embeddings predict molecular "
    "properties; graph pooling summarises molecules.",
)


def day_matches() -> list[Match]:
    return [match(p, "learning") for p in DAYS_PAPERS]


def test_a_title_hit_ranks_above_an_abstract_mention() -> None:
    in_title = paper("2606.00010", "Graph learning", GRAPHS)
    in_abstract = paper("2606.00011", "Molecules", "Graph learning. " + GRAPHS, minutes=5)
    corpus = rank.build_corpus([in_title, in_abstract])
    ranked = rank.rank(
        [match(in_abstract, "graph learning"), match(in_title, "graph learning")], corpus
    )
    assert ids(ranked) == ["2606.00010", "2606.00011"]


def test_more_of_the_readers_keywords_rank_higher() -> None:
    one = paper("2606.00020", "Graph pooling", GRAPHS, minutes=9)
    two = paper("2606.00021", "Graph pooling with message passing", GRAPHS)
    corpus = rank.build_corpus([one, two])
    ranked = rank.rank(
        [match(one, "graph pooling"), match(two, "graph pooling", "message passing")], corpus
    )
    assert ids(ranked) == ["2606.00021", "2606.00020"]


def test_a_followed_author_raises_a_paper() -> None:
    plain = paper("2606.00030", "Graph pooling", GRAPHS, minutes=9)
    followed = paper("2606.00031", "Graph pooling", GRAPHS)
    corpus = rank.build_corpus([plain, followed])
    ranked = rank.rank(
        [match(plain, "graph pooling"), match(followed, "graph pooling", authors=("A. Author",))],
        corpus,
    )
    assert ids(ranked)[0] == "2606.00031"


def test_a_rare_keyword_outweighs_a_broad_one() -> None:
    # "learning" is in every paper of the day; "phoneme" in two
    corpus = rank.build_corpus(DAYS_PAPERS)
    broad = match(DAYS_PAPERS[0], "learning")
    rare = match(paper("2606.00007", "Phonemes", "Learning. " + SPEECH), "learning", "phoneme")
    ranked = rank.rank([broad, rare, *(match(p, "learning") for p in DAYS_PAPERS[1:])], corpus)
    assert ids(ranked)[0] == "2606.00007"


def test_without_likes_equal_strength_reads_newest_first() -> None:
    corpus = rank.build_corpus(DAYS_PAPERS)
    ranked = rank.rank(day_matches(), corpus)
    assert ids(ranked) == [p.id for p in reversed(DAYS_PAPERS)]


def test_likes_move_similar_papers_up() -> None:
    corpus = rank.build_corpus(DAYS_PAPERS)
    profile = rank.build_profile(corpus, [LIKED_GRAPH])
    ranked = rank.rank(day_matches(), corpus, profile)
    assert set(ids(ranked)[:2]) == {"2606.00001", "2606.00004"}


def test_dislikes_move_similar_papers_down() -> None:
    corpus = rank.build_corpus(DAYS_PAPERS)
    known = {p.id: p for p in DAYS_PAPERS}
    profile = rank.build_profile(corpus, [LIKED_GRAPH], dislikes=["2606.00005"], papers=known)
    ranked = rank.rank(day_matches(), corpus, profile)
    # both vision papers now trail the speech papers they tied with before
    assert set(ids(ranked)[-2:]) == {"2606.00002", "2606.00005"}


def test_a_paper_close_to_a_liked_one_names_it() -> None:
    corpus = rank.build_corpus(DAYS_PAPERS)
    ranked = rank.rank(day_matches(), corpus, rank.build_profile(corpus, [LIKED_GRAPH]))
    assert ranked[0].explanation == "like: Graph networks for chemistry"
    assert all(r.explanation is None for r in ranked if GRAPHS not in r.match.paper.abstract)


def test_papers_far_from_every_like_have_no_explanation() -> None:
    corpus = rank.build_corpus(DAYS_PAPERS)
    ranked = rank.rank(day_matches(), corpus, rank.build_profile(corpus, [LIKED_GRAPH]))
    far = [r for r in ranked if r.match.paper.id in {"2606.00002", "2606.00003"}]
    assert [r.like for r in far] == [None, None]


def test_a_like_known_only_by_id_takes_its_text_from_the_papers() -> None:
    cached = paper("2501.00002", LIKED_GRAPH.title, LIKED_GRAPH.abstract)
    corpus = rank.build_corpus(DAYS_PAPERS)
    profile = rank.build_profile(corpus, [Liked(arxiv_id="2501.00002")], papers={cached.id: cached})
    assert set(ids(rank.rank(day_matches(), corpus, profile))[:2]) == {"2606.00001", "2606.00004"}


def test_a_like_neither_cached_nor_described_is_left_out() -> None:
    corpus = rank.build_corpus(DAYS_PAPERS)
    profile = rank.build_profile(corpus, [Liked(arxiv_id="2501.09999")])
    assert profile.empty
    assert ids(rank.rank(day_matches(), corpus, profile)) == ids(rank.rank(day_matches(), corpus))


def test_a_liked_paper_that_matches_again_is_not_like_itself() -> None:
    again = DAYS_PAPERS[0]
    corpus = rank.build_corpus(DAYS_PAPERS)
    profile = rank.build_profile(corpus, [Liked(again.id, again.title, again.abstract)])
    first = rank.rank(day_matches(), corpus, profile)
    assert {r.match.paper.id: r.like for r in first}[again.id] != again.title


def test_an_empty_corpus_still_ranks_by_keywords() -> None:
    corpus = rank.build_corpus([])
    in_title = paper("2606.00040", "Graph pooling", GRAPHS)
    in_abstract = paper("2606.00041", "Molecules", "graph pooling " + GRAPHS, minutes=1)
    profile = rank.build_profile(corpus, [LIKED_GRAPH])
    ranked = rank.rank(
        [match(in_abstract, "graph pooling"), match(in_title, "graph pooling")], corpus, profile
    )
    assert ids(ranked) == ["2606.00040", "2606.00041"]


def test_nothing_to_rank_gives_nothing() -> None:
    assert rank.rank([], rank.build_corpus(DAYS_PAPERS)) == ()


def test_ties_break_by_published_then_id_newest_first() -> None:
    same = [paper(f"2606.0005{i}", "Graph pooling", GRAPHS) for i in range(3)]
    later = paper("2606.00049", "Graph pooling", GRAPHS, minutes=1)
    ranked = rank.order_section(rank.Ranked(match(p, "graph pooling"), 0.5) for p in [*same, later])
    assert ids(ranked) == ["2606.00049", "2606.00052", "2606.00051", "2606.00050"]


_ORDER_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from tests.ranking.test_relevance import DAYS_PAPERS, LIKED_GRAPH, day_matches
from digest.ranking import relevance as rank
corpus = rank.build_corpus(DAYS_PAPERS)
profile = rank.build_profile(corpus, [LIKED_GRAPH])
print([(r.match.paper.id, r.score) for r in rank.rank(day_matches(), corpus, profile)])
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


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(WORDS), min_size=1, max_size=6),
            st.lists(st.sampled_from(WORDS), min_size=0, max_size=30),
            st.integers(min_value=0, max_value=5),
        ),
        max_size=12,
    ),
    st.lists(st.sampled_from(WORDS), max_size=10),
)
def test_the_order_is_a_permutation_of_the_matches(
    specs: list[tuple[list[str], list[str], int]], liked_words: list[str]
) -> None:
    papers = [
        paper(f"2606.{i:05d}", " ".join(t), " ".join(a), minutes=m)
        for i, (t, a, m) in enumerate(specs)
    ]
    matches = [match(p, "graph") for p in papers]
    corpus = rank.build_corpus(papers)
    profile = rank.build_profile(corpus, [Liked(title=" ".join(liked_words))])
    ranked = rank.rank(matches, corpus, profile)
    assert sorted(ids(ranked)) == sorted(p.id for p in papers)
    assert len(ranked) == len(matches)
