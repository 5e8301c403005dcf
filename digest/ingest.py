"""The thin shell around ``replies.handle``: one message in, state saved, maybe one mail out.

``digest ingest`` (an MTA pipe alias, procmail, fetchmail's ``mda``) and the
IMAP poller both call ``ingest_message``. Its result is an exit code in the
MTA's language (sysexits): 0 when the message was handled or deliberately
ignored, 75 (EX_TEMPFAIL) when it must be offered again later, e.g. because
the database is busy. Nothing here returns 78 or raises: for a pipe that
would bounce a reader's unsubscribe back to them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any, BinaryIO, Protocol

from digest.errors import EXIT_OK, EXIT_TEMPFAIL, DigestError
from digest.readers import ReaderState, from_dict, to_dict
from digest.replies import MAX_MESSAGE_BYTES, Handling, handle
from digest.tokens import ReplySecret

log = logging.getLogger(__name__)

_CHUNK = 1 << 16


class ReaderStore(Protocol):
    """What ingesting needs from the store (the lead's TinyDB store provides it)."""

    def reader_state(self, address: str) -> Mapping[str, Any] | None:
        """The stored dict for a subscriber ({} if none yet); None if not a subscriber."""

    def set_reader_state(self, address: str, state: Mapping[str, Any]) -> None:
        """Save (and flush) the dict ``readers.to_dict`` made."""


@dataclass(frozen=True, slots=True)
class Ingested:
    exit_code: int
    handling: Handling | None  # None when the message could not be handled at all
    sent: bool = False  # a confirmation mail went out


def read_message(stream: BinaryIO, limit: int = MAX_MESSAGE_BYTES) -> bytes:
    """The first ``limit`` bytes of ``stream``, reading (and dropping) the rest.

    An MTA pipe expects its child to take the whole message; a child that
    exits early makes it see a broken pipe and retry or bounce.
    """
    kept = bytearray()
    while chunk := stream.read(_CHUNK):
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]
    return bytes(kept)


def ingest_message(
    raw: bytes,
    *,
    secret: ReplySecret,
    operator: Address,
    store: ReaderStore,
    send: Callable[[EmailMessage], None],
    now: datetime,
    list_name: str = "Daily Papers",
) -> Ingested:
    """Classify, apply, save, answer; the exit code for the MTA."""

    def state_of(address: str) -> ReaderState | None:
        doc = store.reader_state(address)
        return None if doc is None else from_dict(doc, who=address)

    try:
        handling = handle(
            raw,
            secret=secret,
            operator=operator,
            state_of=state_of,
            now=now,
            list_name=list_name,
        )
        response = handling.response
        if response is not None and handling.reader is not None and response.effects.changed:
            store.set_reader_state(handling.reader, to_dict(response.state))
    except (DigestError, OSError) as exc:
        # A busy or damaged database: the MTA keeps the message and retries.
        log.warning("reply not handled, will be retried: %s", exc)
        return Ingested(EXIT_TEMPFAIL, None)
    log.info("reply: %s", handling.log)
    if response is None or response.reply is None:
        return Ingested(EXIT_OK, handling)
    try:
        send(response.reply)
    except Exception as exc:  # the state is saved; a lost confirmation is asked for again
        log.warning("confirmation to %s not sent: %s", handling.reader, exc)
        return Ingested(EXIT_OK, handling)
    return Ingested(EXIT_OK, handling, sent=True)
