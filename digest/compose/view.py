"""What the templates see: every paper field made readable, highlighted, plain data.

Pure, and cached across the readers of a cycle where the work is the same
for all (a paper's converted text, an abstract's highlighting). Highlighting
splits text into segments the template escapes one by one, so it cannot
open a hole; nothing from a feed is ever marked safe.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from digest.compose.selection import AUTHORS_SECTION, HTML_LIMIT, TOP_SECTION, home
from digest.latex import name as latex_name
from digest.latex import text as latex_text
from digest.matching import highlight_spans
from digest.models import CATEGORY_RE, Digest, Match, Paper, Ranked, format_sender
from digest.replies import ReaderLinks

ABSTRACT_LIMIT = 1200  # characters shown before "read more"
EXCERPT_LIMIT = 300  # characters of a sentence shown from past the cut, for its match
AUTHORS_SHOWN = 6  # longer lists: first five, an ellipsis, the last
ROW_AUTHORS = 2  # a compact row names the first two, then "et al."
TOP_OF_THE_WEEK = "Top of the week"  # a weekly reader's top of the mail
ACKNOWLEDGEMENT = "Thank you to arXiv for use of its open access interoperability."


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    mark: bool


# Per-cycle caches, shared by every reader a process composes for: a day's
# papers times the keyword sets that match them fit, and memory stays flat
# (about 2.5 KB an entry at most). Each caches a pure function of its key, so
# a hit returns exactly what the call would; values are immutable (strings,
# tuples, frozen dataclasses), so no reader's render can change another's.
CYCLE_CACHE = 4096


def highlight(text: str, phrases: Sequence[str]) -> tuple[Segment, ...]:
    """Split ``text`` into plain and highlighted segments (to be escaped by the template)."""
    return _highlight(text, tuple(phrases))


@lru_cache(maxsize=CYCLE_CACHE)
def _highlight(text: str, phrases: tuple[str, ...]) -> tuple[Segment, ...]:
    spans = [span for phrase in phrases for span in highlight_spans(text, phrase)]
    if not spans:
        return (Segment(text, False),) if text else ()
    spans.sort()
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out: list[Segment] = []
    pos = 0
    for a, b in merged:
        if a > pos:
            out.append(Segment(text[pos:a], False))
        out.append(Segment(text[a:b], True))
        pos = b
    if pos < len(text):
        out.append(Segment(text[pos:], False))
    return tuple(out)


def shorten_authors(authors: Sequence[str]) -> str:
    if len(authors) <= AUTHORS_SHOWN:
        return ", ".join(authors)
    return f"{', '.join(authors[: AUTHORS_SHOWN - 1])}, … {authors[-1]} ({len(authors)} authors)"


def trim(text: str, limit: int = ABSTRACT_LIMIT) -> tuple[str, str]:
    """Cut at a word boundary before ``limit``: the part shown (ending "…" if cut), the rest."""
    if len(text) <= limit:
        return text, ""
    cut = text.rfind(" ", 0, limit)
    cut = cut if cut > limit // 2 else limit
    return text[:cut].rstrip(" ,;:") + " …", text[cut:].strip()


@dataclass(frozen=True, slots=True)
class _PaperText:
    """What every reader is shown of a paper, whatever matched it: LaTeX converted once."""

    title: str
    abstract: str
    abstract_rest: str  # what the cut left out of the abstract ("" when nothing was cut)
    authors: str  # shortened, for a full entry
    row_authors: str  # the first ones, for a compact row
    comment: str | None
    other_categories: tuple[str, ...]


@lru_cache(maxsize=CYCLE_CACHE)
def _paper_text(p: Paper) -> _PaperText:
    # keyed by the whole (frozen) paper: a new version or a corrected field is a new key
    abstract, rest = trim(latex_text(p.abstract))
    names = [latex_name(a) for a in p.authors]
    return _PaperText(
        title=latex_text(p.title),
        abstract=abstract,
        abstract_rest=rest,
        authors=shorten_authors(names),
        row_authors=first_authors(names),
        comment=latex_text(p.comment) if p.comment else None,
        other_categories=tuple(_other_categories(p)),
    )


_SENTENCE_END = re.compile(r"[.!?](?=\s)")


def excerpt(text: str, span: tuple[int, int], limit: int = EXCERPT_LIMIT) -> str:
    """The sentence of ``text`` around ``span``, at most about ``limit`` characters.

    A longer sentence is cut at word boundaries around the match, "…" where cut.
    """
    a, b = span
    starts = [m.end() for m in _SENTENCE_END.finditer(text, 0, a)]
    start = starts[-1] if starts else 0
    end_at = _SENTENCE_END.search(text, b)
    end = end_at.end() if end_at else len(text)
    head, tail = "", " …" if end < len(text) else ""
    if end - start > limit:
        room = max(limit - (b - a), 0)
        lo = max(start, a - room // 3)
        hi = min(end, b + room - (a - lo))
        if lo > start:  # begin at a word
            space = text.find(" ", lo, a)
            lo, head = (space + 1 if space >= 0 else lo), "… "
        if hi < end:  # stop at a word
            space = text.rfind(" ", b, hi)
            hi, tail = (space if space > b else hi), " …"
        start, end = lo, hi
    return head + text[start:end].strip() + tail


@lru_cache(maxsize=CYCLE_CACHE)
def _abstract(p: Paper, phrases: tuple[str, ...]) -> str:
    """The abstract as shown, with the sentence of each match the cut hid.

    A keyword that matched only past the cut (not in the title, not in the
    part shown) would leave the reader asking why the paper is here: its
    first sentence there follows the cut, "… sentence with the match …".
    """
    shown = _paper_text(p)
    rest = shown.abstract_rest
    if not rest:
        return shown.abstract
    sentences: dict[int, str] = {}
    for phrase in phrases:
        if highlight_spans(shown.title, phrase) or highlight_spans(shown.abstract, phrase):
            continue
        spans = highlight_spans(rest, phrase)
        if spans:
            sentences.setdefault(spans[0][0], excerpt(rest, spans[0]))
    added = dict.fromkeys(sentences[at] for at in sorted(sentences))  # each once, in text order
    return " ".join([shown.abstract, *added])


def _paper_view(
    m: Match, all_keywords: Sequence[str], reason: str | None = None, top: bool = False
) -> dict[str, Any]:
    """A full entry; ``top``: in the top of the mail, where no heading says what it matched."""
    p: Paper = m.paper
    shown = _paper_text(p)
    title, abstract = shown.title, _abstract(p, m.keywords)
    return {
        "id": p.id,
        "version": p.version,
        "title": title,
        "title_segments": highlight(title, m.keywords),
        "abstract": abstract,
        "abstract_segments": highlight(abstract, m.keywords),
        "abstract_trimmed": bool(shown.abstract_rest),
        "authors": shown.authors,
        "followed_authors": list(m.authors),
        "primary_category": p.primary_category,
        "other_categories": list(shown.other_categories),
        "submitted": p.published.strftime("%Y-%m-%d"),
        "updated": p.updated.strftime("%Y-%m-%d"),
        "comment": shown.comment,
        "journal_ref": p.journal_ref,
        "doi": p.doi,
        "matched": list(m.keywords),
        "also_matched": [k for k in m.keywords[0 if top else 1 :] if k in all_keywords],
        "matched_label": "matches" if top else "also matches",
        "reason": reason,  # what lifted it (digest.ranking): "like: <title>", "your field: …"
        "abs_url": p.abs_url,
        "pdf_url": p.pdf_url,
        "html_url": p.html_url,
    }


def _other_categories(p: Paper) -> list[str]:
    return [c for c in p.categories if c != p.primary_category and CATEGORY_RE.fullmatch(c)]


def first_authors(authors: Sequence[str]) -> str:
    """A compact row's authors: the first ones, "et al." for the rest."""
    if len(authors) <= ROW_AUTHORS:
        return ", ".join(authors)
    return ", ".join(authors[:ROW_AUTHORS]) + " et al."


def _row_view(r: Ranked) -> dict[str, Any]:
    """A compact row: linked title, first authors, categories, what matched (and ``pdf_url``)."""
    m, p = r.match, r.match.paper
    shown = _paper_text(p)
    return {
        "id": p.id,
        "title": shown.title,
        "authors": shown.row_authors,
        "categories": [p.primary_category, *shown.other_categories],
        "matched": [*m.keywords, *(f"by {a}" for a in m.authors)],
        "reason": r.reason,
        "abs_url": p.abs_url,
        "pdf_url": p.pdf_url,
    }


def _feedback(links: ReaderLinks | None, paper_id: str) -> dict[str, str | None]:
    """A full entry's "more like this" / "less like this" links (None without links).

    Compact rows get none: about 460 bytes of HTML a paper, they would undo
    what rows are for (benchmarks/reply_links_size.py).
    """
    pl = links.papers.get(paper_id) if links is not None else None
    return {"more_url": pl.more if pl else None, "less_url": pl.less if pl else None}


def _footer_links(links: ReaderLinks | None) -> dict[str, str] | None:
    if links is None:
        return None
    return {
        "unsubscribe": links.unsubscribe,
        "pause": links.pause,
        "resume": links.resume,
        "daily": links.daily,
        "weekly": links.weekly,
    }


def render_context(digest: Digest, sender: str, links: ReaderLinks | None = None) -> dict[str, Any]:
    """Everything the templates may use; all values plain data.

    ``links``: the reader's tokened reply links (footer, and under each paper
    shown in full); without them the footer says "write to the sender".
    """
    sub = digest.subscriber
    sections = [
        {
            "keyword": TOP_OF_THE_WEEK
            if s.keyword == TOP_SECTION and sub.frequency == "weekly"
            else s.keyword,
            "is_top": s.keyword == TOP_SECTION,
            "is_authors": s.keyword == AUTHORS_SECTION,
            "anchor": f"k{i}",
            "count": len(s.shown),
            "papers": [
                {
                    **_paper_view(r.match, sub.keywords, r.reason, s.keyword == TOP_SECTION),
                    **_feedback(links, r.match.paper.id),
                }
                for r in s.full
            ],
            "rows": [_row_view(r) for r in s.compact],
            "left_out": len(s.left_out),
        }
        for i, s in enumerate(digest.sections)
    ]
    # what the matches came by, whether or not their papers moved to the top
    homes = {home(r) for s in digest.sections for r in (*s.shown, *s.left_out)}
    sender_addr = format_sender(sender)
    return {
        "subscriber": {
            "email": sub.email,
            "name": sub.name,
            "keywords": list(sub.keywords),
            "authors": list(sub.authors),
            "frequency": sub.frequency,
        },
        "date": digest.created.strftime("%A, %d %B %Y"),
        "iso_date": digest.created.strftime("%Y-%m-%d"),
        "count": digest.count,
        "left_out": digest.left_out,
        "size_limit_kb": HTML_LIMIT // 1000,
        "sections": sections,
        "revisions": [_paper_view(m, sub.keywords) for m in digest.revisions],
        # papers beyond the keywords, each with the liked category it is in
        "beyond": [
            {
                **_paper_view(o.ranked.match, sub.keywords, o.ranked.reason),
                **_feedback(links, o.ranked.match.paper.id),
                "category": o.category,
            }
            for o in digest.beyond
        ],
        "empty_reason": digest.empty_reason,
        "away": len(digest.away),
        "keywords": [s["keyword"] for s in sections],
        "matched_keywords": [k for k in sub.keywords if k in homes],
        "by_authors": AUTHORS_SECTION in homes,
        "unsubscribe_url": links.unsubscribe
        if links is not None
        else f"mailto:{sender_addr.addr_spec}?subject=unsubscribe",
        "links": _footer_links(links),
        "sender_address": sender_addr.addr_spec,
        "acknowledgement": ACKNOWLEDGEMENT,
    }


def forget_cycle() -> None:
    """Empty this module's per-cycle caches (see ``compose.forget_cycle``)."""
    _paper_text.cache_clear()
    _abstract.cache_clear()
    _highlight.cache_clear()
