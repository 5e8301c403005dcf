"""When cycles are due: pure functions of a clock reading and the settings.

Wall-clock arithmetic is done in the configured IANA zone with zoneinfo, so
DST changes move the UTC instant, not the local ``send_at``. What was owed is
decided by the calendar day (and week) in that zone, never by comparing
instants: a slot served at 07:00 serves its day, so moving ``send_at`` to
09:00, or ``timezone`` to another zone, neither owes that day again nor
skips the next one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from digest.models import WEEKDAYS, Settings


def slot_on(day: datetime, settings: Settings) -> datetime:
    """The scheduled instant (UTC) on the local calendar day of ``day``."""
    tz = ZoneInfo(settings.timezone)
    local = day.astimezone(tz)
    at = datetime.combine(local.date(), settings.send_at, tzinfo=tz)
    return at.astimezone(UTC)


def local_date(when: datetime, settings: Settings) -> date:
    """The calendar day of ``when`` in the configured zone."""
    return when.astimezone(ZoneInfo(settings.timezone)).date()


def _weekday(when: datetime, settings: Settings) -> str:
    """``mon`` .. ``sun`` of ``when`` on the local calendar."""
    return WEEKDAYS[when.astimezone(ZoneInfo(settings.timezone)).weekday()]


def clock_text(t: time) -> str:
    """``07:00``, or ``07:00:30`` when ``send_at`` has seconds (dropping them misleads)."""
    return t.strftime("%H:%M:%S" if t.second else "%H:%M")


def local_text(when: datetime, settings: Settings) -> str:
    """An instant as the operator configured it: local time and zone, with UTC beside it."""
    fmt = "%Y-%m-%d %H:%M:%S" if when.second else "%Y-%m-%d %H:%M"
    if settings.timezone == "UTC":
        return f"{when.astimezone(UTC):{fmt}} UTC"
    local = when.astimezone(ZoneInfo(settings.timezone))
    utc_fmt = "%H:%M:%S" if when.second else "%H:%M"
    return f"{local:{fmt}} {settings.timezone} ({when.astimezone(UTC):{utc_fmt}} UTC)"


def next_run(now: datetime, settings: Settings, last_slot: datetime | None = None) -> datetime:
    """The first scheduled instant strictly after ``now`` (UTC) on a day not yet served.

    ``last_slot``, the slot last completed, serves its whole local day: after
    ``send_at`` moved from 07:00 to 09:00, the next cycle is tomorrow's.
    """
    tz = ZoneInfo(settings.timezone)
    local_day = now.astimezone(tz)
    served = local_date(last_slot, settings) if last_slot is not None else None
    for offset in range(0, 9):
        day = local_day + timedelta(days=offset)
        slot = slot_on(day, settings)
        due = slot > now and _weekday(slot, settings) in settings.days
        if due and (served is None or local_date(slot, settings) > served):
            return slot
    raise ValueError("no cycle day configured")  # config guarantees at least one day


def _latest_slot(now: datetime, settings: Settings, days: tuple[str, ...]) -> datetime:
    """The latest ``send_at`` instant at or before ``now`` on one of ``days`` (local), UTC."""
    local_day = now.astimezone(ZoneInfo(settings.timezone))
    for offset in range(0, 8):
        slot = slot_on(local_day - timedelta(days=offset), settings)
        if slot <= now and _weekday(slot, settings) in days:
            return slot
    raise ValueError(f"none of {days!r} is a weekday")  # config guarantees valid days


def previous_run(now: datetime, settings: Settings) -> datetime:
    """The latest scheduled instant at or before ``now`` (UTC)."""
    return _latest_slot(now, settings, settings.days)


def due_slot(now: datetime, settings: Settings, last_slot: datetime | None) -> datetime | None:
    """The slot a cycle is owed for, or None.

    The latest scheduled instant at or before ``now``, unless a cycle was
    already completed on its local calendar day. This one rule is the daily
    schedule, the catch-up after downtime (a daemon down at 07:00 runs when it
    comes back) and the guard against two cycles for one day; it survives
    restarts, suspend and DST because it reads the persisted ``last_slot``, not
    a timer, and edits of ``send_at`` and ``timezone`` because it compares days
    in the zone now configured, not instants.
    """
    slot = previous_run(now, settings)
    if last_slot is not None and local_date(last_slot, settings) >= local_date(slot, settings):
        return None
    return slot


# arXiv announces at 20:00 US Eastern, Sunday to Thursday (arXiv's availability page).
_ANNOUNCE_TZ = ZoneInfo("America/New_York")
_ANNOUNCE_DAYS = (6, 0, 1, 2, 3)  # Sun..Thu as datetime.weekday()


def announcements_between(start: datetime, end: datetime) -> int:
    """How many regular arXiv announcements fell in (start, end] (holidays not known)."""
    count = 0
    day = start.astimezone(_ANNOUNCE_TZ).date()
    last = end.astimezone(_ANNOUNCE_TZ).date()
    while day <= last:
        at = datetime.combine(day, datetime.min.time(), tzinfo=_ANNOUNCE_TZ).replace(hour=20)
        if day.weekday() in _ANNOUNCE_DAYS and start < at <= end:
            count += 1
        day += timedelta(days=1)
    return count


def announced(submitted: datetime) -> datetime:
    """When arXiv announces a paper first submitted at ``submitted`` (holidays not known).

    arXiv's schedule: each announcement, at 20:00 US Eastern Sunday to Thursday,
    carries what was submitted before 14:00 that day (Monday to Thursday) or
    before 14:00 on Friday (Sunday's).
    """
    local = submitted.astimezone(_ANNOUNCE_TZ)
    day = local.date()
    for offset in range(8):
        d = day + timedelta(days=offset)
        if d.weekday() not in _ANNOUNCE_DAYS:
            continue
        cutoff_day = d - timedelta(days=2) if d.weekday() == 6 else d  # Sunday's: Friday
        cutoff = datetime.combine(cutoff_day, time(14), tzinfo=_ANNOUNCE_TZ)
        if local < cutoff:
            return datetime.combine(d, time(20), tzinfo=_ANNOUNCE_TZ).astimezone(UTC)
    raise AssertionError("an announcement comes within a week")  # Sun..Thu are 5 days of 7


def weekly_slot(now: datetime, weekday: str, settings: Settings) -> datetime:
    """The latest ``weekday`` at ``send_at`` (local time) at or before ``now``, in UTC."""
    return _latest_slot(now, settings, (weekday,))
