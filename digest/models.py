"""Value types passed between the stages of a cycle.

All frozen, all tuples rather than lists, all datetimes UTC-aware, so a
stage can never change what another stage sees.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# the full names: schedule's job names, and accepted in subscribers.yaml
WEEKDAY_NAMES = dict(
    zip(
        WEEKDAYS,
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        strict=True,
    )
)

Security = Literal["none", "starttls", "tls"]
Frequency = Literal["daily", "weekly"]

_VERSION_RE = re.compile(r"v(\d+)$")
# An arXiv category ("cs.LG") or archive ("cs", "hep-th"): config validates
# with it and compose uses it to tell categories from MSC/ACM codes.
CATEGORY_RE = re.compile(r"[a-z][a-z\-]*(\.[A-Za-z\-]+)?")


def split_arxiv_id(raw: str) -> tuple[str, int]:
    """``http://arxiv.org/abs/2202.12139v3`` -> ``("2202.12139", 3)``.

    arXiv entry ids are always versioned URLs; the versionless id is the
    stable key for "already sent" (docs/delivery.md: revisions are not re-sent).
    Old-style ids (``astro-ph/9904306v1``) keep their archive prefix.
    """
    ident = raw.strip()
    for prefix in ("http://arxiv.org/abs/", "https://arxiv.org/abs/", "oai:arXiv.org:"):
        if ident.startswith(prefix):
            ident = ident[len(prefix) :]
            break
    m = _VERSION_RE.search(ident)
    if m is None:
        return ident, 1
    return ident[: m.start()], int(m.group(1))


@dataclass(frozen=True, slots=True)
class Paper:
    id: str  # versionless: "2202.12139" or "astro-ph/9904306"
    version: int
    title: str
    abstract: str
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    primary_category: str
    published: datetime  # v1 submission time, UTC
    updated: datetime  # this version's submission time, UTC
    comment: str | None = None
    journal_ref: str | None = None
    doi: str | None = None

    # Links are derived from the id, never taken from the feed: captures
    # from November 2025 had <link>s without rel/title (tests/fixtures/api_new_2025-11_*).
    @property
    def abs_url(self) -> str:
        return f"https://arxiv.org/abs/{self.id}"

    @property
    def pdf_url(self) -> str:
        return f"https://arxiv.org/pdf/{self.id}v{self.version}"

    @property
    def html_url(self) -> str:
        return f"https://arxiv.org/html/{self.id}v{self.version}"

    @property
    def versioned_id(self) -> str:
        return f"{self.id}v{self.version}"


@dataclass(frozen=True, slots=True)
class ArxivSettings:
    api_url: str = "https://export.arxiv.org/api/query"
    request_interval: float = 3.0
    # arXiv allows up to 2000 per call (arXiv API User's Manual); 1000 keeps an ordinary
    # day (about 1,700 papers in the 7-day window for 50 keywords) to 2 requests
    # while a page stays about 1.5 MB and a few seconds to serve
    page_size: int = 1000
    timeout: float = 30.0
    categories: tuple[str, ...] = ()
    max_retries: int = 4
    # how arXiv can reach the operator (its API terms ask clients to identify
    # themselves): "mailto:…" or a URL; config fills in the From mailbox
    contact: str | None = None


# The list's name where the sender's display name does not give one: the
# default From, List-Id, the Daily Papers page's title and reply mail.
LIST_NAME = "Daily Papers"


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    security: Security = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in logs
    sender: str = f"{LIST_NAME} <papers@localhost>"
    timeout: float = 60.0
    ca_file: Path | None = None
    connections: int = 1  # parallel SMTP sessions per batch


@dataclass(frozen=True, slots=True)
class InboxSettings:
    """The IMAP mailbox that receives replies (``settings.inbox``; None = no IMAP)."""

    host: str
    username: str
    port: int = 993  # config picks 993 for tls, 143 otherwise
    security: Security = "tls"
    password: str | None = field(default=None, repr=False)  # never in logs
    folder: str = "INBOX"
    handled_folder: str = "digest-handled"
    poll_interval: float = 5.0  # minutes
    timeout: float = 60.0
    ca_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    send_at: time = time(7, 0)
    timezone: str = "UTC"
    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    lookback_days: int = 2
    max_papers_per_keyword: int = 25
    database: Path = Path("digest.json")
    templates: Path | None = None
    archive: Path | None = None
    arxiv: ArxivSettings = ArxivSettings()
    smtp: SmtpSettings = SmtpSettings()
    inbox: InboxSettings | None = None


@dataclass(frozen=True, slots=True)
class Liked:
    """A paper the reader likes: its arXiv id, its text, or both.

    From ``likes:`` only the id is known (the text comes from the paper
    cache or an ``id_list`` lookup); a ``library:`` entry may bring its
    title and abstract along, with or without an arXiv id.
    """

    arxiv_id: str | None = None  # versionless, like Paper.id
    title: str = ""
    abstract: str = ""


@dataclass(frozen=True, slots=True)
class Subscriber:
    email: str
    keywords: tuple[str, ...]
    name: str | None = None
    exclude: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    frequency: Frequency = "daily"
    weekday: str | None = None
    include_revisions: bool = False
    send_empty: bool = False
    max_papers_per_keyword: int | None = None
    likes: tuple[Liked, ...] = ()  # from likes: and library:, one entry per paper
    library: Path | None = None  # where some of the likes came from
    dislikes: tuple[str, ...] = ()  # arXiv ids the reader asked for less of (by reply)


@dataclass(frozen=True, slots=True)
class ReaderState:
    """What a reader chose by mail, and what their bounces cost them.

    The store keeps it beside the reader's deliveries; ``digest.replies.readers``
    holds the rules that change it and the windows the times are kept for.
    """

    unsubscribed_at: datetime | None = None
    suspended_at: datetime | None = None
    paused_until: datetime | None = None
    hard_bounces: tuple[datetime, ...] = ()  # within the bounce window
    likes: tuple[str, ...] = ()  # arXiv ids, oldest first
    dislikes: tuple[str, ...] = ()
    frequency: Frequency | None = None  # None: what subscribers.yaml says
    confirmations: tuple[datetime, ...] = ()  # sent within the confirmation window
    handled: tuple[str, ...] = ()  # Message-IDs already applied


@dataclass(frozen=True, slots=True)
class Config:
    settings: Settings
    subscribers: tuple[Subscriber, ...]
    path: Path


@dataclass(frozen=True, slots=True)
class Match:
    """One paper a subscriber follows, and why."""

    paper: Paper
    keywords: tuple[str, ...]  # the subscriber's keywords it matched, in their order
    authors: tuple[str, ...] = ()  # the followed authors who wrote it


@dataclass(frozen=True, slots=True)
class Ranked:
    """A match with its score for one reader, and why it is up there (``digest.ranking``)."""

    match: Match
    score: float
    like: str | None = None  # title of the liked paper it is close to

    @property
    def explanation(self) -> str | None:
        return f"like: {self.like}" if self.like else None


@dataclass(frozen=True, slots=True)
class Offer:
    """A paper shown beyond the reader's keywords: it matched none, but is close to their likes.

    Not a match: never delivered, only recorded as offered (``Digest.offers``).
    """

    ranked: Ranked  # scored like a match that holds no keyword; ``like`` names the liked paper
    category: str  # the category of papers the reader likes that it is in


@dataclass(frozen=True, slots=True)
class Section:
    """A keyword's part of a digest, most relevant first.

    Every match is in exactly one of the three: shown in full, shown as a
    compact row, or left out because not even a row fitted the size limit.
    """

    keyword: str
    full: tuple[Ranked, ...]  # with abstract: the first ``max_papers_per_keyword``
    compact: tuple[Ranked, ...] = ()  # one row each: title, authors, links
    left_out: tuple[Ranked, ...] = ()  # lowest-ranked, past the size limit: recorded skipped

    @property
    def shown(self) -> tuple[Ranked, ...]:
        return (*self.full, *self.compact)


@dataclass(frozen=True, slots=True)
class Digest:
    """Everything one email says, before it is rendered."""

    subscriber: Subscriber
    sections: tuple[Section, ...]
    cycle_id: str  # stable per subscriber and cycle: feeds the Message-ID
    created: datetime  # UTC
    revisions: tuple[Match, ...] = ()  # sent before, now with a newer version
    empty_reason: str | None = None  # a "nothing new" mail says why
    beyond: tuple[Offer, ...] = ()  # papers beyond the keywords, best first: not matches

    @property
    def shown(self) -> tuple[Ranked, ...]:
        """Every paper the mail shows (in full or as a row), in the mail's order."""
        return tuple(r for s in self.sections for r in s.shown)

    @property
    def paper_ids(self) -> tuple[str, ...]:
        return tuple(r.match.paper.id for r in self.shown)

    @property
    def count(self) -> int:
        return len(self.paper_ids)

    @property
    def left_out(self) -> int:
        return sum(len(s.left_out) for s in self.sections)

    @property
    def delivers(self) -> dict[str, int]:
        """What recording this digest as delivered means: id -> version (revisions included).

        Only what the mail shows: a paper left out for size is ``skips``, never delivered.
        """
        out = {r.match.paper.id: r.match.paper.version for r in self.shown}
        out.update({m.paper.id: m.paper.version for m in self.revisions})
        return out

    @property
    def offers(self) -> dict[str, int]:
        """The papers shown beyond the keywords (id -> version): recorded offered, not delivered."""
        return {o.ranked.match.paper.id: o.ranked.match.paper.version for o in self.beyond}

    @property
    def skips(self) -> dict[str, int]:
        """The matches left out for size (id -> version): recorded as skipped, not offered again."""
        return {r.match.paper.id: r.match.paper.version for s in self.sections for r in s.left_out}

    @property
    def keywords(self) -> tuple[str, ...]:
        return tuple(s.keyword for s in self.sections)


# --------------------------------------------------------------------------
# Rules on these values, each kept in one place


def newest_first(paper: Paper) -> tuple[datetime, str]:
    """The sort key for "newest submission first" (use with ``reverse=True``)."""
    return (paper.published, paper.id)


def newest_versions(*sources: Iterable[Paper]) -> dict[str, Paper]:
    """Each id once, as its newest version among ``sources`` (earlier sources win ties)."""
    out: dict[str, Paper] = {}
    for papers in sources:
        for p in papers:
            have = out.get(p.id)
            if have is None or have.version < p.version:
                out[p.id] = p
    return out


def split_address(addr: str) -> tuple[str, str]:
    """``"a@b.org"`` -> ``("a", "b.org")``; the domain is what follows the last ``@``."""
    local, _, domain = addr.rpartition("@")
    return local, domain


def format_sender(sender: str) -> Address:
    """The ``from`` setting (``"Name <addr>"`` or a bare address) as an ``Address``."""
    name, addr = parseaddr(sender)
    local, domain = split_address(addr)
    return Address(display_name=name, username=local, domain=domain)
