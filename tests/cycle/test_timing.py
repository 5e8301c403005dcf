"""The schedule logic with an injected clock: no real waiting."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from digest.cycle.timing import (
    announcements_between,
    due_slot,
    local_date,
    next_run,
    previous_run,
)
from digest.models import Settings

WEEKDAYS = Settings()  # mon..fri at 07:00 UTC


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_next_run_later_today_or_the_next_cycle_day() -> None:
    # 2026-11-30 is a Monday
    assert next_run(utc(2026, 11, 30, 6, 59), WEEKDAYS) == utc(2026, 11, 30, 7, 0)
    assert next_run(utc(2026, 11, 30, 7, 0), WEEKDAYS) == utc(2026, 12, 1, 7, 0)
    # Friday after the slot -> Monday: the weekend is skipped
    assert next_run(utc(2026, 12, 4, 8, 0), WEEKDAYS) == utc(2026, 12, 7, 7, 0)


def test_skipped_days() -> None:
    s = replace(WEEKDAYS, days=("tue", "thu"))
    assert next_run(utc(2026, 11, 30, 12), s) == utc(2026, 12, 1, 7)
    assert next_run(utc(2026, 12, 1, 7, 30), s) == utc(2026, 12, 3, 7)


def test_timezone_is_local_wall_clock() -> None:
    s = replace(WEEKDAYS, timezone="Europe/Berlin")
    # winter: CET = UTC+1
    assert next_run(utc(2026, 11, 30, 0), s) == utc(2026, 11, 30, 6)
    # Asia/Tokyo: 07:00 Monday local is 22:00 Sunday UTC
    s = replace(WEEKDAYS, timezone="Asia/Tokyo")
    assert next_run(utc(2026, 11, 29, 12), s) == utc(2026, 11, 29, 22)


def test_dst_change_keeps_the_local_time() -> None:
    s = replace(
        WEEKDAYS, timezone="Europe/Berlin", days=("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    )
    # Europe switches to summer time on 2026-03-29
    assert next_run(utc(2026, 3, 28, 12), s) == utc(2026, 3, 29, 5)  # 07:00 CEST
    assert next_run(utc(2026, 3, 27, 12), s) == utc(2026, 3, 28, 6)  # 07:00 CET
    s = replace(s, timezone="America/New_York")
    # and back on 2026-11-01 in New York
    assert next_run(utc(2026, 10, 31, 12), s) == utc(2026, 11, 1, 12)  # 07:00 EST
    assert next_run(utc(2026, 10, 30, 12), s) == utc(2026, 10, 31, 11)  # 07:00 EDT


def test_previous_run_and_catch_up_after_downtime() -> None:
    # down over the Monday slot, back at 09:30: the Monday cycle is owed
    now = utc(2026, 11, 30, 9, 30)
    last = utc(2026, 11, 27, 7)  # Friday's cycle
    assert previous_run(now, WEEKDAYS) == utc(2026, 11, 30, 7)
    assert due_slot(now, WEEKDAYS, last) == utc(2026, 11, 30, 7)


def test_never_twice_for_one_slot() -> None:
    slot = utc(2026, 11, 30, 7)
    for minutes in (0, 1, 60, 23 * 60):
        assert due_slot(slot + timedelta(minutes=minutes), WEEKDAYS, slot) is None
    assert due_slot(utc(2026, 12, 1, 7), WEEKDAYS, slot) == utc(2026, 12, 1, 7)


def test_after_a_long_outage_only_the_latest_slot_is_owed() -> None:
    # one catch-up cycle, not one per missed day (the window covers the gap)
    assert due_slot(utc(2026, 12, 10, 12), WEEKDAYS, utc(2026, 11, 27, 7)) == utc(2026, 12, 10, 7)


def test_weekend_owes_nothing_new() -> None:
    friday = utc(2026, 12, 4, 7)
    assert due_slot(utc(2026, 12, 6, 12), WEEKDAYS, friday) is None  # Sunday


def test_a_fresh_install_is_owed_the_latest_slot() -> None:
    assert due_slot(utc(2026, 11, 30, 9), WEEKDAYS, None) == utc(2026, 11, 30, 7)


def test_seconds_in_send_at() -> None:
    s = replace(WEEKDAYS, send_at=time(7, 0, 30))
    assert next_run(utc(2026, 11, 30, 7, 0), s) == utc(2026, 11, 30, 7, 0, 30)


@pytest.mark.parametrize(
    "start, end, expected",
    [
        # Friday 07:00 UTC -> Monday 07:00 UTC: only Sunday 20:00 ET
        (utc(2026, 12, 4, 7), utc(2026, 12, 7, 7), 1),
        # Saturday -> Sunday morning: none
        (utc(2026, 12, 5, 7), utc(2026, 12, 6, 7), 0),
        # Monday 07:00 UTC -> Tuesday 07:00 UTC: Monday 20:00 ET (01:00 UTC Tuesday)
        (utc(2026, 11, 30, 7), utc(2026, 12, 1, 7), 1),
        # a whole week: Sun..Thu
        (utc(2026, 11, 30, 7), utc(2026, 12, 7, 7), 5),
    ],
)
def test_announcements_between(start, end, expected) -> None:
    assert announcements_between(start, end) == expected


# -- what was owed: the calendar day in the configured zone, not the instant -----------

EVERY_DAY = replace(WEEKDAYS, days=("mon", "tue", "wed", "thu", "fri", "sat", "sun"))


def test_send_at_moved_later_after_the_days_cycle_owes_that_day_nothing_more() -> None:
    monday_0700 = utc(2026, 11, 30, 7)
    later = replace(WEEKDAYS, send_at=time(9, 0))
    assert due_slot(utc(2026, 11, 30, 9, 30), later, monday_0700) is None
    assert next_run(utc(2026, 11, 30, 8), later, monday_0700) == utc(2026, 12, 1, 9)
    assert due_slot(utc(2026, 12, 1, 9), later, monday_0700) == utc(2026, 12, 1, 9)


def test_send_at_moved_later_before_the_days_cycle_waits_for_it() -> None:
    friday_0700 = utc(2026, 11, 27, 7)
    later = replace(WEEKDAYS, send_at=time(9, 0))
    # Monday 08:00: Friday was served (at 07:00, not 09:00); Monday's 09:00 is still to come
    assert due_slot(utc(2026, 11, 30, 8), later, friday_0700) is None
    assert due_slot(utc(2026, 11, 30, 9), later, friday_0700) == utc(2026, 11, 30, 9)


def test_send_at_moved_earlier_skips_no_day() -> None:
    monday_0900 = utc(2026, 11, 30, 9)
    assert due_slot(utc(2026, 11, 30, 10), WEEKDAYS, monday_0900) is None
    assert due_slot(utc(2026, 12, 1, 7), WEEKDAYS, monday_0900) == utc(2026, 12, 1, 7)


@pytest.mark.parametrize(
    "zone, monday_later, tuesday_0900",
    [
        # an hour west of Berlin: Monday 09:00 in London comes after Berlin's 07:00
        ("Europe/London", utc(2026, 11, 30, 9, 1), utc(2026, 12, 1, 9)),
        # east: Monday 09:00 in Kolkata came before it; Tuesday's is owed
        ("Asia/Kolkata", utc(2026, 11, 30, 12), utc(2026, 12, 1, 3, 30)),
    ],
)
def test_a_new_timezone_owes_the_day_served_in_the_old_one_nothing(
    zone: str, monday_later: datetime, tuesday_0900: datetime
) -> None:
    served = utc(2026, 11, 30, 6)  # Monday 07:00 in Berlin
    moved = replace(WEEKDAYS, timezone=zone, send_at=time(9, 0))
    assert due_slot(monday_later, moved, served) is None
    assert next_run(monday_later, moved, served) == tuesday_0900
    assert due_slot(tuesday_0900, moved, served) == tuesday_0900


def test_a_zone_far_west_serves_its_own_next_day() -> None:
    # Monday 07:00 in Berlin is Sunday 22:00 in Los Angeles: Monday there is still owed
    served = utc(2026, 11, 30, 6)
    la = replace(WEEKDAYS, timezone="America/Los_Angeles", days=EVERY_DAY.days)
    assert due_slot(utc(2026, 11, 30, 15), la, served) == utc(2026, 11, 30, 15)  # 07:00 PST


@pytest.mark.parametrize(
    "zone, night, at",
    [
        # spring forward: 02:30 does not exist that night; it is taken as 03:30 summer time
        ("Europe/Berlin", (2026, 3, 29), time(2, 30)),
        ("America/New_York", (2026, 3, 8), time(2, 30)),
        # fall back: 02:30 (Berlin) and 01:30 (New York) happen twice; the first one counts
        ("Europe/Berlin", (2026, 10, 25), time(2, 30)),
        ("America/New_York", (2026, 11, 1), time(1, 30)),
    ],
)
def test_a_dst_night_owes_its_day_exactly_once(
    zone: str, night: tuple[int, int, int], at: time
) -> None:
    s = replace(EVERY_DAY, timezone=zone, send_at=at)
    day = datetime(*night, 12, tzinfo=UTC)
    slot = previous_run(day, s)
    assert local_date(slot, s) == day.date()
    before = previous_run(slot - timedelta(seconds=1), s)
    assert local_date(before, s) == day.date() - timedelta(days=1)
    # the day before was served: the night's slot is owed once, then nothing until the next day
    assert due_slot(slot, s, before) == slot
    for hours in (0.5, 1, 1.5, 2, 12):
        assert due_slot(slot + timedelta(hours=hours), s, slot) is None
    following = next_run(slot, s, slot)
    assert local_date(following, s) == day.date() + timedelta(days=1)
    assert due_slot(following, s, slot) == following
