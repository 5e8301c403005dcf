"""When cycles are due: pure functions of a clock reading and the settings.

Wall-clock arithmetic is done in the configured IANA zone with zoneinfo, so
DST changes move the UTC instant, not the local ``send_at``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from digest.models import WEEKDAYS, Settings


def slot_on(day: datetime, settings: Settings) -> datetime:
    """The scheduled instant (UTC) on the local calendar day of ``day``."""
    tz = ZoneInfo(settings.timezone)
    local = day.astimezone(tz)
    at = datetime.combine(local.date(), settings.send_at, tzinfo=tz)
    return at.astimezone(UTC)


def _is_cycle_day(when: datetime, settings: Settings) -> bool:
    local = when.astimezone(ZoneInfo(settings.timezone))
    return WEEKDAYS[local.weekday()] in settings.days


def next_run(now: datetime, settings: Settings) -> datetime:
    """The first scheduled instant strictly after ``now`` (UTC)."""
    tz = ZoneInfo(settings.timezone)
    local_day = now.astimezone(tz)
    for offset in range(0, 8):
        day = local_day + timedelta(days=offset)
        slot = slot_on(day, settings)
        if slot > now and _is_cycle_day(slot, settings):
            return slot
    raise ValueError("no cycle day configured")  # config guarantees at least one day


def previous_run(now: datetime, settings: Settings) -> datetime:
    """The latest scheduled instant at or before ``now`` (UTC)."""
    tz = ZoneInfo(settings.timezone)
    local_day = now.astimezone(tz)
    for offset in range(0, 8):
        day = local_day - timedelta(days=offset)
        slot = slot_on(day, settings)
        if slot <= now and _is_cycle_day(slot, settings):
            return slot
    raise ValueError("no cycle day configured")
