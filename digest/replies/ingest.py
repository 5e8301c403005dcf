"""What an incoming message does: the reader's new state, and at most one answer.

``decide`` is the whole decision about one message, and pure:
``replies.classify`` says what the message means, ``why_confirm`` whether a
request may act by itself, ``readers.apply`` what that does to the reader,
and the answer, if any, is a confirmation (``confirmation_message``), an
acknowledgement (``acknowledgement_message``) or, for what a person wrote
and digest cannot act on, the message forwarded to the owner
(``forward_message``). It reads the reader's state through ``state_of`` (and the mail
templates) and saves and sends nothing; ``digest.replies.mailroom`` is the
I/O around it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Literal

from digest.mail import render_template
from digest.models import ReaderState
from digest.replies.classify import (
    Bounce,
    Command,
    Ignore,
    Meaning,
    PlainReply,
    classify,
    describe,
    reader_of,
)
from digest.replies.commands import (
    DESCRIPTIONS,
    RAISES,
    UNDO,
    Action,
    command_line,
    command_mailto,
)
from digest.replies.readers import (
    Asked,
    Bounced,
    Effects,
    Event,
    Verified,
    apply,
    noted,
)
from digest.replies.tokens import TOKEN_LIFETIME, ReplySecret

DEFAULT_LIST_NAME = "Daily Papers"


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """What deciding about a reply needs beside the message and the reader's state."""

    secret: ReplySecret
    operator: Address  # the From of every digest: where the links send commands
    list_name: str = DEFAULT_LIST_NAME
    also_ours: tuple[str, ...] = ()  # other addresses of ours (the IMAP login): never answered
    templates: Path | None = None  # the operator's mail templates, before the shipped ones
    owner: Address | None = None  # who reads what digest cannot act on; None: nobody


@dataclass(frozen=True, slots=True)
class Response:
    state: ReaderState
    effects: Effects
    reply: EmailMessage | None  # the answer to the reader (confirmation, acknowledgement)


# Why a request does not act by itself and its reader is asked to confirm it.
Why = Literal["plain", "unsigned", "retired", "elsewhere", "expired"]
# The sentence the confirmation gives for it (the template's ``reason``).
REASONS: dict[Why, str] = {
    "plain": "A From address is easy to forge, so nothing has changed yet.",
    "unsigned": "The link it used was not signed with any key this list has (perhaps it is "
    "from a digest sent before the list's key was replaced), so nothing has changed yet.",
    "retired": "Its link was signed with a key this list no longer uses, so nothing has "
    "changed yet.",
    "elsewhere": "The request came from {sender}, not from {reader}, so nothing has changed yet.",
    "expired": "Its link is from a digest sent more than {days} days ago (or before links "
    "carried their date), so nothing has changed yet.",
}
_WHY_IN_LOG: dict[Why, str] = {
    "plain": "",
    "unsigned": " (a token no key made)",
    "retired": " (a token of a retired key)",
    "elsewhere": " (a raise asked from another address)",
    "expired": f" (a link older than {TOKEN_LIFETIME.days} days, or undated)",
}


def why_confirm(request: Command | PlainReply, today: date) -> Why | None:
    """None: the command acts on its token alone; else why its reader must confirm it first.

    What lowers mail acts on the token alone, whoever sends it: at worst a
    reader gets less mail, and hears of it (``acknowledgement_message``).
    What raises or widens it acts only from the reader's own address. Any
    token but an unsubscribe's expires after ``TOKEN_LIFETIME``, and only
    an unsubscribe acts with a retired key (it was retired perhaps because
    it leaked): leaving must always work, whatever the age of the link.
    """
    if isinstance(request, PlainReply):
        return "unsigned" if request.reader else "plain"
    if request.action == "unsubscribe":
        return None
    if request.retired:
        return "retired"
    if request.issued is None or today - request.issued > TOKEN_LIFETIME:
        return "expired"
    if request.action in RAISES and not _from_reader(request):
        return "elsewhere"
    return None


def _asker(request: Command | PlainReply) -> str:
    """Who asked, for counting confirmations: the envelope sender, else the From."""
    return request.return_path or request.sender


def _from_reader(command: Command) -> bool:
    """Sent from the reader's own address: the From and the envelope sender (if any) are hers."""
    return command.sender == command.subscriber == _asker(command)


def event_of(meaning: Meaning, today: date) -> Event | None:
    """The reader event a meaning amounts to; None for what changes no reader."""
    match meaning:
        case Command(reader, action, argument, _, message_id) if why_confirm(meaning, today):
            asker = _asker(meaning)
            return Asked(action, message_id, asker, own=asker == reader, argument=argument)
        case Command(_, action, argument, _, message_id):
            return Verified(action, argument, message_id)
        case Bounce(_, hard, status, message_id):
            # classify makes a Bounce only of one that returns the reader's token
            return Bounced(hard, status, message_id, verified=True)
        case PlainReply(sender, action, message_id, reader=reader):
            asker = _asker(meaning)
            return Asked(action, message_id, asker, own=asker == (reader or sender))
        case _:
            return None


def respond(
    meaning: Command | Bounce | PlainReply, state: ReaderState, now: datetime, ctx: ReplyContext
) -> Response:
    """The reader's new state, the effects, and the answer to send (if any).

    The reader's state keeps a note of the message and what became of it,
    except of a repeated message and of a bounce that changed nothing.
    """
    event = event_of(meaning, now.date())
    assert event is not None  # Command, Bounce and PlainReply all map to an event
    new, effects = apply(state, event, now)
    why = None if isinstance(meaning, Bounce) else why_confirm(meaning, now.date())
    if why is not None and effects.confirm is not None:
        effects = replace(effects, log=effects.log + _WHY_IN_LOG[why])
    repeated = bool(meaning.message_id) and meaning.message_id in state.handled
    if effects.changed or not (repeated or isinstance(meaning, Bounce)):
        new = noted(new, now, describe(meaning), effects.log)
        effects = replace(effects, changed=True)
    reply = None
    if why is not None and effects.confirm is not None:
        assert not isinstance(meaning, Bounce)  # a bounce asks for nothing
        reply = confirmation_message(meaning, why, ctx, now)
    elif effects.acknowledge and isinstance(meaning, Command):
        reply = acknowledgement_message(meaning, ctx, now)
    return Response(new, effects, reply)


@dataclass(frozen=True, slots=True)
class Decision:
    """What one incoming message does: the shell saves ``state`` and sends ``reply``."""

    meaning: Meaning
    reader: str | None = None  # the subscriber whose state changed or was consulted
    response: Response | None = None
    forward: EmailMessage | None = None  # the message wrapped for the owner

    @property
    def outgoing(self) -> EmailMessage | None:
        """The one mail to send about the message: an answer to the reader, or the forward."""
        reply = self.response.reply if self.response else None
        return reply or self.forward

    @property
    def understood(self) -> bool:
        """Whether a mailbox may file the message away as handled.

        An ignored message (no command, a forged token, unreadable) may be a
        person writing to the operator: the IMAP poller leaves it where the
        operator will see it.
        """
        return not isinstance(self.meaning, Ignore)

    @property
    def log(self) -> str:
        what = describe(self.meaning)
        if self.response:  # its log says where a forwarded message went
            return f"{what}: {self.response.effects.log}"
        return f"{what}; forwarded to {self.forward['To']}" if self.forward else what


def decide(
    raw: bytes,
    ctx: ReplyContext,
    *,
    state_of: Callable[[str], ReaderState | None],
    now: datetime,
) -> Decision:
    """Everything ``digest ingest`` and the IMAP poller decide about one message; pure.

    ``state_of(address)`` gives a subscriber's stored state (``ReaderState()``
    when none is stored yet) and None for an address that is not a
    subscriber: a bounce, command or plain reply for a stranger changes
    nothing and is never answered. What a person wrote and digest cannot
    act on (no command, a token that does not match, a plain reply from an
    address that is not a subscriber) is forwarded to ``ctx.owner``.
    """
    own = (ctx.operator.addr_spec, *ctx.also_ours)
    meaning = classify(raw, secret=ctx.secret, own_addresses=own)
    if isinstance(meaning, Ignore):
        decision = _for_owner(raw, meaning, ctx, now)
        state = state_of(meaning.sender) if meaning.person else None
        if state is None:
            return decision
        # a reader who wrote: `digest readers` shows what became of it
        done = f"forwarded to {decision.forward['To']}" if decision.forward else "ignored"
        kept = noted(state, now, describe(meaning), done)
        return replace(
            decision, reader=meaning.sender, response=Response(kept, Effects(True, done), None)
        )
    if not isinstance(meaning, Command | Bounce | PlainReply):
        return Decision(meaning)
    address = reader_of(meaning)
    state = state_of(address) if address else None
    if address is None or state is None:
        stranger = f"{describe(meaning)}, who is not a subscriber"
        if isinstance(meaning, PlainReply):
            # most likely a reader writing from another address than the one we mail
            return _for_owner(raw, Ignore(stranger, meaning.sender, person=True), ctx, now)
        return Decision(Ignore(stranger))
    return Decision(meaning, address, respond(meaning, state, now, ctx))


def _for_owner(raw: bytes, meaning: Ignore, ctx: ReplyContext, now: datetime) -> Decision:
    if not meaning.person or ctx.owner is None:
        return Decision(meaning)
    return Decision(meaning, forward=forward_message(raw, meaning, ctx.owner, ctx, now))


def forward_message(
    raw: bytes, why: Ignore, owner: Address, ctx: ReplyContext, now: datetime
) -> EmailMessage:
    """A message digest cannot act on, for ``owner``: one line saying why, the message as it came.

    An MTA discards what ``digest ingest`` writes on stderr once it exits 0,
    so without this a reader's "please take me off this list" reaches
    nobody. ``Reply-To`` is the person who wrote, so the owner's answer goes
    to them; ``Auto-Submitted`` keeps vacation responders from answering.
    The original is attached as ``message/rfc822``; the email package
    cannot write some broken messages back (a multipart without a boundary
    and 8-bit text), and those go as the file ``message.eml`` instead.
    """
    try:
        msg = _forward_head(why, owner, ctx, now)
        msg.add_attachment(BytesParser(policy=default).parsebytes(raw))
        msg.as_bytes()  # what the mailer will do
        return msg
    except Exception:  # the email package's zoo of errors on broken input, as in classify
        msg = _forward_head(why, owner, ctx, now)
        msg.add_attachment(
            raw, maintype="application", subtype="octet-stream", filename="message.eml"
        )
        return msg


def _forward_head(why: Ignore, owner: Address, ctx: ReplyContext, now: datetime) -> EmailMessage:
    sender = why.sender or "an unknown sender"
    msg = EmailMessage()
    msg["From"] = ctx.operator
    msg["To"] = owner
    reply_to = _address(why.sender)
    if reply_to is not None:
        msg["Reply-To"] = reply_to
    msg["Subject"] = f"[{ctx.list_name}] not understood: a message from {sender}"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=ctx.operator.domain or None)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(
        f"{ctx.list_name} could not act on this message from {sender} ({why.reason}); "
        "it is attached as it came.\n"
    )
    return msg


def _address(text: str) -> Address | None:
    """``text`` as an address header value; None when it is none (an empty or hostile From)."""
    try:
        address = Address(addr_spec=text)
    except (ValueError, IndexError, MessageError):
        return None
    return address if address.username and address.domain else None


def confirmation_message(
    request: Command | PlainReply, why: Why, ctx: ReplyContext, now: datetime
) -> EmailMessage:
    """The request's fresh tokened link, mailed only to the reader it is for, and why.

    A plain reply's reader is its From address; a command's, the address its
    token names. The subject never carries the token: an out-of-office echo
    of it must not be able to confirm. Subject and text come from the
    templates ``confirm_subject.txt`` and ``confirm.txt``; a broken one
    raises ``TemplateError``.
    """
    if isinstance(request, PlainReply):
        reader, argument, references = request.reader or request.sender, "", request.references
    else:
        reader, argument, references = request.subscriber, request.argument, ()
    context = _offer(ctx, reader, request.action, argument, now.date())
    context["reason"] = REASONS[why].format(
        sender=request.sender, reader=reader, days=TOKEN_LIFETIME.days
    )
    return _answer(
        ctx,
        reader,
        render_template(ctx.templates, "confirm_subject.txt", context),
        render_template(ctx.templates, "confirm.txt", context),
        now,
        request.message_id,
        references,
    )


def acknowledgement_message(command: Command, ctx: ReplyContext, now: datetime) -> EmailMessage:
    """What a command changed, and the command that undoes it, mailed to its reader.

    To the reader the token names, never the From: whoever holds a
    forwarded digest can act for its reader, and the reader must hear of
    it. From the templates ``ack_subject.txt`` and ``ack.txt``.
    """
    reader, undo = command.subscriber, UNDO[command.action]
    context = _offer(ctx, reader, undo, command.argument, now.date())
    context["undo"] = context.pop("what")
    context["what"] = _description(command.action, reader, command.argument)
    return _answer(
        ctx,
        reader,
        render_template(ctx.templates, "ack_subject.txt", context),
        render_template(ctx.templates, "ack.txt", context),
        now,
        command.message_id,
    )


def _description(action: Action, reader: str, argument: str = "") -> str:
    return DESCRIPTIONS[action].format(address=reader, argument=argument)


def _offer(
    ctx: ReplyContext, reader: str, action: Action, argument: str, today: date
) -> dict[str, str]:
    """What the answer templates see: the list, the reader, and the command they may send."""
    operator, list_name = ctx.operator, ctx.list_name
    link = command_mailto(
        ctx.secret, operator, reader, action, argument, issued=today, list_name=list_name
    )
    return {
        "list_name": list_name,
        "what": _description(action, reader, argument),
        "reader": reader,
        "operator": operator.addr_spec,
        "link": link,
        "line": command_line(ctx.secret, reader, action, argument, issued=today),
    }


def _answer(
    ctx: ReplyContext,
    to: str,
    subject: str,
    text: str,
    now: datetime,
    message_id: str | None,
    references: tuple[str, ...] = (),
) -> EmailMessage:
    """An automatic answer to one message: threaded under it, marked as automatic.

    ``Auto-Submitted: auto-replied`` (RFC 3834 §5) tells well-behaved
    responders not to answer, and our own ``classify`` ignores it should it
    come back.
    """
    msg = EmailMessage()
    msg["From"] = ctx.operator
    local, _, domain = to.rpartition("@")
    msg["To"] = Address(username=local, domain=domain)
    msg["Subject"] = " ".join(subject.split())  # one line, whatever the template does
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=ctx.operator.domain or None)
    if message_id:
        msg["In-Reply-To"] = message_id
        msg["References"] = " ".join((*references, message_id))
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(text)
    return msg
