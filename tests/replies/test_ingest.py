"""The mailroom: exit codes for the MTA, state saved, confirmations handed back, one store open."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

from digest.errors import StoreCorruptError, StoreLockedError
from digest.models import ReaderState, Settings, SmtpSettings
from digest.replies.commands import find_commands, reader_links
from digest.replies.ingest import ReplyContext
from digest.replies.mailroom import Ingested, Mailroom, ReaderStore, read_message, reply_context
from digest.replies.readers import is_suppressed
from digest.replies.tokens import ReplySecret, token_matches
from tests.support.mail_clients import gmail
from tests.support.paths import MAIL

SECRET = ReplySecret(b"test-secret-0123456789abcdef")
OPERATOR = Address("Daily Papers", "papers", "digest.example.org")
NOW = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)
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
    return gmail(reader_links(SECRET, OPERATOR, address).list_unsubscribe.strip("<>"), address)


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


def footer_command(action: str, reader: str, sender: str, n: int) -> bytes:
    """``sender`` clicks ``reader``'s footer link for ``action`` (in Gmail)."""
    links = reader_links(SECRET, OPERATOR, reader)
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
