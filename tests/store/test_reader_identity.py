"""One reader per mailbox in the store, and stores written before that migrated without loss.

Until schema 3 the store kept a reader under the address as subscribers.yaml
spelt it, so ``Alice@Example.org`` and ``alice@example.org`` were two
records. Opening such a store merges them: every delivery of either, the
earliest start of each term, and the most restrictive reply state (an
unsubscribe is never forgotten).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from digest.errors import StoreCorruptError
from digest.models import ReaderState
from digest.store.format import SCHEMA
from digest.store.storage import MemoryStorage
from digest.store.store import Store

NOW = datetime(2026, 12, 1, 7, tzinfo=UTC)
DAY = timedelta(days=1)


def iso(t: datetime) -> str:
    return t.isoformat()


def today_store(*readers: dict[str, Any]) -> dict[str, Any]:
    """A database as digest wrote it before schema 3: readers keyed as spelt (schema 2)."""
    return {
        "meta": {"1": {"schema": 2, "last_fetch": iso(NOW - DAY)}},
        "papers": {},
        "subscribers": {str(i): r for i, r in enumerate(readers, 1)},
    }


ALICE_OLD = {
    "email": "Alice@Example.org",
    "watermarks": {"k:graph": iso(NOW - 30 * DAY), "k:proton": iso(NOW - 20 * DAY)},
    "first_seen": iso(NOW - 30 * DAY),
    "last_sent": iso(NOW - 10 * DAY),
    "skipped": [[iso(NOW - 12 * DAY), "2611.00009"]],
    "replies": {
        "unsubscribed_at": iso(NOW - 9 * DAY),
        "likes": ["2611.00001"],
        "hard_bounces": [iso(NOW - 11 * DAY)],
    },
    "batches": [
        {"at": iso(NOW - 12 * DAY), "ids": "2611.00001 2611.00002"},
        {"at": iso(NOW - 10 * DAY), "ids": "2611.00003v2"},
    ],
}
# the record the case edit made: a new reader, mailed again what she already had
ALICE_NEW = {
    "email": "alice@example.org",
    "watermarks": {"k:graph": iso(NOW - 2 * DAY), "k:electron": iso(NOW - 2 * DAY)},
    "first_seen": iso(NOW - 2 * DAY),
    "last_sent": iso(NOW - DAY),
    "served_slot": iso(NOW - DAY),
    "replies": {"likes": ["2611.00005", "2611.00001"], "frequency": "weekly"},
    "batches": [
        {"at": iso(NOW - 10 * DAY), "ids": "2611.00003"},
        {"at": iso(NOW - DAY), "ids": "2611.00001 2611.00004"},
    ],
}
BOB = {"email": "bob@example.org", "watermarks": {}, "batches": []}


@pytest.fixture(params=["json", "memory"])
def opened(request, tmp_path: Path):
    """Open a store holding ``data`` (on disk or in memory); returns (open, read back)."""

    def make(data: dict[str, Any]):
        memory = MemoryStorage() if request.param == "memory" else None
        path = tmp_path / "digest.json"
        if memory is not None:
            memory.memory = data
        else:
            path.write_text(json.dumps(data))

        def open_(readonly: bool = False):
            return Store.open(path, now=NOW, readonly=readonly, storage=memory)

        def written() -> dict[str, Any]:
            return memory.memory if memory is not None else json.loads(path.read_text())

        return open_, written

    return make


def test_case_variants_merge_keeping_every_delivery_and_the_unsubscribe(opened) -> None:
    open_, written = opened(today_store(ALICE_OLD, BOB, ALICE_NEW))
    with open_() as store:
        for spelling in ("alice@example.org", "Alice@Example.org", "ALICE@EXAMPLE.ORG"):
            alice = store.subscriber(spelling)
            assert dict(alice.delivered) == {
                "2611.00001": 1,
                "2611.00002": 1,
                "2611.00003": 2,
                "2611.00004": 1,
            }
            assert dict(alice.skipped) == {"2611.00009": 1}
            # each term from the earliest start either record knew
            assert alice.watermarks == {
                "k:graph": NOW - 30 * DAY,
                "k:proton": NOW - 20 * DAY,
                "k:electron": NOW - 2 * DAY,
            }
            assert (alice.first_seen, alice.last_sent) == (NOW - 30 * DAY, NOW - DAY)
            assert alice.served_slot == NOW - DAY
        state = store.reader_state("alice@example.org")
        assert state.unsubscribed_at == NOW - 9 * DAY  # never forgotten
        assert state.likes == ("2611.00001", "2611.00005")
        assert state.hard_bounces == (NOW - 11 * DAY,)
        assert state.frequency == "weekly"
        assert store.subscriber_emails() == ("alice@example.org", "bob@example.org")
    data = written()
    assert data["meta"]["1"]["schema"] == SCHEMA == 3
    assert sorted(d["email"] for d in data["subscribers"].values()) == [
        "alice@example.org",
        "bob@example.org",
    ]


def test_a_migrated_store_reads_back_the_same(opened) -> None:
    open_, _ = opened(today_store(ALICE_OLD, ALICE_NEW))
    with open_() as store:
        first = (store.subscriber("alice@example.org"), store.reader_state("alice@example.org"))
    with open_(readonly=True) as store:
        again = (store.subscriber("alice@example.org"), store.reader_state("alice@example.org"))
    assert (dict(first[0].delivered), first[0].watermarks, first[1]) == (
        dict(again[0].delivered),
        again[0].watermarks,
        again[1],
    )


def test_an_unsubscribe_wins_whichever_record_comes_first(opened) -> None:
    open_, _ = opened(today_store(ALICE_NEW, ALICE_OLD))
    with open_(readonly=True) as store:
        assert store.reader_state("alice@example.org").unsubscribed_at == NOW - 9 * DAY


def test_the_most_restrictive_pause_and_suspension_win(opened) -> None:
    paused = {**BOB, "replies": {"paused_until": iso(NOW + 3 * DAY)}}
    suspended = {
        **BOB,
        "email": "BOB@example.org",
        "replies": {"paused_until": iso(NOW + DAY), "suspended_at": iso(NOW - DAY)},
    }
    open_, _ = opened(today_store(paused, suspended))
    with open_(readonly=True) as store:
        state = store.reader_state("bob@example.org")
    assert (state.paused_until, state.suspended_at) == (NOW + 3 * DAY, NOW - DAY)


def test_a_damaged_reply_state_stays_damaged_when_merged(opened) -> None:
    damaged = {**BOB, "email": "Bob@example.org", "replies": {"unsubscribed_at": 17}}
    open_, _ = opened(today_store(BOB, damaged))
    damage = pytest.raises(StoreCorruptError, match=r"bob@example\.org.*--resume")
    with open_() as store, damage:
        store.reader_state("bob@example.org")


def test_idna_forms_of_one_domain_are_one_reader(opened) -> None:
    a = {
        **BOB,
        "email": "user@xn--bcher-kva.example",
        "batches": [{"at": iso(NOW - DAY), "ids": "2611.00001"}],
    }
    b = {**BOB, "email": "user@bücher.example", "replies": {"unsubscribed_at": iso(NOW)}}
    open_, _ = opened(today_store(a, b))
    with open_() as store:
        assert store.subscriber_emails() == ("user@bücher.example",)
        assert dict(store.subscriber("User@BÜCHER.example").delivered) == {"2611.00001": 1}
        assert store.reader_state("user@xn--bcher-kva.example").unsubscribed_at == NOW


def test_a_journal_written_before_the_migration_replays_into_the_one_reader(tmp_path) -> None:
    db = tmp_path / "digest.json"
    db.write_text(json.dumps(today_store(ALICE_OLD)))
    # what a process killed before its checkpoint left: changes under the spelling of the day
    ops = [
        ["deliver", "alice@example.org", iso(NOW), {"2611.00007": 1}, None],
        ["replies", "ALICE@example.org", {"unsubscribed_at": iso(NOW - 9 * DAY)}],
    ]
    db.with_name("digest.json.journal").write_text(json.dumps(ops) + "\n")
    with Store.open(db, now=NOW) as store:
        alice = store.subscriber("Alice@Example.org")
        assert "2611.00007" in alice.delivered and "2611.00001" in alice.delivered
        assert store.subscriber_emails() == ("alice@example.org",)


def test_new_changes_under_any_spelling_reach_the_one_reader() -> None:
    memory = MemoryStorage()
    with Store.open(Path("mem.json"), storage=memory, now=NOW) as store:
        store.ensure_watermarks("Alice@Example.org", ["k:x"], NOW - DAY, now=NOW)
        store.record_delivery("alice@EXAMPLE.org", {"2611.00001": 1}, NOW)
        store.set_reader_state("ALICE@example.org", ReaderState(likes=("2611.00001",)))
    with Store.open(Path("mem.json"), storage=memory, now=NOW) as store:
        alice = store.subscriber("alice@example.org")
        assert alice.watermarks == {"k:x": NOW - DAY} and "2611.00001" in alice.delivered
        assert store.reader_state("alice@example.org").likes == ("2611.00001",)
        assert store.readers_with_state() == ("alice@example.org",)
