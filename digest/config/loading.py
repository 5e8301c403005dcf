"""Reading subscribers.yaml into the frozen ``Config``: the file, environment overrides, secrets.

The only module that imports yaml. ``load`` reads the file, ``parse`` reads
the YAML with positions (refusing duplicate keys), overlays the ``DIGEST_*``
variables, has ``digest.config.schema`` validate the result and builds the frozen
``Config`` of ``digest.models``, with passwords from ``digest.config.credentials``.
Every problem comes out in one ``ConfigError``, each with its place
(``subscribers[2].email: ...``, or the YAML line and column). A ``library``
file that cannot be read is not one of them: it is that reader's problem
(``Subscriber.library_problem``), which fails their digest alone and which
``digest check`` reports (``address_report``).
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from datetime import time
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import yaml

from digest.config import library
from digest.config.credentials import imap_password, smtp_password
from digest.config.problems import show
from digest.config.schema import (
    FileModel,
    InboxModel,
    SettingsModel,
    SubscriberModel,
    validate,
)
from digest.errors import ConfigError
from digest.models import (
    ArxivSettings,
    Config,
    InboxSettings,
    Liked,
    Security,
    Settings,
    SmtpSettings,
    Subscriber,
    address_key,
    needs_smtputf8,
    wire_address,
)

DEFAULT_CONFIG = "subscribers.yaml"

# A subscriber's library: file, and the papers it lists as liked, or why it cannot be read.
LibraryFile = tuple[Path, tuple[Liked, ...] | str]

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
                None, None, f"duplicate key {show(key)}", key_node.start_mark
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
    """``--config``, else ``$DIGEST_CONFIG``, else ``subscribers.yaml`` in the current folder."""
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


def load_named(cli_path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Config:
    """The configuration a command names: ``--config``, ``$DIGEST_CONFIG`` or the default."""
    return load(resolve_path(cli_path, env), env, origin=path_origin(cli_path, env))


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
    model = validate(data, source, env_places)
    problems = _duplicate_subscribers(model)
    if problems:
        raise ConfigError(source, problems)
    libraries = _read_libraries(model, path.resolve().parent)
    return _to_config(model, path.resolve(), env, libraries)


# --------------------------------------------------------------------------
# Environment overrides and checks across entries


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


def _duplicate_subscribers(model: FileModel) -> list[str]:
    """One problem per address listed again: two spellings of one reader (``address_key``)."""
    first: dict[str, int] = {}
    problems = []
    for i, sub in enumerate(model.subscribers):
        key = address_key(sub.email)
        if key in first:
            problems.append(
                f"subscribers[{i}].email: {sub.email} is already subscribers[{first[key]}]; "
                "merge their keywords into one entry"
            )
        else:
            first[key] = i
    return problems


def _read_libraries(model: FileModel, base: Path) -> dict[int, LibraryFile]:
    """Each subscriber's ``library:`` file, read now, or why it cannot be.

    A file that cannot be read or parsed fails its reader's digest, not the
    configuration: it is often an export another program rewrites (Zotero),
    and one reader's half-written file must not stop everyone's mail.
    """
    found: dict[int, LibraryFile] = {}
    for i, sub in enumerate(model.subscribers):
        if sub.library is None:
            continue
        where = Path(sub.library).expanduser()
        where = where if where.is_absolute() else base / where
        try:
            found[i] = (where, library.read_library(where))
        except ConfigError as exc:
            found[i] = (where, "; ".join(f"{where}: {p}" for p in exc.problems))
    return found


def address_report(config: Config, smtputf8: bool | None = None) -> tuple[list[str], list[str]]:
    """What ``digest check`` says of the readers it treats specially: (notes, problems).

    Notes say how an internationalised address will be sent; problems (with
    their place) are readers whose digest would fail every cycle: a
    ``library`` that cannot be read, or, when ``smtputf8`` is known
    (``check --smtp``), a local part outside ASCII and a server without
    SMTPUTF8 (RFC 6531).
    """
    smtp = config.settings.smtp
    server = f"{smtp.host}:{smtp.port}"
    notes: list[str] = []
    problems: list[str] = []
    for i, sub in enumerate(config.subscribers):
        email = sub.email
        if needs_smtputf8(email):
            if smtputf8 is None:
                notes.append(
                    f"{email}: its local part is not ASCII: it is sent only through an SMTP "
                    "server that offers SMTPUTF8 (RFC 6531), and where yours does not, this "
                    "reader's digest fails and the others go out; check --smtp asks the server"
                )
            elif smtputf8:
                notes.append(f"{email}: sent with SMTPUTF8, which {server} offers")
            else:
                problems.append(
                    f"subscribers[{i}].email: {email}: its local part is not ASCII and {server} "
                    "does not offer SMTPUTF8 (RFC 6531): this reader's digest would fail every "
                    "cycle (the others go out); use an SMTP server that offers it, or another "
                    "address"
                )
        wire = wire_address(email)
        if wire.rpartition("@")[2] != email.rpartition("@")[2]:
            notes.append(f"{email}: sent to {wire} (the domain in IDNA A-labels, RFC 5890)")
        if sub.library_problem is not None:
            problems.append(
                f"subscribers[{i}].library: {sub.library_problem}; this reader's digest fails "
                "each cycle until it can be read (the others go out)"
            )
    return notes, problems


# --------------------------------------------------------------------------
# Building the frozen Config


def _to_config(
    model: FileModel, path: Path, env: Mapping[str, str], libraries: Mapping[int, LibraryFile]
) -> Config:
    subscribers = tuple(
        _subscriber(sub, libraries.get(i)) for i, sub in enumerate(model.subscribers)
    )
    return Config(
        settings=_settings(model.settings, path.parent, env), subscribers=subscribers, path=path
    )


def _resolve(base: Path, p: str | None) -> Path | None:
    """A path from the file: ``~`` expanded, relative to the file's folder."""
    if p is None:
        return None
    q = Path(p).expanduser()
    return q if q.is_absolute() else base / q


def _settings(s: SettingsModel, base: Path, env: Mapping[str, str]) -> Settings:
    hh, mm, *ss = (int(x) for x in s.send_at.split(":"))
    return Settings(
        send_at=time(hh, mm, ss[0] if ss else 0),
        timezone=s.timezone,
        days=tuple(s.days),
        lookback_days=s.lookback_days,
        max_papers_per_keyword=s.max_papers_per_keyword,
        database=_resolve(base, s.database) or default_database(env),
        templates=_resolve(base, s.templates),
        archive=_resolve(base, s.archive),
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
            ca_file=_resolve(base, s.smtp.ca_file),
            connections=s.smtp.connections,
        ),
        inbox=None if s.inbox is None else _inbox(s.inbox, base, env),
        owner=s.owner,
        semantic=s.semantic,
    )


def _inbox(m: InboxModel, base: Path, env: Mapping[str, str]) -> InboxSettings:
    return InboxSettings(
        host=m.host,
        username=m.username,
        port=m.port or imap_default_port(m.security),
        security=m.security,
        password=imap_password(env),
        folder=m.folder,
        handled_folder=m.handled_folder,
        poll_interval=m.poll_interval,
        timeout=m.timeout,
        ca_file=_resolve(base, m.ca_file),
    )


def _subscriber(sub: SubscriberModel, library_file: LibraryFile | None) -> Subscriber:
    where, liked = library_file or (None, ())
    problem = liked if isinstance(liked, str) else None
    return Subscriber(
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
        likes=library.merge_likes(sub.likes, () if isinstance(liked, str) else liked),
        library=where,
        library_problem=problem,
    )


def default_database(env: Mapping[str, str]) -> Path:
    """Where the database (and so every state file) goes when ``settings.database`` is not set.

    Never the current folder, nor the configuration's (often a checkout, or
    /etc): systemd's ``$STATE_DIRECTORY`` (the unit's ``StateDirectory=``,
    the first when it names several), else the XDG state home
    (``$XDG_STATE_HOME``, when absolute as the XDG spec requires, else
    ``~/.local/state``), in a folder ``digest``.
    """
    unit = env.get("STATE_DIRECTORY", "").split(":")[0]
    if unit:
        return Path(unit) / "digest.json"
    xdg = Path(env.get("XDG_STATE_HOME", ""))
    if not xdg.is_absolute():
        home = env.get("HOME")
        xdg = (Path(home) if home else Path.home()) / ".local" / "state"
    return xdg / "digest" / "digest.json"


def imap_default_port(security: Security) -> int:
    """993 for implicit TLS (RFC 8314), 143 for plain and STARTTLS."""
    return 993 if security == "tls" else 143
