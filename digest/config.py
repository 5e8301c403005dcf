"""Reading and validating subscribers.yaml, environment overrides and secrets.

The only module that imports yaml, pydantic and email-validator. It turns the
file into the frozen ``Config`` of ``digest.models`` or raises one
``ConfigError`` listing *every* problem, each with its place
(``subscribers[2].email: ...``, or the YAML line and column).
"""

from __future__ import annotations

import os
import re
import reprlib
import unicodedata
from collections.abc import Callable, Mapping
from datetime import time
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
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

from digest import library
from digest.errors import ConfigError
from digest.inbox import default_port
from digest.models import (
    CATEGORY_RE,
    WEEKDAYS,
    ArxivSettings,
    Config,
    InboxSettings,
    Liked,
    Settings,
    SmtpSettings,
    Subscriber,
    split_address,
)

DEFAULT_CONFIG = "subscribers.yaml"

# name of the environment variable -> (path in the YAML, type)
ENV_OVERRIDES: dict[str, tuple[tuple[str, ...], type]] = {
    "DIGEST_DATABASE": (("settings", "database"), str),
    "DIGEST_ARXIV_API_URL": (("settings", "arxiv", "api_url"), str),
    "DIGEST_ARXIV_REQUEST_INTERVAL": (("settings", "arxiv", "request_interval"), str),
    "DIGEST_ARXIV_CONTACT": (("settings", "arxiv", "contact"), str),
    "DIGEST_SMTP_HOST": (("settings", "smtp", "host"), str),
    "DIGEST_SMTP_PORT": (("settings", "smtp", "port"), str),
    "DIGEST_SMTP_SECURITY": (("settings", "smtp", "security"), str),
    "DIGEST_SMTP_USERNAME": (("settings", "smtp", "username"), str),
    "DIGEST_SMTP_FROM": (("settings", "smtp", "from"), str),
    "DIGEST_IMAP_HOST": (("settings", "inbox", "host"), str),
    "DIGEST_IMAP_PORT": (("settings", "inbox", "port"), str),
    "DIGEST_IMAP_SECURITY": (("settings", "inbox", "security"), str),
    "DIGEST_IMAP_USERNAME": (("settings", "inbox", "username"), str),
}

# Characters and words that would change the meaning of an arXiv query when
# a keyword is put inside ti:"..." (arxiv-api.md §2): quotes end the phrase,
# parentheses group, a colon starts a field prefix, and AND/OR/ANDNOT are the
# operators (always upper case in arXiv's syntax).
_QUERY_BREAKING = re.compile(r'["()\[\]{}:\\]')
_OPERATORS = {"AND", "OR", "ANDNOT"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Values quoted in error messages are cut short: a 10 MB string or a YAML
# alias bomb (a list of lists nine deep, 9**9 leaves) must give a short
# message, not a repr that never ends.
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlist = _REPR.maxdict = 5
_REPR.maxlevel = 1


def _show(value: object) -> str:
    return _REPR.repr(value)


# --------------------------------------------------------------------------
# Schema

# Defaults come from the value types (slotted dataclasses: read them off instances).
_ARXIV = ArxivSettings()
_SMTP = SmtpSettings()
_SETTINGS = Settings()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _phrase(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(f"{what} {_show(value)} contains a control character (newline or tab)")
    bad = _QUERY_BREAKING.search(value)
    if bad:
        raise ValueError(
            f"{what} {_show(value)} contains {bad.group()!r}, which would break the arXiv query; "
            "write the plain words only"
        )
    ops = [w for w in value.split() if w in _OPERATORS]
    if ops:
        raise ValueError(
            f"{what} {_show(value)} contains the arXiv operator {ops[0]!r}; "
            "list alternatives as separate keywords instead"
        )
    if not any(ch.isalnum() for ch in value):
        raise ValueError(f"{what} {_show(value)} has no letters or digits")
    return " ".join(value.split())


def _unique_phrases(values: list[str], what: str) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for v in values:
        cleaned = _phrase(v, what)
        key = cleaned.casefold()
        if key in seen:
            raise ValueError(f"{what} {_show(cleaned)} is listed twice")
        seen[key] = cleaned
    return tuple(seen.values())


def _category(value: str) -> str:
    if not CATEGORY_RE.fullmatch(value):
        raise ValueError(
            f"category {_show(value)} is not an arXiv category or archive "
            "(e.g. cs.LG, or cs for all cs.*)"
        )
    return value


_WEEKDAY_NAMES = dict(
    zip(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        WEEKDAYS,
        strict=True,
    )
)


def _weekday(value: str) -> str:
    """``mon`` or ``Monday``, in any case: on purpose, not by cutting any word to three letters."""
    day = value.strip().lower()
    day = _WEEKDAY_NAMES.get(day, day)
    if day not in WEEKDAYS:
        raise ValueError(
            f"{_show(value)} is not a weekday (mon, tue, ... sun, or monday ... sunday)"
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


class _ArxivModel(_Strict):
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
            raise ValueError(f"{_show(v)} is not an http(s) URL")
        return v


class _SmtpModel(_Strict):
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
                f"{_show(v)} is not an address like 'Daily Papers <papers@example.org>'"
            )
        return v


class _InboxModel(_Strict):
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
    def _distinct_folders(self) -> _InboxModel:
        if self.folder == self.handled_folder:
            raise ValueError("handled_folder must differ from folder (handled mail moves there)")
        return self


class _SettingsModel(_Strict):
    send_at: str = "07:00"
    timezone: str = "UTC"
    days: list[Weekday] = Field(default_factory=lambda: list(_SETTINGS.days))
    lookback_days: int = Field(default=_SETTINGS.lookback_days, ge=0, le=60)
    max_papers_per_keyword: int = Field(default=_SETTINGS.max_papers_per_keyword, ge=1, le=200)
    database: str = "digest.json"
    templates: str | None = None
    archive: str | None = None
    arxiv: _ArxivModel = Field(default_factory=_ArxivModel)
    smtp: _SmtpModel = Field(default_factory=_SmtpModel)
    inbox: _InboxModel | None = None

    @field_validator("send_at")
    @classmethod
    def _send_at(cls, v: str) -> str:
        # HH:MM, or HH:MM:SS (handy for tests that need a cycle within seconds)
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?", v):
            raise ValueError(f'{_show(v)} is not a time of day like "07:00"')
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{_show(v)} is not an IANA time zone (e.g. Europe/Berlin)") from None
        return v

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one day is needed")
        return v


class _SubscriberModel(_Strict):
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
        if _CONTROL.search(v):
            raise ValueError("the address contains a line break or control character")
        try:
            return validate_email(v, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"{_show(v)} is not an email address: {exc}") from None

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
    def _cadence(self) -> _SubscriberModel:
        if self.frequency == "weekly" and self.weekday is None:
            raise ValueError("a weekly subscriber needs weekday: (mon ... sun)")
        if self.frequency == "daily" and self.weekday is not None:
            raise ValueError("weekday: only applies to frequency: weekly")
        return self


class _FileModel(_Strict):
    settings: _SettingsModel = Field(default_factory=_SettingsModel)
    subscribers: list[_SubscriberModel] = Field(min_length=1)


# --------------------------------------------------------------------------
# YAML with positions


# libyaml's parser when PyYAML was built with it: about ten times faster on a
# large file (a 10 MB config took a minute with the pure-Python one).
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[misc]
    """A SafeLoader that refuses duplicate keys (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:  # "? [a, b]: c" makes a list key
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value, not a list", key_node.start_mark
            ) from None
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {_show(key)}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        what = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(source, [f"{where}: YAML syntax error: {what}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"YAML error: {exc}"]) from exc
    except RecursionError:  # "[[[[..." thousands deep: PyYAML recurses per level
        raise ConfigError(source, ["the YAML is nested too deeply"]) from None


# --------------------------------------------------------------------------
# Loading


def resolve_path(cli_path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """``--config``, else ``$DIGEST_CONFIG``, else ``./subscribers.yaml``."""
    if cli_path:
        return Path(cli_path)
    if env.get("DIGEST_CONFIG"):
        return Path(env["DIGEST_CONFIG"])
    return Path(DEFAULT_CONFIG)


def path_origin(cli_path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> str:
    """Where ``resolve_path`` found the path: ``--config``, ``$DIGEST_CONFIG`` or ``default``."""
    if cli_path:
        return "--config"
    return "$DIGEST_CONFIG" if env.get("DIGEST_CONFIG") else "default"


def load(path: Path, env: Mapping[str, str] | None = None, *, origin: str = "default") -> Config:
    """Read, validate and resolve ``path``; raise ``ConfigError`` with every problem.

    ``origin`` (see ``path_origin``) lets a missing file's message say the right fix.
    """
    env = os.environ if env is None else env
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if origin == "default":
            fix = "pass --config PATH or set DIGEST_CONFIG"
        else:
            fix = f"check the path given by {origin}"
        raise ConfigError(
            source,
            [f"file not found; {fix} (subscribers.yaml in the project shows every key)"],
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [f"cannot read the file: {exc}"]) from exc
    return parse(text, path, env)


def parse(text: str, path: Path, env: Mapping[str, str]) -> Config:
    """Validate the text of a config file at ``path`` (pure but for the secret and libraries)."""
    source = str(path)
    data = _parse_yaml(text, source)
    if data is None:
        raise ConfigError(source, ["the file is empty; it needs at least a subscribers: list"])
    if not isinstance(data, dict):
        raise ConfigError(
            source, ["the top level must be a mapping with settings: and subscribers:"]
        )
    data, env_places = _apply_env(data, env)
    try:
        model = _FileModel.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _format_errors(exc, data, env_places)) from None
    problems = _duplicate_subscribers(model)
    libraries, library_problems = _read_libraries(model, path.resolve().parent)
    problems += library_problems
    if problems:
        raise ConfigError(source, problems)
    return _to_config(model, path.resolve(), env, libraries)


def _apply_env(
    data: dict[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Overlay the DIGEST_* variables; remember which places they set."""
    data = dict(data)
    places: dict[str, str] = {}
    for var, (keys, _) in ENV_OVERRIDES.items():
        value = env.get(var)
        if value is None or value == "":
            continue
        node = data
        for k in keys[:-1]:
            child = node.get(k)
            child = dict(child) if isinstance(child, dict) else {}
            node[k] = child
            node = child
        node[keys[-1]] = value
        places[".".join(keys)] = var
    return data, places


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _format_errors(
    exc: ValidationError, data: dict[str, Any], env_places: dict[str, str]
) -> list[str]:
    problems = []
    for err in exc.errors():
        # pydantic appends the validator kind to unions/literals; drop those.
        loc = tuple(p for p in err["loc"] if p not in ("function-after",))
        place = _loc(loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = _unknown_key_hint(loc)
        elif err["type"] == "literal_error":
            msg = f"{_show(err.get('input'))}: {msg}"
        elif loc == ("settings", "send_at") and isinstance(err.get("input"), int):
            msg = _sexagesimal_hint(err["input"])
        elif err["type"] == "too_short" and loc and loc[-1] == "keywords":
            msg = "needs at least one keyword"
        elif err["type"] == "too_short" and loc == ("subscribers",):
            msg = "needs at least one subscriber"
        if loc[:1] == ("subscribers",) and len(loc) > 1 and isinstance(loc[1], int):
            who = _subscriber_email(data, loc[1])
            if who and loc[2:] != ("email",):
                place += f" ({who})"
        var = env_places.get(".".join(str(p) for p in loc).replace("from_", "from"))
        if var:
            place += f" (from ${var})"
        problems.append(f"{place}: {msg}")
    return problems


def _unknown_key_hint(loc: tuple[int | str, ...]) -> str:
    if loc[-1:] == ("password",):
        # the one key people add on purpose: say where it goes instead
        return (
            "the password does not belong in this file (it would end up in backups and "
            "version control); set $DIGEST_SMTP_PASSWORD or the systemd credential smtp-password"
        )
    return "unknown key (check the spelling; subscribers.yaml in the project lists every key)"


def _sexagesimal_hint(minutes: int) -> str:
    """YAML 1.1 reads an unquoted ``7:00`` as the base-60 number 420."""
    hh, mm = divmod(minutes, 60)
    return (
        f"YAML read an unquoted {hh}:{mm:02d} as the number {minutes}; "
        f'quote the time: send_at: "{hh:02d}:{mm:02d}"'
    )


def _subscriber_email(data: dict[str, Any], index: int) -> str | None:
    subs = data.get("subscribers")
    if isinstance(subs, list) and index < len(subs) and isinstance(subs[index], dict):
        email = subs[index].get("email")
        return email if isinstance(email, str) else None
    return None


def _duplicate_subscribers(model: _FileModel) -> list[str]:
    first: dict[str, int] = {}
    problems = []
    for i, sub in enumerate(model.subscribers):
        key = sub.email.casefold()
        if key in first:
            problems.append(
                f"subscribers[{i}].email: {sub.email} is already subscribers[{first[key]}]; "
                "merge their keywords into one entry"
            )
        else:
            first[key] = i
    return problems


def _read_libraries(
    model: _FileModel, base: Path
) -> tuple[dict[int, tuple[Path, tuple[Liked, ...]]], list[str]]:
    """Each subscriber's ``library:`` file, read now so a bad one stops start-up (exit 78)."""
    found: dict[int, tuple[Path, tuple[Liked, ...]]] = {}
    problems = []
    for i, sub in enumerate(model.subscribers):
        if sub.library is None:
            continue
        where = Path(sub.library).expanduser()
        where = where if where.is_absolute() else base / where
        try:
            found[i] = (where, library.read_library(where))
        except ConfigError as exc:
            problems += [f"subscribers[{i}].library: {where}: {p}" for p in exc.problems]
    return found, problems


def _to_config(
    model: _FileModel,
    path: Path,
    env: Mapping[str, str],
    libraries: Mapping[int, tuple[Path, tuple[Liked, ...]]],
) -> Config:
    s = model.settings
    base = path.parent

    def resolve(p: str | None) -> Path | None:
        if p is None:
            return None
        q = Path(p).expanduser()
        return q if q.is_absolute() else base / q

    hh, mm, *ss = (int(x) for x in s.send_at.split(":"))
    settings = Settings(
        send_at=time(hh, mm, ss[0] if ss else 0),
        timezone=s.timezone,
        days=tuple(s.days),
        lookback_days=s.lookback_days,
        max_papers_per_keyword=s.max_papers_per_keyword,
        database=resolve(s.database) or base / "digest.json",
        templates=resolve(s.templates),
        archive=resolve(s.archive),
        arxiv=ArxivSettings(
            api_url=s.arxiv.api_url,
            request_interval=s.arxiv.request_interval,
            page_size=s.arxiv.page_size,
            timeout=s.arxiv.timeout,
            categories=tuple(s.arxiv.categories),
            max_retries=s.arxiv.max_retries,
            contact=s.arxiv.contact or f"mailto:{parseaddr(s.smtp.from_)[1]}",
        ),
        smtp=SmtpSettings(
            host=s.smtp.host,
            port=s.smtp.port,
            security=s.smtp.security,
            username=s.smtp.username,
            password=smtp_password(env),
            sender=s.smtp.from_,
            timeout=s.smtp.timeout,
            ca_file=resolve(s.smtp.ca_file),
            connections=s.smtp.connections,
        ),
        inbox=None if s.inbox is None else _inbox(s.inbox, resolve, env),
    )
    subscribers = tuple(
        Subscriber(
            email=sub.email,
            name=unicodedata.normalize("NFC", sub.name) if sub.name else None,
            keywords=tuple(sub.keywords),
            exclude=tuple(sub.exclude),
            categories=tuple(sub.categories),
            authors=tuple(sub.authors),
            frequency=sub.frequency,
            weekday=sub.weekday,
            include_revisions=sub.include_revisions,
            send_empty=sub.send_empty,
            max_papers_per_keyword=sub.max_papers_per_keyword,
            likes=library.merge_likes(sub.likes, libraries[i][1] if i in libraries else ()),
            library=libraries[i][0] if i in libraries else None,
        )
        for i, sub in enumerate(model.subscribers)
    )
    return Config(settings=settings, subscribers=subscribers, path=path)


def _inbox(
    m: _InboxModel, resolve: Callable[[str | None], Path | None], env: Mapping[str, str]
) -> InboxSettings:
    return InboxSettings(
        host=m.host,
        username=m.username,
        port=m.port or default_port(m.security),
        security=m.security,
        password=imap_password(env),
        folder=m.folder,
        handled_folder=m.handled_folder,
        poll_interval=m.poll_interval,
        timeout=m.timeout,
        ca_file=resolve(m.ca_file),
    )


def smtp_password(env: Mapping[str, str]) -> str | None:
    """``$DIGEST_SMTP_PASSWORD``, else systemd's credential ``smtp-password``.

    The password never comes from the YAML (it would end up in backups and
    version control) and is never logged (``repr=False`` on the field).
    """
    return _secret(env, "DIGEST_SMTP_PASSWORD", "smtp-password")


def imap_password(env: Mapping[str, str]) -> str | None:
    """``$DIGEST_IMAP_PASSWORD``, else systemd's credential ``imap-password``."""
    return _secret(env, "DIGEST_IMAP_PASSWORD", "imap-password")


def _secret(env: Mapping[str, str], var: str, credential: str) -> str | None:
    if env.get(var):
        return env[var]
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds:
        try:
            return (Path(creds) / credential).read_text(encoding="utf-8").strip() or None
        except OSError:
            return None
    return None
