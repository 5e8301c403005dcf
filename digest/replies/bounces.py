"""Reading bounces: which recipient failed, and whether for good.

Two shapes reach the operator's address. Delivery status notifications
(RFC 3464: ``multipart/report; report-type=delivery-status``) from Postfix,
Exchange, Gmail and most modern MTAs say it in fields; older or simpler MTAs
(Exim without DSN, qmail, many appliances) write prose such as ``550 5.1.1
<bob@example.com>: User unknown``, sometimes with an ``X-Failed-Recipients``
header (Exim). A bounce we cannot read with certainty is counted as soft:
only a 5.x.x (or a prose "permanent error") may suspend a reader.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr

# Enhanced status codes (RFC 3463): class.subject.detail. The look-arounds
# keep "4.5.6" inside an IP address such as 10.4.5.6 from counting.
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")
# A basic SMTP reply code opening a line or following "said:"/"error:".
_REPLY_CODE = re.compile(r"(?:^|said:|error:|\s)\s*([45])\d\d(?=[\s-])", re.MULTILINE)
_ADDRESS = re.compile(r"<?([\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+)>?")
# Checked after the temporary phrases: a delay warning also says "could not
# be delivered", then "will be retried".
_PERMANENT = re.compile(
    r"permanent(?:ly)? (?:error|failure|fatal)|failed permanently|user unknown|no such user|"
    r"does not exist|doesn't exist|mailbox unavailable|address rejected|unknown user|"
    r"invalid (?:recipient|address|final delivery)|could(?: not|n't) be delivered|"
    r"unable to deliver|delivery (?:has )?failed|undeliverable|doesn't have an? .{0,40}account",
    re.IGNORECASE,
)
_TEMPORARY = re.compile(
    r"temporar(?:y|ily)|delayed|will be retried|still trying|deferred|try again later",
    re.IGNORECASE,
)
# Where prose bounces start quoting the original message; addresses after it
# are the original's headers (our own From, the reader's To), not the failure.
_ORIGINAL_STARTS = re.compile(
    r"^.*(?:this is a copy of the message|below this line is a copy of the message|"
    r"original message follows|original message headers|the headers of the message|"
    r"------ ?original message ?------|message headers follow).*$",
    re.IGNORECASE | re.MULTILINE,
)
BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (?:status notification|failure|has failed)|mail delivery failed|"
    r"failure notice|returned mail|delivery problem|non-?delivery|could not be delivered",
    re.IGNORECASE,
)
MAX_SCAN_CHARS = 64_000


@dataclass(frozen=True, slots=True)
class Failure:
    recipient: str
    hard: bool
    status: str  # "5.1.1", "550", or "" when the bounce gave none


def is_dsn(msg: Message) -> bool:
    """An RFC 3464 report, also as real MTAs bend it: no ``report-type``, or nested in a mixed."""
    report = str(msg.get_param("report-type", "")).lower()
    if msg.get_content_type() == "multipart/report" and report:
        return report == "delivery-status"
    return msg.is_multipart() and any(
        p.get_content_type() == "message/delivery-status" for p in msg.walk()
    )


def looks_like_bounce(msg: Message, null_sender: bool) -> bool:
    """A message that is not a DSN but comes from the mail system about a failed delivery."""
    if msg.get("X-Failed-Recipients"):
        return True
    local = parseaddr(str(msg.get("From", "")))[1].partition("@")[0].lower()
    if local in BOUNCE_SENDERS or null_sender:
        return True
    return bool(_BOUNCE_SUBJECT.search(str(msg.get("Subject", ""))))


def dsn_failures(msg: Message) -> tuple[Failure, ...]:
    """The failed or delayed recipients of an RFC 3464 report (successes are not failures)."""
    out: list[Failure] = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        # The first block describes the message and the rest one recipient each;
        # some MTAs leave out the blank line between, so look at every block.
        for block in blocks:
            if not isinstance(block, Message):
                continue
            # "failed (Bad destination mailbox address)", "failure": seen in the wild.
            action = (str(block.get("Action", "")).lower().split() or [""])[0]
            if action not in ("failed", "failure", "delayed"):
                continue  # delivered, relayed, expanded
            recipient = _dsn_address(block.get("Original-Recipient")) or _dsn_address(
                block.get("Final-Recipient")
            )
            if not recipient:
                continue
            status = _status_code(str(block.get("Status", "")))
            # RFC 3464 §2.3.3: "failed" with a 5.x.x status is permanent;
            # "delayed" is by definition still being retried.
            out.append(Failure(recipient, action != "delayed" and status.startswith("5"), status))
    return tuple(out)


def prose_failures(msg: Message, ignore: Collection[str]) -> tuple[Failure, ...]:
    """Failed recipients of a bounce written for people, as exactly as it can be read.

    ``ignore`` holds addresses that are never the failed recipient (ours,
    the bouncing MTA's).
    """
    text = _bounce_text(msg)
    header = str(msg.get("X-Failed-Recipients", ""))
    named = [a for _, a in getaddresses([header]) if "@" in a] if header else []
    if not named:
        named = [m.group(1) for m in _ADDRESS.finditer(text)]
    skip = {a.lower() for a in ignore}
    recipients: list[str] = []
    for address in named:
        addr = address.strip().strip("'`").lower()
        if addr in skip or addr.partition("@")[0] in BOUNCE_SENDERS or addr in recipients:
            continue
        recipients.append(addr)
    if not recipients:
        return ()
    status, hard = prose_status(msg)
    return tuple(Failure(r, hard, status) for r in recipients)


def prose_status(msg: Message) -> tuple[str, bool]:
    """The status a bounce's explanation gives, and whether it is permanent."""
    return _prose_status(_bounce_text(msg))


def _status_code(field: str) -> str:
    """``5.1.1``; some MTAs put a basic reply code (``553 ...``) in the Status field."""
    m = _ENHANCED.search(field)
    if m:
        return ".".join(m.groups())
    basic = re.match(r"\s*([245]\d\d)\b", field)
    return basic.group(1) if basic else ""


def _prose_status(text: str) -> tuple[str, bool]:
    enhanced = [m for m in _ENHANCED.finditer(text) if m.group(1) in "45"]
    if enhanced:
        status = ".".join(enhanced[0].groups())
        return status, status.startswith("5")
    code = _REPLY_CODE.search(text)
    if code:
        reply = text[code.start(1) : code.start(1) + 3]
        return reply, reply.startswith("5")
    if _TEMPORARY.search(text):
        return "", False
    return "", bool(_PERMANENT.search(text))


def returned_text(msg: Message) -> str:
    """All a bounce returns of the original: nested headers and every text part, uncut.

    The digest's ``List-Unsubscribe`` header (returned as a ``message/rfc822``
    part, a ``text/rfc822-headers`` part or inline prose) carries the
    reader's tokened unsubscribe link: the proof that the bounce answers a
    mail we sent to that reader.
    """
    chunks: list[str] = []
    for part in msg.walk():
        chunks.extend(str(v) for v in part.get_all("List-Unsubscribe", []))
        if part.get_content_maintype() == "text":
            chunks.append(part_text(part))
    return "\n".join(chunks)[: MAX_SCAN_CHARS * 4]


def _bounce_text(msg: Message) -> str:
    """The human-readable explanation: text parts outside any returned message."""
    chunks: list[str] = []
    for part in own_parts(msg):
        if part.get_content_maintype() != "text" or part.get_content_type() in (
            "text/rfc822-headers",
        ):
            continue
        chunks.append(part_text(part))
    text = "\n".join(chunks)[:MAX_SCAN_CHARS]
    cut = _ORIGINAL_STARTS.search(text)
    return text[: cut.start()] if cut else text


def own_parts(msg: Message) -> Iterator[Message]:
    """Leaf parts of ``msg``, not descending into attached messages."""
    if msg.is_multipart():
        payload = msg.get_payload()
        if isinstance(payload, list):
            for sub in payload:
                if isinstance(sub, Message) and sub.get_content_type() != "message/rfc822":
                    yield from own_parts(sub)
    elif msg.get_content_maintype() != "message":
        yield msg


def part_text(part: Message) -> str:
    """A text part's content as str, whatever its charset claims; never raises."""
    if isinstance(part, EmailMessage):
        try:
            content = part.get_content()
            if isinstance(content, str):
                return content
        except (LookupError, ValueError, AssertionError, KeyError, UnicodeError):
            pass  # an unknown or lying charset: fall back to the bytes
    raw = part.get_payload(decode=True)
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace")
    payload = part.get_payload()
    return payload if isinstance(payload, str) else ""


def _dsn_address(value: object) -> str:
    """``rfc822; bob@example.com`` -> ``bob@example.com`` (RFC 3464 §2.3.1-2)."""
    if value is None:
        return ""
    kind, sep, address = str(value).partition(";")
    if not sep:
        kind, address = "rfc822", kind  # "Final-Recipient: <bob@example.com>", seen in the wild
    if kind.strip().lower() != "rfc822":
        return ""
    address = address.strip().strip("<>").strip().lower()
    return address if "@" in address else ""


def recipient_refusal(reply: str) -> str | None:
    """The status of an SMTP reply that refuses the recipient for good; None for anything else.

    What our own relay answered during a cycle (``550 5.1.1 <bob@...>: User
    unknown``). Only the recipient's mailbox counts: 550/551/553, or an
    enhanced code about the address (5.1.x) or the mailbox (5.2.1 disabled,
    5.2.0); a 552/554 or a 5.7.x (policy, spam, message size) says nothing
    about whether the reader's address works.
    """
    basic = re.match(r"\s*(5\d\d)\b", reply)
    if basic is None:
        return None
    enhanced = _ENHANCED.search(reply[basic.end() : basic.end() + 20])
    if enhanced is not None:
        status = ".".join(enhanced.groups())
        klass, subject, detail = enhanced.groups()
        mailbox = subject == "1" or (subject == "2" and detail in ("0", "1"))
        return status if klass == "5" and mailbox else None
    return basic.group(1) if basic.group(1) in ("550", "551", "553") else None
