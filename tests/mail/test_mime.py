"""Message bytes built with C codecs parse back to exactly the text that was encoded."""

from __future__ import annotations

import asyncio
import email
from email import policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.mail import mime
from digest.mail.smtp import Mailer
from digest.models import SmtpSettings
from tests.support.smtp_server import SmtpServer

TRICKY = (
    ".a line starting with a dot\n"
    ".\n"
    "From the start of a line, as mbox would mangle it\n"
    + "x" * 74
    + "From \n"
    + "From "
    + "é" * 40
    + "\n"
    "trailing spaces   \n"
    "trailing tab\t\n"
    "a=b, 100% ü ß 中文 \U0001f600\n"
    "crlf line\r\n" + "long " * 60 + "\n"
    "no final newline"
)


def headers(subject: str = "Hello") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Daily Papers <papers@digest.test>"
    msg["To"] = "alice@example.org"
    msg["Subject"] = subject
    return msg


def parsed(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)  # type: ignore[return-value]


def as_sent(text: str) -> str:
    """What the reader sees: line ends canonical, one final newline."""
    text = text.replace("\r\n", "\n")
    return text if text.endswith("\n") else text + "\n"


def test_tricky_lines_parse_back_unchanged() -> None:
    data = mime.alternative(headers(), (("plain", TRICKY), ("html", "<p>" + TRICKY)), "=_b")
    msg = parsed(data)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg.get_body(("plain",)).get_content() == as_sent(TRICKY)
    assert msg.get_body(("html",)).get_content() == as_sent("<p>" + TRICKY)


def test_every_encoded_line_is_short_and_none_starts_with_from() -> None:
    data = mime.alternative(headers(), (("plain", TRICKY),), "=_b")
    body = data.split(b"\n\n", 1)[1]
    lines = body.split(b"\n")
    assert max(len(line) for line in lines) <= 76
    assert not any(line.startswith(b"From ") for line in lines)


def test_text_in_other_scripts_is_sent_as_base64() -> None:
    cte, _ = mime.encode_text("中文的摘要。" * 200)
    assert cte == "base64"
    assert mime.encode_text("An abstract in English. " * 50)[0] == "quoted-printable"


def test_a_boundary_an_encoded_body_could_contain_is_refused() -> None:
    with pytest.raises(ValueError):
        mime.alternative(headers(), (("plain", "x"),), "boundary")


def test_non_ascii_subject_is_encoded_by_the_header_policy() -> None:
    data = mime.alternative(headers("Schrödinger – 中文"), (("plain", "x"),), "=_b")
    assert data.isascii()
    assert parsed(data)["Subject"] == "Schrödinger – 中文"


FRAGMENTS = ["From ", ".", " ", "\t", "\n", "\r\n", "é", "=", "x" * 37, "中", "\U0001f600"]
texts = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=400),
    st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_any_text_parses_back_unchanged(text: str) -> None:
    text = text.replace("\r", "")  # a lone CR is no line end a mail can carry
    data = mime.alternative(headers(), (("plain", text),), "=_b")
    assert data.isascii()
    assert max(len(line) for line in data.split(b"\n")) <= 78  # headers fold at 78
    assert parsed(data).get_body(("plain",)).get_content() == as_sent(text)


def test_the_smtp_server_receives_the_text_unchanged() -> None:
    # dot-stuffing and CRLF are the SMTP client's: lines starting with "." survive
    data = mime.alternative(headers(), (("plain", TRICKY),), "=_b")
    with SmtpServer() as smtp:
        mailer = Mailer(SmtpSettings(host="127.0.0.1", port=smtp.port, sender="p@digest.test"))
        (outcome,) = asyncio.run(mailer.send_all([("a", "alice@example.org", data)]))
        assert outcome.status == "accepted"
        (received,) = smtp.received
    got = received.message.get_body(("plain",)).get_content()
    assert got.replace("\r\n", "\n") == as_sent(TRICKY)
