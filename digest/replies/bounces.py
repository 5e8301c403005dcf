"""Reading bounces: whether a mail system says our digest failed, and for good.

Only a mail system's own words count, never a person's: an out-of-office
saying "room 512" or "bis 5.1.26" states no status. Two shapes qualify:

* an RFC 3464 report (``multipart/report; report-type=delivery-status``),
  read from its per-recipient fields: permanent only when ``Action: failed``
  carries a 5.x.x ``Status`` (RFC 3464 §2.3.3-4, RFC 3463 §2);
* a prose bounce from a mail system's mailbox (MAILER-DAEMON, postmaster):
  Exim without DSN, qmail. Its status is what SMTP itself said, a reply code
  with its enhanced status (``550 5.1.1``, RFC 5321 §4.2 and RFC 2034, the
  two in one class), or qmail's ``(#5.1.1)`` (QSBMF), found above the
  returned message; anything else states no status and is soft.

Which reader a bounce concerns is never read here: ``classify`` takes it from
the tokened link of the digest the bounce returns (``returned_text``).

GNU Mailman's ``flufl.bounce`` was weighed for the prose and vendor formats
and not adopted: it reports addresses, not statuses, so it counts every
detected prose failure and a report's ``Action: failed`` with ``Status:
4.4.1`` as permanent; its generic detectors take addresses out of a person's
words (a line "my colleagues, bob@example.com, ..." or "Your message could
not be delivered to me ... bob@example.com" makes bob a permanent failure);
and the address is what our token already proves.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage, Message

# Enhanced status codes (RFC 3463): class.subject.detail. The look-arounds
# keep "4.5.6" inside an IP address such as 10.4.5.6 from counting.
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")
# What SMTP itself says of a refused recipient: a reply code (RFC 5321 §4.2:
# 2-5, 0-5, 0-9), "-" on all but the last line of a multi-line reply, then the
# enhanced status of the same class (RFC 2034). A person's "room 512" or
# "bis 5.1.26" has one half at most.
_SMTP_REPLY = re.compile(
    r"(?<![\w.+-])([45])[0-5]\d[ -]\1\.(\d{1,3})\.(\d{1,3})(?![\w-]|\.\d)", re.ASCII
)
# qmail's bounce format (QSBMF, cr.yp.to/proto/qsbmf.txt) ends a recipient's
# paragraph with its status as "(#5.1.1)".
_QSBMF_STATUS = re.compile(r"\(#([45])\.(\d{1,3})\.(\d{1,3})\)", re.ASCII)
# Where prose bounces start returning the original message: our own digest,
# whose text (an abstract about mail, say) states nothing about the bounce.
# Without a marker, the returned header block starts it.
_ORIGINAL_STARTS = re.compile(
    r"^.*(?:this is a copy of the message|below this line is a copy of the message|"
    r"original message follows|original message headers|the headers of the message|"
    r"------ ?original message ?------|message headers follow).*$"
    r"|^(?:Return-Path|Received|Message-ID|List-Unsubscribe):",
    re.IGNORECASE | re.MULTILINE,
)
# The mailboxes mail systems send bounces from (RFC 5321 §4.5.5, RFC 2142).
BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
MAX_SCAN_CHARS = 64_000


@dataclass(frozen=True, slots=True)
class Failure:
    """One recipient a report says failed, as the report names it (maybe a forwarding target)."""

    recipient: str
    hard: bool
    status: str  # "5.1.1"; what the report's Status field holds, or ""


def is_dsn(msg: Message) -> bool:
    """An RFC 3464 report, also as real MTAs bend it: no ``report-type``, or nested in a mixed.

    Only the message's own parts count: a report attached to a person's
    message (a forwarded bounce) is theirs, not a bounce of our mail.
    """
    report = str(msg.get_param("report-type", "")).lower()
    if msg.get_content_type() == "multipart/report" and report:
        return report == "delivery-status"
    return any(True for _ in _status_parts(msg))


def from_mail_system(address: str) -> bool:
    """Whether ``address`` is a mail system's mailbox, where prose bounces come from."""
    return address.partition("@")[0].lower() in BOUNCE_SENDERS


def dsn_failures(msg: Message) -> tuple[Failure, ...]:
    """The failed or delayed recipients of an RFC 3464 report (successes are not failures)."""
    out: list[Failure] = []
    for part in _status_parts(msg):
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
            # RFC 3464 §2.3.3: "delayed" is still being retried; "failed" is
            # permanent only with a 5.x.x status (RFC 3463 §2): Postfix gives
            # up on 4.4.1 after days of timeouts, which says nothing of the mailbox.
            hard = action != "delayed" and status.startswith("5.")
            out.append(Failure(recipient, hard, status))
    return tuple(out)


def prose_status(msg: Message) -> str:
    """The status a prose bounce states in SMTP's own words; "" when it states none.

    A permanent one (5.x.x) wins over a temporary one: a bounce that gave up
    after a 4xx and then met a 5xx is about the 5xx.
    """
    text = _bounce_text(msg)
    found = [".".join(m.groups()) for m in _SMTP_REPLY.finditer(text)]
    found += [".".join(m.groups()) for m in _QSBMF_STATUS.finditer(text)]
    return next((s for s in found if s.startswith("5")), found[0] if found else "")


def _status_parts(msg: Message) -> Iterator[Message]:
    """``message/delivery-status`` parts of ``msg`` itself, not of messages attached to it."""
    if msg.get_content_type() == "message/delivery-status":
        yield msg
    elif msg.get_content_maintype() == "multipart":
        payload = msg.get_payload()
        if isinstance(payload, list):
            for sub in payload:
                if isinstance(sub, Message):
                    yield from _status_parts(sub)


def _status_code(field: str) -> str:
    """``5.1.1``; some MTAs put a basic reply code (``553 ...``) in the Status field."""
    m = _ENHANCED.search(field)
    if m:
        return ".".join(m.groups())
    basic = re.match(r"\s*([245]\d\d)\b", field)
    return basic.group(1) if basic else ""


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
