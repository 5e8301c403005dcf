"""Parsing arXiv API Atom bytes into ``Paper`` values (feedparser; pure).

feedparser is given bytes, never a URL, and works by element name and
namespace, so both the legacy layout and the November 2025 one parse
(tests/fixtures/ holds both). HTML sanitising is off: it would turn ``$s<1$`` into
``<s><1``; everything is escaped later, when it is rendered.
"""

from __future__ import annotations

import calendar
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser

from digest.errors import ArxivQueryError
from digest.models import Paper, split_arxiv_id

log = logging.getLogger(__name__)

_WS = re.compile(r"\s+")
# Control characters other than whitespace never belong in a title or an
# abstract, and would make header folding or HTML misbehave.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class MalformedPage(ValueError):
    """The bytes are not a complete arXiv result page (empty, truncated, not Atom)."""


@dataclass(frozen=True, slots=True)
class Page:
    total_results: int
    start_index: int
    entry_count: int  # <entry> elements, blank ones included
    papers: tuple[Paper, ...]


def clean(text: str | None) -> str:
    """Collapse whitespace (legacy abstracts are hard-wrapped) and drop control characters."""
    if not text:
        return ""
    return _WS.sub(" ", _CONTROL.sub("", text)).strip()


def _when(parsed: time.struct_time | None) -> datetime | None:
    if parsed is None:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)


def _is_error(entry: Any) -> bool:
    return "/api/errors" in str(entry.get("id", ""))


def parse_page(data: bytes) -> Page:
    """Parse one API response page.

    Raises ``ArxivQueryError`` for an arXiv error feed (the query is wrong;
    retrying will not help) and ``MalformedPage`` for anything that is not a
    whole result page (worth a retry).
    """
    if not data.strip():
        raise MalformedPage("empty response body")
    d = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    if d.get("bozo"):
        raise MalformedPage(f"not well-formed XML ({d.get('bozo_exception')})")
    for entry in d.entries:
        if _is_error(entry):
            raise ArxivQueryError(f"arXiv rejected the query: {clean(entry.get('summary'))}")
    total = d.feed.get("opensearch_totalresults")
    if total is None:
        raise MalformedPage("no opensearch:totalResults: not an arXiv API answer")
    try:
        total_results = int(total)
        start_index = int(d.feed.get("opensearch_startindex", 0))
    except ValueError as exc:
        raise MalformedPage(f"bad opensearch counts: {exc}") from exc
    papers = []
    refused: list[str] = []
    for entry in d.entries:
        raw_id = str(entry.get("id") or "")
        if raw_id and split_arxiv_id(raw_id) is None:
            refused.append(raw_id)
            continue
        paper = parse_entry(entry)
        if paper is None:
            # the legacy backend returned blank <entry>s for missing ids
            log.debug("skipping an arXiv entry without id or title")
            continue
        papers.append(paper)
    if refused:
        # such an id would be written into the page and links, and a stored
        # "2401.00001 2401.00002" would read back as two papers delivered
        log.warning(
            "dropped %d arXiv entries whose id is not an arXiv identifier: %s",
            len(refused),
            ", ".join(_shown(r) for r in refused[:_NAMED]),
        )
    return Page(total_results, start_index, len(d.entries), tuple(papers))


_NAMED = 5  # ids named in the warning; a whole page of them is counted, not listed


def _shown(raw: str, width: int = 60) -> str:
    """An untrusted id for a log line: shortened, quoted, control characters escaped."""
    return repr(raw if len(raw) <= width else raw[:width] + "...")


def parse_entry(entry: Any) -> Paper | None:
    """One feedparser entry as a ``Paper``; None for a blank entry or one with no arXiv id."""
    raw_id = entry.get("id")
    title = entry.get("title")
    # A title may literally be "0" (arxiv.py #71): test for None, not falsiness.
    if not raw_id or title is None or "arxiv.org/abs/" not in raw_id:
        return None
    split = split_arxiv_id(raw_id)
    if split is None:
        return None
    ident, version = split
    published = _when(entry.get("published_parsed"))
    updated = _when(entry.get("updated_parsed")) or published
    if published is None or updated is None:
        return None
    categories = tuple(t["term"] for t in entry.get("tags", []) if t.get("term"))
    primary = (entry.get("arxiv_primary_category") or {}).get("term") or (
        categories[0] if categories else ""
    )
    if primary and primary not in categories:
        categories = (primary, *categories)
    authors = tuple(clean(a.get("name")) for a in entry.get("authors", []) if a.get("name"))
    return Paper(
        id=ident,
        version=version,
        title=clean(title),
        abstract=clean(entry.get("summary")),
        authors=authors,
        categories=categories,
        primary_category=primary,
        published=published,
        updated=updated,
        comment=clean(entry.get("arxiv_comment")) or None,
        journal_ref=clean(entry.get("arxiv_journal_ref")) or None,
        doi=clean(entry.get("arxiv_doi")) or None,
    )
