"""The mailroom: exit codes for the MTA, state saved, confirmations handed back, one store open."""

from __future__ import annotations

import contextlib
import email
import io
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, default
from pathlib import Path

import pytest

from digest.errors import StoreCorruptError, StoreLockedError
from digest.models import ReaderState, Settings, SmtpSettings
from digest.replies.commands import find_commands, reader_links
from digest.replies.ingest import ReplyContext
from digest.replies.mailroom import Ingested, Mailroom, ReaderStore, read_message, reply_context
from digest.replies.readers import is_suppressed
from digest.replies.tokens import ReplySecret, token_matches
from tests.support.mail_clients import gmail, plain
from tests.support.paths import MAIL

SECRET = ReplySecret(b"test-secret-0123456789abcdef")
OPERATOR = Address("Daily Papers", "papers", "digest.example.org")
NOW = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)
TODAY = NOW.date()
CONTEXT = ReplyContext(SECRET, OPERATOR)


class MemoryStore:
    def __init__(self, *subscribers: str, locked: bool = False) -> None:
        self.states = {a: ReaderState() for a in subscribers}
        self.locked = locked
        self.damaged: set[str] = set()
        self.writes = 0

    def reader_state(self, address: str) -> ReaderState | None:
        if self.locked:
            raise StoreLockedError("the database is in use by pid 4242")
        if address in self.damaged:
            raise StoreCorruptError(f"the stored reply state of {address} is damaged")
        return self.states.get(address)

    def set_reader_state(self, address: str, state: ReaderState) -> None:
        self.states[address] = state
        self.writes += 1


def mailroom(store: MemoryStore, ctx: ReplyContext = CONTEXT) -> Mailroom:
    return Mailroom(ctx, lambda now: contextlib.nullcontext(store))


def take(raw: bytes, store: MemoryStore, ctx: ReplyContext = CONTEXT) -> Ingested:
    room = mailroom(store, ctx)
    try:
        return room.take(raw, NOW)
    finally:
        room.close()


def ingest(raw: bytes, store: MemoryStore, sent: list[EmailMessage] | None = None) -> int:
    result = take(raw, store)
    if sent is not None and result.reply is not None:
        sent.append(result.reply)
    return result.exit_code


def unsubscribe_from(address: str) -> bytes:
    """What Gmail's unsubscribe button sends for the digest's List-Unsubscribe header."""
    links = reader_links(SECRET, OPERATOR, address, issued=NOW.date())
    return gmail(links.list_unsubscribe.strip("<>"), address)


def plain_reply() -> bytes:
    """Grace's "unsubscribe" without a token: it earns a confirmation."""
    return (MAIL / "outlook_plain_reply_unsubscribe.eml").read_bytes()


def test_an_unsubscribe_is_saved_and_exits_0() -> None:
    store = MemoryStore("alice@example.org", "bob@example.com")
    assert ingest(unsubscribe_from("alice@example.org"), store) == 0
    assert is_suppressed(store.states["alice@example.org"], NOW)
    assert store.states["bob@example.com"] == ReaderState()


def test_a_busy_database_exits_75_so_the_mta_retries() -> None:
    store = MemoryStore("alice@example.org", locked=True)
    assert ingest(unsubscribe_from("alice@example.org"), store) == 75


def test_a_damaged_reader_record_exits_75_and_is_left_alone() -> None:
    store = MemoryStore("alice@example.org")
    store.damaged.add("alice@example.org")
    assert ingest(unsubscribe_from("alice@example.org"), store) == 75
    assert store.writes == 0


def test_an_ignored_message_exits_0_and_writes_nothing() -> None:
    store = MemoryStore("alice@example.org")
    assert ingest(b"\xff\xfe garbage", store) == 0
    assert store.writes == 0


def test_a_plain_reply_saves_the_confirmation_count_and_sends_one_mail() -> None:
    store = MemoryStore("grace@example.edu")
    sent: list[EmailMessage] = []
    assert ingest((MAIL / "outlook_plain_reply_unsubscribe.eml").read_bytes(), store, sent) == 0
    assert len(sent) == 1
    assert len(store.states["grace@example.edu"].confirmations) == 1


def test_an_unsubscribe_is_acknowledged_to_the_reader_with_the_way_back() -> None:
    result = take(unsubscribe_from("alice@example.org"), MemoryStore("alice@example.org"))
    assert result.exit_code == 0 and result.reply is not None
    assert result.reply["To"].addresses[0].addr_spec == "alice@example.org"
    assert result.reply["Auto-Submitted"] == "auto-replied"
    (undo,) = {c for c in find_commands(result.reply.get_content()) if c.action == "resume"}
    assert token_matches(SECRET, "alice@example.org", "resume", "", undo.token)
    assert "stop all mail to alice@example.org" in result.reply.get_content()


def test_read_message_keeps_the_cap_and_drains_the_rest() -> None:
    stream = io.BytesIO(b"x" * 300_000)
    assert len(read_message(stream, limit=100_000)) == 100_000
    assert stream.read() == b""  # the MTA's pipe was read to the end


def test_a_database_that_cannot_be_opened_exits_75() -> None:
    def locked(now: datetime) -> contextlib.AbstractContextManager[ReaderStore]:
        raise StoreLockedError("the database is in use by pid 4242")

    result = Mailroom(CONTEXT, locked).take(unsubscribe_from("alice@example.org"), NOW)
    assert (result.exit_code, result.decision, result.filed) == (75, None, "tempfail")


def test_the_store_is_opened_at_the_first_message_and_kept_for_the_rest() -> None:
    store = MemoryStore("alice@example.org", "bob@example.com")
    opened: list[datetime] = []

    @contextlib.contextmanager
    def open_readers(now: datetime) -> Iterator[ReaderStore]:
        opened.append(now)
        yield store

    room = Mailroom(CONTEXT, open_readers)
    for address in ("alice@example.org", "bob@example.com"):
        assert room.take(unsubscribe_from(address), NOW).filed == "handled"
    room.close()
    assert opened == [NOW]
    assert all(is_suppressed(state, NOW) for state in store.states.values())


def test_a_failed_close_after_a_saved_change_keeps_exit_0() -> None:
    store = MemoryStore("alice@example.org")

    @contextlib.contextmanager
    def open_readers(now: datetime) -> Iterator[ReaderStore]:
        yield store
        raise OSError("folding the journal: no space left on device")

    room = Mailroom(CONTEXT, open_readers)
    assert room.take(unsubscribe_from("alice@example.org"), NOW).exit_code == 0
    room.close()  # logged, not raised: the change is journaled already
    assert is_suppressed(store.states["alice@example.org"], NOW)


def test_an_ignored_message_is_filed_for_a_human_and_a_command_as_handled() -> None:
    store = MemoryStore("alice@example.org")
    assert take(b"Subject: hello\n\nAre you the editor?\n", store).filed == "ignored"
    assert take(unsubscribe_from("alice@example.org"), store).filed == "handled"


def operator_templates(tmp_path: Path, files: Mapping[str, str]) -> ReplyContext:
    """The context ``digest ingest`` makes when ``settings.templates`` holds ``files``."""
    folder = tmp_path / "templates"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    settings = Settings(
        database=tmp_path / "digest.json",
        templates=folder,
        smtp=SmtpSettings(sender="Daily Papers <papers@digest.example.org>"),
    )
    return reply_context(settings, {})


def test_the_operators_confirmation_template_is_used_and_the_subject_still_shipped(
    tmp_path: Path,
) -> None:
    ctx = operator_templates(tmp_path, {"confirm.txt": "To {{ what }}, send:\n  {{ line }}\n"})
    result = take(plain_reply(), MemoryStore("grace@example.edu"), ctx)
    assert result.reply is not None
    text = result.reply.get_content()
    assert text.startswith("To stop all mail to grace@example.edu, send:\n  unsubscribe grace@")
    subject = "Daily Papers: confirm to stop all mail to grace@example.edu"
    assert result.reply["Subject"] == subject


def test_a_broken_confirmation_template_exits_75_and_saves_nothing(tmp_path: Path) -> None:
    ctx = operator_templates(tmp_path, {"confirm_subject.txt": "{{ no_such_variable }}\n"})
    store = MemoryStore("grace@example.edu")
    result = take(plain_reply(), store, ctx)
    assert (result.exit_code, result.reply, store.writes) == (75, None, 0)


# -- confirmations, counted by who asked ------------------------------------------------------


def asking(word: str, sender: str, *, via: str, n: int) -> bytes:
    """A plain reply with ``sender``'s From, handed to its MTA by ``via`` (the envelope sender)."""
    return (
        f"Return-Path: <{via}>\nFrom: {sender}\nTo: papers@digest.example.org\n"
        f"Subject: {word}\nMessage-ID: <ask.{n}@{via.partition('@')[2]}>\n\n{word}\n"
    ).encode()


def test_forged_plain_replies_do_not_use_up_the_readers_own_confirmations() -> None:
    store = MemoryStore("grace@example.edu")
    for n in range(6):  # "unsubscribe" with grace's From, sent through other servers
        take(asking("unsubscribe", "grace@example.edu", via=f"bulk{n}@spam.example", n=n), store)
    own = take(asking("unsubscribe", "grace@example.edu", via="grace@example.edu", n=99), store)
    assert own.reply is not None and own.reply["To"].addresses[0].addr_spec == "grace@example.edu"


def test_forgeries_through_many_servers_mail_a_reader_at_most_five_times_a_day() -> None:
    store = MemoryStore("grace@example.edu")
    answered = [
        take(asking("pause", "grace@example.edu", via=f"bulk{n}@spam.example", n=n), store).reply
        for n in range(20)
    ]
    assert sum(reply is not None for reply in answered) == 5


def test_one_sender_gets_at_most_three_confirmations_a_day() -> None:
    store = MemoryStore("grace@example.edu")
    answered = [
        take(asking("pause", "grace@example.edu", via="grace@example.edu", n=n), store).reply
        for n in range(10)
    ]
    assert sum(reply is not None for reply in answered) == 3


# -- acknowledgements ---------------------------------------------------------------------------


def footer_command(action: str, reader: str, sender: str, n: int, issued: date = TODAY) -> bytes:
    """``sender`` clicks ``reader``'s footer link for ``action`` (in Gmail)."""
    links = reader_links(SECRET, OPERATOR, reader, issued=issued)
    return gmail(getattr(links, action), sender, message_id=f"<CAGmail{n}@mail.gmail.example>")


def test_a_pause_from_a_forwarded_digest_is_acknowledged_to_the_reader_not_the_sender() -> None:
    store = MemoryStore("alice@example.org")
    result = take(footer_command("pause", "alice@example.org", "mallory@example.net", 1), store)
    assert is_suppressed(store.states["alice@example.org"], NOW)
    assert result.reply is not None
    assert [a.addr_spec for a in result.reply["To"].addresses] == ["alice@example.org"]


def test_a_reader_gets_at_most_one_acknowledgement_a_day() -> None:
    store = MemoryStore("alice@example.org")
    room = mailroom(store)
    pause, weekly = (
        footer_command(a, "alice@example.org", "alice@example.org", n)
        for n, a in enumerate(("pause", "weekly"))
    )
    first = room.take(pause, NOW)
    second = room.take(weekly, NOW + timedelta(hours=2))
    assert store.states["alice@example.org"].frequency == "weekly"  # acted all the same
    assert first.reply is not None and second.reply is None
    later = footer_command("daily", "alice@example.org", "alice@example.org", 3)
    assert room.take(later, NOW + timedelta(days=1)).reply is not None


def test_a_command_that_changes_nothing_is_not_acknowledged() -> None:
    store = MemoryStore("alice@example.org")
    raw = unsubscribe_from("alice@example.org")
    take(raw, store)
    assert take(raw, store).reply is None  # the same message again


# -- what digest cannot act on goes to the owner ------------------------------------------------

OWNER = Address("", "ops", "example.org")
WITH_OWNER = ReplyContext(SECRET, OPERATOR, owner=OWNER)
TAKE_ME_OFF = (
    b"From: Alice <alice@example.org>\nTo: papers@digest.example.org\n"
    b"Subject: Re: Daily Papers: 3 new papers\nMessage-ID: <off.1@example.org>\n"
    b"Content-Type: text/plain; charset=utf-8\n\n"
    b"Please take me off this list, too much mail.\n"
)


def received(forward: EmailMessage) -> EmailMessage:
    """The forward as the owner's mail client reads it."""
    return email.message_from_bytes(forward.as_bytes(policy=SMTP), policy=default)  # type: ignore[return-value]


def attached(forward: EmailMessage) -> EmailMessage:
    (part,) = received(forward).iter_attachments()
    assert part.get_content_type() == "message/rfc822"
    inner = part.get_content()
    assert isinstance(inner, EmailMessage)
    return inner


def test_a_reply_digest_does_not_understand_is_forwarded_to_the_owner_with_why() -> None:
    result = take(TAKE_ME_OFF, MemoryStore("alice@example.org"), WITH_OWNER)
    forward = result.reply
    assert forward is not None and [a.addr_spec for a in forward["To"].addresses] == [
        "ops@example.org"
    ]
    assert forward["Reply-To"].addresses[0].addr_spec == "alice@example.org"  # answer her
    why = forward.get_body(("plain",)).get_content().strip()
    assert len(why.splitlines()) == 1 and "alice@example.org" in why and "no command" in why
    original = attached(forward)
    assert original["Message-ID"] == "<off.1@example.org>"
    assert "too much mail" in original.get_content()
    assert result.filed == "ignored"  # an inbox still leaves it for a person


def test_the_forward_carries_a_message_in_another_charset() -> None:
    raw = TAKE_ME_OFF.replace(b"too much mail", "zu viele Mails, grüße".encode())
    forward = take(raw, MemoryStore("alice@example.org"), WITH_OWNER).reply
    assert forward is not None
    assert "zu viele Mails, grüße" in attached(forward).get_content()


def test_a_message_the_email_package_cannot_write_back_is_forwarded_as_a_file() -> None:
    # a multipart without a boundary and a raw UTF-8 dash: flattening the
    # parsed message again fails inside the email package
    raw = (
        b"From: Alice <alice@example.org>\nSubject: off\nContent-Type: multipart/mixed\n\n"
        b"Please take me off this list, too much mail \xe2\x80\x94 thanks\n"
    )
    forward = take(raw, MemoryStore("alice@example.org"), WITH_OWNER).reply
    assert forward is not None
    (part,) = received(forward).iter_attachments()
    assert (part.get_filename(), part.get_content()) == ("message.eml", raw)


def test_a_plain_reply_from_an_address_that_is_not_a_subscriber_is_forwarded() -> None:
    raw = plain("alice.private@gmail.example", "unsubscribe", "unsubscribe")
    forward = take(raw, MemoryStore("alice@example.org"), WITH_OWNER).reply
    assert forward is not None and str(forward["To"]) == "ops@example.org"
    assert "not a subscriber" in forward.get_body(("plain",)).get_content()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param((MAIL / "gmail_vacation_responder.eml").read_bytes(), id="auto-reply"),
        pytest.param((MAIL / "postfix_dsn_user_unknown.eml").read_bytes(), id="bounce"),
        pytest.param(plain("papers@digest.example.org", "hello", "hi"), id="our own mail"),
        pytest.param(plain("no-reply@example.org", "unsubscribe", ""), id="automated sender"),
        pytest.param(b"\xff\xfe garbage", id="unreadable"),
    ],
)
def test_what_no_person_wrote_is_not_forwarded(raw: bytes) -> None:
    assert take(raw, MemoryStore("bob@example.com"), WITH_OWNER).reply is None


def test_the_owner_is_the_postmaster_of_the_from_domain_unless_set(tmp_path: Path) -> None:
    sender = SmtpSettings(sender="Daily Papers <papers@digest.example.org>")
    settings = Settings(database=tmp_path / "digest.json", smtp=sender)
    assert str(reply_context(settings, {}).owner) == "postmaster@digest.example.org"
    settings = Settings(database=tmp_path / "digest.json", smtp=sender, owner="ops@example.org")
    assert str(reply_context(settings, {}).owner) == "ops@example.org"


# -- what became of a reader's last replies -------------------------------------------------


def test_a_readers_last_ten_replies_are_kept_with_what_was_done() -> None:
    store = MemoryStore("alice@example.org")
    room = mailroom(store, WITH_OWNER)
    for n in range(11):
        room.take(footer_command("pause", "alice@example.org", "alice@example.org", n), NOW)
    taken = room.take(TAKE_ME_OFF, NOW + timedelta(minutes=5))
    assert taken.decision is not None and taken.decision.log.count("forwarded to") == 1
    kept = store.states["alice@example.org"].last_replies
    assert len(kept) == 10
    assert (kept[0].what, kept[0].done) == (
        "command pause for alice@example.org",
        "paused until 2026-12-09",  # the same pause again changes nothing
    )
    assert kept[-1].at == NOW + timedelta(minutes=5)
    assert "no command" in kept[-1].what and kept[-1].done == "forwarded to ops@example.org"


def test_a_repeated_message_is_not_kept_twice() -> None:
    store = MemoryStore("alice@example.org")
    raw = unsubscribe_from("alice@example.org")
    take(raw, store)
    take(raw, store)
    assert len(store.states["alice@example.org"].last_replies) == 1


# -- what a token may do alone ---------------------------------------------------------------


def confirmation_to(result: Ingested, reader: str) -> str:
    """The text of the confirmation ``result`` mails to ``reader``."""
    reply = result.reply
    assert reply is not None and "confirm" in str(reply["Subject"])
    assert [a.addr_spec for a in reply["To"].addresses] == [reader]
    return reply.get_content()


def confirmed(text: str, action: str, reader: str, n: int) -> bytes:
    """The reader sends the command line a confirmation offers, from her own address."""
    (line,) = {c for c in find_commands(text) if c.action == action}
    subject = f"{line.action} {line.address} {line.token}"
    return plain(reader, subject, "").replace(b"<plain.0001@", f"<confirmed.{n}@".encode())


def left_alice() -> MemoryStore:
    store = MemoryStore("alice@example.org")
    store.states["alice@example.org"] = ReaderState(unsubscribed_at=NOW - timedelta(days=3))
    return store


def test_a_resume_from_another_address_asks_the_reader_before_it_acts() -> None:
    # a forwarded digest: anyone holding it could sign alice up again
    store = left_alice()
    result = take(footer_command("resume", "alice@example.org", "mallory@example.net", 1), store)
    assert is_suppressed(store.states["alice@example.org"], NOW)
    text = confirmation_to(result, "alice@example.org")
    assert "mallory@example.net" in text
    take(confirmed(text, "resume", "alice@example.org", 2), store)
    assert not is_suppressed(store.states["alice@example.org"], NOW)


def test_a_resume_from_the_readers_own_address_acts() -> None:
    store = left_alice()
    take(footer_command("resume", "alice@example.org", "alice@example.org", 1), store)
    assert not is_suppressed(store.states["alice@example.org"], NOW)


def test_more_like_this_from_another_address_asks_the_reader_too() -> None:
    store = MemoryStore("alice@example.org")
    links = reader_links(SECRET, OPERATOR, "alice@example.org", ("2202.12139",), issued=NOW.date())
    result = take(gmail(links.paper("2202.12139").more, "mallory@example.net"), store)
    assert store.states["alice@example.org"].likes == ()
    assert "more 2202.12139 alice@example.org" in confirmation_to(result, "alice@example.org")


def test_a_link_older_than_90_days_asks_the_reader_before_it_acts() -> None:
    store = MemoryStore("alice@example.org")
    old = NOW.date() - timedelta(days=91)
    result = take(footer_command("pause", "alice@example.org", "alice@example.org", 1, old), store)
    assert not is_suppressed(store.states["alice@example.org"], NOW)
    assert "90 days" in confirmation_to(result, "alice@example.org")


def test_a_link_of_90_days_still_acts() -> None:
    store = MemoryStore("alice@example.org")
    old = NOW.date() - timedelta(days=90)
    take(footer_command("pause", "alice@example.org", "alice@example.org", 1, old), store)
    assert is_suppressed(store.states["alice@example.org"], NOW)


def test_an_unsubscribe_link_never_expires() -> None:
    store = MemoryStore("alice@example.org")
    old = NOW.date() - timedelta(days=2000)
    take(footer_command("unsubscribe", "alice@example.org", "bob@example.net", 1, old), store)
    assert is_suppressed(store.states["alice@example.org"], NOW)


def test_an_unsubscribe_from_a_digest_sent_before_tokens_had_a_day_still_acts() -> None:
    # the List-Unsubscribe of a digest mailed before, as the bounce fixtures return it
    subject = "unsubscribe bob@example.com P5PCJFT6XCMTR7T3EINXVK6K4M"
    store = MemoryStore("bob@example.com")
    take(plain("bob@example.com", subject, ""), store)
    assert is_suppressed(store.states["bob@example.com"], NOW)


# -- after the reply secret changed ------------------------------------------------------------

ROTATED = ReplyContext(
    ReplySecret(b"the-key-after-rotation-0123456789", retired=(SECRET.key,)), OPERATOR
)


def test_an_unsubscribe_signed_with_a_retired_key_still_acts() -> None:
    store = MemoryStore("alice@example.org")
    take(unsubscribe_from("alice@example.org"), store, ROTATED)
    assert is_suppressed(store.states["alice@example.org"], NOW)


def test_a_pause_signed_with_a_retired_key_asks_the_reader() -> None:
    store = MemoryStore("alice@example.org")
    raw = footer_command("pause", "alice@example.org", "alice@example.org", 1)
    result = take(raw, store, ROTATED)
    assert not is_suppressed(store.states["alice@example.org"], NOW)
    assert "no longer" in confirmation_to(result, "alice@example.org")


def test_an_unsubscribe_no_key_made_asks_the_reader_it_names() -> None:
    # a digest signed with a key nobody kept: a List-Unsubscribe must not be dropped
    lost = ReplyContext(ReplySecret(b"a-key-that-never-signed-0123456789"), OPERATOR)
    store = MemoryStore("alice@example.org")
    result = take(unsubscribe_from("alice@example.org"), store, lost)
    assert not is_suppressed(store.states["alice@example.org"], NOW)
    text = confirmation_to(result, "alice@example.org")
    take(confirmed(text, "unsubscribe", "alice@example.org", 2), store, lost)
    assert is_suppressed(store.states["alice@example.org"], NOW)


def test_forged_unsubscribes_for_a_reader_are_counted_against_their_sender() -> None:
    store = MemoryStore("alice@example.org")
    answered = [
        take(
            asking(
                "unsubscribe alice@example.org " + "A" * 29,
                "mallory@evil.example",
                via="mallory@evil.example",
                n=n,
            ),
            store,
        ).reply
        for n in range(5)
    ]
    assert sum(reply is not None for reply in answered) == 3
    own = take(asking("unsubscribe", "alice@example.org", via="alice@example.org", n=9), store)
    assert own.reply is not None
