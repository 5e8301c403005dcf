"""Messages built the way mail clients build them from a mailto link or a reply.

Each builder decodes the mailto URI as a client does (RFC 6068: percent-decoding,
no "+" for space) and writes the headers and MIME layout that client writes, so
the tests meet the shapes digest meets in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from html import escape
from urllib.parse import unquote, urlsplit

SENT = datetime(2026, 12, 3, 8, 15, tzinfo=UTC)


@dataclass(frozen=True)
class Mailto:
    to: str
    subject: str
    body: str


def open_mailto(uri: str) -> Mailto:
    parts = urlsplit(uri)
    assert parts.scheme == "mailto"
    fields: dict[str, str] = {}
    for pair in parts.query.split("&"):
        name, _, value = pair.partition("=")
        fields[unquote(name).lower()] = unquote(value)
    return Mailto(unquote(parts.path), fields.get("subject", ""), fields.get("body", ""))


def gmail(uri: str, sender: str, *, message_id: str = "<CAGmail0001@mail.gmail.example>") -> bytes:
    """Gmail's unsubscribe button: sends the mailto's subject and body unchanged, text + HTML."""
    link = open_mailto(uri)
    msg = EmailMessage()
    msg["MIME-Version"] = "1.0"
    msg["From"] = sender
    msg["Date"] = format_datetime(SENT)
    msg["Message-ID"] = message_id
    msg["Subject"] = link.subject
    msg["To"] = link.to
    msg.set_content(link.body)
    html = "<br>".join(escape(line) for line in link.body.splitlines())
    msg.add_alternative(f'<div dir="ltr">{html}</div>', subtype="html")
    return b"Return-Path: <" + sender.encode() + b">\n" + msg.as_bytes(policy=SMTP)


def outlook(uri: str, sender: str, *, signature: str = "Sent from Outlook") -> bytes:
    """Outlook: the link opens a new message; the user adds nothing but the signature."""
    link = open_mailto(uri)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = link.to
    msg["Subject"] = link.subject
    msg["Thread-Topic"] = link.subject
    msg["Thread-Index"] = "AQHbRz1Xb1zJc3Zk2E2pQ0m7n3yL9g=="
    msg["Date"] = format_datetime(SENT)
    msg["Message-ID"] = "<BY5PR12MB4258AAAA@BY5PR12MB4258.namprd12.prod.outlook.com>"
    msg["Accept-Language"] = "en-US"
    msg["X-MS-Has-Attach"] = ""
    msg.set_content(f"{link.body}\n\n{signature}\n", cte="quoted-printable")
    paragraphs = "".join(f"<p>{escape(line)}</p>" for line in link.body.splitlines())
    msg.add_alternative(
        f"<html><body>{paragraphs}<p>{escape(signature)}</p></body></html>",
        subtype="html",
        cte="quoted-printable",
    )
    return msg.as_bytes(policy=SMTP)


def apple_mail(uri: str, sender: str) -> bytes:
    """Apple Mail: plain text, quoted-printable, its Mime-Version comment and X-Mailer."""
    link = open_mailto(uri)
    msg = EmailMessage()
    msg["From"] = sender
    msg["Subject"] = link.subject
    msg["Message-Id"] = "<8E5D7C2A-0000-4A6E-9C0D-2F4B6A8C0E1D@icloud.example>"
    msg["Date"] = format_datetime(SENT)
    msg["To"] = link.to
    msg["X-Mailer"] = "Apple Mail (2.3774.600.62)"
    msg.set_content(link.body, cte="quoted-printable")
    return msg.as_bytes(policy=SMTP)


def plain(
    sender: str,
    subject: str,
    body: str,
    *,
    to: str = "papers@digest.example.org",
    extra: dict[str, str] | None = None,
) -> bytes:
    """Any other message, with extra headers (Auto-Submitted, Return-Path, ...)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(SENT)
    msg["Message-ID"] = "<plain.0001@example.org>"
    for name, value in (extra or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP)
