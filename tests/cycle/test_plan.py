"""The planner: pure functions of config, a store snapshot, fetched papers and the time."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from digest import compose
from digest.cycle.plan import (
    Beyond,
    Snapshot,
    cycle_id,
    fetch_terms,
    liked_categories,
    plan_cycle,
    plan_subscriber,
    revision_watch,
    select_subscribers,
    term_key,
)
from digest.cycle.plan import candidates as pool_of
from digest.errors import UsageError
from digest.models import Config, Liked, Paper, Ranked, ReaderState, Settings, Subscriber
from digest.replies.readers import Verified, apply
from digest.store.format import reader_state_from_doc, reader_state_to_doc
from digest.store.store import SubscriberState

NOW = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # a Wednesday
SETTINGS = Settings(lookback_days=2)
ALICE = Subscriber("alice@example.org", ("graph neural network",))


def paper(pid: str, title: str, *, days_ago: float = 0.5, version: int = 1) -> Paper:
    when = NOW - timedelta(days=days_ago)
    return Paper(
        pid, version, title, "An abstract.", ("A. Author",), ("cs.LG",), "cs.LG", when, when
    )


def plan_one(sub: Subscriber, snapshot: Snapshot, fetched: tuple[Paper, ...] = ()):
    (plan,) = plan_cycle((sub,), SETTINGS, snapshot, fetched, NOW).plans
    return plan


def test_union_of_keywords_is_deduplicated_across_subscribers() -> None:
    subs = [
        Subscriber("a@x.org", ("Graph", "compilers")),
        Subscriber("b@x.org", ("graphs", "LLM"), authors=("Jane Doe",)),
    ]
    terms = fetch_terms(subs)
    assert terms.keywords == ("Graph", "compilers", "LLM")
    assert terms.authors == ("Jane Doe",)


def test_a_matching_fetched_paper_is_planned_for_sending() -> None:
    p = paper("2611.00001", "A graph neural network for X")
    plan = plan_one(ALICE, Snapshot(), (p, paper("2611.00002", "Unrelated")))
    assert plan.reason == "send"
    assert [m.paper.id for m in plan.matches] == ["2611.00001"]
    assert plan.cycle_id == cycle_id(NOW, plan.matches)


def test_cached_papers_count_as_well_as_fetched_ones() -> None:
    p = paper("2611.00001", "A graph neural network for X")
    assert plan_one(ALICE, Snapshot(cached=(p,))).reason == "send"


def test_a_delivered_paper_is_not_planned_again() -> None:
    p = paper("2611.00001", "A graph neural network for X")
    state = SubscriberState(ALICE.email, delivered={p.id: 1}, delivered_at={p.id: NOW})
    plan = plan_one(ALICE, Snapshot(states={ALICE.email: state}), (p,))
    assert (plan.reason, plan.matches) == ("nothing", ())


def test_a_new_keyword_starts_lookback_days_back_not_now() -> None:
    inside = paper("2611.00001", "A graph neural network for X", days_ago=1.5)
    outside = paper("2611.00002", "A graph neural network for Y", days_ago=3)
    plan = plan_one(ALICE, Snapshot(), (inside, outside))
    assert [m.paper.id for m in plan.matches] == ["2611.00001"]
    assert plan.watermark_start == NOW - timedelta(days=2)
    assert plan.term_keys == (term_key("k", "graph neural network"),)


@pytest.mark.parametrize(
    ("now", "first"),
    [
        # Monday 07:00 UTC: Sunday's announcement carried Thursday 14:00 to Friday 14:00 Eastern
        (datetime(2026, 11, 23, 7, tzinfo=UTC), datetime(2026, 11, 19, 19, 30, tzinfo=UTC)),
        # Tuesday 07:00 UTC: Monday's carried Friday 14:00 to Monday 14:00 Eastern
        (datetime(2026, 11, 24, 7, tzinfo=UTC), datetime(2026, 11, 20, 19, 30, tzinfo=UTC)),
    ],
)
def test_a_new_reader_starts_at_the_last_full_announcement_not_two_days_back(
    now: datetime, first: datetime
) -> None:
    # ``first``: early in the window of the latest announcement (14:00 EST is 19:00 UTC);
    # an hour before it, a paper of the announcement before
    def at(pid: str, when: datetime) -> Paper:
        return replace(paper(pid, "A graph neural network for X"), published=when, updated=when)

    fetched = (at("2611.00001", first), at("2611.00002", first - timedelta(hours=1)))
    (plan,) = plan_cycle((ALICE,), SETTINGS, Snapshot(), fetched, now).plans
    assert [m.paper.id for m in plan.matches] == ["2611.00001"]
    assert plan.watermark_start is not None and plan.watermark_start < now - timedelta(days=2)


def test_an_existing_watermark_holds_back_older_papers() -> None:
    p = paper("2611.00001", "A graph neural network for X", days_ago=1.5)
    marks = {term_key("k", "Graph Neural Networks"): NOW - timedelta(days=1)}
    state = SubscriberState(ALICE.email, watermarks=marks)
    assert plan_one(ALICE, Snapshot(states={ALICE.email: state}), (p,)).reason == "nothing"


def test_a_weekly_subscriber_waits_for_its_weekday_but_keeps_its_pending_papers() -> None:
    weekly = replace(ALICE, frequency="weekly", weekday="mon")
    state = SubscriberState(weekly.email, first_seen=NOW - timedelta(hours=1))
    p = paper("2611.00001", "A graph neural network for X")
    plan = plan_one(weekly, Snapshot(states={weekly.email: state}), (p,))
    assert plan.reason == "waiting" and len(plan.matches) == 1 and not plan.sends


def test_a_weekly_subscriber_is_served_on_its_slot() -> None:
    weekly = replace(ALICE, frequency="weekly", weekday="mon")
    state = SubscriberState(weekly.email, first_seen=NOW - timedelta(days=14))
    p = paper("2611.00001", "A graph neural network for X")
    plan = plan_one(weekly, Snapshot(states={weekly.email: state}), (p,))
    assert plan.reason == "send"
    assert plan.served_slot == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def test_a_new_weekly_reader_gets_the_first_digest_on_their_first_weekday() -> None:
    p = paper("2611.00001", "A graph neural network for X")
    today = replace(ALICE, frequency="weekly", weekday="wed")  # NOW is a Wednesday, 07:00
    assert plan_one(today, Snapshot(), (p,)).reason == "send"
    # seen first by an earlier cycle of the same day (a digest once at 06:00, say)
    early = SubscriberState(today.email, first_seen=NOW - timedelta(hours=1))
    assert plan_one(today, Snapshot(states={today.email: early}), (p,)).reason == "send"
    # Monday's slot came before the reader did: their first weekday is next Monday
    monday = replace(ALICE, frequency="weekly", weekday="mon")
    assert plan_one(monday, Snapshot(), (p,)).reason == "waiting"


def test_send_empty_gives_an_empty_note_once_a_day() -> None:
    sub = replace(ALICE, send_empty=True)
    plan = plan_one(sub, Snapshot())
    assert plan.reason == "empty-note" and plan.empty_reason
    state = SubscriberState(sub.email, last_empty=f"{NOW:%Y-%m-%d}")
    assert plan_one(sub, Snapshot(states={sub.email: state})).reason == "nothing"


def test_a_newer_version_of_a_delivered_paper_is_a_revision_for_those_who_asked() -> None:
    sub = replace(ALICE, include_revisions=True)
    v2 = paper("2611.00001", "A graph neural network for X", version=2)
    state = SubscriberState(sub.email, delivered={v2.id: 1}, delivered_at={v2.id: NOW})
    snap = Snapshot(states={sub.email: state})
    plan = plan_one(sub, snap, (v2,))
    assert plan.reason == "send" and [m.paper.version for m in plan.revisions] == [2]
    assert plan_one(ALICE, replace(snap, states={ALICE.email: state}), (v2,)).reason == "nothing"
    assert revision_watch((sub,), snap, NOW) == {v2.id}


def test_the_newest_version_wins_between_cache_and_fetch() -> None:
    old = paper("2611.00001", "A graph neural network for X")
    new = replace(old, version=3)
    plan = plan_one(ALICE, Snapshot(cached=(new,)), (old,))
    assert [m.paper.version for m in plan.matches] == [3]


def test_new_papers_are_those_the_cache_did_not_have() -> None:
    a, b = paper("2611.00001", "a"), paper("2611.00002", "b")
    assert plan_cycle((ALICE,), SETTINGS, Snapshot(cached=(a,)), (a, b), NOW).new_papers == 1


def test_only_one_subscriber_and_an_unknown_one_is_a_usage_error() -> None:
    bob = Subscriber("bob@example.org", ("x",))
    dora = Subscriber("dora@bücher.example", ("x",))
    cfg = Config(SETTINGS, (ALICE, bob, dora), Path("subscribers.yaml"))
    assert select_subscribers(cfg, "BOB@example.org") == (bob,)
    # the domain's other IDNA form names the same reader (one identity per mailbox)
    assert select_subscribers(cfg, "Dora@xn--bcher-kva.example") == (dora,)
    assert select_subscribers(cfg, None) == (ALICE, bob, dora)
    with pytest.raises(UsageError, match=r"no subscriber carol@example\.org"):
        select_subscribers(cfg, "carol@example.org")


# -- a pause or an unsubscribe is a vacation stop ---------------------------------------


BERLIN = Settings(
    lookback_days=2, timezone="Europe/Berlin", days=("mon", "tue", "wed", "thu", "fri")
)
MONDAY_NOON = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)  # 12:00 in Berlin


def at_seven(day: datetime) -> datetime:
    """The cycle of ``day`` (07:00 in Berlin, 06:00 UTC in winter)."""
    return day.replace(hour=6, minute=0)


def submitted(pid: str, when: datetime) -> Paper:
    return Paper(
        pid,
        1,
        f"A graph neural network {pid}",
        "An abstract.",
        ("A. Author",),
        ("cs.LG",),
        "cs.LG",
        when,
        when,
    )


# alice has followed her keyword since before the pause
FOLLOWING = {"first_seen": NOW, "watermarks": {term_key("k", "graph neural network"): NOW}}


def plan_at(now: datetime, reader: ReaderState, papers: tuple[Paper, ...], state=None):
    snap = Snapshot(
        states={ALICE.email: replace(state or SubscriberState(ALICE.email), **FOLLOWING)},
        readers={ALICE.email: reader},
    )
    (plan,) = plan_cycle((ALICE,), BERLIN, snap, papers, now).plans
    return plan


def test_a_pause_asked_on_monday_noon_ends_on_sunday_and_the_next_monday_is_mailed() -> None:
    paused, _ = apply(ReaderState(), Verified("pause"), MONDAY_NOON)
    fresh = (submitted("2612.00001", at_seven(MONDAY_NOON) + timedelta(days=6, hours=-12)),)
    friday = plan_at(at_seven(MONDAY_NOON + timedelta(days=4)), paused, fresh)
    assert friday.reason == "suppressed"
    assert friday.suppressed == "paused by reply through 2026-12-06"  # Sunday, inclusive
    monday = plan_at(at_seven(MONDAY_NOON + timedelta(days=7)), paused, fresh)
    assert monday.reason == "send"


def test_papers_announced_during_a_pause_are_not_held_back_and_are_counted() -> None:
    paused, _ = apply(ReaderState(), Verified("pause"), MONDAY_NOON)
    before = submitted("2611.90001", MONDAY_NOON - timedelta(hours=4))  # announced Monday 20:00 ET
    during = submitted("2612.00002", MONDAY_NOON + timedelta(days=2))  # Wednesday
    after = submitted("2612.00003", MONDAY_NOON + timedelta(days=6, hours=3))  # Sunday 15:00
    monday = plan_at(at_seven(MONDAY_NOON + timedelta(days=7)), paused, (before, during, after))
    assert monday.reason == "send"
    # announced while paused (Monday evening to Sunday noon): not sent, counted
    assert {m.paper.id for m in monday.away} == {"2611.90001", "2612.00002"}
    # announced after the pause (Sunday 20:00 US Eastern, for Monday's digest): sent
    assert [m.paper.id for m in monday.matches] == ["2612.00003"]


def test_an_unsubscribe_then_resume_skips_what_was_announced_in_between() -> None:
    gone, _ = apply(ReaderState(), Verified("unsubscribe"), MONDAY_NOON)
    thursday = MONDAY_NOON + timedelta(days=3)
    back, _ = apply(gone, Verified("resume"), thursday)
    during = submitted("2612.00004", MONDAY_NOON + timedelta(days=1))  # Tuesday, announced 20:00 ET
    after = submitted("2612.00005", thursday + timedelta(hours=1))  # announced Thursday 20:00 ET
    friday = plan_at(at_seven(thursday + timedelta(days=1)), back, (during, after))
    assert [m.paper.id for m in friday.away] == ["2612.00004"]
    assert [m.paper.id for m in friday.matches] == ["2612.00005"]


def test_once_the_away_papers_are_recorded_skipped_the_next_digest_counts_none() -> None:
    paused, _ = apply(ReaderState(), Verified("pause"), MONDAY_NOON)
    during = submitted("2612.00002", MONDAY_NOON + timedelta(days=2))
    later = submitted("2612.00006", MONDAY_NOON + timedelta(days=8))
    state = SubscriberState(ALICE.email, skipped={"2612.00002": 1})
    tuesday = plan_at(at_seven(MONDAY_NOON + timedelta(days=9)), paused, (during, later), state)
    assert tuesday.away == () and [m.paper.id for m in tuesday.matches] == ["2612.00006"]


def test_the_first_digest_after_a_stop_says_how_many_and_records_them_skipped() -> None:
    paused, _ = apply(ReaderState(), Verified("pause"), MONDAY_NOON)
    during = submitted("2612.00002", MONDAY_NOON + timedelta(days=2))
    after = submitted("2612.00003", MONDAY_NOON + timedelta(days=6, hours=3))
    plan = plan_at(at_seven(MONDAY_NOON + timedelta(days=7)), paused, (during, after))
    digest, rendered = compose.compose(
        ALICE,
        [Ranked(m, 1.0) for m in plan.matches],
        BERLIN,
        cycle_id=plan.cycle_id,
        created=at_seven(MONDAY_NOON + timedelta(days=7)),
        away=plan.away,
    )
    note = "1 matching paper was announced while your digest was paused or stopped"
    assert note in rendered.text and note in rendered.html
    assert digest.paper_ids == ("2612.00003",)
    assert digest.skips == {"2612.00002": 1} and digest.left_out == 0


def test_a_stop_survives_the_store() -> None:
    paused, _ = apply(ReaderState(), Verified("pause"), MONDAY_NOON)
    back, _ = apply(paused, Verified("resume"), MONDAY_NOON + timedelta(days=2))
    assert back.away == ((MONDAY_NOON, MONDAY_NOON + timedelta(days=2)),)
    for state in (paused, back):
        doc = json.loads(json.dumps(reader_state_to_doc(state)))
        assert reader_state_from_doc(doc) == state


# -- the weekly rule, by calendar day; a cadence change; times in the future ----------------

MONDAY = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # NOW's week; Wednesday is NOW
WEEKLY = replace(ALICE, frequency="weekly", weekday="mon")
FRESH = paper("2611.00001", "A graph neural network for X")
SINCE_OCTOBER = {term_key("k", "graph neural network"): NOW - timedelta(days=30)}


def plan_on(sub: Subscriber, state: SubscriberState, now: datetime, settings: Settings = SETTINGS):
    (plan,) = plan_cycle((sub,), settings, Snapshot(states={sub.email: state}), (FRESH,), now).plans
    return plan


def test_a_weekly_slot_served_at_07_00_is_not_owed_again_when_send_at_moves_to_09_00() -> None:
    state = SubscriberState(
        WEEKLY.email,
        watermarks=SINCE_OCTOBER,
        first_seen=NOW - timedelta(days=30),
        served_slot=MONDAY,
        cadence="weekly:mon",
    )
    later = replace(SETTINGS, send_at=time(9, 0))
    assert (
        plan_on(WEEKLY, state, MONDAY + timedelta(hours=2, minutes=30), later).reason == "waiting"
    )
    assert plan_on(WEEKLY, state, MONDAY + timedelta(days=7, hours=2), later).reason == "send"


def test_a_reader_switched_to_weekly_after_their_weekday_waits_for_the_next_one() -> None:
    # a daily reader for a month, switched on Wednesday to weekly on Mondays
    daily = SubscriberState(
        WEEKLY.email, watermarks=SINCE_OCTOBER, first_seen=NOW - timedelta(days=30), cadence="daily"
    )
    plan = plan_on(WEEKLY, daily, NOW)
    assert plan.reason == "waiting" and len(plan.matches) == 1
    assert (plan.cadence, plan.cadence_since, plan.cadence_changed) == ("weekly:mon", NOW, True)
    switched = replace(daily, cadence="weekly:mon", cadence_since=NOW)
    assert plan_on(WEEKLY, switched, NOW + timedelta(days=1)).reason == "waiting"
    nxt = plan_on(WEEKLY, switched, MONDAY + timedelta(days=7))
    assert (nxt.reason, nxt.cadence_changed) == ("send", False)


def test_a_weekday_moved_to_one_already_past_this_week_waits_for_it_next_week() -> None:
    served = SubscriberState(
        WEEKLY.email,
        watermarks=SINCE_OCTOBER,
        first_seen=NOW - timedelta(days=30),
        served_slot=MONDAY - timedelta(days=4),
        cadence="weekly:thu",
    )
    plan = plan_on(WEEKLY, served, NOW)  # Thursday's reader moved to Monday on Wednesday
    assert plan.reason == "waiting" and plan.cadence_since == NOW


def test_a_cadence_the_store_never_knew_has_held_always() -> None:
    old = SubscriberState(WEEKLY.email, first_seen=NOW - timedelta(days=30))
    plan = plan_on(WEEKLY, old, NOW)  # Monday's slot was missed: caught up, as before
    assert plan.reason == "send" and plan.served_slot == MONDAY
    assert (plan.cadence, plan.cadence_since, plan.cadence_changed) == ("weekly:mon", None, True)
    assert not plan_on(WEEKLY, replace(old, cadence="weekly:mon"), NOW).cadence_changed


def test_starting_points_in_the_future_of_the_clock_start_afresh() -> None:
    ahead = NOW + timedelta(days=7)
    state = SubscriberState(
        ALICE.email, first_seen=ahead, watermarks={term_key("k", "graph neural network"): ahead}
    )
    plan = plan_on(ALICE, state, NOW)
    assert [m.paper.id for m in plan.matches] == [FRESH.id]
    assert plan.reset_keys == (term_key("k", "graph neural network"),) and plan.reset_first_seen
    assert plan.watermark_start == NOW - timedelta(days=2)
    # within the tolerance a clock set back a little changes nothing
    near = replace(state, first_seen=NOW, watermarks={term_key("k", "graph neural network"): NOW})
    assert plan_on(ALICE, near, NOW - timedelta(minutes=30)).reset_keys == ()


def test_a_weekly_slot_in_the_future_of_the_clock_does_not_block_today() -> None:
    ahead = MONDAY + timedelta(days=7)
    state = SubscriberState(
        WEEKLY.email, first_seen=NOW - timedelta(days=30), served_slot=ahead, cadence="weekly:mon"
    )
    plan = plan_on(WEEKLY, state, NOW)
    assert plan.reason == "send" and plan.served_slot == MONDAY
    # a reader whose first sight lies ahead too is owed the slot, not made to wait a week
    assert plan_on(WEEKLY, replace(state, first_seen=ahead), NOW).reason == "send"


# -- beyond the keywords ------------------------------------------------------


def in_cats(pid: str, title: str, *cats: str, abstract: str = "An abstract.", **kw) -> Paper:
    return replace(
        paper(pid, title), abstract=abstract, categories=cats, primary_category=cats[0], **kw
    )


LIKED = in_cats("2601.00001", "Parsing with attention", "cs.CL", "cs.LG")
FAN = replace(
    ALICE, exclude=("survey",), authors=("Jane Roe",), likes=(Liked(LIKED.id), Liked("2601.09999"))
)


def beyond_plan(sub: Subscriber, state: SubscriberState, offered: tuple[Paper, ...]):
    match = paper("2611.00001", "A graph neural network for X")
    beyond = Beyond.of(offered, {LIKED.id: LIKED, **{p.id: p for p in offered}})
    pool = pool_of((), (match,))
    return plan_subscriber(sub, state, pool, SETTINGS, NOW, None, beyond=beyond)


def test_beyond_candidates_are_liked_categories_papers_that_touch_nothing_the_reader_set() -> None:
    ok = in_cats("2611.00010", "Tagging parts of speech", "cs.CL")
    cross = in_cats("2611.00011", "Speech in the wild", "eess.AS", "cs.CL")
    others = [
        in_cats("2611.00020", "Graph neural networks for parsing", "cs.CL"),  # a keyword
        in_cats("2611.00021", "A survey of parsers", "cs.CL"),  # an excluded phrase
        in_cats("2611.00022", "Parsers", "cs.CL", authors=("J. Roe",)),  # a followed author
        in_cats("2611.00023", "Galaxies", "astro-ph.GA"),  # not a liked category
        in_cats("2611.00024", "Delivered", "cs.CL"),
        in_cats("2611.00025", "Skipped", "cs.CL"),
        in_cats("2611.00026", "Offered", "cs.CL"),
        LIKED,  # the liked paper itself
    ]
    state = SubscriberState(
        FAN.email,
        delivered={"2611.00024": 1},
        skipped={"2611.00025": 1},
        offered={"2611.00026": 1},
    )
    plan = beyond_plan(FAN, state, (ok, cross, *others))
    assert plan.reason == "send" and plan.liked_categories == ("cs.CL",)
    assert [p.id for p in plan.beyond] == [ok.id, cross.id]
    assert [m.paper.id for m in plan.matches] == ["2611.00001"]  # matches are unchanged


def test_a_reader_without_likes_is_offered_nothing() -> None:
    plan = beyond_plan(ALICE, SubscriberState(ALICE.email), (in_cats("2611.00010", "T", "cs.CL"),))
    assert plan.beyond == () and plan.liked_categories == ()


def test_liked_categories_are_the_known_liked_papers_primary_ones_most_liked_first() -> None:
    a, b = in_cats("2601.00002", "A", "hep-th"), in_cats("2601.00003", "B", "hep-th", "cs.CL")
    likes = (Liked(LIKED.id), Liked(a.id), Liked(b.id), Liked("2601.09999"), Liked(None, "T"))
    known = {p.id: p for p in (LIKED, a, b)}
    assert liked_categories(likes, known) == ("hep-th", "cs.CL")
