"""The I/O around readers' replies: one message in, at most one confirmation out.

``digest ingest`` (an MTA pipe alias, procmail, fetchmail's ``mda``) and the
daemon's IMAP poller both come here. ``ingest.handle`` decides; this module
finds what it needs (the reply secret beside the database, the operator's
address, which addresses are subscribers), opens the store briefly, sends
confirmations with the null envelope sender, and turns a cycle's SMTP
refusal of a recipient into a verified hard bounce. The store is opened per
message (``digest ingest``) or at the first message of a poll, never while a
cycle holds it: a held lock is a temporary failure, and the MTA or the next
poll offers the message again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from digest.errors import EXIT_OK, EXIT_TEMPFAIL, DigestError
from digest.mail import Mailer
from digest.models import Config, Settings, SmtpSettings, format_sender
from digest.replies import inbox, tokens
from digest.replies.bounces import recipient_refusal
from digest.replies.ingest import Ingested, ingest_message
from digest.replies.readers import Bounced, apply, from_dict, to_dict
from digest.stop import Stop
from digest.store import Store

log = logging.getLogger(__name__)

DEFAULT_LIST_NAME = "Daily Papers"


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """What deciding about a reply needs beside the message and the store."""

    secret: tokens.ReplySecret
    operator: Address  # the From of every digest: where the links send commands
    list_name: str
    also_ours: tuple[str, ...] = ()  # other addresses of ours (the IMAP login): never answered


def operator(settings: Settings) -> tuple[Address, str]:
    """The digests' From address and the list's name (its display name)."""
    sender = format_sender(settings.smtp.sender)
    return sender, sender.display_name or DEFAULT_LIST_NAME


def load_secret(settings: Settings, env: Mapping[str, str]) -> tokens.ReplySecret:
    """The systemd credential ``reply-secret``, else ``reply-secret`` beside the database."""
    return tokens.load_secret(settings.database.parent, env)


def reply_context(settings: Settings, env: Mapping[str, str]) -> ReplyContext:
    address, list_name = operator(settings)
    ours: tuple[str, ...] = ()
    if settings.inbox is not None and "@" in settings.inbox.username:
        ours = (settings.inbox.username,)
    return ReplyContext(load_secret(settings, env), address, list_name, ours)


class SubscriberReaders:
    """The store as ``ingest.ReaderStore``: only subscribers of the current config have a state.

    Reply addresses come normalised (lower case); the store keys readers by
    the address as ``subscribers.yaml`` spells it, so this maps one to the other.
    """

    def __init__(self, store: Store, subscribers: Iterable[str]) -> None:
        self.store = store
        self.emails = {tokens.normalise_address(e): e for e in subscribers}

    def reader_state(self, address: str) -> Mapping[str, Any] | None:
        email = self.emails.get(tokens.normalise_address(address))
        if email is None:
            return None
        return self.store.reader_state(email) or {}

    def set_reader_state(self, address: str, state: Mapping[str, Any]) -> None:
        self.store.set_reader_state(self.emails[tokens.normalise_address(address)], state)
        self.store.flush()


def _ingest(raw: bytes, cfg: Config, ctx: ReplyContext, store: Store, now: datetime) -> Ingested:
    return ingest_message(
        raw,
        secret=ctx.secret,
        operator=ctx.operator,
        store=SubscriberReaders(store, (s.email for s in cfg.subscribers)),
        now=now,
        list_name=ctx.list_name,
        also_ours=ctx.also_ours,
    )


def ingest_one(raw: bytes, cfg: Config, ctx: ReplyContext, now: datetime) -> Ingested:
    """``digest ingest``: open the store, handle one message, close; 75 when the store is busy."""
    result: Ingested | None = None
    try:
        with Store.open(cfg.settings.database, now=now) as store:
            result = _ingest(raw, cfg, ctx, store, now)
    except (DigestError, OSError) as exc:
        if result is None or result.exit_code != EXIT_OK:
            log.warning("reply not handled, will be retried: %s", exc)
            return Ingested(EXIT_TEMPFAIL, None)
        # the change is in the journal already (durable); the next open folds it
        log.warning("reply handled; folding the journal failed: %s", exc)
    assert result is not None
    return result


class PollHandler:
    """The IMAP poller's ``handle``: the store opens at the first message, stays for the poll."""

    def __init__(self, cfg: Config, ctx: ReplyContext, clock: Callable[[], datetime]) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.clock = clock
        self.replies: list[EmailMessage] = []
        self._stack = contextlib.ExitStack()
        self._store: Store | None = None

    def __call__(self, raw: bytes) -> inbox.Filed:
        now = self.clock()
        if self._store is None:
            try:
                self._store = self._stack.enter_context(
                    Store.open(self.cfg.settings.database, now=now)
                )
            except (DigestError, OSError) as exc:
                log.info("inbox: the database is busy, messages wait for the next poll: %s", exc)
                return "tempfail"
        result = _ingest(raw, self.cfg, self.ctx, self._store, now)
        if result.exit_code != EXIT_OK or result.handling is None:
            return "tempfail"
        if result.reply is not None:
            self.replies.append(result.reply)
        return "handled" if result.handling.understood else "ignored"

    def close(self) -> None:
        try:
            self._stack.close()
        except (DigestError, OSError) as exc:  # journaled already: the next open folds it
            log.warning("inbox: closing the database after the poll failed: %s", exc)
        self._store = None


def poll_inbox(
    cfg: Config,
    ctx: ReplyContext,
    clock: Callable[[], datetime],
    should_stop: Callable[[], bool] | None = None,
) -> tuple[inbox.PollResult, list[EmailMessage]]:
    """One poll of ``settings.inbox`` (blocking: run it with ``asyncio.to_thread``).

    Returns what the poll did and the confirmations to send afterwards.
    Raises ``InboxError``/``InboxConfigError`` as ``inbox.poll`` does.
    """
    assert cfg.settings.inbox is not None
    handler = PollHandler(cfg, ctx, clock)
    try:
        result = inbox.poll(cfg.settings.inbox, handler, should_stop=should_stop)
    finally:
        handler.close()
    return result, handler.replies


async def send_replies(
    settings: SmtpSettings, replies: Sequence[EmailMessage], *, stop: Stop | None = None
) -> int:
    """Send confirmations with MAIL FROM:<> (RFC 3834 §3.3); returns how many were accepted.

    A confirmation that does not go out is only logged: the reader may ask again.
    """
    if not replies:
        return 0
    mailer = Mailer(settings, envelope_sender="", stop=stop)
    batch = [(str(i), parseaddr(str(r["To"]))[1], r) for i, r in enumerate(replies)]
    outcomes = await mailer.send_all(batch)
    for o in outcomes:
        if o.status != "accepted":
            log.warning("confirmation to %s not sent (%s %s)", o.recipient, o.status, o.detail)
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
        state = from_dict(store.reader_state(email) or {}, who=email)
    except DigestError as exc:
        log.error("%s", exc)
        return False
    new, effects = apply(state, Bounced(hard=True, status=status, verified=True), now)
    log.warning("%s: refused by the SMTP server: %s", email, effects.log)
    if effects.changed:
        store.set_reader_state(email, to_dict(new))
    return effects.changed
