"""The ingest shell: exit codes for the MTA, state saved, confirmations sent."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage

from digest.errors import StoreCorruptError, StoreLockedError
from digest.models import ReaderState
from digest.replies.commands import reader_links
from digest.replies.ingest import ingest_message, read_message
from digest.replies.readers import is_suppressed
from digest.replies.tokens import ReplySecret
from tests.support.mail_clients import gmail
from tests.support.paths import MAIL

SECRET = ReplySecret(b"test-secret-0123456789abcdef")
OPERATOR = Address("Daily Papers", "papers", "digest.example.org")
NOW = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)


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


def ingest(raw: bytes, store: MemoryStore, sent: list[EmailMessage] | None = None) -> int:
    result = ingest_message(raw, secret=SECRET, operator=OPERATOR, store=store, now=NOW)
    if sent is not None and result.reply is not None:
        sent.append(result.reply)
    return result.exit_code


def unsubscribe_from(address: str) -> bytes:
    """What Gmail's unsubscribe button sends for the digest's List-Unsubscribe header."""
    return gmail(reader_links(SECRET, OPERATOR, address).list_unsubscribe.strip("<>"), address)


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


def test_an_unsubscribe_has_nothing_to_send() -> None:
    result = ingest_message(
        unsubscribe_from("alice@example.org"),
        secret=SECRET,
        operator=OPERATOR,
        store=MemoryStore("alice@example.org"),
        now=NOW,
    )
    assert (result.exit_code, result.reply) == (0, None)


def test_read_message_keeps_the_cap_and_drains_the_rest() -> None:
    stream = io.BytesIO(b"x" * 300_000)
    assert len(read_message(stream, limit=100_000)) == 100_000
    assert stream.read() == b""  # the MTA's pipe was read to the end
