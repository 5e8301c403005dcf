"""The ingest shell: exit codes for the MTA, state saved, confirmations sent."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

from digest.errors import StoreLockedError
from digest.replies.commands import reader_links
from digest.replies.ingest import ingest_message, read_message
from digest.replies.readers import from_dict, is_suppressed
from digest.replies.tokens import ReplySecret
from tests.support.mail_clients import gmail
from tests.support.paths import MAIL

SECRET = ReplySecret(b"test-secret-0123456789abcdef")
OPERATOR = Address("Daily Papers", "papers", "digest.example.org")
NOW = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)


class MemoryStore:
    def __init__(self, *subscribers: str, locked: bool = False) -> None:
        self.docs: dict[str, Mapping[str, Any]] = {a: {} for a in subscribers}
        self.locked = locked
        self.writes = 0

    def reader_state(self, address: str) -> Mapping[str, Any] | None:
        if self.locked:
            raise StoreLockedError("the database is in use by pid 4242")
        return self.docs.get(address)

    def set_reader_state(self, address: str, state: Mapping[str, Any]) -> None:
        self.docs[address] = dict(state)
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
    assert is_suppressed(from_dict(store.docs["alice@example.org"]), NOW)
    assert store.docs["bob@example.com"] == {}


def test_a_busy_database_exits_75_so_the_mta_retries() -> None:
    store = MemoryStore("alice@example.org", locked=True)
    assert ingest(unsubscribe_from("alice@example.org"), store) == 75


def test_a_damaged_reader_record_exits_75_and_is_left_alone() -> None:
    store = MemoryStore()
    store.docs["alice@example.org"] = {"unsubscribed_at": 17}
    assert ingest(unsubscribe_from("alice@example.org"), store) == 75
    assert store.docs["alice@example.org"] == {"unsubscribed_at": 17}


def test_an_ignored_message_exits_0_and_writes_nothing() -> None:
    store = MemoryStore("alice@example.org")
    assert ingest(b"\xff\xfe garbage", store) == 0
    assert store.writes == 0


def test_a_plain_reply_saves_the_confirmation_count_and_sends_one_mail() -> None:
    store = MemoryStore("grace@example.edu")
    sent: list[EmailMessage] = []
    assert ingest((MAIL / "outlook_plain_reply_unsubscribe.eml").read_bytes(), store, sent) == 0
    assert len(sent) == 1
    assert len(from_dict(store.docs["grace@example.edu"]).confirmations) == 1


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
