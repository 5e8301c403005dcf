"""Query building: pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from digest.arxiv.query import (
    MAX_URL_LENGTH,
    MAX_WINDOW_DAYS,
    Terms,
    build_queries,
    category_query,
    last_announced,
    page_params,
    unfit_terms,
    url_length,
    window,
)
from digest.models import ArxivSettings, Subscriber

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
API = "https://export.arxiv.org/api/query"


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


# one reader's keyword of about 5,600 characters: twice that in one clause
LONG = " ".join(f"word{i}" for i in range(800))


def test_a_term_no_url_can_carry_is_left_out_and_the_others_still_fit() -> None:
    terms = Terms(("graph", LONG, "compiler"), ("Jane Doe", LONG), ("cs",))
    queries = build_queries(terms, NOW - timedelta(days=7), NOW, api_url=API, page_size=200)
    assert queries and all(url_length(API, q, 200) <= MAX_URL_LENGTH for q in queries)
    joined = " ".join(queries)
    assert all(t in joined for t in ('ti:"graph"', 'abs:"compiler"', 'au:"Jane Doe"'))
    assert "word1 " not in joined


def test_when_every_term_is_too_long_there_is_no_query() -> None:
    terms = Terms((LONG,), ())
    assert build_queries(terms, NOW, NOW, api_url=API, page_size=200) == ()


def test_terms_no_url_can_carry_are_named_with_their_reader_and_setting() -> None:
    subs = (
        Subscriber("a@example.org", ("graph", LONG)),
        Subscriber("b@example.org", ("graph",), authors=("Jane Doe", LONG)),
        Subscriber("c@example.org", ("compiler",)),
    )
    unfit = unfit_terms(subs, ArxivSettings(api_url=API, page_size=200))
    assert [(u.reader, u.setting, u.phrase) for u in unfit] == [
        ("a@example.org", "keywords", LONG),
        ("b@example.org", "authors", LONG),
    ]
    text = str(unfit[0])
    assert text.startswith(
        "a@example.org: keywords: 'word0 word1 word2 word3 word4 word5 word...' is too long"
    )
    assert f"requests are kept under {MAX_URL_LENGTH:,}" in text and len(text) < 300


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


ET = ZoneInfo("America/New_York")


def et(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=ET)


@pytest.mark.parametrize(
    ("now", "opened", "closed"),
    [
        # Mon 07:00 UTC: Sunday's announcement, Thursday 14:00 to Friday 14:00
        (datetime(2026, 11, 23, 7, tzinfo=UTC), et(19, 14), et(20, 14)),
        # Tue 07:00 UTC: Monday's, Friday 14:00 over the weekend to Monday 14:00
        (datetime(2026, 11, 24, 7, tzinfo=UTC), et(20, 14), et(23, 14)),
        # Wed 07:00 UTC: Tuesday's, a day of submissions
        (datetime(2026, 11, 25, 7, tzinfo=UTC), et(23, 14), et(24, 14)),
        # Fri 07:00 UTC and all of Saturday: Thursday's is the latest
        (datetime(2026, 11, 27, 7, tzinfo=UTC), et(25, 14), et(26, 14)),
        (et(28, 23), et(25, 14), et(26, 14)),
        # at 20:00 Eastern the day's announcement is out; a minute before, not yet
        (et(24, 20), et(23, 14), et(24, 14)),
        (et(24, 19).replace(minute=59), et(20, 14), et(23, 14)),
    ],
)
def test_the_latest_announcement_and_the_submissions_it_carried(
    now: datetime, opened: datetime, closed: datetime
) -> None:
    assert last_announced(now) == (opened, closed)


def test_announcements_keep_eastern_time_across_daylight_saving() -> None:
    # 2026-11-01: clocks go back in New York; Monday 2 November 07:00 UTC is 02:00 EST
    opened, closed = last_announced(datetime(2026, 11, 2, 7, tzinfo=UTC))
    assert opened == datetime(2026, 10, 29, 18, tzinfo=UTC)  # Thursday 14:00 EDT
    assert closed == datetime(2026, 10, 30, 18, tzinfo=UTC)  # Friday 14:00 EDT


def test_one_category_query_for_every_liked_category_over_a_window() -> None:
    start = datetime(2026, 11, 27, 19, tzinfo=UTC)
    q = category_query(("cs.CL", "hep-th", "cs.CL"), start, NOW, api_url=API, page_size=1000)
    assert q == "(cat:cs.CL OR cat:hep-th) AND submittedDate:[202611271900 TO 202611300700]"
    within = category_query(("cs.CL",), start, NOW, within=("cs",), api_url=API, page_size=1000)
    assert within.startswith("(cat:cs.CL) AND (cat:cs.*) AND submittedDate:")


def test_too_many_categories_for_one_url_ask_their_archives_whole() -> None:
    many = (*(f"cs.X{i:03d}" for i in range(400)), "hep-th", "astro-ph.GA")
    q = category_query(many, NOW - timedelta(days=1), NOW, api_url=API, page_size=1000)
    assert q.startswith("(cat:cs.* OR cat:hep-th OR cat:astro-ph.*) AND submittedDate:")
    assert url_length(API, q, 1000) <= MAX_URL_LENGTH
