"""What a reader likes: arXiv ids, BibTeX and CSL-JSON libraries, config errors with their place."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from digest.config import library
from digest.config import loading as config
from digest.errors import EXIT_CONFIG, ConfigError
from digest.models import Liked, Subscriber
from tests.support.paths import FIXTURES

API = "https://export.arxiv.org/api/query"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2101.00001", "2101.00001"),
        ("2101.00001v2", "2101.00001"),
        ("0704.0001", "0704.0001"),
        ("arXiv:1706.03762v7", "1706.03762"),
        ("hep-th/9901001", "hep-th/9901001"),
        ("hep-th/9901001v3", "hep-th/9901001"),
        ("math.AG/0601001", "math.AG/0601001"),
        ("https://arxiv.org/abs/2101.00001v2", "2101.00001"),
        ("https://arxiv.org/pdf/2101.00001", "2101.00001"),
        ("10.48550/arXiv.2101.00001", "2101.00001"),
    ],
)
def test_arxiv_ids_are_read_with_or_without_version(text: str, expected: str) -> None:
    assert library.parse_arxiv_id(text) == expected


@pytest.mark.parametrize("text", ["abc", "2101", "21010.0001", "", "10.1023/A:1026654312961"])
def test_what_is_not_an_arxiv_id_is_none(text: str) -> None:
    assert library.parse_arxiv_id(text) is None


def test_a_zotero_bibtex_export_gives_ids_from_url_doi_and_eprint() -> None:
    liked = library.read_library(FIXTURES / "library_zotero.bib")
    assert [x.arxiv_id for x in liked] == [
        "1706.03762",  # url, doi and note
        "hep-th/9711200",  # url beside a journal DOI
        "1810.04805",  # arXiv's DOI only
        "1512.03385",  # Better BibTeX eprint + archiveprefix, versioned
        None,  # a book: title only
        None,  # a PubMed eprint is not an arXiv id
    ]


def test_bibtex_titles_and_abstracts_are_used_as_plain_text() -> None:
    first = library.read_library(FIXTURES / "library_zotero.bib")[0]
    assert first.title == "Attention Is All You Need"
    assert first.abstract.startswith("The dominant sequence transduction models")


def test_a_csl_json_export_gives_ids_titles_and_abstracts() -> None:
    liked = library.read_library(FIXTURES / "library_zotero.json")
    assert [(x.arxiv_id, x.title[:20], bool(x.abstract)) for x in liked] == [
        ("1706.03762", "Attention Is All You", True),
        ("hep-th/9711200", "The Large N Limit of", False),
        (None, "The Art of Computer ", False),
        ("2101.00001", "", False),
    ]


def test_an_empty_library_file_likes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.bib"
    path.write_text("\n")
    assert library.read_library(path) == ()


def problems_of(path: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        library.read_library(path)
    return info.value.problems


def test_a_broken_bibtex_entry_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "refs.bib"
    good = (FIXTURES / "library_zotero.bib").read_text()
    path.write_text("@article{broken,\n  title = {Unclosed\n  year = 2020\n}\n\n" + good)
    (problem,) = problems_of(path)
    assert problem.startswith("line 1: cannot parse the entry starting '@article{broken,'")


def test_a_file_with_no_entries_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("These are my favourite papers: the transformer one.\n")
    assert "no BibTeX entries" in problems_of(path)[0]


def test_garbled_csl_json_is_reported_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "lib.json"
    path.write_text('[\n  {"title": "A"},\n  {"title": }\n]\n')
    assert problems_of(path)[0].startswith("line 3, column 13: not valid JSON")


def test_csl_json_that_is_not_a_list_of_items_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "lib.json"
    path.write_text('[{"title": "A"}, "B"]')
    assert problems_of(path) == ("item [1]: not a CSL-JSON item (a {...} object)",)


def test_a_binary_file_is_reported_not_decoded(tmp_path: Path) -> None:
    path = tmp_path / "lib.bib"
    path.write_bytes(b"%PDF-1.5\n\xff\xfe\x00\x81")
    assert "not UTF-8 text" in problems_of(path)[0]


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    assert "cannot read the file" in problems_of(tmp_path / "nowhere.bib")[0]


def test_likes_and_library_merge_one_entry_per_paper_preferring_text() -> None:
    described = Liked("1706.03762", "Attention Is All You Need", "The dominant ...")
    merged = library.merge_likes(["1706.03762", "2101.00001"], [described, Liked(title="Knuth")])
    assert merged == (described, Liked("2101.00001"), Liked(title="Knuth"))


def reader(email: str, *likes: Liked) -> Subscriber:
    return Subscriber(email=email, keywords=("graph",), likes=likes)


def test_only_bare_uncached_ids_are_looked_up_once_across_readers() -> None:
    subs = [
        reader("a@example.org", Liked("2101.00001"), Liked("2101.00002")),
        reader("b@example.org", Liked("2101.00001"), Liked("2101.00003", "T", "An abstract")),
    ]
    assert library.ids_to_look_up(subs, {"2101.00002"}, api_url=API) == ("2101.00001",)


def test_ids_arxiv_did_not_find_are_not_asked_again() -> None:
    subs = [reader("a@example.org", Liked("0000.00000"), Liked("2101.00001"))]
    found = library.ids_to_look_up(subs, set(), api_url=API, not_found={"0000.00000"})
    assert found == ("2101.00001",)


def test_the_lookup_fits_in_one_request() -> None:
    many = tuple(Liked(f"2101.{i:05d}") for i in range(1000))
    ids = library.ids_to_look_up([reader("a@example.org", *many)], set(), api_url=API)
    assert len(ids) == 200  # one page of the default page_size
    assert ids == tuple(sorted(ids))
    assert len(library.id_batches(ids, api_url=API)) == 1


def test_a_long_url_cuts_the_lookup_before_the_page_does() -> None:
    many = tuple(Liked(f"hep-th/99{i:05d}") for i in range(1000))
    ids = library.ids_to_look_up(
        [reader("a@example.org", *many)], set(), api_url=API, page_size=2000
    )
    assert 100 < len(ids) < 1000
    assert len(library.id_batches(ids, api_url=API)) == 1


# --------------------------------------------------------------------------
# Through digest.config.loading


def write_config(folder: Path, subscriber_lines: str) -> Path:
    path = folder / "subscribers.yaml"
    path.write_text(
        "subscribers:\n"
        "  - email: first@example.org\n"
        "    keywords: [graph]\n"
        "  - email: reader@example.org\n"
        "    keywords: [transformer]\n" + subscriber_lines
    )
    return path


def load_problems(path: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        config.load(path, env={})
    assert info.value.exit_code == EXIT_CONFIG
    return info.value.problems


def test_config_reads_likes_and_a_library_relative_to_its_folder(tmp_path: Path) -> None:
    (tmp_path / "refs").mkdir()
    shutil.copy(FIXTURES / "library_zotero.bib", tmp_path / "refs" / "zotero.bib")
    path = write_config(
        tmp_path,
        "    likes: [2101.00001v2, 'hep-th/9901001', 1706.03762, 2101.00010, 0704.0010]\n"
        "    library: refs/zotero.bib\n",
    )
    sub = config.load(path, env={}).subscribers[1]
    assert sub.library == tmp_path.resolve() / "refs" / "zotero.bib"
    ids = [x.arxiv_id for x in sub.likes]
    # unquoted ids that YAML read as numbers keep their trailing zeros
    assert ids[:5] == ["2101.00001", "hep-th/9901001", "1706.03762", "2101.00010", "0704.0010"]
    assert ids.count("1706.03762") == 1  # in likes: and in the library
    assert sub.likes[2].title == "Attention Is All You Need"


def test_a_bad_liked_id_is_a_config_error_with_its_place(tmp_path: Path) -> None:
    path = write_config(tmp_path, "    likes: [2101.00001, abc]\n")
    (problem,) = load_problems(path)
    assert problem.startswith(
        "subscribers[1].likes[1] (reader@example.org): 'abc' is not an arXiv id"
    )


def test_an_unreadable_library_is_that_readers_problem_not_the_files(tmp_path: Path) -> None:
    path = write_config(tmp_path, "    library: missing.bib\n")
    first, reader = config.load(path, env={}).subscribers  # the others still load
    assert first.library_problem is None
    assert reader.library == tmp_path.resolve() / "missing.bib"
    assert reader.library_problem is not None
    assert reader.library_problem.startswith(f"{tmp_path.resolve() / 'missing.bib'}: ")
    assert "cannot read the file" in reader.library_problem


def test_a_garbled_library_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "lib.bib").write_text("@misc{x, title = {A}}\n@article{y,\n  title = {B\n")
    path = write_config(tmp_path, "    library: lib.bib\n")
    reader = config.load(path, env={}).subscribers[1]
    assert reader.library_problem is not None
    assert reader.library_problem.startswith(f"{tmp_path.resolve() / 'lib.bib'}: line 2")


def test_a_subscriber_without_likes_has_none(tmp_path: Path) -> None:
    sub = config.load(write_config(tmp_path, ""), env={}).subscribers[0]
    assert sub.likes == () and sub.library is None


def test_a_number_that_is_no_id_is_refused_as_an_id(tmp_path: Path) -> None:
    path = write_config(tmp_path, "    likes: [1234]\n")
    (problem,) = load_problems(path)
    assert problem.endswith(
        "'1234' is not an arXiv id (like 2101.00001, 2101.00001v2 or hep-th/9901001)"
    )
