"""Value types passed between the stages of a cycle.

All frozen, all tuples rather than lists, all datetimes UTC-aware, so a
stage can never change what another stage sees.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

import idna

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

# The arXiv identifier (arxiv.org/help/arxiv_identifier), the one definition
# of it: YYMM.NNNNN since 2015, YYMM.NNNN from April 2007 to 2014, and before
# that archive(.SUBJ)/YYMMNNN (hep-th/9901001, math.AG/0601001); each may
# carry a version, vN. Only such ids enter the store, the page and links.
_YYMM = r"\d\d(?:0[1-9]|1[0-2])"
ARXIV_ID = rf"(?:{_YYMM}\.\d{{4,5}}|[a-z]+(?:-[a-z]+)?(?:\.[A-Z]{{2}})?/{_YYMM}\d{{3}})"
_VERSIONED_ID = re.compile(rf"(?P<id>{ARXIV_ID})(?:v(?P<version>[1-9]\d*))?")
# An arXiv category ("cs.LG") or archive ("cs", "hep-th"): config validates
# with it and compose uses it to tell categories from MSC/ACM codes.
CATEGORY_RE = re.compile(r"[a-z][a-z\-]*(\.[A-Za-z\-]+)?")


def split_arxiv_id(raw: str) -> tuple[str, int] | None:
    """``http://arxiv.org/abs/2202.12139v3`` -> ``("2202.12139", 3)``; None if not an arXiv id.

    arXiv entry ids are always versioned URLs; the versionless id is the
    stable key for "already sent" (docs/delivery.md: revisions are not re-sent).
    Old-style ids (``astro-ph/9904306v1``) keep their archive prefix.
    """
    ident = raw.strip()
    for prefix in ("http://arxiv.org/abs/", "https://arxiv.org/abs/", "oai:arXiv.org:"):
        if ident.startswith(prefix):
            ident = ident[len(prefix) :]
            break
    m = _VERSIONED_ID.fullmatch(ident)
    if m is None:
        return None
    return m["id"], int(m["version"] or 1)


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
    owner: str | None = None  # who reads replies digest cannot act on; None: postmaster@
    semantic: bool = False  # rank by meaning too: the optional extra digest[semantic]


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
    # why ``library`` could not be read ("PATH: problem"): this reader's digest
    # fails until it can, and nobody else's waits for it
    library_problem: str | None = None


@dataclass(frozen=True, slots=True)
class ReplyNote:
    """One message about a reader and what became of it, for ``digest readers EMAIL``."""

    at: datetime
    what: str  # what the message was: "command pause for alice@example.org"
    done: str  # what digest did: "paused until 2026-12-10; acknowledged"


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
    # each confirmation sent within the confirmation window: (when, who asked it),
    # who being "" for the reader's own address
    confirmations: tuple[tuple[datetime, str], ...] = ()
    handled: tuple[str, ...] = ()  # Message-IDs already applied
    # when mail was stopped (unsubscribed, paused, suspended): (start, end), end None
    # while it lasts; papers announced meanwhile are not sent later (a vacation stop)
    away: tuple[tuple[datetime, datetime | None], ...] = ()
    acknowledged_at: datetime | None = None  # when a command was last acknowledged
    last_replies: tuple[ReplyNote, ...] = ()  # the newest last


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
    # one line on what lifted it: "like: <title>", "your field: Robotics",
    # "by <author>", "you asked for more like <title>"; None when nothing did
    reason: str | None = None


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
    away: tuple[Match, ...] = ()  # announced while mail was stopped: counted, never sent
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
        """Left out for size, or announced while away (id -> version): recorded as skipped.

        Not offered again: the mail said how many, and why.
        """
        out = {r.match.paper.id: r.match.paper.version for s in self.sections for r in s.left_out}
        out.update({m.paper.id: m.paper.version for m in self.away})
        return out

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


def address_key(address: str) -> str:
    """The one identity of a reader's address: the store's key, the tokens', the duplicates'.

    Two spellings of one mailbox give one key, so editing an address's case or
    form in subscribers.yaml keeps the reader's history and choices:

    * the domain in U-labels, mapped and lower-cased by UTS #46 (RFC 5890,
      RFC 5895): ``Bücher.example`` and ``xn--bcher-kva.example`` are one
      domain. U-labels rather than A-labels because that is how the
      configuration, the store and every token minted so far wrote them;
    * the local part in NFC (RFC 6532 §3.1) and lower-cased, ASCII or not.
      RFC 5321 §2.4 lets a server tell ``Alice`` from ``alice``; the mail
      systems in wide use do not, and mail clients change the case of
      replies. Not ``casefold``: ``straße`` and ``strasse`` stay two
      mailboxes. The address is still *sent* as written (``wire_address``),
      only compared this way.

    Never raises: replies bring arbitrary text; what is not an address is
    compared lower-cased.
    """
    addr = address.strip().strip("<>").strip()
    local, at, domain = addr.rpartition("@")
    if not at:
        return unicodedata.normalize("NFC", addr).lower()
    return f"{unicodedata.normalize('NFC', local).lower()}@{_domain_key(domain)}"


def _domain_key(domain: str) -> str:
    lowered = domain.lower()
    if domain.isascii() and "xn--" not in lowered:
        return lowered  # the common case, without the IDNA tables
    try:
        return str(idna.decode(idna.encode(domain, uts46=True)))
    except (UnicodeError, ValueError):  # not a domain IDNA can map: compare it as written
        return unicodedata.normalize("NFC", domain).lower()


def wire_address(address: str) -> str:
    """``address`` as SMTP carries it: the local part as written, the domain in A-labels.

    RFC 5321 §2.3.5 allows only ASCII domain names on the wire; an
    internationalised domain travels as its A-labels (RFC 5890 §2.3.2.1),
    which every server takes, SMTPUTF8 or not. A local part outside ASCII
    has no ASCII form at all: it needs SMTPUTF8 (``needs_smtputf8``).
    Raises ``ValueError`` naming the address when the domain has no A-label form.
    """
    local, domain = split_address(address)
    if domain.isascii():
        return address
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except (UnicodeError, ValueError) as exc:
        raise ValueError(f"the domain of {address} has no IDNA A-label form: {exc}") from None
    return f"{local}@{ascii_domain}"


def needs_smtputf8(address: str) -> bool:
    """Whether mail to ``address`` needs SMTPUTF8 (RFC 6531): a local part outside ASCII."""
    return not split_address(address)[0].isascii()


def format_sender(sender: str) -> Address:
    """The ``from`` setting (``"Name <addr>"`` or a bare address) as an ``Address``."""
    name, addr = parseaddr(sender)
    local, domain = split_address(addr)
    return Address(display_name=name, username=local, domain=domain)
