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
from collections.abc import Mapping
from datetime import time
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from digest.errors import ConfigError
from digest.models import (
    WEEKDAYS,
    ArxivSettings,
    Config,
    Settings,
    SmtpSettings,
    Subscriber,
)

DEFAULT_CONFIG = "subscribers.yaml"

# name of the environment variable -> (path in the YAML, type)
ENV_OVERRIDES: dict[str, tuple[tuple[str, ...], type]] = {
    "DIGEST_DATABASE": (("settings", "database"), str),
    "DIGEST_ARXIV_API_URL": (("settings", "arxiv", "api_url"), str),
    "DIGEST_ARXIV_REQUEST_INTERVAL": (("settings", "arxiv", "request_interval"), str),
    "DIGEST_SMTP_HOST": (("settings", "smtp", "host"), str),
    "DIGEST_SMTP_PORT": (("settings", "smtp", "port"), str),
    "DIGEST_SMTP_SECURITY": (("settings", "smtp", "security"), str),
    "DIGEST_SMTP_USERNAME": (("settings", "smtp", "username"), str),
    "DIGEST_SMTP_FROM": (("settings", "smtp", "from"), str),
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
    if not re.fullmatch(r"[a-z][a-z\-]*(\.[A-Za-z\-]+)?", value):
        raise ValueError(
            f"category {_show(value)} is not an arXiv category or archive "
            "(e.g. cs.LG, or cs for all cs.*)"
        )
    return value


def _weekday(value: str) -> str:
    """ "Monday", "mon" and "MON" all mean ``mon``."""
    day = value.strip().lower()[:3]
    if day not in WEEKDAYS:
        raise ValueError(f"{_show(value)} is not a weekday (mon, tue, ... sun)")
    return day


Category = Annotated[str, AfterValidator(_category)]
Weekday = Annotated[str, AfterValidator(_weekday)]


class _ArxivModel(_Strict):
    api_url: str = _ARXIV.api_url
    request_interval: float = Field(default=_ARXIV.request_interval, ge=0)
    page_size: int = Field(default=_ARXIV.page_size, ge=1, le=2000)
    timeout: float = Field(default=_ARXIV.timeout, gt=0)
    categories: list[Category] = Field(default_factory=list)
    max_retries: int = Field(default=_ARXIV.max_retries, ge=0, le=10)

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
        local, _, domain = addr.rpartition("@")
        if not local or not domain or " " in addr:
            raise ValueError(
                f"{_show(v)} is not an address like 'Daily Papers <papers@example.org>'"
            )
        return v


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
    keywords: list[str] = Field(min_length=1)
    exclude: list[str] = Field(default_factory=list)
    categories: list[Category] = Field(default_factory=list)
    authors: list[str] = Field(default_factory=list)
    frequency: Literal["daily", "weekly"] = "daily"
    weekday: Weekday | None = None
    include_revisions: bool = False
    send_empty: bool = False
    max_papers_per_keyword: int | None = Field(default=None, ge=1, le=200)

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


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[misc,valid-type]
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


def load(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, validate and resolve ``path``; raise ``ConfigError`` with every problem."""
    env = os.environ if env is None else env
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            source,
            [
                "file not found; pass --config PATH or set DIGEST_CONFIG "
                "(subscribers.yaml in the project shows every key)"
            ],
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [f"cannot read the file: {exc}"]) from exc
    return parse(text, path, env)


def parse(text: str, path: Path, env: Mapping[str, str]) -> Config:
    """Validate the text of a config file found at ``path`` (pure but for the secret)."""
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
    if problems:
        raise ConfigError(source, problems)
    return _to_config(model, path.resolve(), env)


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
            msg = (
                "unknown key (check the spelling; subscribers.yaml in the project lists every key)"
            )
        elif err["type"] == "literal_error":
            msg = f"{_show(err.get('input'))}: {msg}"
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


def _to_config(model: _FileModel, path: Path, env: Mapping[str, str]) -> Config:
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
        )
        for sub in model.subscribers
    )
    return Config(settings=settings, subscribers=subscribers, path=path)


def smtp_password(env: Mapping[str, str]) -> str | None:
    """``$DIGEST_SMTP_PASSWORD``, else systemd's credential ``smtp-password``.

    The password never comes from the YAML (it would end up in backups and
    version control) and is never logged (``repr=False`` on the field).
    """
    if env.get("DIGEST_SMTP_PASSWORD"):
        return env["DIGEST_SMTP_PASSWORD"]
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds:
        try:
            return (Path(creds) / "smtp-password").read_text(encoding="utf-8").strip() or None
        except OSError:
            return None
    return None


def format_sender(sender: str) -> Address:
    """The ``from`` setting as an ``email.headerregistry.Address``."""
    name, addr = parseaddr(sender)
    local, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)
