"""Incoming mail: what it means, what it changes, and what is answered.

Commands are built from digest's own links the way Gmail, Outlook and Apple
Mail build them; bounces and auto-replies are the files in fixtures/mail/.
Every case checks both halves: the state it may change, and the mail it may
(almost always: may not) send.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, default

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.models import ReaderState
from digest.replies.classify import (
    MAX_MESSAGE_BYTES,
    AutoReply,
    Bounce,
    Command,
    Ignore,
    Meaning,
    PlainReply,
    classify,
)
from digest.replies.commands import ReaderLinks, reader_links
from digest.replies.ingest import Decision, ReplyContext, decide
from digest.replies.readers import is_suppressed
from digest.replies.tokens import ReplySecret
from tests.support.mail_clients import apple_mail, gmail, open_mailto, outlook, plain
from tests.support.paths import MAIL

SECRET = ReplySecret(b"test-secret-0123456789abcdef")
OPERATOR = Address("Daily Papers", "papers", "digest.example.org")
NOW = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)
CONTEXT = ReplyContext(SECRET, OPERATOR)
SUBSCRIBERS = (
    "alice@example.org",
    "bob@example.com",
    "carol@example.net",
    "dave@example.com",
    "grace@example.edu",
    "heidi@icloud.example",
    "ivan.no.such.user@gmail.com",
    # the out-of-office fixtures' readers
    "erin@gmail.example",
    "frank@contoso.example",
    "hans.muster@uni-beispiel.example",
    "lena.fischer@outlook.example",
)


def links(
    address: str = "alice@example.org", papers: tuple[str, ...] = ("2202.12139",)
) -> ReaderLinks:
    return reader_links(SECRET, OPERATOR, address, papers, issued=NOW.date())


def fixture(name: str) -> bytes:
    return (MAIL / name).read_bytes()


def outcome_of(raw: bytes) -> Meaning:
    return classify(raw, secret=SECRET, own_addresses=("papers@digest.example.org",))


class Inbox:
    """The store and the mailer as ``digest ingest`` would drive them, in memory."""

    def __init__(self, **states: ReaderState) -> None:
        self.states = {a: ReaderState() for a in SUBSCRIBERS}
        self.states.update({k.replace("_at_", "@"): v for k, v in states.items()})
        self.sent: list[EmailMessage] = []

    def deliver(self, raw: bytes, now: datetime = NOW) -> Decision:
        handling = decide(raw, CONTEXT, state_of=self.states.get, now=now)
        if handling.response is not None and handling.reader is not None:
            self.states[handling.reader] = handling.response.state
            if handling.response.reply is not None:
                self.sent.append(handling.response.reply)
        return handling

    def acknowledged(self, address: str) -> bool:
        """Whether the one mail sent is an acknowledgement to ``address``."""
        return [(str(m["To"]), ": done, " in str(m["Subject"])) for m in self.sent] == [
            (address, True)
        ]

    def untouched_except(self, *addresses: str) -> bool:
        """No reader but ``addresses`` chose or was counted anything (a note of a reply aside)."""
        return all(
            replace(s, last_replies=()) == ReaderState()
            for a, s in self.states.items()
            if a not in addresses
        )


# -- commands built from digest's own links -------------------------------------------------


def test_gmail_unsubscribe_button_unsubscribes_that_reader_only() -> None:
    inbox = Inbox()
    uri = links().list_unsubscribe.strip("<>")
    handling = inbox.deliver(gmail(uri, "Alice <alice@example.org>"))
    assert handling.meaning == Command(
        "alice@example.org",
        "unsubscribe",
        "",
        "alice@example.org",
        "<CAGmail0001@mail.gmail.example>",
        issued=NOW.date(),
    )
    assert is_suppressed(inbox.states["alice@example.org"], NOW)
    assert inbox.untouched_except("alice@example.org") and inbox.acknowledged("alice@example.org")


def test_outlook_more_like_this_adds_the_paper_to_the_likes() -> None:
    inbox = Inbox()
    inbox.deliver(outlook(links().paper("2202.12139").more, "alice@example.org"))
    assert inbox.states["alice@example.org"].likes == ("2202.12139",)
    assert inbox.acknowledged("alice@example.org")


def test_apple_mail_weekly_link_sets_the_frequency() -> None:
    inbox = Inbox()
    inbox.deliver(apple_mail(links().weekly, "Alice <alice@example.org>"))
    assert inbox.states["alice@example.org"].frequency == "weekly"


def test_old_style_paper_id_survives_the_round_trip() -> None:
    uri = links(papers=("astro-ph/9904306",)).paper("astro-ph/9904306").less
    outcome = outcome_of(gmail(uri, "alice@example.org"))
    assert outcome == Command(
        "alice@example.org",
        "less",
        "astro-ph/9904306",
        "alice@example.org",
        "<CAGmail0001@mail.gmail.example>",
        issued=NOW.date(),
        return_path="alice@example.org",
    )


def test_a_command_sent_from_another_address_acts_for_the_token_address() -> None:
    # A reader whose university mail is forwarded to a personal mailbox.
    inbox = Inbox()
    handling = inbox.deliver(gmail(links().pause, "alice.private@gmail.example"))
    assert handling.reader == "alice@example.org"
    assert is_suppressed(inbox.states["alice@example.org"], NOW)


def test_a_gateway_that_upper_cases_the_subject_does_not_break_the_token() -> None:
    link = open_mailto(links().unsubscribe)
    raw = plain("alice@example.org", link.subject.upper(), "")
    assert isinstance(outcome_of(raw), Command)


def test_a_client_that_drops_the_subject_still_carries_the_command_in_the_body() -> None:
    link = open_mailto(links().unsubscribe)
    raw = plain("alice@example.org", "", link.body)
    assert isinstance(outcome_of(raw), Command)


def test_the_same_unsubscribe_delivered_twice_changes_nothing_the_second_time() -> None:
    inbox = Inbox()
    raw = gmail(links().unsubscribe, "alice@example.org")
    inbox.deliver(raw)
    first = inbox.states["alice@example.org"]
    second = inbox.deliver(raw, NOW + timedelta(days=1))
    assert inbox.states["alice@example.org"] == first
    assert second.response is not None and not second.response.effects.changed


# -- forged, tampered and replayed tokens ---------------------------------------------------


def asked_to_confirm(inbox: Inbox, reader: str) -> bool:
    """Nothing changed for anyone, and ``reader`` alone was mailed a confirmation."""
    mailed = [(str(m["To"]), "confirm" in str(m["Subject"])) for m in inbox.sent]
    still = not is_suppressed(inbox.states[reader], NOW)
    return inbox.untouched_except(reader) and still and mailed == [(reader, True)]


def test_a_forged_unsubscribe_changes_nothing_but_asks_the_reader_it_names() -> None:
    # the reader's digest may have been signed with a key since lost (README, "Replies")
    inbox = Inbox()
    raw = plain("mallory@evil.example", "unsubscribe alice@example.org " + "A" * 26, "")
    assert isinstance(inbox.deliver(raw).meaning, PlainReply)
    assert asked_to_confirm(inbox, "alice@example.org")


def test_a_token_moved_to_another_address_changes_nothing() -> None:
    inbox = Inbox()
    subject = open_mailto(links().unsubscribe).subject.replace(
        "alice@example.org", "bob@example.com"
    )
    inbox.deliver(plain("mallory@evil.example", subject, ""))
    assert asked_to_confirm(inbox, "bob@example.com")


def test_a_token_moved_to_another_action_changes_nothing() -> None:
    inbox = Inbox()
    subject = open_mailto(links().unsubscribe).subject.replace("unsubscribe", "pause")
    handling = inbox.deliver(plain("alice@example.org", subject, ""))
    assert isinstance(handling.meaning, Ignore) and "does not match" in handling.meaning.reason
    assert inbox.untouched_except() and inbox.sent == []


def test_a_forged_token_from_the_readers_own_address_only_asks_her() -> None:
    inbox = Inbox()
    inbox.deliver(plain("alice@example.org", "unsubscribe alice@example.org " + "B" * 26, ""))
    assert asked_to_confirm(inbox, "alice@example.org")


def test_a_command_for_someone_who_is_no_longer_a_subscriber_changes_nothing() -> None:
    inbox = Inbox()
    uri = links("zoe@example.org").unsubscribe
    handling = inbox.deliver(gmail(uri, "zoe@example.org"))
    assert isinstance(handling.meaning, Ignore) and "not a subscriber" in handling.meaning.reason
    assert "zoe@example.org" not in inbox.states and inbox.sent == []


def test_a_reply_quoting_a_digests_links_does_not_act_on_them() -> None:
    line = open_mailto(links().unsubscribe).subject
    body = f"Thanks, great list!\n\n> Unsubscribe by sending:\n> {line}\n"
    outcome = outcome_of(plain("alice@example.org", "Re: 3 new papers", body))
    assert isinstance(outcome, Ignore)


# -- bounces ----------------------------------------------------------------------------


BOUNCES = (
    "postfix_dsn_user_unknown.eml",
    "postfix_dsn_delayed.eml",
    "postfix_dsn_expired.eml",
    "gmail_dsn_no_such_user.eml",
    "exim_dsn_user_unknown.eml",
    "exim_bounce_plain.eml",
    "qmail_bounce.eml",
    "qmail_bounce_remote_550.eml",
)


@pytest.mark.parametrize(
    ("name", "reader", "hard", "status"),
    [
        ("postfix_dsn_user_unknown.eml", "bob@example.com", True, "5.1.1"),
        ("postfix_dsn_delayed.eml", "bob@example.com", False, "4.4.1"),
        # failed for good, but after days of timeouts: 4.x.x says nothing of the mailbox
        ("postfix_dsn_expired.eml", "bob@example.com", False, "4.4.1"),
        ("gmail_dsn_no_such_user.eml", "ivan.no.such.user@gmail.com", True, "5.1.1"),
        ("exim_dsn_user_unknown.eml", "carol@example.net", True, "5.0.0"),
        ("exim_bounce_plain.eml", "carol@example.net", True, "5.1.1"),
        ("qmail_bounce.eml", "dave@example.com", True, "5.1.1"),
        # a bare "550" with no enhanced status: a failure, but not said in SMTP's exact words
        ("qmail_bounce_remote_550.eml", "dave@example.com", False, ""),
    ],
)
def test_a_bounce_counts_for_the_reader_whose_digest_it_returns(
    name: str, reader: str, hard: bool, status: str
) -> None:
    outcome = outcome_of(fixture(name))
    assert isinstance(outcome, Bounce)
    assert (outcome.recipient, outcome.hard, outcome.status) == (reader, hard, status)


def forged(raw: bytes) -> bytes:
    """The same bounce without the returned digest's tokened links: what a forger can write."""
    return b"\n".join(line for line in raw.split(b"\n") if b"unsubscribe%20" not in line)


@pytest.mark.parametrize("name", BOUNCES)
def test_a_bounce_without_the_returned_digest_counts_for_no_one(name: str) -> None:
    # Whatever address it names: only our token says whose mail bounced.
    outcome = outcome_of(forged(fixture(name)))
    assert isinstance(outcome, Ignore)
    assert "returns no digest of ours" in outcome.reason


def test_forged_bounces_never_suspend_a_reader() -> None:
    inbox = Inbox()
    for day in range(5):
        raw = forged(fixture("postfix_dsn_user_unknown.eml"))
        inbox.deliver(
            raw.replace(b"4F1A2C0A1B@", f"FORGED{day:02d}@".encode()), NOW + timedelta(days=day)
        )
    assert inbox.untouched_except() and inbox.sent == []


def test_a_bounce_from_a_forwarding_target_is_counted_for_the_reader_we_mailed() -> None:
    # bob@example.com forwards to bob.new@example.net, which no longer exists.
    raw = fixture("postfix_dsn_user_unknown.eml")
    raw = raw.replace(
        b"Final-Recipient: rfc822; bob@example.com", b"Final-Recipient: rfc822; bob.new@example.net"
    )
    raw = raw.replace(b"Original-Recipient: rfc822;bob@example.com\n", b"")
    outcome = outcome_of(raw)
    assert isinstance(outcome, Bounce) and (outcome.recipient, outcome.hard) == (
        "bob@example.com",
        True,
    )


def test_three_hard_bounces_in_a_month_suspend_the_reader_and_are_never_answered() -> None:
    inbox = Inbox()
    raw = fixture("postfix_dsn_user_unknown.eml")
    for day in (0, 7, 14):
        # Each bounce is a new message: give it its own Message-ID.
        fresh = raw.replace(b"4F1A2C0A1B@", f"4F1A2C0A{day:02d}@".encode())
        inbox.deliver(fresh, NOW + timedelta(days=day))
    assert inbox.states["bob@example.com"].suspended_at == NOW + timedelta(days=14)
    assert inbox.untouched_except("bob@example.com") and inbox.sent == []


def test_a_soft_bounce_changes_nothing() -> None:
    inbox = Inbox()
    inbox.deliver(fixture("postfix_dsn_delayed.eml"))
    assert inbox.untouched_except() and inbox.sent == []


def test_a_bounce_for_a_former_subscriber_changes_nothing() -> None:
    inbox = Inbox()
    del inbox.states["carol@example.net"]  # removed from subscribers.yaml since
    handling = inbox.deliver(fixture("exim_bounce_plain.eml"))
    assert isinstance(handling.meaning, Ignore) and "not a subscriber" in handling.meaning.reason
    assert inbox.untouched_except() and inbox.sent == []


def test_backscatter_for_an_address_we_never_mailed_changes_nothing() -> None:
    # Spam sent with our address as sender bounces back to us.
    inbox = Inbox()
    raw = forged(fixture("exim_bounce_plain.eml")).replace(b"carol@", b"nobody@")
    handling = inbox.deliver(raw)
    assert isinstance(handling.meaning, Ignore)
    assert inbox.untouched_except() and inbox.sent == []


def test_a_null_sender_message_that_names_no_recipient_is_ignored() -> None:
    raw = plain(
        "MAILER-DAEMON@mx.example.net",
        "Warning",
        "Something happened.",
        extra={"Return-Path": "<>"},
    )
    assert isinstance(outcome_of(raw), Ignore)


def test_a_bounce_never_reads_the_returned_messages_text_as_its_status() -> None:
    # An SMTP reply quoted in the returned digest (an abstract about mail, say) is not the
    # bounce's: only the explanation above the returned message counts.
    raw = fixture("exim_bounce_plain.eml")
    explanation, returned = raw.split(b"------ This is a copy")
    explanation = explanation.replace(b"550 5.1.1", b"host said")
    raw = explanation + b"------ This is a copy" + returned + b"\n550 5.1.1 mailbox unknown\n"
    outcome = outcome_of(raw)
    assert isinstance(outcome, Bounce) and not outcome.hard


def test_a_bounce_we_cannot_read_counts_for_the_reader_whose_digest_it_returns() -> None:
    raw = fixture("qmail_bounce.eml").replace(b"<dave@example.com>:\n", b"")
    outcome = outcome_of(raw)
    assert isinstance(outcome, Bounce)
    assert (outcome.recipient, outcome.hard) == ("dave@example.com", True)


def test_a_mail_system_message_without_a_status_is_a_soft_bounce() -> None:
    raw = fixture("exim_bounce_plain.eml").replace(b"550 5.1.1", b"the host said no")
    outcome = outcome_of(raw)
    assert isinstance(outcome, Bounce) and (outcome.hard, outcome.status) == (False, "")


def test_a_forwarded_bounce_is_not_a_bounce() -> None:
    # A person forwards a bounce to us as an attachment: the report is theirs, not ours.
    bounce = message_from_bytes(fixture("postfix_dsn_user_unknown.eml"), policy=default)
    msg = message_from_bytes(
        plain("bob@example.com", "Fwd: bounce", "Look, it bounced:"), policy=default
    )
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(bounce)
    assert not isinstance(outcome_of(msg.as_bytes(policy=SMTP)), Bounce)


# -- auto-replies and loops --------------------------------------------------------------


OUT_OF_OFFICE = (
    "exchange_automatic_reply.eml",
    "outlook_com_automatic_reply.eml",
    "gmail_vacation_responder.eml",
    "german_vacation_notice.eml",
    "legacy_out_of_office_subject_only.eml",
)


@pytest.mark.parametrize("name", OUT_OF_OFFICE)
def test_out_of_office_replies_are_ignored_and_never_answered(name: str) -> None:
    inbox = Inbox()
    handling = inbox.deliver(fixture(name))
    assert isinstance(handling.meaning, AutoReply)
    assert inbox.untouched_except() and inbox.sent == []


def test_out_of_office_replies_day_after_day_leave_every_reader_subscribed() -> None:
    # Null sender, "room 512", "bis 5.1.26", "Room 550", the digest quoted with its
    # tokened links, a colleague who is also a subscriber: none of it is a bounce.
    inbox = Inbox()
    for day in range(5):
        for name in OUT_OF_OFFICE:
            raw = re.sub(rb"(?m)^Message-ID: <", f"Message-ID: <day{day}.".encode(), fixture(name))
            handling = inbox.deliver(raw, NOW + timedelta(days=day))
            assert not isinstance(handling.meaning, Bounce), (name, handling.meaning)
    assert inbox.untouched_except() and inbox.sent == []


_MARKERS = (
    "Auto-Submitted",
    "X-MS-Exchange-Inbox-Rules-Loop",
    "X-Auto-Response-Suppress",
    "X-Autoreply",
    "Precedence",
)


def out_of_office_with(marker: str, value: str, sender: str = "frank@contoso.example") -> bytes:
    """The Exchange reply (null sender, "room 512", frank's digest quoted) with one marker."""
    raw = fixture("exchange_automatic_reply.eml")
    for name in _MARKERS:
        raw = re.sub(rb"(?mi)^" + name.encode() + rb":.*\n", b"", raw)
    raw = raw.replace(b"Subject: Automatic reply: ", b"Subject: Re: ")
    raw = re.sub(rb"(?m)^From: .*$", f"From: {sender}".encode(), raw, count=1)
    return raw.replace(b"MIME-Version: 1.0\n", f"{marker}: {value}\nMIME-Version: 1.0\n".encode())


@pytest.mark.parametrize(
    ("marker", "value"),
    [
        ("Auto-Submitted", "auto-replied"),
        ("Auto-Submitted", "auto-generated"),
        ("Auto-Submitted", "auto-replied (vacation)"),
        ("X-Autoreply", "yes"),
        ("Precedence", "auto_reply"),
        ("Precedence", "bulk"),
        ("Precedence", "junk"),
        ("X-Auto-Response-Suppress", "All"),
        ("X-MS-Exchange-Inbox-Rules-Loop", "frank@contoso.example"),
    ],
)
def test_an_auto_reply_is_never_a_bounce(marker: str, value: str) -> None:
    assert isinstance(outcome_of(out_of_office_with(marker, value)), AutoReply)


@pytest.mark.parametrize(
    ("marker", "value"),
    [
        ("X-Autoreply", "yes"),
        ("Precedence", "junk"),
        ("X-Auto-Response-Suppress", "All"),
        ("X-MS-Exchange-Inbox-Rules-Loop", "frank@contoso.example"),
    ],
)
def test_a_responders_marker_makes_an_auto_reply_whatever_its_sender(
    marker: str, value: str
) -> None:
    raw = out_of_office_with(marker, value, sender="MAILER-DAEMON@contoso.example")
    assert isinstance(outcome_of(raw), AutoReply)


def test_a_null_sender_reply_from_a_person_is_not_a_bounce() -> None:
    # No marker at all: the null envelope sender alone makes nothing a bounce.
    inbox = Inbox()
    handling = inbox.deliver(out_of_office_with("X-Mailer", "Microsoft Outlook 16.0"))
    assert isinstance(handling.meaning, Ignore)
    assert inbox.untouched_except() and inbox.sent == []


def test_a_persons_words_from_a_mailer_daemon_are_no_hard_bounce() -> None:
    # Even with every marker gone and a mail system's sender, "room 512" and
    # "bis 5.1.26" are not SMTP's words for a failed recipient.
    raw = out_of_office_with("X-Mailer", "Microsoft Outlook 16.0", "MAILER-DAEMON@contoso.example")
    raw = raw.replace(b"until 14 December", b"bis 5.1.26")
    outcome = outcome_of(raw)
    assert isinstance(outcome, Bounce)
    assert (outcome.recipient, outcome.hard, outcome.status) == ("frank@contoso.example", False, "")


def test_an_out_of_office_quoting_another_subscribers_digest_counts_against_no_one() -> None:
    # Frank's reply quotes the digest bob forwarded to him and names bob in its text.
    raw = fixture("exchange_automatic_reply.eml").replace(
        b"frank%40contoso.example%20XYBP37HH7HCUNWD4UTIPT4FRII",
        b"bob%40example.com%20P5PCJFT6XCMTR7T3EINXVK6K4M",
    )
    inbox = Inbox()
    for day in range(3):
        fresh = raw.replace(b"<a5b1e0f2", f"<day{day}.a5b1e0f2".encode())
        inbox.deliver(fresh, NOW + timedelta(days=day))
    assert inbox.untouched_except() and inbox.sent == []


def test_an_auto_reply_echoing_a_command_does_not_act() -> None:
    subject = "Automatic reply: " + open_mailto(links().unsubscribe).subject
    raw = plain(
        "alice@example.org", subject, "I am away.", extra={"Auto-Submitted": "auto-replied"}
    )
    assert isinstance(outcome_of(raw), AutoReply)


def test_precedence_bulk_is_an_auto_reply() -> None:
    raw = plain("list@example.org", "Stop", "stop", extra={"Precedence": "bulk"})
    assert isinstance(outcome_of(raw), AutoReply)


def test_auto_submitted_no_is_a_person() -> None:
    raw = plain("alice@example.org", "Stop", "", extra={"Auto-Submitted": "no"})
    assert isinstance(outcome_of(raw), PlainReply)


def test_a_confirmation_mail_coming_back_is_not_answered() -> None:
    inbox = Inbox()
    inbox.deliver(fixture("outlook_plain_reply_unsubscribe.eml"))
    (confirmation,) = inbox.sent
    # A reader address that forwards everything back to us, or a misrouted copy.
    handling = inbox.deliver(confirmation.as_bytes(policy=SMTP), NOW + timedelta(minutes=1))
    assert isinstance(handling.meaning, AutoReply)
    assert len(inbox.sent) == 1 and not is_suppressed(inbox.states["grace@example.edu"], NOW)


def test_a_read_receipt_is_ignored() -> None:
    raw = (
        b"From: alice@example.org\nTo: papers@digest.example.org\nSubject: Read: 3 new papers\n"
        b"MIME-Version: 1.0\n"
        b'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nStop. Your message was displayed.\n"
        b"--b\nContent-Type: message/disposition-notification\n\n"
        b"Final-Recipient: rfc822; alice@example.org\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\n--b--\n"
    )
    assert outcome_of(raw) == Ignore("a disposition-notification report")


@pytest.mark.parametrize(
    "sender",
    [
        "owner-physics@lists.example.org",
        "physics-request@lists.example.org",
        "no-reply@example.org",
        "postmaster@example.org",
    ],
)
def test_automated_senders_are_never_answered(sender: str) -> None:
    assert isinstance(outcome_of(plain(sender, "unsubscribe", "")), Ignore)


def test_our_own_digest_coming_back_is_not_answered() -> None:
    raw = plain("Daily Papers <papers@digest.example.org>", "Stop", "")
    assert outcome_of(raw) == Ignore("our own mail came back")


def test_a_mail_loop_is_cut_after_three_confirmations() -> None:
    inbox = Inbox()
    for i in range(20):
        raw = plain("grace@example.edu", "unsubscribe", "", extra={"X-Loop-N": str(i)})
        inbox.deliver(raw.replace(b"<plain.0001@", f"<plain.{i:04d}@".encode()))
    assert len(inbox.sent) == 3


# -- plain replies and their confirmation -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sender", "action"),
    [
        ("outlook_plain_reply_unsubscribe.eml", "grace@example.edu", "unsubscribe"),
        ("apple_mail_plain_reply_stop.eml", "heidi@icloud.example", "unsubscribe"),
    ],
)
def test_a_plain_reply_with_a_command_word_is_recognised(
    name: str, sender: str, action: str
) -> None:
    outcome = outcome_of(fixture(name))
    assert isinstance(outcome, PlainReply) and (outcome.sender, outcome.action) == (sender, action)


def test_a_plain_reply_changes_nothing_but_gets_one_confirmation() -> None:
    inbox = Inbox()
    inbox.deliver(fixture("outlook_plain_reply_unsubscribe.eml"))
    assert not is_suppressed(inbox.states["grace@example.edu"], NOW)
    (reply,) = inbox.sent
    assert reply["To"].addresses[0].addr_spec == "grace@example.edu"
    assert reply["Auto-Submitted"] == "auto-replied"


def test_the_confirmation_threads_under_the_readers_message() -> None:
    inbox = Inbox()
    inbox.deliver(fixture("outlook_plain_reply_unsubscribe.eml"))
    (reply,) = inbox.sent
    original = "<BY5PR12MB4258C1A2B3C4D5E6F7A8B9C0@BY5PR12MB4258.namprd12.prod.outlook.com>"
    assert reply["In-Reply-To"] == original
    assert reply["References"] == f"<digest.2026-12-03.grace@digest.example.org> {original}"


def test_the_confirmation_subject_carries_no_token() -> None:
    inbox = Inbox()
    inbox.deliver(fixture("apple_mail_plain_reply_stop.eml"))
    (reply,) = inbox.sent
    assert str(reply["Subject"]) == "Daily Papers: confirm to stop all mail to heidi@icloud.example"


def test_sending_the_confirmations_link_unsubscribes() -> None:
    inbox = Inbox()
    inbox.deliver(fixture("apple_mail_plain_reply_stop.eml"))
    (reply,) = inbox.sent
    body = reply.get_content()
    uri = next(w for w in body.split() if w.startswith("mailto:"))
    inbox.deliver(apple_mail(uri, "heidi@icloud.example"), NOW + timedelta(minutes=5))
    assert is_suppressed(inbox.states["heidi@icloud.example"], NOW + timedelta(minutes=5))


def test_a_plain_reply_from_a_stranger_is_not_answered() -> None:
    inbox = Inbox()
    inbox.deliver(plain("stranger@example.org", "unsubscribe", ""))
    assert inbox.sent == [] and inbox.untouched_except()


def test_a_sentence_starting_with_daily_is_not_a_command() -> None:
    assert isinstance(outcome_of(fixture("plain_question_no_command.eml")), Ignore)


def test_a_reply_to_a_digest_whose_subject_starts_with_daily_is_not_a_command() -> None:
    raw = plain("alice@example.org", "Re: Daily Papers: 3 new papers", "Thanks!")
    assert isinstance(outcome_of(raw), Ignore)


# -- hostile and broken input ------------------------------------------------------------


@pytest.mark.parametrize("name", ["bad_charset_non_utf8.eml", "truncated_mime.eml"])
def test_malformed_messages_never_act(name: str) -> None:
    inbox = Inbox()
    handling = inbox.deliver(fixture(name))
    assert not isinstance(handling.meaning, Command | Bounce)
    assert all(not is_suppressed(s, NOW) for s in inbox.states.values())


def test_a_5_mb_attachment_is_not_read_past_the_cap() -> None:
    msg = message_from_bytes(
        plain("alice@example.org", "Re: paper", "see attached"), policy=default
    )
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(b"\0" * (5 << 20), maintype="application", subtype="octet-stream")
    raw = msg.as_bytes(policy=SMTP)
    assert len(raw) > 5 * MAX_MESSAGE_BYTES
    assert isinstance(outcome_of(raw), Ignore)


def test_a_command_in_a_huge_message_is_still_read_from_its_subject() -> None:
    subject = open_mailto(links().unsubscribe).subject
    msg = message_from_bytes(plain("alice@example.org", subject, "bye"), policy=default)
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(b"\0" * (5 << 20), maintype="application", subtype="octet-stream")
    assert isinstance(outcome_of(msg.as_bytes(policy=SMTP)), Command)


def test_an_empty_message_is_ignored() -> None:
    assert isinstance(outcome_of(b""), Ignore)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_classify_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    assert isinstance(outcome_of(raw), Command | Bounce | AutoReply | PlainReply | Ignore)


_FIXTURES = sorted(p.name for p in MAIL.glob("*.eml"))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_FIXTURES), st.data())
def test_classify_never_raises_on_damaged_real_shapes(name: str, data: st.DataObject) -> None:
    raw = bytearray(fixture(name))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            raw[at] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del raw[at:]
            if not raw:
                break
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=40))
    outcome = outcome_of(bytes(raw))
    assert not isinstance(outcome, Command)  # no fixture carries a valid token


def test_replying_to_the_confirmation_does_not_confirm() -> None:
    inbox = Inbox()
    inbox.deliver(fixture("apple_mail_plain_reply_stop.eml"))
    (confirmation,) = inbox.sent
    quoted = "\n".join(f"> {line}" for line in confirmation.get_content().splitlines())
    raw = plain("heidi@icloud.example", f"Re: {confirmation['Subject']}", f"no!\n\n{quoted}\n")
    handling = inbox.deliver(raw.replace(b"<plain.0001@", b"<reply.0001@"), NOW)
    assert isinstance(handling.meaning, Ignore)
    assert not is_suppressed(inbox.states["heidi@icloud.example"], NOW)


def test_a_question_to_the_operator_is_left_for_the_operator() -> None:
    handling = Inbox().deliver(fixture("plain_question_no_command.eml"))
    assert not handling.understood


def test_a_handled_command_may_be_filed_away() -> None:
    assert Inbox().deliver(gmail(links().unsubscribe, "alice@example.org")).understood
