"""What readers chose by reply, where it lives and what it changes, part by part.

The store keeps it beside the deliveries (journaled like them); the pure
planner obeys it; a relay's refusal during a cycle counts as a bounce; the
CLI shows and lifts it. End to end with real mail: tests/test_reply_loop.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.cli.entry import main
from digest.cycle.plan import Snapshot, as_chosen, plan_cycle, revision_watch
from digest.errors import EXIT_CONFIG, EXIT_USAGE, StoreCorruptError
from digest.models import Liked, Paper, ReaderState, ReplyNote, Settings, Subscriber
from digest.replies.bounces import recipient_refusal
from digest.replies.mailroom import SubscriberReaders, record_refusal
from digest.store.storage import MemoryStorage
from digest.store.store import Store
from tests.support.configs import config_dict

NOW = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # a Wednesday
SETTINGS = Settings(lookback_days=2)
ALICE = Subscriber("alice@example.org", ("graph neural network",))
UNSUBSCRIBED = ReaderState(unsubscribed_at=NOW - timedelta(days=1))


def paper(pid: str, title: str) -> Paper:
    when = NOW - timedelta(hours=12)
    return Paper(pid, 1, title, "An abstract.", ("A. Author",), ("cs.LG",), "cs.LG", when, when)


GNN = paper("2611.00001", "A graph neural network for X")


def plan_for(reader: ReaderState, sub: Subscriber = ALICE, now: datetime = NOW):
    snapshot = Snapshot(readers={sub.email: reader})
    (plan,) = plan_cycle((sub,), SETTINGS, snapshot, (GNN,), now).plans
    return plan


# -- the store ------------------------------------------------------------------------------


def test_a_reader_state_is_journaled_and_read_back_after_a_crash(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    with Store.open(db, now=NOW) as store:
        store.set_reader_state("alice@example.org", UNSUBSCRIBED)
        store.flush()
        # what a SIGKILL right now would leave on disk: the old file and the journal line
        journal = store.storage.journal_path  # type: ignore[attr-defined]
        crashed = {p: p.read_bytes() for p in (db, journal) if p.exists()}
    assert journal.read_bytes() == b""  # the clean close folded it
    for path, data in crashed.items():
        path.write_bytes(data)
    assert journal.read_bytes() != b""
    with Store.open(db, readonly=True) as again:
        assert again.reader_state("alice@example.org") == UNSUBSCRIBED


def test_a_reader_state_sits_beside_the_readers_deliveries() -> None:
    with Store.open(Path("mem.json"), storage=MemoryStorage()) as store:
        store.record_delivery("alice@example.org", {"2611.00001": 1}, NOW)
        store.set_reader_state("alice@example.org", ReaderState(likes=("2611.00001",)))
        assert dict(store.subscriber("alice@example.org").delivered) == {"2611.00001": 1}
        assert store.readers_with_state() == ("alice@example.org",)
        assert store.reader_state("alice@example.org").likes == ("2611.00001",)
        store.set_reader_state("alice@example.org", ReaderState())
        assert store.readers_with_state() == ()
        assert store.reader_state("alice@example.org") == ReaderState()


_times = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)
_ids = st.lists(st.from_regex(r"\d{4}\.\d{5}", fullmatch=True), max_size=5).map(tuple)


@given(
    st.builds(
        ReaderState,
        unsubscribed_at=st.none() | _times,
        suspended_at=st.none() | _times,
        paused_until=st.none() | _times,
        hard_bounces=st.lists(_times, max_size=3).map(tuple),
        likes=_ids,
        dislikes=_ids,
        frequency=st.sampled_from([None, "daily", "weekly"]),
        confirmations=st.lists(
            st.tuples(_times, st.sampled_from(["", "mallory@example.org"])), max_size=3
        ).map(tuple),
        handled=st.lists(st.text(max_size=20), max_size=3).map(tuple),
        acknowledged_at=st.none() | _times,
        last_replies=st.lists(st.builds(ReplyNote, _times, st.text(), st.text()), max_size=3).map(
            tuple
        ),
    )
)
def test_a_reader_state_reads_back_the_same_after_a_reopen(state: ReaderState) -> None:
    memory = MemoryStorage()
    with Store.open(Path("mem.json"), storage=memory, now=NOW) as store:
        store.set_reader_state("a@x.org", state)
    with Store.open(Path("mem.json"), storage=memory, now=NOW) as store:
        assert store.reader_state("a@x.org") == state


def test_confirmations_stored_before_their_senders_were_kept_count_as_the_readers_own(
    tmp_path: Path,
) -> None:
    db = tmp_path / "digest.json"
    reader = {
        "email": "alice@example.org",
        "replies": {"confirmations": ["2026-11-25T06:00:00+00:00"]},
        "batches": [],
    }
    db.write_text(json.dumps({"meta": {"1": {"schema": 2}}, "subscribers": {"1": reader}}))
    with Store.open(db, readonly=True) as store:
        state = store.reader_state("alice@example.org")
    assert state.confirmations == ((NOW - timedelta(hours=1), ""),)


def test_a_damaged_reader_state_is_reported_with_the_reader(tmp_path: Path) -> None:
    db = tmp_path / "digest.json"
    reader = {"email": "alice@example.org", "replies": {"unsubscribed_at": 17}, "batches": []}
    db.write_text(json.dumps({"meta": {"1": {"schema": 2}}, "subscribers": {"1": reader}}))
    with Store.open(db, readonly=True) as store:  # the others' mail is not stopped by it
        assert store.readers_with_state() == ("alice@example.org",)
        with pytest.raises(StoreCorruptError, match=r"alice@example\.org.*--resume"):
            store.reader_state("alice@example.org")


def test_a_reader_known_only_by_a_reply_still_gets_first_seen_at_the_first_cycle() -> None:
    with Store.open(Path("mem.json"), storage=MemoryStorage()) as store:
        store.set_reader_state("a@x.org", ReaderState(frequency="weekly"))
        store.ensure_watermarks("a@x.org", ["k:x"], NOW, now=NOW)
        assert store.subscriber("a@x.org").first_seen == NOW


def test_only_subscribers_of_the_config_have_a_state_for_ingest() -> None:
    with Store.open(Path("mem.json"), storage=MemoryStorage()) as store:
        readers = SubscriberReaders(store, ["Alice@Example.org"])
        assert readers.reader_state("mallory@example.org") is None
        assert readers.reader_state("alice@example.org") == ReaderState()
        readers.set_reader_state("alice@example.org", ReaderState(likes=("1",)))
        # kept under the address as subscribers.yaml spells it
        assert store.reader_state("Alice@Example.org") == ReaderState(likes=("1",))


# -- the planner ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reader", "why"),
    [
        (UNSUBSCRIBED, "unsubscribed by reply on 2026-11-24"),
        (ReaderState(suspended_at=NOW), "suspended on 2026-11-25 after 3 hard bounces"),
        (ReaderState(paused_until=NOW + timedelta(days=3)), "paused by reply through 2026-11-28"),
    ],
)
def test_a_suppressed_reader_is_planned_no_mail_and_says_why(reader: ReaderState, why: str) -> None:
    plan = plan_for(reader)
    assert plan.reason == "suppressed" and not plan.sends
    assert plan.suppressed is not None and plan.suppressed.startswith(why)
    assert [m.paper.id for m in plan.matches] == [GNN.id]  # still counted as pending


def test_a_pause_that_has_ended_mails_again() -> None:
    # a pause covers the whole day it names: one that ended yesterday is over
    assert plan_for(ReaderState(paused_until=NOW - timedelta(minutes=1))).reason == "suppressed"
    assert plan_for(ReaderState(paused_until=NOW - timedelta(days=1))).reason == "send"


def test_a_suppressed_reader_does_not_widen_the_revision_watch() -> None:
    sub = Subscriber("a@x.org", ("x",), include_revisions=True)
    from digest.store.store import SubscriberState

    state = SubscriberState("a@x.org", delivered_at={"2611.00001": NOW})
    snap = Snapshot(states={"a@x.org": state}, readers={"a@x.org": UNSUBSCRIBED})
    assert revision_watch((sub,), snap, NOW) == set()


def test_a_readers_weekly_choice_overrides_a_daily_subscription() -> None:
    chosen = as_chosen(ALICE, ReaderState(frequency="weekly"), SETTINGS)
    assert (chosen.frequency, chosen.weekday) == ("weekly", SETTINGS.days[0])
    # the daily subscription would send today; as weekly it waits for its slot
    assert plan_for(ReaderState()).reason == "send"
    assert plan_for(ReaderState(frequency="weekly")).reason == "waiting"


def test_a_readers_daily_choice_overrides_a_weekly_subscription() -> None:
    weekly = Subscriber("b@x.org", ("x",), frequency="weekly", weekday="fri")
    chosen = as_chosen(weekly, ReaderState(frequency="daily"), SETTINGS)
    assert (chosen.frequency, chosen.weekday) == ("daily", None)


def test_likes_and_dislikes_by_reply_join_the_configured_likes() -> None:
    sub = Subscriber("a@x.org", ("x",), likes=(Liked("2101.00001"), Liked("2101.00002")))
    reader = ReaderState(likes=("2101.00003", "2101.00001"), dislikes=("2101.00002",))
    chosen = as_chosen(sub, reader, SETTINGS)
    assert [like.arxiv_id for like in chosen.likes] == ["2101.00001", "2101.00003"]
    assert chosen.dislikes == ("2101.00002",)


def test_a_reader_who_chose_nothing_is_the_configured_subscriber() -> None:
    assert as_chosen(ALICE, ReaderState(), SETTINGS) is ALICE


# -- a relay's refusal during a cycle --------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("550 5.1.1 <a@x.org>: Recipient address rejected: User unknown", "5.1.1"),
        ("550 Requested action not taken: mailbox unavailable", "550"),
        ("551 User not local", "551"),
        ("553 5.1.3 Bad recipient address syntax", "5.1.3"),
        ("550 5.2.1 Mailbox disabled", "5.2.1"),
        ("554 5.7.1 Message rejected as spam", None),
        ("550 5.7.1 Relaying denied", None),
        ("552 5.3.4 Message too big", None),
        ("450 4.2.0 Mailbox busy", None),
        ("", None),
    ],
)
def test_only_a_refusal_of_the_mailbox_counts_as_a_hard_bounce(
    reply: str, status: str | None
) -> None:
    assert recipient_refusal(reply) == status


def test_three_refused_cycles_within_30_days_suspend() -> None:
    with Store.open(Path("mem.json"), storage=MemoryStorage()) as store:
        for day in (0, 1, 2):
            record_refusal(store, "a@x.org", "550 5.1.1 User unknown", NOW + timedelta(days=day))
        state = store.reader_state("a@x.org")
        assert state.suspended_at == NOW + timedelta(days=2)


def test_a_policy_refusal_changes_no_reader() -> None:
    with Store.open(Path("mem.json"), storage=MemoryStorage()) as store:
        assert not record_refusal(store, "a@x.org", "554 5.7.1 Spam", NOW)
        assert store.readers_with_state() == ()


# -- the CLI ------------------------------------------------------------------------------------


def test_check_imap_without_an_inbox_names_the_setting(write_config, capsys) -> None:
    cfg = write_config(config_dict("http://127.0.0.1:9/api/query"))
    assert main(["check", "--imap", "--config", str(cfg)]) == EXIT_CONFIG
    assert "settings.inbox is not set" in capsys.readouterr().err


def test_check_imap_refused_login_exits_78_naming_the_setting(
    write_config, capsys, dovecot
) -> None:
    inbox = {
        "host": "127.0.0.1",
        "port": dovecot.port,
        "security": "starttls",
        "username": dovecot.user,
        "ca_file": str(dovecot.certificate),
        "timeout": 5,
    }
    cfg = write_config(config_dict("http://127.0.0.1:9/api/query", inbox=inbox))
    env = {"DIGEST_IMAP_PASSWORD": "wrong"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        assert main(["check", "--imap", "--config", str(cfg)]) == EXIT_CONFIG
        assert "settings.inbox.username" in capsys.readouterr().err
        mp.setenv("DIGEST_IMAP_PASSWORD", dovecot.password)
        assert main(["check", "--imap", "--config", str(cfg)]) == 0
        assert f"accepted the login of {dovecot.user}" in capsys.readouterr().out


def test_readers_resume_names_an_unknown_address(write_config, tmp_path, capsys) -> None:
    cfg = write_config(config_dict("http://127.0.0.1:9/api/query"))
    with Store.open(tmp_path / "digest.json") as store:
        store.set_reader_state("bob@example.org", ReaderState(frequency="weekly"))
    assert main(["readers", "nobody@x.org", "--resume", "--config", str(cfg)]) == EXIT_USAGE
    assert "no subscriber nobody@x.org" in capsys.readouterr().err


def test_readers_lists_only_readers_with_a_choice(write_config, tmp_path, capsys) -> None:
    cfg = write_config(config_dict("http://127.0.0.1:9/api/query"))
    with Store.open(tmp_path / "digest.json") as store:
        store.set_reader_state("bob@example.org", ReaderState(frequency="weekly"))
        store.set_reader_state("gone@example.org", UNSUBSCRIBED)
    assert main(["readers", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "bob@example.org: weekly by reply",
        "gone@example.org: unsubscribed by reply on 2026-11-24 (not in the configuration)",
    ]


def test_readers_email_shows_the_readers_last_replies_newest_first(
    write_config, tmp_path, capsys
) -> None:
    cfg = write_config(config_dict("http://127.0.0.1:9/api/query"))
    notes = (
        ReplyNote(NOW, "command pause for bob@example.org", "paused until 2026-12-02"),
        ReplyNote(
            NOW + timedelta(hours=1),
            "ignored: no command (from bob@example.org)",
            "forwarded to postmaster@digest.test",
        ),
    )
    with Store.open(tmp_path / "digest.json") as store:
        store.set_reader_state("bob@example.org", ReaderState(last_replies=notes))
    assert main(["readers", "bob@example.org", "--config", str(cfg)]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "last replies, newest first:",
        "  2026-11-25 08:00 UTC  ignored: no command (from bob@example.org): "
        "forwarded to postmaster@digest.test",
        "  2026-11-25 07:00 UTC  command pause for bob@example.org: paused until 2026-12-02",
    ]


def test_readers_resume_of_a_damaged_state_starts_afresh(write_config, tmp_path, capsys) -> None:
    cfg = write_config(config_dict("http://127.0.0.1:9/api/query"))
    reader = {"email": "alice@example.org", "replies": {"unsubscribed_at": 42}, "batches": []}
    damaged = {"meta": {"1": {"schema": 2}}, "subscribers": {"1": reader}}
    (tmp_path / "digest.json").write_text(json.dumps(damaged))
    assert main(["readers", "alice@example.org", "--resume", "--config", str(cfg)]) == 0
    with Store.open(tmp_path / "digest.json", readonly=True) as store:
        assert store.readers_with_state() == ()
