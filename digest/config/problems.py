"""How a problem in subscribers.yaml is worded: its place, a short quote, a hint at the fix.

Pure: it reads pydantic's error details as plain mappings (``loc``, ``msg``,
``type``, ``input``), so that pydantic stays imported in ``digest.config.schema``
alone.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

# Values quoted in error messages are cut short: a 10 MB string or a YAML
# alias bomb (a list of lists nine deep, 9**9 leaves) must give a short
# message, not a repr that never ends.
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlist = _REPR.maxdict = 5
_REPR.maxlevel = 1


def show(value: object) -> str:
    """``value``'s repr, cut short enough for one line of an error message."""
    return _REPR.repr(value)


def place(loc: tuple[int | str, ...]) -> str:
    """``("subscribers", 2, "email")`` -> ``subscribers[2].email``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def format_errors(
    errors: Iterable[Mapping[str, Any]], data: dict[str, Any], env_places: dict[str, str]
) -> list[str]:
    """One line per validation error: the place (with the reader, or the variable that
    set it), then what is wrong, reworded where pydantic's own words would mislead."""
    problems = []
    for err in errors:
        # pydantic appends the validator kind to unions/literals; drop those.
        loc = tuple(p for p in err["loc"] if p not in ("function-after",))
        where = place(loc) or "(top level)"
        if loc[:1] == ("subscribers",) and len(loc) > 1 and isinstance(loc[1], int):
            who = _subscriber_email(data, loc[1])
            if who and loc[2:] != ("email",):
                where += f" ({who})"
        var = env_places.get(".".join(str(p) for p in loc).replace("from_", "from"))
        if var:
            where += f" (from ${var})"
        problems.append(f"{where}: {_message(err, loc)}")
    return problems


def _message(err: Mapping[str, Any], loc: tuple[int | str, ...]) -> str:
    msg: str = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return _unknown_key_hint(loc)
    if err["type"] == "literal_error":
        return f"{show(err.get('input'))}: {msg}"
    if loc == ("settings", "send_at") and isinstance(err.get("input"), int):
        return _sexagesimal_hint(err["input"])
    if err["type"] == "too_short" and loc and loc[-1] == "keywords":
        return "needs at least one keyword"
    if err["type"] == "too_short" and loc == ("subscribers",):
        return "needs at least one subscriber"
    return msg


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
