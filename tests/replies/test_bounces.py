"""Reading bounces: the status a mail system states, and the reports that are ours to read.

A person's words ("room 512", "bis 5.1.26") must never read as a status; only
SMTP's own reply (RFC 5321 §4.2 code with its RFC 3463 enhanced status) or
qmail's "(#5.1.1)" does, and only above the returned message.
"""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default

import pytest

from digest.replies.bounces import dsn_failures, from_mail_system, is_dsn, prose_status
from tests.support.mail_clients import plain
from tests.support.paths import MAIL


def bounce(text: str) -> EmailMessage:
    msg = message_from_bytes(
        plain("MAILER-DAEMON@mx.example.net", "failure notice", text), policy=default
    )
    assert isinstance(msg, EmailMessage)
    return msg


def report(block: str) -> EmailMessage:
    """A minimal RFC 3464 report with one per-recipient block."""
    raw = (
        "From: MAILER-DAEMON@mx.example.net\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        "--B\nContent-Type: text/plain\n\nIt failed.\n"
        "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n"
        f"{block}\n--B--\n"
    )
    msg = message_from_bytes(raw.encode(), policy=default)
    assert isinstance(msg, EmailMessage)
    return msg


@pytest.mark.parametrize(
    "words",
    [
        "Stop by room 512 if urgent.",
        "Ich bin bis 5.1.26 nicht im Büro.",
        "Raum 512, Tel. +49 30 555 0199.",
        "Room 550 is closed; back on 4.1.27.",
        "Release 5.1.1 of the software is out.",
        "Remote host said: 550 sorry, no mailbox here by that name",
        "host 192.0.2.44 [10.5.1.1] refused",
        "550 4.1.1 is no reply: the classes disagree",
        "It failed (# 5.1.1).",
    ],
)
def test_a_persons_words_state_no_status(words: str) -> None:
    assert prose_status(bounce(words)) == ""


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("host mx2 said: 550 5.1.1 <carol@example.net>: User unknown", "5.1.1"),
        ("550-5.1.1 The email account that you tried to reach does not exist.", "5.1.1"),
        ("said: 552-5.2.2 mailbox full\n", "5.2.2"),
        ("Delay reason: 451 4.3.0 try again later", "4.3.0"),
        ("<dave@example.com>:\nSorry, no mailbox here by that name. (#5.1.1)", "5.1.1"),
        # a permanent failure beside a temporary one is what the bounce is about
        ("first try: 421 4.4.2 timeout\nthen: 550 5.1.1 User unknown", "5.1.1"),
    ],
)
def test_smtps_own_words_state_the_status(text: str, status: str) -> None:
    assert prose_status(bounce(text)) == status


def test_the_returned_message_states_nothing() -> None:
    text = (
        "A message that you sent could not be delivered.\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n"
        "From: Daily Papers <papers@digest.example.org>\n\n"
        "We classify 550 5.1.1 replies seen at large mail hosts.\n"
    )
    assert prose_status(bounce(text)) == ""


def test_returned_headers_without_a_marker_state_nothing() -> None:
    text = (
        "Delivery failed.\n\n"
        "Return-Path: <papers@digest.example.org>\n"
        "Subject: 3 new papers\n\n"
        "We classify 550 5.1.1 replies.\n"
    )
    assert prose_status(bounce(text)) == ""


@pytest.mark.parametrize(
    ("action", "status", "hard"),
    [
        ("failed", "5.1.1", True),
        # RFC 3464 §2.3.3: failed; RFC 3463: 4.x.x is a persistent transient failure
        ("failed", "4.4.7", False),
        ("delayed", "5.1.1", False),
        # a basic reply code where the enhanced status belongs is not a permanent status
        ("failed", "553", False),
    ],
)
def test_a_report_is_hard_only_when_failed_with_a_5xx_status(
    action: str, status: str, hard: bool
) -> None:
    block = f"Final-Recipient: rfc822; bob@example.com\nAction: {action}\nStatus: {status}\n"
    (failure,) = dsn_failures(report(block))
    assert (failure.recipient, failure.hard, failure.status) == ("bob@example.com", hard, status)


def test_a_report_of_a_delivery_is_no_failure() -> None:
    block = "Final-Recipient: rfc822; bob@example.com\nAction: delivered\nStatus: 2.0.0\n"
    assert dsn_failures(report(block)) == ()


def test_a_report_attached_to_a_persons_message_is_not_ours_to_read() -> None:
    dsn = message_from_bytes((MAIL / "postfix_dsn_user_unknown.eml").read_bytes(), policy=default)
    msg = message_from_bytes(plain("bob@example.com", "Fwd: bounce", "Look:"), policy=default)
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(dsn)
    forwarded = message_from_bytes(msg.as_bytes(policy=SMTP), policy=default)
    assert not is_dsn(forwarded) and dsn_failures(forwarded) == ()


@pytest.mark.parametrize(
    ("address", "ours"),
    [
        ("mailer-daemon@googlemail.com", True),
        ("postmaster@example.org", True),
        ("frank@contoso.example", False),
        ("daemon@example.org", False),
        ("", False),
    ],
)
def test_a_mail_system_is_known_by_its_mailbox(address: str, ours: bool) -> None:
    assert from_mail_system(address) is ours
