"""The schema of subscribers.yaml: pydantic models and the validators of each value.

The only module that imports pydantic and email-validator. ``validate`` turns
the parsed YAML (with environment overrides applied) into a ``FileModel`` or
raises one ``ConfigError`` listing every problem with its place; ``digest.config.loading``
builds the frozen ``Config`` from the model.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from digest.config import library
from digest.config.problems import format_errors, show
from digest.errors import ConfigError
from digest.models import (
    CATEGORY_RE,
    WEEKDAY_NAMES,
    WEEKDAYS,
    ArxivSettings,
    Settings,
    SmtpSettings,
    address_key,
    format_sender,
    split_address,
)

# Characters and words that would change the meaning of an arXiv query when
# a keyword is put inside ti:"..." (arXiv API User's Manual): quotes end the phrase,
# parentheses group, a colon starts a field prefix, and AND/OR/ANDNOT are the
# operators (always upper case in arXiv's syntax).
_QUERY_BREAKING = re.compile(r'["()\[\]{}:\\]')
_OPERATORS = {"AND", "OR", "ANDNOT"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Defaults come from the value types (slotted dataclasses: read them off instances).
_ARXIV = ArxivSettings()
_SMTP = SmtpSettings()
_SETTINGS = Settings()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _phrase(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(f"{what} {show(value)} contains a control character (newline or tab)")
    bad = _QUERY_BREAKING.search(value)
    if bad:
        raise ValueError(
            f"{what} {show(value)} contains {bad.group()!r}, which would break the arXiv query; "
            "write the plain words only"
        )
    ops = [w for w in value.split() if w in _OPERATORS]
    if ops:
        raise ValueError(
            f"{what} {show(value)} contains the arXiv operator {ops[0]!r}; "
            "list alternatives as separate keywords instead"
        )
    if not any(ch.isalnum() for ch in value):
        raise ValueError(f"{what} {show(value)} has no letters or digits")
    return " ".join(value.split())


def _unique_phrases(values: list[str], what: str) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for v in values:
        cleaned = _phrase(v, what)
        key = cleaned.casefold()
        if key in seen:
            raise ValueError(f"{what} {show(cleaned)} is listed twice")
        seen[key] = cleaned
    return tuple(seen.values())


def _category(value: str) -> str:
    if not CATEGORY_RE.fullmatch(value):
        raise ValueError(
            f"category {show(value)} is not an arXiv category or archive "
            "(e.g. cs.LG, or cs for all cs.*)"
        )
    return value


_WEEKDAY_BY_NAME = {name: day for day, name in WEEKDAY_NAMES.items()}


def _weekday(value: str) -> str:
    """``mon`` or ``Monday``, in any case: on purpose, not by cutting any word to three letters."""
    day = value.strip().lower()
    day = _WEEKDAY_BY_NAME.get(day, day)
    if day not in WEEKDAYS:
        raise ValueError(
            f"{show(value)} is not a weekday (mon, tue, ... sun, or monday ... sunday)"
        )
    return day


def _one_or_many(value: Any) -> Any:
    """``keywords: compiler`` means ``keywords: [compiler]``: one phrase, not its letters."""
    return [value] if isinstance(value, str) else value


def _unquoted_id(value: Any) -> Any:
    """An id YAML read as a number (``likes: [2101.00010]``) back to its digits.

    YAML drops trailing zeros (2101.00010 -> 2101.0001); the year and month
    tell how many digits the number had: five from 1501 on, four before.
    """
    if isinstance(value, float):
        yymm, _, digits = repr(value).partition(".")
        yymm = yymm.zfill(4)  # 0704.0001 -> 704.0001
        width = 5 if yymm >= "1501" else 4
        return f"{yymm}.{digits.ljust(width, '0')}"
    return str(value) if isinstance(value, int) else value  # then refused as an id


def _arxiv_id(value: str) -> str:
    ident = library.parse_arxiv_id(value)
    if ident is None:
        raise ValueError(
            f"{value!r} is not an arXiv id (like 2101.00001, 2101.00001v2 or hep-th/9901001)"
        )
    return ident


Category = Annotated[str, AfterValidator(_category)]
ArxivId = Annotated[str, BeforeValidator(_unquoted_id), AfterValidator(_arxiv_id)]
Weekday = Annotated[str, AfterValidator(_weekday)]
Phrases = Annotated[list[str], BeforeValidator(_one_or_many)]
Categories = Annotated[list[Category], BeforeValidator(_one_or_many)]


class ArxivModel(_Strict):
    api_url: str = _ARXIV.api_url
    request_interval: float = Field(default=_ARXIV.request_interval, ge=0)
    page_size: int = Field(default=_ARXIV.page_size, ge=1, le=2000)
    timeout: float = Field(default=_ARXIV.timeout, gt=0)
    categories: list[Category] = Field(default_factory=list)
    max_retries: int = Field(default=_ARXIV.max_retries, ge=0, le=10)
    contact: str | None = None

    @field_validator("contact")
    @classmethod
    def _contact(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if _CONTROL.search(v) or not re.fullmatch(r"(mailto:[^\s@]+@[^\s@]+|https?://\S+)", v):
            raise ValueError(
                f"{v!r} is not a way to reach you: write mailto:you@example.org or an https:// URL"
            )
        return v

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"https?://[^\s/]+", v):
            raise ValueError(f"{show(v)} is not an http(s) URL")
        return v


class SmtpModel(_Strict):
    host: str = _SMTP.host
    port: int = Field(default=_SMTP.port, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    from_: str = Field(default=_SMTP.sender, alias="from")
    timeout: float = Field(default=_SMTP.timeout, gt=0)
    ca_file: str | None = None
    connections: int = Field(default=_SMTP.connections, ge=1, le=8)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("from_")
    @classmethod
    def _sender(cls, v: str) -> str:
        if _CONTROL.search(v):
            raise ValueError("the sender address contains a line break or control character")
        _, addr = parseaddr(v)
        local, domain = split_address(addr)
        if not local or not domain or " " in addr:
            raise ValueError(
                f"{show(v)} is not an address like 'Daily Papers <papers@example.org>'"
            )
        return v


class InboxModel(_Strict):
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)  # None: 993 for tls, else 143
    security: Literal["none", "starttls", "tls"] = "tls"
    username: str = Field(min_length=1)
    password: Any = None  # only here to be refused with a pointer to where it goes
    folder: str = Field(default="INBOX", min_length=1)
    handled_folder: str = Field(default="digest-handled", min_length=1)
    poll_interval: float = Field(default=5.0, ge=1)
    timeout: float = Field(default=60.0, gt=0)
    ca_file: str | None = None

    @field_validator("password", mode="before")
    @classmethod
    def _no_password(cls, v: Any) -> None:
        raise ValueError(
            "the IMAP password never goes in this file (backups, version control); "
            "set DIGEST_IMAP_PASSWORD or the systemd credential imap-password"
        )

    @field_validator("host", "username", "folder", "handled_folder")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if _CONTROL.search(v):
            raise ValueError("contains a line break or control character")
        return v

    @model_validator(mode="after")
    def _distinct_folders(self) -> InboxModel:
        if self.folder == self.handled_folder:
            raise ValueError("handled_folder must differ from folder (handled mail moves there)")
        return self


def _address(v: str) -> str:
    if _CONTROL.search(v):
        raise ValueError("the address contains a line break or control character")
    try:
        return validate_email(v, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{show(v)} is not an email address: {exc}") from None


class SettingsModel(_Strict):
    send_at: str = "07:00"
    timezone: str = "UTC"
    days: list[Weekday] = Field(default_factory=lambda: list(_SETTINGS.days))
    lookback_days: int = Field(default=_SETTINGS.lookback_days, ge=0, le=60)
    max_papers_per_keyword: int = Field(default=_SETTINGS.max_papers_per_keyword, ge=1, le=200)
    database: str | None = None  # None: loading.default_database, in a state directory
    templates: str | None = None
    archive: str | None = None
    arxiv: ArxivModel = Field(default_factory=ArxivModel)
    smtp: SmtpModel = Field(default_factory=SmtpModel)
    inbox: InboxModel | None = None
    owner: str | None = None
    semantic: bool = _SETTINGS.semantic

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: str | None) -> str | None:
        return None if v is None else _address(v)

    @model_validator(mode="after")
    def _owner_is_not_the_list(self) -> SettingsModel:
        # mail to the list's own address comes back to digest, which drops it as its
        # own: a reply forwarded there would reach nobody
        sender = format_sender(self.smtp.from_).addr_spec
        if self.owner is not None and address_key(self.owner) == address_key(sender):
            raise ValueError(
                f"owner {show(self.owner)} is the list's own address (smtp.from): replies "
                "forwarded there would come back to digest and be dropped; give a person's address"
            )
        return self

    @field_validator("send_at")
    @classmethod
    def _send_at(cls, v: str) -> str:
        # HH:MM, or HH:MM:SS (handy for tests that need a cycle within seconds)
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?", v):
            raise ValueError(f'{show(v)} is not a time of day like "07:00"')
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{show(v)} is not an IANA time zone (e.g. Europe/Berlin)") from None
        return v

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one day is needed")
        return v


class SubscriberModel(_Strict):
    email: str
    name: str | None = None
    keywords: Phrases = Field(min_length=1)
    exclude: Phrases = Field(default_factory=list)
    categories: Categories = Field(default_factory=list)
    authors: Phrases = Field(default_factory=list)
    frequency: Literal["daily", "weekly"] = "daily"
    weekday: Weekday | None = None
    include_revisions: bool = False
    send_empty: bool = False
    max_papers_per_keyword: int | None = Field(default=None, ge=1, le=200)
    likes: list[ArxivId] = Field(default_factory=list)
    library: str | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        return _address(v)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and _CONTROL.search(v):
            raise ValueError("the name contains a line break or control character")
        return v

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, v: list[str]) -> list[str]:
        return list(_unique_phrases(v, "keyword"))

    @field_validator("exclude")
    @classmethod
    def _exclude(cls, v: list[str]) -> list[str]:
        return list(_unique_phrases(v, "exclude phrase"))

    @field_validator("authors")
    @classmethod
    def _authors(cls, v: list[str]) -> list[str]:
        return list(_unique_phrases(v, "author"))

    @model_validator(mode="after")
    def _cadence(self) -> SubscriberModel:
        if self.frequency == "weekly" and self.weekday is None:
            raise ValueError("a weekly subscriber needs weekday: (mon ... sun)")
        if self.frequency == "daily" and self.weekday is not None:
            raise ValueError("weekday: only applies to frequency: weekly")
        return self


class FileModel(_Strict):
    settings: SettingsModel = Field(default_factory=SettingsModel)
    subscribers: list[SubscriberModel] = Field(min_length=1)


def validate(data: dict[str, Any], source: str, env_places: dict[str, str]) -> FileModel:
    """``data`` as a ``FileModel``, or ``ConfigError`` naming every problem in ``source``.

    ``env_places`` maps a place (``settings.smtp.port``) to the variable
    that set it, so a bad override names the variable rather than the file.
    """
    try:
        return FileModel.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, format_errors(exc.errors(), data, env_places)) from None
