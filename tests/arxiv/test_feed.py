"""Atom parsing and arXiv ids: pure functions on recorded arXiv responses."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from xml.sax.saxutils import escape

import pytest

from digest.arxiv.feed import MalformedPage, parse_page
from digest.errors import ArxivQueryError
from digest.models import split_arxiv_id
from tests.support.arxiv_server import load_entries, make_entry
from tests.support.paths import FIXTURES

FIX = FIXTURES


def read(name: str) -> bytes:
    return (FIX / name).read_bytes()


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("http://arxiv.org/abs/2202.12139v3", ("2202.12139", 3)),
        ("https://arxiv.org/abs/astro-ph/9904306v1", ("astro-ph/9904306", 1)),
        ("oai:arXiv.org:2401.00001v12", ("2401.00001", 12)),
        ("1201.4869", ("1201.4869", 1)),
        ("http://arxiv.org/abs/0704.0001v2", ("0704.0001", 2)),
        ("http://arxiv.org/abs/math.AG/0601001v1", ("math.AG/0601001", 1)),
        ("http://arxiv.org/abs/solv-int/9901001v1", ("solv-int/9901001", 1)),
    ],
)
def test_versionless_ids(raw: str, expected: tuple[str, int]) -> None:
    assert split_arxiv_id(raw) == expected


NOT_IDS = [
    "<img src=x onerror=alert(1)>",
    "2401.00001 2401.00002",  # two ids: stored, it would read as both
    "2401.00001v1v2",
    "2413.00001",  # no 13th month
    "2401.001",
    "2401.000001",
    "../../2401.00001",
    "hep-th/990100",
    "hep-th/9901001/extra",
    "javascript:alert(1)//2401.00001",
]


@pytest.mark.parametrize("raw", NOT_IDS)
def test_what_is_not_an_arxiv_identifier_has_no_id(raw: str) -> None:
    assert split_arxiv_id(f"http://arxiv.org/abs/{raw}v1") is None


def page_of(*ids: str) -> bytes:
    header, _ = load_entries(["api_new_2026-04_all-testing_start-0_max-10.xml"])
    entries = [make_entry(escape(i), f"Paper {n}", "Text.") for n, i in enumerate(ids)]
    return header + b"".join(entries) + b"</feed>"


def test_entries_whose_id_is_not_an_arxiv_identifier_are_dropped_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hostile = ["<img src=x onerror=alert(1)>", "2401.00001 2401.00002", "x\n" * 300]
    with caplog.at_level(logging.WARNING, logger="digest.arxiv.feed"):
        page = parse_page(page_of("2401.00003", *hostile, "hep-th/9901001"))
    assert [p.id for p in page.papers] == ["2401.00003", "hep-th/9901001"]
    assert page.entry_count == 5  # still entries: paging counts them
    (warning,) = caplog.records
    message = warning.getMessage()
    assert message.startswith("dropped 3 arXiv entries whose id is not an arXiv identifier: ")
    assert "'http://arxiv.org/abs/<img src=x onerror=alert(1)>v1'" in message
    assert "'http://arxiv.org/abs/2401.00001 2401.00002v1'" in message
    assert "\n" not in message and len(message) < 300  # escaped and shortened


def test_new_layout_page_parses_every_field() -> None:
    page = parse_page(read("api_new_2026-04_all-testing_start-0_max-10.xml"))
    assert (page.total_results, page.start_index, page.entry_count) == (214881, 0, 10)
    p = page.papers[0]
    assert (p.id, p.version) == ("2202.12139", 1)
    assert p.title.startswith("Testing Deep Learning Models: A First Comparative Study")
    assert p.authors == ("Mohit Kumar Ahuja", "Arnaud Gotlieb", "Helge Spieker")
    assert p.categories == ("cs.SE", "cs.LG") and p.primary_category == "cs.SE"
    assert p.comment == "Artificial Intelligence in Software Testing 2022 workshop @ ICST 2022"
    assert p.doi == "10.1109/ICSTW55395.2022.00035"
    assert p.journal_ref and p.journal_ref.startswith("Artificial Intelligence in Software")
    assert p.published == datetime(2022, 2, 24, 15, 5, 19, tzinfo=UTC)
    assert p.abs_url == "https://arxiv.org/abs/2202.12139"
    assert p.pdf_url == "https://arxiv.org/pdf/2202.12139v1"
    assert p.html_url == "https://arxiv.org/html/2202.12139v1"


def test_legacy_layout_whitespace_is_normalised_and_old_ids_kept() -> None:
    page = parse_page(read("api_legacy_2025-08_search_electron-AND-proton_10-entries.xml"))
    p = page.papers[0]
    assert p.id == "astro-ph/9904306"
    assert "\n" not in p.abstract and "  " not in p.abstract
    assert p.abstract.startswith("It is assumed that, in the primordial plasma")
    assert page.papers[1].title == (
        "Proton-ring and Electron-linac Collider (PRELC) as a (first) "
        "TeV-rangeelectron-proton or photon-proton collider"
    )


def test_links_without_rel_do_not_matter() -> None:
    page = parse_page(
        read("api_new_2025-11_search_electron-AND-proton_10-entries_links-without-rel.xml")
    )
    assert all(p.pdf_url.startswith("https://arxiv.org/pdf/") for p in page.papers)


def test_versioned_entry_and_title_zero() -> None:
    (p,) = parse_page(read("api_new_2026-04_idlist-versioned_title-is-0.xml")).papers
    assert p.title == "0"


def test_legacy_published_differs_from_updated_for_revisions() -> None:
    page = parse_page(read("api_legacy_2016-10_au-AND-ti-phrase_2-entries.xml"))
    assert any(p.version > 1 and p.updated > p.published for p in page.papers)


def test_latex_and_escaped_lt_survive_parsing() -> None:
    page = parse_page(read("api_new_2026-05_idlist-old-style-id_affiliations_journal-ref.xml"))
    assert "<" in page.papers[0].abstract  # &lt; decoded, not sanitised away
    legacy = parse_page(read("api_legacy_2017-08_cat-OR-query_10-entries.xml"))
    assert any("$" in p.abstract for p in legacy.papers)


def test_blank_legacy_entries_are_skipped_but_counted() -> None:
    page = parse_page(read("api_legacy_2025-08_idlist-missing-ids_blank-entries.xml"))
    assert page.entry_count == 4 and [p.id for p in page.papers] == ["2201.13452"]


def test_utf8_authors() -> None:
    (p,) = parse_page(read("api_new_2026-04_idlist-one-missing-one-found_utf8-authors.xml")).papers
    assert "Dirk Wübben" in p.authors and len(p.authors) == 34


def test_error_feed_is_an_error_never_a_paper() -> None:
    with pytest.raises(ArxivQueryError, match="incorrect id format for abc"):
        parse_page(read("api_new_2026-04_error_http-400_incorrect-id-format.xml"))


def test_empty_result_is_a_page_with_no_papers() -> None:
    page = parse_page(read("api_new_2026-04_idlist-nonexistent_totalresults-0.xml"))
    assert (page.total_results, page.entry_count, page.papers) == (0, 0, ())


@pytest.mark.parametrize(
    "data, why",
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (read("api_new_2026-04_all-testing_start-0_max-10.xml")[:5000], "not well-formed"),
        (b"<html><body>Service unavailable</body></html>", "totalResults"),
    ],
)
def test_malformed_pages_are_retryable_errors(data: bytes, why: str) -> None:
    with pytest.raises(MalformedPage, match=why):
        parse_page(data)
