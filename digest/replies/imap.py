"""The IMAP protocol without a socket: folder names, FETCH and SEARCH answers, flags, ports.

Pure helpers for ``digest.replies.inbox`` (the I/O shell around imaplib), and the
types its callers see: a handler's ``Filed`` and a poll's ``PollResult``.
Here so that they can be tested on recorded answers, and so that
``digest.config.loading`` can pick the default port without importing imaplib.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

# What a handler says becomes of an inbox message: filed as handled (read),
# filed as ignored (left unread for a human), or left in place for the next poll.
Filed = Literal["handled", "ignored", "tempfail"]
Handle = Callable[[bytes], Filed]

HANDLED_KEYWORD = "$DigestHandled"


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll did, by UID (UIDs are stable within the folder)."""

    handled: tuple[int, ...] = ()
    ignored: tuple[int, ...] = ()
    deferred: tuple[int, ...] = ()  # handle() said tempfail: untouched, tried again next poll
    failed: tuple[int, ...] = ()  # handle() raised (a bug, logged): untouched like tempfail
    moved: bool = True  # False when the server could only flag, not move


def mailbox_name(name: str) -> str:
    """A folder name as an IMAP quoted string, non-ASCII in modified UTF-7 (RFC 3501 §5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ","))
            out.append("-")
            pending.clear()

    for ch in name:
        if " " <= ch <= "~":
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    encoded = "".join(out).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{encoded}"'


def parse_search(data: Sequence[object]) -> tuple[int, ...]:
    """``[b'3 4 7']`` (the SEARCH response) -> ``(3, 4, 7)``."""
    uids: list[int] = []
    for item in data:
        if isinstance(item, bytes):
            uids.extend(int(tok) for tok in item.split() if tok.isdigit())
    return tuple(uids)


_UID = re.compile(rb"\bUID (\d+)")
def parse_body(data: Sequence[object], uid: int) -> bytes | None:
    """The literal of ``UID n BODY[] {len}`` for ``uid``; None if the message is gone.

    The server may mix unsolicited FETCH responses (flag changes made by
    another client) into the answer, so the UID is checked.
    """
    for item in data:
        if not (isinstance(item, tuple) and len(item) == 2):
            continue
        head, body = item
        if not (isinstance(head, bytes) and isinstance(body, bytes)):
            continue
        m = _UID.search(head)
        if b"BODY[]" in head and m and int(m.group(1)) == uid:
            return body
    return None


def parse_capabilities(data: Sequence[object]) -> frozenset[str]:
    """``[b'IMAP4rev1 MOVE UIDPLUS']`` -> ``{'IMAP4REV1', 'MOVE', 'UIDPLUS'}``."""
    caps: set[str] = set()
    for item in data:
        if isinstance(item, bytes):
            caps.update(item.decode("ascii", "replace").upper().split())
    return frozenset(caps)


def flags_for(filed: Filed) -> str:
    """Handled mail is marked read; ignored mail stays unread so a human notices it."""
    return f"({HANDLED_KEYWORD} \\Seen)" if filed == "handled" else f"({HANDLED_KEYWORD})"
