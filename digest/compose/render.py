"""From ranked matches to a finished message: rendering, fitting, headers.

What is shown comes from ``selection`` and what the templates see from
``view`` (both pure). ``digest.mail`` renders the templates (autoescaping on
for HTML, ``StrictUndefined`` everywhere); nothing from a feed is ever marked safe.
Headers are built by the ``email`` package (``policy.default`` refuses CR/LF).
"""

from __future__ import annotations

import email.policy
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from typing import Any

import css_inline

from digest.compose import view
from digest.compose.selection import build_digest, fit_to_limit, fits
from digest.compose.view import render_context
from digest.mail import forget_templates, mime, render_template
from digest.models import (
    LIST_NAME,
    Digest,
    Match,
    Offer,
    Ranked,
    Settings,
    Subscriber,
    format_sender,
    needs_smtputf8,
    split_address,
    wire_address,
)
from digest.replies import ReaderLinks

TEMPLATE_NAMES = ("digest.html", "digest.txt", "subject.txt")

# A reader's tokened links for the given paper ids (commands.reader_links with
# the secret and the addresses filled in): the cycle makes one per reader.
LinkMaker = Callable[[tuple[str, ...]], ReaderLinks]


# --------------------------------------------------------------------------
# Rendering


_INLINER = css_inline.CSSInliner(
    keep_style_tags=False, keep_at_rules=True, load_remote_stylesheets=False
)


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str
    # the tokened List-Unsubscribe value (commands.UnfoldedHeader: never folded
    # or RFC 2047-encoded); None: the plain "subject=unsubscribe" mailto
    list_unsubscribe: str | None = None


def render_html(
    digest: Digest,
    settings: Settings,
    links: ReaderLinks | None = None,
    context: Mapping[str, Any] | None = None,
) -> str:
    """The HTML part, CSS inlined (``context``: ``render_context``'s, if made already)."""
    if context is None:
        context = render_context(digest, settings.smtp.sender, links)
    return _INLINER.inline(render_template(settings.templates, "digest.html", context))


def render(
    digest: Digest,
    settings: Settings,
    html: str | None = None,
    links: ReaderLinks | None = None,
    context: Mapping[str, Any] | None = None,
) -> Rendered:
    """Render subject, text and HTML; raises ``TemplateError`` naming the template."""
    templates = settings.templates
    if context is None:
        context = render_context(digest, settings.smtp.sender, links)
    subject = " ".join(render_template(templates, "subject.txt", context).split())
    text = render_template(templates, "digest.txt", context)
    if html is None:
        html = _INLINER.inline(render_template(templates, "digest.html", context))
    unsubscribe = links.list_unsubscribe if links is not None else None
    return Rendered(subject=subject, text=text, html=html, list_unsubscribe=unsubscribe)


# --------------------------------------------------------------------------
# The message


def message_id(digest: Digest, domain: str) -> str:
    """Stable for the same subscriber and cycle, so a resend is recognisable as one."""
    token = hashlib.sha256(f"{digest.cycle_id}\0{digest.subscriber.email}".encode()).hexdigest()
    return f"<digest.{digest.cycle_id}.{token[:20]}@{domain}>"


@lru_cache(maxsize=8)
def _cycle_headers(sender_setting: str, date: str) -> Mapping[str, Any]:
    """The headers every reader's message of a cycle shares, parsed once.

    ``policy.default`` parses each value set on a message into a header
    object, and keeps a value that already is one for that name as it is
    (``EmailPolicy.header_store_parse``): these are the very objects setting
    the strings would make, so the bytes are the same.
    """
    sender = format_sender(sender_setting)
    values: dict[str, Any] = {
        "From": sender,
        "Date": date,  # a string: equal datetimes in other zones print differently
        # RFC 2919: the list identifier is a domain-like label under the sender's domain.
        "List-Id": f"{sender.display_name or LIST_NAME} <daily-papers.{sender.domain}>",
        "List-Unsubscribe": f"<mailto:{sender.addr_spec}?subject=unsubscribe>",
        "Auto-Submitted": "auto-generated",  # RFC 3834: no vacation replies
        "X-Auto-Response-Suppress": "OOF, AutoReply",
        "Precedence": "bulk",
    }
    factory = email.policy.default.header_factory  # EmailMessage()'s policy
    return {name: factory(name, value) for name, value in values.items()}


def build_message(
    digest: Digest,
    rendered: Rendered,
    settings: Settings,
    extra_headers: Mapping[str, str] | None = None,
) -> bytes:
    """The message as sent, serialised once (every send attempt reuses these bytes)."""
    sender = format_sender(settings.smtp.sender)
    same = _cycle_headers(settings.smtp.sender, format_datetime(digest.created))
    sub = digest.subscriber
    # the address as the envelope carries it (A-label domain): the header
    # and RCPT agree, and a client without IDNA support can still reply
    local, domain = split_address(wire_address(sub.email))
    msg = EmailMessage()
    msg["From"] = same["From"]
    msg["To"] = Address(display_name=sub.name or "", username=local, domain=domain)
    msg["Subject"] = rendered.subject
    msg["Date"] = same["Date"]
    msg["Message-ID"] = ident = message_id(digest, sender.domain)
    msg["List-Id"] = same["List-Id"]
    # the tokened value is an UnfoldedHeader: set as it is, it stays one bare line
    msg["List-Unsubscribe"] = rendered.list_unsubscribe or same["List-Unsubscribe"]
    msg["Auto-Submitted"] = same["Auto-Submitted"]
    msg["X-Auto-Response-Suppress"] = same["X-Auto-Response-Suppress"]
    msg["Precedence"] = same["Precedence"]
    for k, v in (extra_headers or {}).items():
        msg[k] = v
    # quoted-printable (inlined HTML has long lines, base64 would add a third),
    # base64 where that is smaller; the boundary is derived from the Message-ID
    boundary = "=_" + hashlib.sha256(ident.encode()).hexdigest()[:24]
    parts = (("plain", rendered.text), ("html", rendered.html))
    return mime.alternative(msg, parts, boundary, utf8=needs_smtputf8(sub.email))


def compose(
    subscriber: Subscriber,
    ranked: Sequence[Ranked],
    settings: Settings,
    *,
    cycle_id: str,
    created: datetime,
    revisions: Sequence[Match] = (),
    empty_reason: str | None = None,
    links: LinkMaker | None = None,
    away: Sequence[Match] = (),
    beyond: Sequence[Offer] = (),
) -> tuple[Digest, Rendered]:
    """Select and render so that the HTML fits ``HTML_LIMIT``, hiding nothing if it can.

    ``links`` makes the reader's reply links: the footer's, and "more like
    this" / "less like this" under each paper shown in full and each paper
    offered ``beyond`` the keywords (``selection.pick_beyond``).

    The mail's best-ranked papers are shown in full (the subscriber's
    ``max_papers_per_keyword`` for each section the matches fill), the rest
    as compact rows (``selection``). Over the limit, the papers beyond the
    keywords give way first (they are no matches, and not recorded offered
    then); then full entries become rows, the lowest-ranked of the mail
    first; only if every paper as a row is still too much are the
    lowest-ranked rows left out (the mail says how many and why; the cycle
    records them as skipped). Sizes are estimated from the renders so far,
    so a few renders suffice.
    """
    limit = subscriber.max_papers_per_keyword or settings.max_papers_per_keyword
    ids = (*(r.match.paper.id for r in ranked), *(o.ranked.match.paper.id for o in beyond))
    made = links(ids) if links is not None else None

    def html_of(d: Digest) -> str:
        return render_html(d, settings, made)

    def build(
        full: int | None = None, shown: int | None = None, offers: Sequence[Offer] = beyond
    ) -> Digest:
        return build_digest(
            subscriber,
            ranked,
            max_per_keyword=limit,
            cycle_id=cycle_id,
            created=created,
            revisions=revisions,
            empty_reason=empty_reason,
            full=full,
            shown=shown,
            away=away,
            beyond=offers,
        )

    digest = build()
    # the context is built once per rendering, for the HTML and the rest
    context = render_context(digest, settings.smtp.sender, made)
    html = render_html(digest, settings, made, context)
    if fits(html):
        return digest, render(digest, settings, html, made, context)
    if beyond:
        digest = build(offers=())
        html = html_of(digest)
        if fits(html):
            return digest, render(digest, settings, html, made)

    def matches_only(full: int | None = None, shown: int | None = None) -> Digest:
        return build(full, shown, offers=())

    fitted, fitted_html = fit_to_limit(matches_only, html_of, digest, html)
    return fitted, render(fitted, settings, fitted_html, made)


def forget_cycle() -> None:
    """Empty the per-cycle caches (a long-lived process that composed in-process, after a cycle).

    They are bounded whatever happens (``CYCLE_CACHE`` entries each, a few
    tens of MB at most); this only gives the memory back between cycles.
    Pool workers need not call it: they end with the cycle.
    """
    view.forget_cycle()
    _cycle_headers.cache_clear()
    forget_templates()  # the wordwrap cache goes with the environments
