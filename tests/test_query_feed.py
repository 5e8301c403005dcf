"""Query building and Atom parsing: pure functions, recorded arXiv responses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest

from digest.errors import ArxivQueryError
from digest.feed import MalformedPage, parse_page
from digest.models import Subscriber, split_arxiv_id
from digest.query import (
    MAX_WINDOW_DAYS,
    Terms,
    build_queries,
    collect_terms,
    page_params,
    url_length,
    window,
)

FIX = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
API = "https://export.arxiv.org/api/query"


def read(name: str) -> bytes:
    return (FIX / name).read_bytes()


# -- query ----------------------------------------------------------------------


def test_union_of_keywords_is_deduplicated_across_subscribers() -> None:
    subs = [
        Subscriber("a@x.org", ("Graph", "compilers")),
        Subscriber("b@x.org", ("graphs", "LLM"), authors=("Jane Doe",)),
    ]
    terms = collect_terms(subs)
    assert terms.keywords == ("Graph", "compilers", "LLM")
    assert terms.authors == ("Jane Doe",)


def test_one_query_for_many_keywords_with_phrases_and_date_window() -> None:
    start, end = NOW - timedelta(days=7), NOW
    (q,) = build_queries(
        Terms(("reinforcement learning", "compiler"), ("Jane Doe",), ("cs",)),
        start,
        end,
        api_url=API,
        page_size=200,
    )
    assert q == (
        '(ti:"reinforcement learning" OR abs:"reinforcement learning" OR '
        'ti:"compiler" OR abs:"compiler" OR au:"Jane Doe") AND (cat:cs.*) '
        "AND submittedDate:[202611230700 TO 202611300700]"
    )


def test_many_keywords_split_into_as_few_queries_as_url_length_allows() -> None:
    keywords = tuple(f"keyword number {i}" for i in range(300))
    queries = build_queries(
        Terms(keywords, ()), NOW - timedelta(days=7), NOW, api_url=API, page_size=200
    )
    assert 1 < len(queries) < 30
    for q in queries:
        assert url_length(API, q, 200) <= 4000
    joined = " ".join(queries)
    assert all(f'ti:"{k}"' in joined for k in keywords)
    # greedy packing: no two neighbouring queries could have been one
    assert len(queries) <= len(" ".join(queries)) // 3000 + 1


def test_page_params_sort_newest_submissions_first() -> None:
    p = page_params("q", 200, 100)
    assert p == {
        "search_query": "q",
        "start": "200",
        "max_results": "100",
        "sortBy": "submittedDate",
        "sortOrder": "descending",
    }
    assert "search_query=q" in urlencode(p)


def test_window_is_a_week_and_reaches_back_after_downtime() -> None:
    assert window(NOW, None, 2) == (NOW - timedelta(days=7), NOW)
    assert window(NOW, NOW - timedelta(days=10), 2)[0] == NOW - timedelta(days=17)
    assert window(NOW, NOW - timedelta(days=400), 2)[0] == NOW - timedelta(days=MAX_WINDOW_DAYS)
    assert window(NOW, None, 14)[0] == NOW - timedelta(days=15)


# -- ids -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("http://arxiv.org/abs/2202.12139v3", ("2202.12139", 3)),
        ("https://arxiv.org/abs/astro-ph/9904306v1", ("astro-ph/9904306", 1)),
        ("oai:arXiv.org:2401.00001v12", ("2401.00001", 12)),
        ("1201.4869", ("1201.4869", 1)),
    ],
)
def test_versionless_ids(raw: str, expected: tuple[str, int]) -> None:
    assert split_arxiv_id(raw) == expected


# -- feed -------------------------------------------------------------------------


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
