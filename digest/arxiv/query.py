"""Building arXiv API query strings: pure functions, no I/O.

One batched query for the union of everybody's keywords (arXiv's terms ask
clients to batch), split only where a URL would grow too
long, never one query per keyword. Each keyword is a quoted phrase on title
and abstract; unquoted multi-word terms have been seen to hang the API
(other clients report it). The date window is on ``submittedDate``, the v1 submission time, and is
several days wide because papers are announced days after submission.

A keyword or author too long for any URL on its own is left out of the
fetch, and ``unfit_terms`` names it with whose it is: asked anyway, the
server refuses the URL (414) and the fetch fails for everybody.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from digest.models import ArxivSettings, Subscriber

# Conservative: well below the 8 KiB request-line limit of common servers
# (longer ones are answered 414 URI Too Long).
MAX_URL_LENGTH = 4000
# Papers wait in moderation for 1-4+ days before announcement, and the
# API has lagged announcements by up to a day: look back a week.
WINDOW_DAYS = 7
# After a long outage, look back to the last good fetch, but no further.
MAX_WINDOW_DAYS = 60


@dataclass(frozen=True, slots=True)
class Terms:
    """What the fetch must cover: phrases on title/abstract, and author names.

    ``plan.fetch_terms`` builds it from the subscribers (phrases that match
    alike asked once); this module only turns it into query syntax.
    """

    keywords: tuple[str, ...]
    authors: tuple[str, ...]
    categories: tuple[str, ...] = ()  # the global restriction, if any


def _fmt(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%d%H%M")


def window(
    now: datetime, last_fetch: datetime | None, lookback_days: int
) -> tuple[datetime, datetime]:
    """The ``submittedDate`` range to ask for.

    At least a week (moderation delays), at least ``lookback_days`` (new
    subscribers start there), and back to a week before the last good fetch
    after downtime, capped at ``MAX_WINDOW_DAYS``.
    """
    days = max(WINDOW_DAYS, lookback_days + 1)
    start = now - timedelta(days=days)
    if last_fetch is not None:
        start = min(start, last_fetch - timedelta(days=WINDOW_DAYS))
    start = max(start, now - timedelta(days=MAX_WINDOW_DAYS))
    return start, now


# arXiv's schedule (its "Availability of submissions" page), in US Eastern
# time: submissions received by 14:00 on a weekday are announced at 20:00,
# Monday to Thursday the same day, Friday's on Sunday; Monday's announcement
# carries the weekend's. Holidays are not known here.
ANNOUNCE_TZ = ZoneInfo("America/New_York")
_CUTOFF = time(14)
_ANNOUNCED = time(20)


def _eastern(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=ANNOUNCE_TZ).astimezone(UTC)


def _previous_cutoff_day(day: date) -> date:
    """The weekday before ``day`` (Friday before a Monday)."""
    day -= timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def last_announced(now: datetime) -> tuple[datetime, datetime]:
    """The submissions arXiv's latest announcement at or before ``now`` carried: [opened, closed).

    Both ends are the 14:00 Eastern deadlines of consecutive weekdays, in
    UTC: on a Tuesday morning, Monday evening's announcement, submitted from
    Friday 14:00 to Monday 14:00. A paper held in moderation past its
    deadline is announced later with its earlier submission time.
    """
    day = now.astimezone(ANNOUNCE_TZ).date()
    # Sunday to Thursday at 20:00: step back to the latest one at or before now
    while day.weekday() in (4, 5) or _eastern(day, _ANNOUNCED) > now:
        day -= timedelta(days=1)
    closing = day - timedelta(days=2) if day.weekday() == 6 else day  # Sunday's: Friday
    return _eastern(_previous_cutoff_day(closing), _CUTOFF), _eastern(closing, _CUTOFF)


def _keyword_clause(k: str) -> str:
    # config rejects quotes, parentheses and operators in keywords
    phrase = " ".join(k.split())
    return f'ti:"{phrase}" OR abs:"{phrase}"'


def _author_clause(a: str) -> str:
    return f'au:"{" ".join(a.split())}"'


def _category_clause(c: str) -> str:
    # "cs" means any cs.* category; arXiv accepts a wildcard after the dot.
    return f"cat:{c}" if "." in c else f"cat:{c}.*"


def category_query(
    categories: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    within: Sequence[str] = (),
    api_url: str,
    page_size: int,
    max_url_length: int = MAX_URL_LENGTH,
) -> str:
    """One ``search_query`` for every paper of ``categories`` submitted in [start, end].

    ``categories`` are arXiv categories as papers carry them (``cs.CL``,
    ``hep-th``), asked as they are; ``within`` is the global restriction.
    Always one query, so its pages are the only requests: when naming every
    category would make the URL too long, each archive is asked whole
    (``cs.*``).
    """
    names = list(dict.fromkeys(categories))
    query = _assemble([f"cat:{c}" for c in names], within, start, end)
    if url_length(api_url, query, page_size) <= max_url_length:
        return query
    archives = dict.fromkeys(c.split(".")[0] + (".*" if "." in c else "") for c in names)
    return _assemble([f"cat:{a}" for a in archives], within, start, end)


def _assemble(
    clauses: Sequence[str], categories: Sequence[str], start: datetime, end: datetime
) -> str:
    q = "(" + " OR ".join(clauses) + ")"
    if categories:
        q += " AND (" + " OR ".join(_category_clause(c) for c in categories) + ")"
    q += f" AND submittedDate:[{_fmt(start)} TO {_fmt(end)}]"
    return q


def page_params(search_query: str, start: int, page_size: int) -> dict[str, str]:
    """The query-string parameters of one page, newest submissions first."""
    return {
        "search_query": search_query,
        "start": str(start),
        "max_results": str(page_size),
        "sortBy": "submittedDate",
        "sortOrder": "descending",
    }


def id_page_params(id_list: str, start: int, page_size: int) -> dict[str, str]:
    """Parameters for looking papers up by id (arXiv answers with their newest versions)."""
    return {"id_list": id_list, "start": str(start), "max_results": str(page_size)}


def id_batches(
    ids: Iterable[str], *, api_url: str, max_url_length: int = MAX_URL_LENGTH
) -> tuple[str, ...]:
    """Comma-joined versionless ids, in as few batches as the URL length allows."""
    batches: list[str] = []
    batch: list[str] = []
    budget = max_url_length - len(api_url) - 60  # start, max_results and separators
    for i in sorted(set(ids)):
        if batch and len(urlencode({"id_list": ",".join([*batch, i])})) > budget:
            batches.append(",".join(batch))
            batch = []
        batch.append(i)
    if batch:
        batches.append(",".join(batch))
    return tuple(batches)


def url_length(api_url: str, search_query: str, page_size: int) -> int:
    # the largest start a page can have: arXiv allows start+max_results <= 30000
    return len(api_url) + 1 + len(urlencode(page_params(search_query, 29999, page_size)))


def build_queries(
    terms: Terms,
    start: datetime,
    end: datetime,
    *,
    api_url: str,
    page_size: int,
    max_url_length: int = MAX_URL_LENGTH,
) -> tuple[str, ...]:
    """As few ``search_query`` strings as the URL length allows, covering every term that fits.

    Greedy packing in first-seen order. A clause too long for any URL on its
    own is left out (``unfit_terms`` says whose it is): asked alone, it would
    be refused, and the fetch would fail for everybody.
    """
    clauses = [_keyword_clause(k) for k in terms.keywords]
    clauses += [_author_clause(a) for a in terms.authors]
    cats = terms.categories
    fitting = [c for c in clauses if _alone_length(c, cats, api_url, page_size) <= max_url_length]
    queries: list[str] = []
    batch: list[str] = []
    for clause in fitting:
        candidate = [*batch, clause]
        q = _assemble(candidate, terms.categories, start, end)
        if batch and url_length(api_url, q, page_size) > max_url_length:
            queries.append(_assemble(batch, terms.categories, start, end))
            batch = [clause]
        else:
            batch = candidate
    if batch:
        queries.append(_assemble(batch, terms.categories, start, end))
    return tuple(queries)


# the window's dates have a fixed width: any will do to measure a URL
_ANY_TIME = datetime(2000, 1, 1, tzinfo=UTC)


def _alone_length(clause: str, categories: Sequence[str], api_url: str, page_size: int) -> int:
    """The length of the longest URL asking for ``clause`` alone."""
    return url_length(api_url, _assemble([clause], categories, _ANY_TIME, _ANY_TIME), page_size)


@dataclass(frozen=True, slots=True)
class Unfit:
    """A reader's keyword or author that no arXiv request URL can carry."""

    reader: str
    setting: Literal["keywords", "authors"]
    phrase: str
    url_length: int  # of the URL asking for it alone
    limit: int

    def __str__(self) -> str:
        short = self.phrase if len(self.phrase) <= 40 else self.phrase[:40] + "..."
        return (
            f"{self.reader}: {self.setting}: {short!r} is too long for an arXiv request "
            f"(alone it makes a URL of {self.url_length:,} characters; requests are kept "
            f"under {self.limit:,})"
        )


def unfit_terms(
    subscribers: Iterable[Subscriber],
    settings: ArxivSettings,
    *,
    max_url_length: int = MAX_URL_LENGTH,
) -> tuple[Unfit, ...]:
    """Every keyword and author that ``build_queries`` leaves out, with whose it is."""
    out: list[Unfit] = []
    cats, api_url, page_size = settings.categories, settings.api_url, settings.page_size
    lengths: dict[str, int] = {}  # readers share their terms: measure each clause once
    for sub in subscribers:
        asked: list[tuple[Literal["keywords", "authors"], str, str]] = [
            *(("keywords", k, _keyword_clause(k)) for k in sub.keywords),
            *(("authors", a, _author_clause(a)) for a in sub.authors),
        ]
        for setting, phrase, clause in asked:
            if clause not in lengths:
                lengths[clause] = _alone_length(clause, cats, api_url, page_size)
            if lengths[clause] > max_url_length:
                out.append(Unfit(sub.email, setting, phrase, lengths[clause], max_url_length))
    return tuple(out)
