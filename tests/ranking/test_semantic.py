"""Ranking by meaning (settings.semantic): the real wordllama model, loaded offline."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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


def test_blank_papers_do_not_move_the_days_mean(model: ranking.Embed) -> None:
    blanks = [paper(f"2606.0002{i}", "", "", minutes=20 + i) for i in range(3)]
    plain = ranking.build_corpus(DAY, model).meanings
    padded = ranking.build_corpus([*DAY, *blanks], model).meanings
    assert plain is not None and padded is not None
    liked = [(None, LIKED.title, LIKED.abstract)]
    assert plain.closeness(plain.meaning(liked), plain.rows(DAY)) == pytest.approx(
        padded.closeness(padded.meaning(liked), padded.rows(DAY)), abs=1e-9
    )


def test_the_reason_names_the_closest_in_meaning_of_each_kind(model: ranking.Embed) -> None:
    # a request ("more like this") outranks a like in the reason line, as it
    # does for words, even when the liked paper is a little closer in meaning
    asked = Liked(
        arxiv_id="2501.00778",
        title="Bargaining among autonomous helpers",
        abstract="Bargaining protocols between autonomous software helpers which delegate "
        "jobs, with reliance, responsibility and people supervising.",
    )
    corpus = ranking.build_corpus(DAY, model)
    profile = ranking.build_profile(corpus, [LIKED, asked], asked={asked.arxiv_id})
    meanings = corpus.meanings
    assert meanings is not None
    to_liked, to_asked = meanings.to_each(
        [s.meaning for s in profile.sources], meanings.rows([NEGOTIATE])
    )[0]
    assert to_liked > to_asked > 0.3  # both close; the liked paper a little closer
    (top,) = ranking.rank([match(NEGOTIATE, "agent")], corpus, profile)
    assert top.reason == f"you asked for more like {asked.title}"


def test_a_liked_paper_that_matches_again_names_another_liked_paper(
    model: ranking.Embed,
) -> None:
    corpus = ranking.build_corpus(DAY, model)
    itself = Liked(arxiv_id=NEGOTIATE.id)
    profile = ranking.build_profile(corpus, [itself, LIKED], papers={NEGOTIATE.id: NEGOTIATE})
    (top,) = ranking.rank([match(NEGOTIATE, "agent")], corpus, profile)
    assert top.reason == f"like: {LIKED.title}"


def test_a_huge_library_entry_is_cut_before_it_is_embedded() -> None:
    text = semantic.text_of("A title", "word " * 200_000)
    assert len(text) == semantic.TEXT_LIMIT and text.startswith("A title. word")


def _truncate(weights: Path) -> None:
    weights.write_bytes(weights.read_bytes()[:1000])  # a truncated download


def _poison(weights: Path) -> None:
    # a file that loads but holds NaN: every embedding would be zeroed, and
    # meaning would silently count for nothing
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(weights))
    save_file({k: v * float("nan") for k, v in tensors.items()}, str(weights))


@pytest.mark.parametrize("damage", [_truncate, _poison], ids=["truncated", "nan"])
def test_a_damaged_model_install_exits_78_saying_to_reinstall(
    model: ranking.Embed, tmp_path, damage
) -> None:
    import shutil

    import wordllama

    copy = tmp_path / "site" / "wordllama"
    shutil.copytree(Path(wordllama.__file__).parent, copy)
    damage(next((copy / "weights").glob("*.safetensors")))
    script = (
        "from digest.ranking import semantic\n"
        "from digest.errors import MissingExtraError\n"
        "try:\n"
        "    semantic.load()\n"
        "except MissingExtraError as exc:\n"
        "    print(exc.exit_code, exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(copy.parent)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{EXIT_CONFIG} ") and "reinstall the extra" in done.stdout


def test_an_extra_that_fails_to_import_is_78_not_a_crash(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # installed but unreadable by the service's user (or truncated, or wanting a
    # home directory): the import raises something other than ImportError
    fake = tmp_path / "wordllama"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise PermissionError(13, 'Permission denied', __file__)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "wordllama", raising=False)
    semantic.load.cache_clear()
    try:
        with pytest.raises(MissingExtraError) as caught:
            ranking.load_semantic()
    finally:
        semantic.load.cache_clear()
    assert caught.value.exit_code == EXIT_CONFIG
    assert "PermissionError" in str(caught.value) and "this user can read it" in str(caught.value)


def test_a_library_text_with_a_lone_surrogate_is_embedded(model: ranking.Embed) -> None:
    # JSON's "\\ud800" reaches Python as a lone surrogate, which the tokenizer refuses
    odd = Liked(title="Agents \ud800 that negotiate", abstract="Trust between assistants \udfff.")
    corpus = ranking.build_corpus(DAY, model)
    profile = ranking.build_profile(corpus, [odd])
    assert len(profile.meaning) == semantic.MODEL_DIM
    assert semantic.text_of(odd.title, "") == "Agents ? that negotiate"


def test_a_readers_library_is_embedded_in_one_call(model: ranking.Embed) -> None:
    calls: list[int] = []

    def counting(texts):
        calls.append(len(texts))
        return model(texts)

    corpus = ranking.build_corpus(DAY, counting)
    calls.clear()
    library = [
        Liked(title=f"Entry {i}", abstract=f"Agents number {i} negotiate.") for i in range(7)
    ]
    ranking.build_profile(corpus, library)
    assert calls == [7]
    ranking.build_profile(corpus, library)  # another reader with the same library
    assert calls == [7]
