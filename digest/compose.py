"""From matches to a finished ``EmailMessage``: selection, rendering, headers.

``build_digest`` and ``render_context`` are pure. Rendering uses Jinja2 with
autoescaping on for HTML and ``StrictUndefined`` everywhere; nothing from a
feed is ever marked safe. Highlighting is done by splitting text into
segments the template escapes one by one, so it cannot open a hole. Headers
are built by the ``email`` package (``policy.default`` refuses CR/LF).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import css_inline
import jinja2

from digest import mime
from digest.errors import TemplateError
from digest.latex import name as latex_name
from digest.latex import text as latex_text
from digest.matching import highlight_pattern
from digest.models import (
    CATEGORY_RE,
    Digest,
    Match,
    Paper,
    Section,
    Settings,
    Subscriber,
    format_sender,
    newest_first,
    split_address,
)
from digest.query import search_url

# Gmail clips HTML over ~102 KB, which hides the footer (delivery §3).
HTML_LIMIT = 100_000
ABSTRACT_LIMIT = 1200  # characters shown before "read more"
AUTHORS_SHOWN = 6  # longer lists: first five, an ellipsis, the last
AUTHORS_SECTION = "Authors you follow"
ACKNOWLEDGEMENT = "Thank you to arXiv for use of its open access interoperability."
TEMPLATE_NAMES = ("digest.html", "digest.txt", "subject.txt")


def shipped_templates() -> Path:
    """The templates inside the installed package, or in the source tree."""
    here = Path(__file__).resolve().parent
    installed = here / "templates" / "email"
    return installed if installed.is_dir() else here.parent / "templates" / "email"


# --------------------------------------------------------------------------
# Selection (pure)


def build_digest(
    subscriber: Subscriber,
    matches: Sequence[Match],
    *,
    max_per_keyword: int,
    cycle_id: str,
    created: datetime,
    revisions: Sequence[Match] = (),
    empty_reason: str | None = None,
) -> Digest:
    """Group matches into sections, in the subscriber's keyword order.

    Each paper appears once, under the first of its keywords; author-only
    matches get a section of their own at the end. Beyond
    ``max_per_keyword`` papers a section shows "and N more" (those count as
    delivered: the reader was told where to find them). ``revisions`` are
    papers sent before that have a newer version, newest update first, held to
    the same limit (those left out are not recorded and come in a later digest).
    """
    by_section: dict[str, list[Match]] = {k: [] for k in subscriber.keywords}
    by_section[AUTHORS_SECTION] = []
    for m in matches:
        key = m.keywords[0] if m.keywords else AUTHORS_SECTION
        by_section[key].append(m)
    sections = []
    for key, ms in by_section.items():
        if not ms:
            continue
        ms.sort(key=lambda m: newest_first(m.paper), reverse=True)
        sections.append(
            Section(
                keyword=key,
                matches=tuple(ms[:max_per_keyword]),
                hidden=tuple(ms[max_per_keyword:]),
                search_url=search_url(key) if key != AUTHORS_SECTION else "https://arxiv.org/",
            )
        )
    return Digest(
        subscriber=subscriber,
        sections=tuple(sections),
        cycle_id=cycle_id,
        created=created,
        revisions=tuple(
            sorted(revisions, key=lambda m: (m.paper.updated, m.paper.id), reverse=True)
        )[:max_per_keyword],
        empty_reason=empty_reason,
    )


# --------------------------------------------------------------------------
# Render context (pure)


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    mark: bool


def highlight(text: str, phrases: Sequence[str]) -> tuple[Segment, ...]:
    """Split ``text`` into plain and highlighted segments (to be escaped by the template)."""
    spans: list[tuple[int, int]] = []
    for phrase in phrases:
        pattern = highlight_pattern(phrase)
        if pattern is None:
            continue
        spans.extend(m.span() for m in pattern.finditer(text))
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


def trim(text: str, limit: int = ABSTRACT_LIMIT) -> tuple[str, bool]:
    """Cut at a word boundary before ``limit``; say whether anything was cut."""
    if len(text) <= limit:
        return text, False
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip(" ,;:") + " …", True


def _paper_view(m: Match, all_keywords: Sequence[str]) -> dict[str, Any]:
    p: Paper = m.paper
    title = latex_text(p.title)
    abstract, trimmed = trim(latex_text(p.abstract))
    return {
        "id": p.id,
        "version": p.version,
        "title": title,
        "title_segments": highlight(title, m.keywords),
        "abstract": abstract,
        "abstract_segments": highlight(abstract, m.keywords),
        "abstract_trimmed": trimmed,
        "authors": shorten_authors([latex_name(a) for a in p.authors]),
        "followed_authors": list(m.authors),
        "primary_category": p.primary_category,
        "other_categories": [
            c for c in p.categories if c != p.primary_category and CATEGORY_RE.fullmatch(c)
        ],
        "submitted": p.published.strftime("%Y-%m-%d"),
        "updated": p.updated.strftime("%Y-%m-%d"),
        "comment": latex_text(p.comment) if p.comment else None,
        "journal_ref": p.journal_ref,
        "doi": p.doi,
        "matched": list(m.keywords),
        "also_matched": [k for k in m.keywords[1:] if k in all_keywords],
        "abs_url": p.abs_url,
        "pdf_url": p.pdf_url,
        "html_url": p.html_url,
    }


def render_context(digest: Digest, sender: str) -> dict[str, Any]:
    """Everything the templates may use; all values plain data."""
    sub = digest.subscriber
    sections = [
        {
            "keyword": s.keyword,
            "is_authors": s.keyword == AUTHORS_SECTION,
            "anchor": f"k{i}",
            "count": len(s.matches) + len(s.hidden),
            "papers": [_paper_view(m, sub.keywords) for m in s.matches],
            "more": len(s.hidden),
            "search_url": s.search_url,
        }
        for i, s in enumerate(digest.sections)
    ]
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
        "sections": sections,
        "revisions": [_paper_view(m, sub.keywords) for m in digest.revisions],
        "empty_reason": digest.empty_reason,
        "keywords": [s["keyword"] for s in sections],
        "unsubscribe_url": f"mailto:{sender_addr.addr_spec}?subject=unsubscribe",
        "sender_address": sender_addr.addr_spec,
        "acknowledgement": ACKNOWLEDGEMENT,
    }


# --------------------------------------------------------------------------
# Rendering


@lru_cache(maxsize=8)
def _environment(override: Path | None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if override is not None:
        loaders.append(jinja2.FileSystemLoader(str(override)))
    loaders.append(jinja2.FileSystemLoader(str(shipped_templates())))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env


_INLINER = css_inline.CSSInliner(
    keep_style_tags=False, keep_at_rules=True, load_remote_stylesheets=False
)


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


def _render_one(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateError as exc:
        where = getattr(exc, "filename", None) or name
        line = getattr(exc, "lineno", None)
        raise TemplateError(
            f"template {where}{f', line {line}' if line else ''}: {exc.message or exc}"
        ) from exc


def render_html(
    digest: Digest, settings: Settings, context: Mapping[str, Any] | None = None
) -> str:
    """The HTML part, CSS inlined (``context``: ``render_context``'s, if made already)."""
    env = _environment(settings.templates)
    if context is None:
        context = render_context(digest, settings.smtp.sender)
    return _INLINER.inline(_render_one(env, "digest.html", context))


def render(
    digest: Digest,
    settings: Settings,
    html: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> Rendered:
    """Render subject, text and HTML; raises ``TemplateError`` naming the template."""
    env = _environment(settings.templates)
    if context is None:
        context = render_context(digest, settings.smtp.sender)
    subject = " ".join(_render_one(env, "subject.txt", context).split())
    text = _render_one(env, "digest.txt", context)
    if html is None:
        html = _INLINER.inline(_render_one(env, "digest.html", context))
    return Rendered(subject=subject, text=text, html=html)


# --------------------------------------------------------------------------
# The message


def message_id(digest: Digest, domain: str) -> str:
    """Stable for the same subscriber and cycle, so a resend is recognisable as one."""
    token = hashlib.sha256(f"{digest.cycle_id}\0{digest.subscriber.email}".encode()).hexdigest()
    return f"<digest.{digest.cycle_id}.{token[:20]}@{domain}>"


def build_message(
    digest: Digest,
    rendered: Rendered,
    settings: Settings,
    extra_headers: Mapping[str, str] | None = None,
) -> bytes:
    """The message as sent, serialised once (every send attempt reuses these bytes)."""
    sender = format_sender(settings.smtp.sender)
    sub = digest.subscriber
    local, domain = split_address(sub.email)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = Address(display_name=sub.name or "", username=local, domain=domain)
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(digest.created)
    msg["Message-ID"] = ident = message_id(digest, sender.domain)
    # RFC 2919: the list identifier is a domain-like label under the sender's domain.
    msg["List-Id"] = f"{sender.display_name or 'Daily Papers'} <daily-papers.{sender.domain}>"
    msg["List-Unsubscribe"] = f"<mailto:{sender.addr_spec}?subject=unsubscribe>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    msg["Precedence"] = "bulk"
    for k, v in (extra_headers or {}).items():
        msg[k] = v
    # quoted-printable (inlined HTML has long lines, base64 would add a third),
    # base64 where that is smaller; the boundary is derived from the Message-ID
    boundary = "=_" + hashlib.sha256(ident.encode()).hexdigest()[:24]
    return mime.alternative(msg, (("plain", rendered.text), ("html", rendered.html)), boundary)


def compose(
    subscriber: Subscriber,
    matches: Sequence[Match],
    settings: Settings,
    *,
    cycle_id: str,
    created: datetime,
    revisions: Sequence[Match] = (),
    empty_reason: str | None = None,
) -> tuple[Digest, Rendered]:
    """Select and render, lowering the per-keyword limit until the HTML fits ``HTML_LIMIT``.

    Only the HTML is re-rendered while searching; the next limit is
    estimated from the size per shown paper, so one or two renders suffice.
    The revision section is held to the same limit; revisions left out are
    not recorded and come in a later digest.
    """
    limit = subscriber.max_papers_per_keyword or settings.max_papers_per_keyword
    while True:
        digest = build_digest(
            subscriber,
            matches,
            max_per_keyword=limit,
            cycle_id=cycle_id,
            created=created,
            revisions=revisions,
            empty_reason=empty_reason,
        )
        # the context is built once per rendering, for the HTML and the rest
        context = render_context(digest, settings.smtp.sender)
        html = render_html(digest, settings, context)
        size = len(html.encode())
        if size <= HTML_LIMIT or limit == 1:
            return digest, render(digest, settings, html, context)
        shown_max = max(
            [len(s.matches) for s in digest.sections] + [len(digest.revisions)], default=1
        )
        estimate = int(shown_max * HTML_LIMIT * 0.9 / size)
        limit = max(1, min(limit - 1, estimate, shown_max - 1))
