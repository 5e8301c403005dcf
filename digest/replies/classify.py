"""What a message sent to the operator's address means, and what to answer.

``classify`` turns the raw bytes an MTA pipe or the IMAP poller hands over
into one ``Meaning``; it never raises, whatever the bytes. The order of the
checks is the safety argument:

1. an RFC 3464 delivery report is read from its fields, which no person and
   no responder writes; a hard bounce needs a 5.x.x status;
2. auto-replies (RFC 3834 ``Auto-Submitted``, ``X-Autoreply``,
   ``Precedence``, Exchange's ``X-Auto-Response-Suppress`` and
   ``X-MS-Exchange-Inbox-Rules-Loop``, out-of-office subjects) and our own
   mail coming back are ignored and never answered, whatever they say and
   whatever their sender: an out-of-office with a null sender saying "room
   512" is not a bounce, and one quoting a command must not act;
3. other mail from a mail system's mailbox (MAILER-DAEMON) is a prose
   bounce, hard only when it states a 5.x.x in SMTP's own words
   (``bounces.prose_status``); any other null-sender message is ignored;
4. a command line whose token verifies acts, for the address the token
   names, whoever the From is; a command line whose token does not verify
   (forged, or for a changed address) is ignored and not answered, except
   an unsubscribe: its digest may have been signed with a key since lost,
   so the reader it names is asked to confirm, as for a plain reply;
5. a bare command word ("unsubscribe", "stop", ...) from a From address is
   spoofable, so it only earns a confirmation mail carrying the tokened link,
   sent to that address (``confirmation_message``), a few per day at most.

A bounce concerns only the reader whose tokened unsubscribe link it returns
(our digest, sent to that one reader): never an address it merely names.

``digest.replies.ingest`` then decides what the meaning does to the reader's state.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import default
from email.utils import parseaddr
from urllib.parse import unquote

from digest.replies import bounces
from digest.replies.commands import Action, find_commands
from digest.replies.tokens import ReplySecret, normalise_address, token_matches, verify

# Larger messages are read only this far: headers, a DSN's report and a
# command's subject all come first; a 5 MB attachment after them is not read.
MAX_MESSAGE_BYTES = 1 << 20
MAX_BODY_CHARS = 64_000

# Plain-reply words and the command each asks for.
PLAIN_WORDS: dict[str, Action] = {
    "unsubscribe": "unsubscribe",
    "unsub": "unsubscribe",
    "stop": "unsubscribe",
    "remove": "unsubscribe",
    "pause": "pause",
    "resume": "resume",
    "daily": "daily",
    "weekly": "weekly",
}
_COURTESY = frozenset(
    [
        "please",
        "pls",
        "me",
        "now",
        "thanks",
        "thank",
        "you",
        "from",
        "this",
        "the",
        "list",
        "mail",
        "mails",
        "emails",
        "digest",
        "for",
        "a",
        "week",
        "of",
        "to",
        "it",
    ]
)
_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_AUTO_HEADERS = (
    "X-Autoreply",
    "X-Autorespond",
    "X-Autoresponder",
    "X-AutoReply-From",
    # Exchange and Outlook.com stamp their automatic replies with these.
    "X-Auto-Response-Suppress",
    "X-MS-Exchange-Inbox-Rules-Loop",
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:automatic reply|auto(?:matic)?[ -]?(?:reply|response)|auto:|autoreply|"
    r"out of (?:the )?office|ooo\b|abwesenheit|automatische antwort|r[ée]ponse automatique|"
    r"respuesta autom[áa]tica|risposta automatica|vacation|on leave|away from)",
    re.IGNORECASE,
)
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|vs|fwd?|wg|tr|antw)\s*(?:\[\d+\])?\s*:\s*)+", re.I)
_QUOTE_STARTS = re.compile(
    r"^(?:_{10,}|-+ ?(?:original|forwarded) message ?-+|on .+ wrote:|am .+ schrieb .+:"
    r"|le .+ a écrit ?:|from: .+)$",
    re.IGNORECASE,
)


# -- meanings ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """A command whose token verified for ``subscriber``."""

    subscriber: str  # normalised
    action: Action
    argument: str = ""
    sender: str = ""  # the From address
    message_id: str | None = None
    issued: date | None = None  # the token's day; None: a token from before tokens had one
    return_path: str = ""  # the envelope sender
    retired: bool = False  # the token was signed with a retired key


@dataclass(frozen=True, slots=True)
class Bounce:
    """A failed delivery of the digest we sent ``recipient``.

    The bounce returns that digest's tokened unsubscribe link, which nobody
    but the reader and us can know: a bounce without it is never a Bounce.
    """

    recipient: str  # normalised
    hard: bool
    status: str = ""
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class AutoReply:
    sender: str
    reason: str


@dataclass(frozen=True, slots=True)
class PlainReply:
    """A request without a valid token: answer with a confirmation, never act.

    A command word from ``sender``, for ``sender``; or an unsubscribe whose
    token no key made, for the ``reader`` it names.
    """

    sender: str  # normalised From address
    action: Action
    message_id: str | None = None
    references: tuple[str, ...] = ()
    return_path: str = ""  # the envelope sender: confirmations are counted by it
    reader: str = ""  # whom it is for, when not the sender; a confirmation goes only there


@dataclass(frozen=True, slots=True)
class Ignore:
    """Nothing digest acts on. ``person``: someone wrote it, and the operator should read it.

    Only a message with a From can be a person's: without one nobody could be answered.
    """

    reason: str
    sender: str = ""  # the From address, when a person wrote it
    person: bool = False


# What a message means: one of the kinds above.
Meaning = Command | Bounce | AutoReply | PlainReply | Ignore


def reader_of(meaning: Meaning) -> str | None:
    """The address whose state the meaning concerns (still to be checked against subscribers)."""
    match meaning:
        case Command(subscriber=address) | Bounce(recipient=address):
            return address
        case PlainReply(sender, reader=reader):
            return reader or sender
        case _:
            return None


def describe(meaning: Meaning) -> str:
    """One log line: what the message was."""
    match meaning:
        case Command(subscriber, action, argument, sender):
            arg = f" {argument}" if argument else ""
            via = f" (sent from {sender})" if sender and sender != subscriber else ""
            return f"command {action}{arg} for {subscriber}{via}"
        case Bounce(recipient, hard, status, _):
            return f"{'hard' if hard else 'soft'} bounce for {recipient} {status}".rstrip()
        case AutoReply(sender, reason):
            return f"auto-reply from {sender or '(no sender)'} ignored: {reason}"
        case PlainReply(sender, action, reader=""):
            return f"plain reply from {sender} asking to {action}"
        case PlainReply(sender, action, reader=reader):
            return f"command {action} for {reader} with a token no key made (sent from {sender})"
        case Ignore(reason, sender, person):
            return f"ignored: {reason}" + (f" (from {sender or 'no sender'})" if person else "")


# -- classification ---------------------------------------------------------------------


def classify(raw: bytes, *, secret: ReplySecret, own_addresses: Collection[str] = ()) -> Meaning:
    """What ``raw`` (one RFC 5322 message) is; never raises.

    ``own_addresses``: the operator's From/Reply-To addresses; mail from them
    is our own coming back (a loop) and a prose bounce's mention of them is
    not the failed recipient.
    """
    try:
        msg = BytesParser(policy=default).parsebytes(raw[:MAX_MESSAGE_BYTES])
        return _classify(msg, secret, {normalise_address(a) for a in own_addresses})
    except Exception as exc:  # any input at all must end in a meaning
        # The email package raises a zoo of errors on hostile headers (and
        # some are bugs); a message we cannot read is ignored, never answered.
        return Ignore(f"unreadable message ({type(exc).__name__})")


def _classify(msg: EmailMessage, secret: ReplySecret, own: set[str]) -> Meaning:
    sender = _from_address(msg)
    message_id = _header(msg, "Message-ID") or None

    report = str(msg.get_param("report-type", "")).lower()
    if msg.get_content_type() == "multipart/report" and report not in ("", "delivery-status"):
        # Read receipts (RFC 8098) and feedback reports (RFC 5965) change no reader here.
        return Ignore(f"a {report} report")
    if bounces.is_dsn(msg):
        # Before the auto-reply headers: MTAs mark their own reports
        # "Auto-Submitted: auto-replied" (Postfix, Exim, Gmail).
        return _report_bounce(msg, secret, message_id)

    mail_system = bounces.from_mail_system(sender)
    auto = _auto_reply_reason(msg, mail_system=mail_system)
    if auto:
        return AutoReply(sender, auto)
    if mail_system:
        return _prose_bounce(msg, secret, message_id)
    if _null_sender(msg):
        # A null sender (RFC 5321 §4.5.5) marks mail that must not be answered:
        # no person's command, and no bounce unless a mail system's mailbox sent it.
        return Ignore(f"null-sender message from {sender or '(no sender)'}, not a mail system")
    if sender in own:
        return Ignore("our own mail came back")

    subject = _header(msg, "Subject")
    body = _body_text(msg)
    for text in (subject, body):
        found = find_commands(text)
        if not found:
            continue
        for cmd in found:
            proof = verify(secret, cmd.address, cmd.action, cmd.argument, cmd.token)
            if proof is not None:
                return Command(
                    cmd.address,
                    cmd.action,
                    cmd.argument,
                    sender,
                    message_id,
                    proof.issued,
                    _return_path(msg),
                    proof.retired,
                )
        leave = next((c for c in found if c.action == "unsubscribe"), None)
        if leave is not None and sender and not _automated_sender(sender):
            refs = _references(msg)
            return PlainReply(
                sender, "unsubscribe", message_id, refs, _return_path(msg), leave.address
            )
        return Ignore(
            f"command token does not match ({found[0].action} for {found[0].address})",
            sender,
            person=bool(sender),
        )

    action = _plain_word(subject, body)
    if action is None:
        return Ignore("no command", sender, person=bool(sender))
    if not sender or _automated_sender(sender):
        return Ignore(f"plain reply asking to {action} from an automated sender {sender!r}")
    return PlainReply(sender, action, message_id, _references(msg), _return_path(msg))


def _report_bounce(msg: EmailMessage, secret: ReplySecret, message_id: str | None) -> Meaning:
    """An RFC 3464 report about the digest it returns."""
    failures = bounces.dsn_failures(msg)
    if not failures:
        return Ignore("delivery report naming no failed recipient")
    reader = _proven_reader(msg, secret)
    if reader is None:
        return Ignore(f"delivery report for {failures[0].recipient} returns no digest of ours")
    # A digest goes to one reader: a report returning it is about that reader,
    # also when it names where the reader's mail was forwarded to.
    about = [f for f in failures if f.recipient == reader] or list(failures)
    failure = next((f for f in about if f.hard), about[0])
    return Bounce(reader, failure.hard, failure.status, message_id)


def _prose_bounce(msg: EmailMessage, secret: ReplySecret, message_id: str | None) -> Meaning:
    """A mail system's prose about the digest it returns: hard only with SMTP's 5.x.x."""
    reader = _proven_reader(msg, secret)
    if reader is None:
        return Ignore("mail-system message that returns no digest of ours")
    status = bounces.prose_status(msg)
    return Bounce(reader, status.startswith("5"), status, message_id)


def _proven_reader(msg: EmailMessage, secret: ReplySecret) -> str | None:
    """The one reader whose tokened unsubscribe link the message returns: nobody can forge it.

    None when it returns none, or the links of several readers (which no
    bounce of one digest does).
    """
    text = unquote(bounces.returned_text(msg))
    proven = {
        cmd.address
        for cmd in find_commands(text)
        if cmd.action == "unsubscribe"
        and token_matches(secret, cmd.address, cmd.action, cmd.argument, cmd.token)
    }
    return proven.pop() if len(proven) == 1 else None


def _automated_sender(address: str) -> bool:
    """RFC 3834 §2: never answer list owners, request addresses or daemons."""
    local = address.partition("@")[0]
    return (
        local in bounces.BOUNCE_SENDERS
        or local.startswith("owner-")
        or local.endswith("-request")
        or local.replace("-", "").replace("_", "") in ("noreply", "donotreply")
    )


def _auto_reply_reason(msg: EmailMessage, *, mail_system: bool) -> str:
    """Why ``msg`` is an auto-reply, or "".

    Every marker counts whatever the sender, except ``Auto-Submitted`` from
    a mail system's mailbox: Exim and Postfix mark their own bounces
    ``auto-replied``, and those are read as bounces (strictly) instead.
    """
    precedence = _header(msg, "Precedence").strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return f"Precedence: {precedence}"
    for name in _AUTO_HEADERS:
        if msg.get(name) is not None:
            return f"{name} header"
    auto = _header(msg, "Auto-Submitted").split(";")[0].split("(")[0].strip().lower()
    if auto and auto != "no" and not mail_system:
        return f"Auto-Submitted: {auto}"  # RFC 3834 §5
    if msg.get("List-Id") is not None:
        return "mailing-list traffic (List-Id)"
    subject = _REPLY_PREFIX.sub("", _header(msg, "Subject"))
    if _AUTO_SUBJECT.match(subject):
        return "out-of-office subject"
    return ""


def _plain_word(subject: str, body: str) -> Action | None:
    """A command word standing alone: the whole subject, or the whole first line of the reply.

    Deliberately narrow: only courtesy words may stand beside the command, so
    "Re: Daily Papers" or "Daily is great" is not a request to go daily.
    """
    first_line = next((line for line in body.splitlines() if line.strip()), "")
    for text in (_REPLY_PREFIX.sub("", subject), first_line):
        words = [w for w in re.findall(r"[^\W\d_]+", text.lower()) if w not in _COURTESY]
        if len(words) == 1 and words[0] in PLAIN_WORDS:
            return PLAIN_WORDS[words[0]]
    return None


def _body_text(msg: EmailMessage) -> str:
    """The reader's own words: text parts, HTML reduced to text, quoted history dropped."""
    chunks: list[str] = []
    size = 0
    for part in bounces.own_parts(msg):
        if part.get_content_maintype() != "text" or part.get_content_disposition() == "attachment":
            continue
        text = bounces.part_text(part)
        if part.get_content_subtype() == "html":
            text = html.unescape(re.sub(r"<(?:br|/p|/div|/tr)[^>]*>", "\n", text, flags=re.I))
            text = re.sub(r"<[^>]*>", " ", text)
        chunks.append(_unquoted(text))
        size += len(text)
        if size > MAX_BODY_CHARS:
            break
    return "\n".join(chunks)[:MAX_BODY_CHARS]


def _unquoted(text: str) -> str:
    """Text above the quoted message: a reply that quotes a digest carries its links."""
    kept: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if _QUOTE_STARTS.match(stripped):
            break
        if not stripped.startswith(">"):
            kept.append(line)
    return "\n".join(kept)


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    return "" if value is None else " ".join(str(value).split())


def _from_address(msg: EmailMessage) -> str:
    return normalise_address(parseaddr(_header(msg, "From"))[1])


def _null_sender(msg: EmailMessage) -> bool:
    """``Return-Path: <>`` (RFC 5321 §4.5.5), as the delivering MTA records the envelope."""
    return any(str(v).strip() in ("<>", "") for v in msg.get_all("Return-Path", []))


def _return_path(msg: EmailMessage) -> str:
    """The envelope sender the delivering MTA recorded (RFC 5321 §4.4); "" if none or null."""
    address = normalise_address(parseaddr(_header(msg, "Return-Path"))[1])
    return address if "@" in address else ""


def _references(msg: EmailMessage) -> tuple[str, ...]:
    return tuple(re.findall(r"<[^<>\s]+>", _header(msg, "References")))
