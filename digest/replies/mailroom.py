"""The I/O around readers' replies: a message in, the reader's state saved, an answer out.

``digest ingest`` (an MTA pipe alias, procmail, fetchmail's ``mda``) and the
daemon's IMAP poller both come here, to ``Mailroom.take``: the one shell
around ``ingest.decide``. It finds what deciding needs (the reply secret
beside the database, the operator's address, which addresses are
subscribers), opens the store at the first message and keeps it until
``close`` (per message for ``digest ingest``, per poll for the poller, never
while a cycle holds it), saves what the decision changed, and says what
becomes of the message: an exit code in the MTA's language (sysexits), 0
when the message was handled or deliberately ignored, 75 (EX_TEMPFAIL) when
it must be offered again later, e.g. because the database is busy; the
poller reads the same as ``Filed``. Nothing here returns 78 or raises for a
message: for a pipe that would bounce a reader's unsubscribe back to them.
This module also sends the answers (confirmations, acknowledgements) with
the null envelope sender, and turns a cycle's SMTP refusal of a recipient
into a verified hard bounce.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import BinaryIO, Protocol

from digest.errors import EXIT_OK, EXIT_TEMPFAIL, DigestError
from digest.mail import Mailer
from digest.models import Config, ReaderState, Settings, SmtpSettings, format_sender
from digest.replies import inbox, tokens
from digest.replies.bounces import recipient_refusal
from digest.replies.classify import MAX_MESSAGE_BYTES
from digest.replies.imap import Filed
from digest.replies.ingest import DEFAULT_LIST_NAME, Decision, ReplyContext, decide
from digest.replies.readers import Bounced, apply
from digest.stop import Stop
from digest.store import Store

log = logging.getLogger(__name__)

_CHUNK = 1 << 16


def operator(settings: Settings) -> tuple[Address, str]:
    """The digests' From address and the list's name (its display name)."""
    sender = format_sender(settings.smtp.sender)
    return sender, sender.display_name or DEFAULT_LIST_NAME


def load_secret(settings: Settings, env: Mapping[str, str]) -> tokens.ReplySecret:
    """The systemd credential ``reply-secret``, else ``reply-secret`` beside the database."""
    return tokens.load_secret(settings.database.parent, env)


def rotate_secret(settings: Settings, env: Mapping[str, str]) -> tuple[Path, int]:
    """``digest secret rotate``: a new current key beside the database.

    Returns the file and how many earlier keys it keeps (their links still unsubscribe).
    """
    folder = settings.database.parent
    return folder / tokens.SECRET_NAME, tokens.rotate_secret(folder, env)


def owner(settings: Settings) -> Address:
    """Who reads the replies digest cannot act on: ``settings.owner``, else the postmaster.

    RFC 5321 §4.5.1 requires every mail domain to accept ``postmaster``, so
    the default reaches a person responsible for the From address's mail.
    """
    if settings.owner:
        local, _, domain = settings.owner.rpartition("@")
        return Address(username=local, domain=domain)
    return Address(username="postmaster", domain=operator(settings)[0].domain)


def reply_context(settings: Settings, env: Mapping[str, str]) -> ReplyContext:
    address, list_name = operator(settings)
    ours: tuple[str, ...] = ()
    if settings.inbox is not None and "@" in settings.inbox.username:
        ours = (settings.inbox.username,)
    return ReplyContext(
        load_secret(settings, env), address, list_name, ours, settings.templates, owner(settings)
    )


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


class ReaderStore(Protocol):
    """What taking a message in needs from the store."""

    def reader_state(self, address: str) -> ReaderState | None:
        """A subscriber's state (``ReaderState()`` if none yet); None if not a subscriber."""

    def set_reader_state(self, address: str, state: ReaderState) -> None:
        """Save (and flush) a subscriber's new state."""


class SubscriberReaders:
    """The store as a ``ReaderStore``: only subscribers of the current config have a state.

    Reply addresses come normalised (lower case); the store keys readers by
    the address as ``subscribers.yaml`` spells it, so this maps one to the other.
    """

    def __init__(self, store: Store, subscribers: Iterable[str]) -> None:
        self.store = store
        self.emails = {tokens.normalise_address(e): e for e in subscribers}

    def reader_state(self, address: str) -> ReaderState | None:
        email = self.emails.get(tokens.normalise_address(address))
        if email is None:
            return None
        return self.store.reader_state(email)

    def set_reader_state(self, address: str, state: ReaderState) -> None:
        self.store.set_reader_state(self.emails[tokens.normalise_address(address)], state)
        self.store.flush()


@contextlib.contextmanager
def subscriber_readers(cfg: Config, now: datetime) -> Iterator[ReaderStore]:
    """The database of ``cfg``, open, as its subscribers' ``ReaderStore``."""
    with Store.open(cfg.settings.database, now=now) as store:
        yield SubscriberReaders(store, (s.email for s in cfg.subscribers))


@dataclass(frozen=True, slots=True)
class Ingested:
    """What became of one message: the MTA's exit code, the decision, the answer to send."""

    exit_code: int
    decision: Decision | None  # None when the message could not be handled at all
    # The answer (or forward) for the caller to send, already counted in the saved state.
    # RFC 3834 §3.3: send it with a null envelope sender (MAIL FROM:<>), so
    # that its own bounce can never start a loop.
    reply: EmailMessage | None = None

    @property
    def filed(self) -> Filed:
        """The exit code in the IMAP poller's words."""
        if self.exit_code != EXIT_OK or self.decision is None:
            return "tempfail"
        return "handled" if self.decision.understood else "ignored"


class Mailroom:
    """Messages taken in one at a time; the readers opened at the first, kept until ``close``.

    ``open_readers(now)`` opens the store (``subscriber_readers`` with the
    config: tests pass one in memory).
    """

    def __init__(
        self,
        ctx: ReplyContext,
        open_readers: Callable[[datetime], AbstractContextManager[ReaderStore]],
    ) -> None:
        self.ctx = ctx
        self.open_readers = open_readers
        self._stack = contextlib.ExitStack()
        self._readers: ReaderStore | None = None

    def take(self, raw: bytes, now: datetime) -> Ingested:
        """Decide about ``raw`` and save what it changes; 75 when that cannot be done now.

        The caller sends ``reply`` (synchronously from ``digest ingest``, on
        its event loop from the daemon's poller). If it fails to go out, log
        that and keep exit code 0: a retry would be refused as a replay, and
        the reader can simply ask again.
        """
        try:
            if self._readers is None:
                self._readers = self._stack.enter_context(self.open_readers(now))
            readers = self._readers
            decision = decide(raw, self.ctx, state_of=readers.reader_state, now=now)
            response = decision.response
            if response is not None and decision.reader is not None and response.effects.changed:
                readers.set_reader_state(decision.reader, response.state)
        except (DigestError, OSError) as exc:
            # A busy or damaged database, or a broken confirmation template:
            # the MTA keeps the message and retries, the poller leaves it for
            # the next poll, and nothing is saved meanwhile.
            log.warning("reply not handled, will be retried: %s", exc)
            return Ingested(EXIT_TEMPFAIL, None)
        log.info("reply: %s", decision.log)
        return Ingested(EXIT_OK, decision, decision.outgoing)

    def close(self) -> None:
        try:
            self._stack.close()
        except (DigestError, OSError) as exc:
            # what was saved is in the journal already (durable): the next open folds it
            log.warning("closing the database after taking replies in failed: %s", exc)
        self._readers = None


def ingest_one(raw: bytes, cfg: Config, ctx: ReplyContext, now: datetime) -> Ingested:
    """``digest ingest``: open the store, take one message in, close."""
    room = Mailroom(ctx, functools.partial(subscriber_readers, cfg))
    try:
        return room.take(raw, now)
    finally:
        room.close()


def poll_inbox(
    cfg: Config,
    ctx: ReplyContext,
    clock: Callable[[], datetime],
    should_stop: Callable[[], bool] | None = None,
    budget: float = inbox.POLL_BUDGET,
) -> tuple[inbox.PollResult, list[EmailMessage]]:
    """One poll of ``settings.inbox`` within ``budget`` seconds (blocking: ``asyncio.to_thread``).

    Returns what the poll did and the confirmations to send afterwards.
    Raises ``InboxError``/``InboxConfigError`` as ``inbox.poll`` does.
    """
    assert cfg.settings.inbox is not None
    room = Mailroom(ctx, functools.partial(subscriber_readers, cfg))
    replies: list[EmailMessage] = []

    def handle(raw: bytes) -> Filed:
        result = room.take(raw, clock())
        if result.reply is not None:
            replies.append(result.reply)
        return result.filed

    try:
        result = inbox.poll(cfg.settings.inbox, handle, should_stop=should_stop, budget=budget)
    finally:
        room.close()
    return result, replies


async def send_replies(
    settings: SmtpSettings, replies: Sequence[EmailMessage], *, stop: Stop | None = None
) -> int:
    """Send answers with MAIL FROM:<> (RFC 3834 §3.3); returns how many were accepted.

    An answer that does not go out is only logged: the reader may ask again.
    """
    if not replies:
        return 0
    mailer = Mailer(settings, envelope_sender="", stop=stop)
    batch = [(str(i), parseaddr(str(r["To"]))[1], r) for i, r in enumerate(replies)]
    outcomes = await mailer.send_all(batch)
    for o in outcomes:
        if o.status != "accepted":
            log.warning("answer to %s not sent (%s %s)", o.recipient, o.status, o.detail)
    return sum(o.status == "accepted" for o in outcomes)


def record_refusal(store: Store, email: str, reply: str, now: datetime) -> bool:
    """Our relay refused ``email`` for good during a cycle: a verified hard bounce.

    Verified because we know we sent it; three within 30 days suspend the
    reader (``readers.apply``). Returns whether the state changed (the
    caller flushes). Other refusals (policy, size) leave the reader alone.
    """
    status = recipient_refusal(reply)
    if status is None:
        return False
    try:
        state = store.reader_state(email)
    except DigestError as exc:
        log.error("%s", exc)
        return False
    new, effects = apply(state, Bounced(hard=True, status=status, verified=True), now)
    log.warning("%s: refused by the SMTP server: %s", email, effects.log)
    if effects.changed:
        store.set_reader_state(email, new)
    return effects.changed
