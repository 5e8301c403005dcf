"""What an incoming message does: the reader's new state, and at most one answer.

``handle`` is the pure decision: ``replies.classify`` says what the message
is, ``readers.apply`` what that does to the reader, ``confirmation_message``
what (if anything) to answer. ``ingest_message`` is the thin shell around it
that ``digest ingest`` (an MTA pipe alias, procmail, fetchmail's ``mda``)
and the IMAP poller both call. Its result is an exit code in the MTA's
language (sysexits): 0 when the message was handled or deliberately
ignored, 75 (EX_TEMPFAIL) when it must be offered again later, e.g. because
the database is busy. Nothing here returns 78 or raises: for a pipe that
would bounce a reader's unsubscribe back to them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, BinaryIO, Protocol

from digest.errors import EXIT_OK, EXIT_TEMPFAIL, DigestError
from digest.replies.classify import (
    MAX_MESSAGE_BYTES,
    Bounce,
    Command,
    Ignore,
    Outcome,
    PlainReply,
    classify,
    describe,
    reader_of,
)
from digest.replies.commands import DESCRIPTIONS, command_line, command_mailto
from digest.replies.readers import (
    AskedByPlainReply,
    Bounced,
    Effects,
    Event,
    ReaderState,
    Verified,
    apply,
    from_dict,
    to_dict,
)
from digest.replies.tokens import ReplySecret

log = logging.getLogger(__name__)

_CHUNK = 1 << 16


# -- the pure decision ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Response:
    state: ReaderState
    effects: Effects
    reply: EmailMessage | None  # a confirmation to send, if any


def event_of(outcome: Outcome) -> Event | None:
    """The reader event an outcome amounts to; None for what changes no reader."""
    match outcome:
        case Command(_, action, argument, _, message_id):
            return Verified(action, argument, message_id)
        case Bounce(_, hard, status, message_id, verified):
            return Bounced(hard, status, message_id, verified)
        case PlainReply(_, action, message_id, _):
            return AskedByPlainReply(action, message_id)
        case _:
            return None


def respond(
    outcome: Command | Bounce | PlainReply,
    state: ReaderState,
    now: datetime,
    *,
    secret: ReplySecret,
    operator: Address,
    list_name: str = "Daily Papers",
) -> Response:
    """The reader's new state, the effects, and the confirmation mail to send (if any)."""
    event = event_of(outcome)
    assert event is not None  # Command, Bounce and PlainReply all map to an event
    new, effects = apply(state, event, now)
    reply = None
    if effects.confirm is not None and isinstance(outcome, PlainReply):
        reply = confirmation_message(
            outcome, secret=secret, operator=operator, now=now, list_name=list_name
        )
    return Response(new, effects, reply)


@dataclass(frozen=True, slots=True)
class Handling:
    """What one incoming message did: the shell saves ``state`` and sends ``reply``."""

    outcome: Outcome
    reader: str | None = None  # the subscriber whose state changed or was consulted
    response: Response | None = None

    @property
    def understood(self) -> bool:
        """Whether a mailbox may file the message away as handled.

        An ignored message (no command, a forged token, unreadable) may be a
        person writing to the operator: the IMAP poller leaves it where the
        operator will see it.
        """
        return not isinstance(self.outcome, Ignore)

    @property
    def log(self) -> str:
        what = describe(self.outcome)
        return f"{what}: {self.response.effects.log}" if self.response else what


def handle(
    raw: bytes,
    *,
    secret: ReplySecret,
    operator: Address,
    state_of: Callable[[str], ReaderState | None],
    now: datetime,
    list_name: str = "Daily Papers",
    also_ours: Collection[str] = (),
) -> Handling:
    """Everything ``digest ingest`` and the IMAP poller decide about one message; pure.

    ``state_of(address)`` gives a subscriber's stored state (``ReaderState()``
    when none is stored yet) and None for an address that is not a
    subscriber: a bounce, command or plain reply for a stranger changes
    nothing and is never answered.
    """
    outcome = classify(raw, secret=secret, own_addresses=(operator.addr_spec, *also_ours))
    if not isinstance(outcome, Command | Bounce | PlainReply):
        return Handling(outcome)
    address = reader_of(outcome)
    state = state_of(address) if address else None
    if address is None or state is None:
        return Handling(Ignore(f"{describe(outcome)}, who is not a subscriber"))
    response = respond(outcome, state, now, secret=secret, operator=operator, list_name=list_name)
    return Handling(outcome, address, response)


def confirmation_message(
    request: PlainReply,
    *,
    secret: ReplySecret,
    operator: Address,
    now: datetime,
    list_name: str = "Daily Papers",
) -> EmailMessage:
    """The answer to a plain reply: the tokened link, mailed only to the From address.

    The subject never carries the token: an out-of-office echo of it must
    not be able to confirm. ``Auto-Submitted: auto-replied`` (RFC 3834 §5)
    tells well-behaved responders not to answer, and our own ``classify``
    ignores it should it come back.
    """
    address = request.sender
    what = DESCRIPTIONS[request.action].format(address=address, argument="")
    link = command_mailto(secret, operator, address, request.action, list_name=list_name)
    line = command_line(secret, address, request.action)
    msg = EmailMessage()
    msg["From"] = operator
    msg["To"] = Address(username=address.rpartition("@")[0], domain=address.rpartition("@")[2])
    msg["Subject"] = f"{list_name}: confirm to {what}"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=operator.domain or None)
    if request.message_id:
        msg["In-Reply-To"] = request.message_id
        msg["References"] = " ".join((*request.references, request.message_id))
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(
        f"Someone, probably you, asked {list_name} by email to {what}.\n"
        "\n"
        "A From address is easy to forge, so nothing has changed yet. To confirm,\n"
        "open this link and send the message it prepares, unchanged:\n"
        "\n"
        f"  {link}\n"
        "\n"
        "or send a message to "
        f"{operator.addr_spec} with this line as its subject:\n"
        "\n"
        f"  {line}\n"
        "\n"
        "Replying to this message does not confirm anything. If you did not ask\n"
        "for this, ignore this message.\n"
    )
    return msg


# -- the shell ---------------------------------------------------------------------------


class ReaderStore(Protocol):
    """What ingesting needs from the store (``digest.store.Store`` provides it)."""

    def reader_state(self, address: str) -> Mapping[str, Any] | None:
        """The stored dict for a subscriber ({} if none yet); None if not a subscriber."""

    def set_reader_state(self, address: str, state: Mapping[str, Any]) -> None:
        """Save (and flush) the dict ``readers.to_dict`` made."""


@dataclass(frozen=True, slots=True)
class Ingested:
    exit_code: int
    handling: Handling | None  # None when the message could not be handled at all
    # A confirmation for the caller to send, already counted in the saved state.
    # RFC 3834 §3.3: send it with a null envelope sender (MAIL FROM:<>), so
    # that its own bounce can never start a loop.
    reply: EmailMessage | None = None


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
    now: datetime,
    list_name: str = "Daily Papers",
    also_ours: Collection[str] = (),
) -> Ingested:
    """Classify, apply and save; the exit code for the MTA and the answer to send.

    The caller sends ``reply`` (synchronously from ``digest ingest``, on its
    event loop from the daemon's poller). If it fails to go out, log that and
    keep exit code 0: a retry would be refused as a replay, and the reader can
    simply ask again.
    """

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
            also_ours=also_ours,
        )
        response = handling.response
        if response is not None and handling.reader is not None and response.effects.changed:
            store.set_reader_state(handling.reader, to_dict(response.state))
    except (DigestError, OSError) as exc:
        # A busy or damaged database: the MTA keeps the message and retries.
        log.warning("reply not handled, will be retried: %s", exc)
        return Ingested(EXIT_TEMPFAIL, None)
    log.info("reply: %s", handling.log)
    return Ingested(EXIT_OK, handling, response.reply if response else None)
