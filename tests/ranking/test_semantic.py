"""Ranking by meaning (settings.semantic): the real wordllama model, loaded offline."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from digest import ranking
from digest.errors import EXIT_CONFIG, MissingExtraError
from digest.models import Liked
from digest.ranking import semantic
from tests.support.paths import ROOT
from tests.support.ranking_data import DAYS_PAPERS, ids, match, paper

LIKED = Liked(
    title="Coordinating autonomous LLM agents",
    abstract="Protocols, delegation and governance for collaboration among autonomous "
    "language-model agents; oversight of what each agent may decide on its own.",
)
# both say "agents" in the title and share no other word with the like:
# the words cannot tell them apart, their meaning can
NEGOTIATE = paper(
    "2606.00011",
    "Agents that negotiate",
    "Agents that hand tasks to one another need trust, accountability and a human who "
    "can step in; we study negotiation between AI assistants.",
    minutes=11,
    categories=("cs.MA",),
)
EDITING = paper(
    "2606.00012",
    "Agents for video editing",
    "Agents cut footage, build a timeline and render clips for long-form films and trailers.",
    minutes=12,
    categories=("cs.MA",),
)
DAY = [*DAYS_PAPERS, NEGOTIATE, EDITING]


@pytest.fixture
def model() -> ranking.Embed:
    pytest.importorskip("wordllama", reason="the semantic extra: pip install '.[semantic]'")
    return ranking.load_semantic()


@pytest.fixture
def no_extra(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The default install: importing wordllama fails, as it does where it is not installed."""
    semantic.load.cache_clear()
    monkeypatch.setitem(sys.modules, "wordllama", None)
    yield
    semantic.load.cache_clear()


def test_meaning_decides_between_papers_the_words_cannot_tell_apart(
    model: ranking.Embed,
) -> None:
    matches = [match(p, "agent") for p in (NEGOTIATE, EDITING)]
    words = ranking.build_corpus(DAY)
    assert ids(ranking.rank(matches, words, ranking.build_profile(words, [LIKED])))[0] == (
        EDITING.id
    )  # the newer, by a hair of tf-idf
    meant = ranking.build_corpus(DAY, model)
    ranked = ranking.rank(matches, meant, ranking.build_profile(meant, [LIKED]))
    assert ids(ranked) == [NEGOTIATE.id, EDITING.id]
    assert ranked[0].score - ranked[1].score > 0.5
    # lifted by meaning, and it says which liked paper it is close to
    assert ranked[0].reason == f"like: {LIKED.title}"
    assert ranked[1].reason is None


def test_closeness_is_centred_on_the_days_papers(model: ranking.Embed) -> None:
    meanings = ranking.build_corpus(DAY, model).meanings
    assert meanings is not None
    liked = meanings.meaning([(None, LIKED.title, LIKED.abstract)])
    near, far = meanings.closeness(liked, meanings.rows([NEGOTIATE, EDITING]))
    assert near > 0.3 > far
    # less the day's mean, the day's papers spread on both sides of zero: raw
    # cosines of abstracts would all be far above it
    day = meanings.closeness(liked, meanings.rows(DAY))
    assert min(day) < 0 < max(day)


def test_a_text_the_model_has_no_token_for_has_no_direction_not_nan(
    model: ranking.Embed,
) -> None:
    blank = paper("2606.00013", "", "", minutes=13)
    meanings = ranking.build_corpus([*DAY, blank], model).meanings
    assert meanings is not None
    liked = meanings.meaning([(None, LIKED.title, LIKED.abstract)])
    assert meanings.closeness(liked, meanings.rows([blank])) == [0.0]
    # a reader whose only like is blank has no meaning to rank by
    assert meanings.meaning([(None, "", "")]) == ()


def test_a_liked_paper_of_another_day_is_embedded_once_and_shared(
    model: ranking.Embed,
) -> None:
    corpus = ranking.build_corpus(DAY, model)
    assert corpus.meanings is not None
    first = ranking.build_profile(corpus, [LIKED])
    second = ranking.build_profile(corpus, [LIKED])
    assert first.meaning == second.meaning and len(first.meaning) == semantic.MODEL_DIM
    assert len(corpus.meanings._memo) == 1


def test_the_model_loads_and_embeds_without_the_network(model: ranking.Embed) -> None:
    # a fresh interpreter in which every socket connection fails: the weights
    # and tokenizer must come from the installed package, never a download
    script = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise OSError('no network in this test')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from digest.ranking import semantic\n"
        "rows = semantic.load()(['graph neural networks'])\n"
        "print(len(rows[0]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(semantic.MODEL_DIM)


def test_without_the_extra_loading_says_how_to_install_it(no_extra: None) -> None:
    with pytest.raises(MissingExtraError) as caught:
        ranking.load_semantic()
    assert caught.value.exit_code == EXIT_CONFIG
    assert "pip install 'daily-papers-digest[semantic]'" in str(caught.value)
    assert "semantic: false" in str(caught.value)


def test_the_default_ranking_never_imports_the_model() -> None:
    script = (
        "import sys\n"
        "from digest import ranking\n"
        "from tests.support.ranking_data import LIKED_GRAPH, DAYS_PAPERS, day_matches\n"
        "corpus = ranking.build_corpus(DAYS_PAPERS)\n"
        "ranking.rank(day_matches(), corpus, ranking.build_profile(corpus, [LIKED_GRAPH]))\n"
        "print(sorted(m for m in ('wordllama', 'numpy') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
