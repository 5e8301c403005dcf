"""Reader commands as text: the one line a mailto link sends and a reply carries.

A command line reads ``<action> [<paper id>] <reader address> <token>``, e.g.
``unsubscribe alice@example.org KZ3M...`` or ``more 2202.12139
alice@example.org QX7A...``; the token ends with the day it was issued
(``tokens``). The same line goes into the subject and the
body of each mailto link (RFC 6068), so the command survives a client that
drops either; ``find_commands`` is the one parser of what ``command_line``
writes. The address is spelled out because a reader may reply from another
address than the one we mail (forwarding, aliases): the token, not the From
header, says who the command is for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from email.headerregistry import Address
from email.policy import Policy
from functools import lru_cache
from typing import Literal, get_args
from urllib.parse import quote

from digest.replies.tokens import (
    DAY_LENGTH,
    MAC_LENGTH,
    ReplySecret,
    Signer,
    command_token,
    normalise_address,
    normalise_argument,
)

Action = Literal["unsubscribe", "pause", "resume", "daily", "weekly", "more", "less"]
ACTIONS: tuple[Action, ...] = get_args(Action)
PAPER_ACTIONS: frozenset[str] = frozenset({"more", "less"})  # the ones that name a paper
# The actions that bring a reader more mail, or wider: from an address other
# than the reader's, these ask the reader first (whoever holds a forwarded
# digest could otherwise sign its reader up again). The others only lower it.
RAISES: frozenset[str] = frozenset({"resume", "daily", "more"})

# What a reader sees in the compose window a link opens, and what the
# confirmation mail offers.
DESCRIPTIONS: dict[Action, str] = {
    "unsubscribe": "stop all mail to {address}",
    "pause": "pause mail to {address} for a week",
    "resume": "resume mail to {address}",
    "daily": "send {address} a digest every day",
    "weekly": "send {address} one digest a week",
    "more": "show {address} more papers like {argument}",
    "less": "show {address} fewer papers like {argument}",
}

# What the acknowledgement of a command offers to undo it. "more" and "less"
# move a paper between the likes and the dislikes, the nearest to an undo.
UNDO: dict[Action, Action] = {
    "unsubscribe": "resume",
    "pause": "resume",
    "resume": "unsubscribe",
    "daily": "weekly",
    "weekly": "daily",
    "more": "less",
    "less": "more",
}

_COMMAND_RE = re.compile(
    r"(?<![\w.-])(?P<action>" + "|".join(ACTIONS) + r")"
    r"(?:\s+(?P<argument>[\w.-]+(?:/[\w.-]+)?))?"  # an arXiv id, old style with a slash
    r"\s+<?(?P<address>[^\s<>@\"]+@[^\s<>@\"]+?)>?"
    # a dated token, or an undated one from before tokens carried their day
    rf"\s+\[?(?P<token>[A-Za-z2-7]{{{MAC_LENGTH}}}(?:[A-Za-z2-7]{{{DAY_LENGTH}}})?)\]?"
    r"(?![\w])",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class CommandLine:
    """A command as written in a message, not yet checked against its token."""

    action: Action
    address: str  # normalised
    argument: str  # normalised; "" for actions without one
    token: str  # upper case


def command_line(
    secret: ReplySecret, address: str, action: Action, argument: str = "", *, issued: date
) -> str:
    """The text that carries one command, token (made on ``issued``) included."""
    _check(action, argument)
    token = command_token(secret, address, action, argument, issued=issued)
    parts = [action, normalise_argument(argument), normalise_address(address), token]
    return " ".join(p for p in parts if p)


def find_commands(text: str) -> tuple[CommandLine, ...]:
    """Every well-formed command line in ``text``, in order, duplicates dropped."""
    found: list[CommandLine] = []
    for m in _COMMAND_RE.finditer(text):
        action = m["action"].lower()
        argument = normalise_argument(m["argument"] or "")
        # The optional argument group can swallow nothing it should not,
        # but an action given the wrong arity is not a command we wrote.
        if (action in PAPER_ACTIONS) != bool(argument):
            continue
        cmd = CommandLine(
            action=_as_action(action),
            address=normalise_address(m["address"]),
            argument=argument,
            token=m["token"].upper(),
        )
        if cmd not in found:
            found.append(cmd)
    return tuple(found)


def mailto(to: Address | str, *, subject: str, body: str = "") -> str:
    """An RFC 6068 ``mailto:`` URI: every character outside "unreserved" percent-encoded.

    Spaces become ``%20`` (never ``+``, which RFC 6068 §5 reads as a plus
    sign) and line breaks ``%0D%0A`` (§5: CRLF in a body).
    """
    uri = f"{_mailto_to(to)}?subject={_q(subject)}"
    if body:
        uri += f"&body={_q(_crlf(body))}"
    return uri


def command_mailto(
    secret: ReplySecret,
    operator: Address | str,
    address: str,
    action: Action,
    argument: str = "",
    *,
    issued: date,
    list_name: str = "Daily Papers",
) -> str:
    """The link that, clicked and sent, performs ``action`` for ``address``.

    Equal to ``mailto(operator, subject=line, body=...)``, assembled from
    pieces quoted once each: percent-encoding works character by character,
    and a digest for 10,000 readers carries over half a million links.
    """
    return _Links(secret, operator, address, list_name, issued).link(action, argument)


class _Links:
    """One reader's links: what is the same in all of them is computed once."""

    def __init__(
        self,
        secret: ReplySecret,
        operator: Address | str,
        address: str,
        list_name: str,
        issued: date,
    ) -> None:
        self.signer = Signer(secret, address, issued)
        self.to = _mailto_to(operator)
        self.address = _q(normalise_address(address))
        self.list_name = _q(list_name)

    def link(self, action: Action, argument: str = "", *, body: bool = True) -> str:
        _check(action, argument)
        argument = normalise_argument(argument)
        token = self.signer.token(action, argument)
        values = {"address": self.address, "argument": _q(argument), "list_name": self.list_name}
        values["line"] = "%20".join(
            p for p in (action, values["argument"], self.address, token) if p
        )
        if not body:
            return f"{self.to}?subject={values['line']}"
        text = "".join([values[p[1:]] if p[0] == "\0" else p for p in _body_pieces(action)])
        return f"{self.to}?subject={values['line']}&body={text}"


@lru_cache(maxsize=len(ACTIONS))
def _body_pieces(action: Action) -> tuple[str, ...]:
    """The body template: literal text already quoted, placeholders as NUL + name.

    Quoted text never contains a NUL (it would be ``%00``), so the two cannot mix.
    """
    return tuple(
        "\0" + piece[1:-1] if _PLACEHOLDER.fullmatch(piece) else _q(_crlf(piece))
        for piece in _PLACEHOLDER.split(_BODIES[action])
        if piece
    )


_BODIES = {
    action: f"Send this message as it is to {what} ({{list_name}}).\n\n{{line}}\n"
    for action, what in DESCRIPTIONS.items()
}
_PLACEHOLDER = re.compile(r"(\{(?:address|argument|list_name|line)\})")


class UnfoldedHeader(str):
    """A header value written on one line, never folded or RFC 2047-encoded.

    A tokened mailto is one long word. ``email.policy.SMTP`` (which
    aiosmtplib flattens every message with) folds at 78 characters, and a
    word longer than that becomes ``=?utf-8?q?...?=`` encoded words, which no
    client reads as a URI (RFC 2369 wants the bare ``<mailto:...>``). The
    email package writes a value that has a ``name`` by calling its ``fold``
    (``EmailPolicy.header_store_parse`` and ``fold``); RFC 5322 §2.1.1 allows
    lines up to 998 characters.
    """

    name: str

    def __new__(cls, name: str, value: str) -> UnfoldedHeader:
        if any(c in value for c in "\r\n\0") or len(name) + len(value) + 2 > 998:
            raise ValueError(f"{name} cannot be written on one header line")
        self = super().__new__(cls, value)
        self.name = name
        return self

    def fold(self, *, policy: Policy) -> str:
        return f"{self.name}: {self}{policy.linesep}"


@dataclass(frozen=True, slots=True)
class PaperLinks:
    more: str
    less: str


@dataclass(frozen=True, slots=True)
class ReaderLinks:
    """Every link one digest carries for its reader, ready for a template.

    ``list_unsubscribe`` is the whole ``List-Unsubscribe`` header value
    (RFC 2369: the URI in angle brackets), to be set as it is:
    ``msg["List-Unsubscribe"] = links.list_unsubscribe``. It carries the
    command in its subject only, to stay short; Gmail's and Apple Mail's
    unsubscribe buttons send that subject unchanged. The per-paper links
    do the same: with the explaining body, two links under every paper
    cost about 930 bytes of HTML each and pushed papers out of the larger
    digests of a realistic day (benchmarks/reply_links_size.py); the
    subject already reads "more <paper> <address> <token>".
    """

    list_unsubscribe: UnfoldedHeader
    unsubscribe: str
    pause: str
    resume: str
    daily: str
    weekly: str
    papers: dict[str, PaperLinks]  # paper id -> its links

    def paper(self, paper_id: str) -> PaperLinks:
        return self.papers[paper_id]


def reader_links(
    secret: ReplySecret,
    operator: Address | str,
    address: str,
    paper_ids: tuple[str, ...] = (),
    *,
    issued: date,
    list_name: str = "Daily Papers",
) -> ReaderLinks:
    """Every link of one digest for ``address``, its tokens dated ``issued``."""
    link = _Links(secret, operator, address, list_name, issued).link
    line = command_line(secret, address, "unsubscribe", issued=issued)
    header_uri = mailto(operator, subject=line)
    return ReaderLinks(
        list_unsubscribe=UnfoldedHeader("List-Unsubscribe", f"<{header_uri}>"),
        unsubscribe=link("unsubscribe"),
        pause=link("pause"),
        resume=link("resume"),
        daily=link("daily"),
        weekly=link("weekly"),
        # an id no command can carry (a hostile or broken feed entry) gets no
        # links; its paper is shown all the same
        papers={
            pid: PaperLinks(more=link("more", pid, body=False), less=link("less", pid, body=False))
            for pid in paper_ids
            if is_paper_id(pid)
        },
    )


@lru_cache(maxsize=4096)
def _q(text: str) -> str:
    return quote(text, safe="")  # UTF-8, then percent-encoded (RFC 6068 §2)


def _mailto_to(to: Address | str) -> str:
    return _quoted_to(to.addr_spec if isinstance(to, Address) else to)


@lru_cache(maxsize=64)
def _quoted_to(addr: str) -> str:
    local, _, domain = addr.rpartition("@")
    # §2: "%", "?", "#", "&" and the like must be escaped in the address;
    # RFC 3986 sub-delims may stay. "@" separates local part and domain.
    safe = "!$'()*+,;:="
    return f"mailto:{quote(local, safe=safe)}@{quote(domain, safe=safe)}"


def _crlf(text: str) -> str:
    return text.replace("\r", "").replace("\n", "\r\n")


_PAPER_ID = re.compile(r"[\w.-]+(?:/[\w.-]+)?")


def is_paper_id(argument: str) -> bool:
    """Whether ``argument`` can be carried by a command line (an arXiv id's characters)."""
    return _PAPER_ID.fullmatch(argument.strip()) is not None


def _check(action: str, argument: str) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown reader command {action!r}")
    if (action in PAPER_ACTIONS) != bool(argument.strip()):
        raise ValueError(f"{action!r} takes {'a paper id' if action in PAPER_ACTIONS else 'none'}")
    if argument and not is_paper_id(argument):
        raise ValueError(f"{argument!r} is not a paper id")


def _as_action(word: str) -> Action:
    for action in ACTIONS:
        if action == word:
            return action
    raise ValueError(word)
