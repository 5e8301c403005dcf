"""Whether a cycle may trust the machine's clock: pure rules, no I/O.

Everything a cycle records carries the machine's clock: when a paper was
first cached, where a new reader starts, which delivery records are old
enough to prune, which slot was served. A clock that runs ahead spoils them
all at once: a week ahead, new readers start after every paper arXiv has;
200 days ahead, pruning forgets what was sent and it all goes out again.
So before a cycle records anything it compares its clock with what it can
see of the time:

* arXiv's: the ``Date`` header of its answers, read against our wall clock
  at the moment each answer came (the arXiv client's stats), so the minutes a long
  fetch takes never count as a difference;
* the last cycle's recorded start: a clock does not run backwards.

The rule (docs/delivery.md, "Time"):

1. the clock more than ``TOLERANCE`` ahead of or behind arXiv's: refuse;
2. no time from arXiv, and the clock more than ``TOLERANCE`` behind the last
   cycle: refuse, since nothing tells which of the two was wrong;
3. the clock agrees with arXiv's but the store holds times more than
   ``TOLERANCE`` in its future: they were recorded under a clock that ran
   ahead. The cycle names them in a warning and reads them as unknown
   (``known``): a fresh fetch window, a future slot owes nothing, future
   starting points are set afresh. A refusal here would block mail for as
   long as the clock had been ahead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from digest.errors import ClockError
from digest.store import SubscriberState

# An hour: far above honest disagreement, far below harm. NTP keeps clocks
# within milliseconds of each other, the Date header has whole seconds, and
# an answer's own delay (up to its timeout, a minute or two) counts against
# us; an unsynchronised clock drifts by seconds a day. Within an hour nothing
# recorded goes wrong in a way that costs mail: pruning needs 180 days, a
# starting point an hour late is the one a cycle an hour later would set, and
# slots are decided by calendar day. The mistakes that do cost mail are whole
# hours (a hardware clock kept in local time) to days and months.
TOLERANCE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ArxivTime:
    """arXiv's clock as an answer gave it (``Date``), and ours when that answer came."""

    theirs: datetime
    ours: datetime

    @property
    def ahead(self) -> timedelta:
        """How far our clock runs ahead of arXiv's (negative: behind)."""
        return self.ours - self.theirs


def arxiv_time(theirs: datetime | None, ours: datetime | None) -> ArxivTime | None:
    """What the arXiv client saw of arXiv's clock; None when no answer carried a Date."""
    return ArxivTime(theirs, ours) if theirs is not None and ours is not None else None


def known_time(when: datetime | None, now: datetime) -> datetime | None:
    """``when``, or None (unknown) when it lies more than ``TOLERANCE`` after ``now``."""
    if when is None or when - now > TOLERANCE:
        return None
    return when


def utc_text(when: datetime) -> str:
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def span(delta: timedelta) -> str:
    """``200 days``, ``3 hours``, ``1 minute``: a difference as a person says it."""
    seconds = abs(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= 1.5 * size or unit == "minute":
            n = round(seconds / size)
            return f"{n} {unit}{'' if n == 1 else 's'}"
    raise AssertionError("unreachable")  # the loop ends on minutes


_NOTHING = (
    "digest recorded nothing (no papers, starting points, pruning or slot), since every "
    "record would carry the wrong time"
)


def check(now: datetime, arxiv: ArxivTime | None, last_cycle: datetime | None) -> None:
    """Raise ``ClockError`` unless the clock may be trusted (rules 1 and 2 above)."""
    if arxiv is not None:
        if abs(arxiv.ahead) > TOLERANCE:
            way = "ahead of" if arxiv.ahead > timedelta(0) else "behind"
            raise ClockError(
                f"this machine's clock read {utc_text(arxiv.ours)} when arXiv's server said "
                f"{utc_text(arxiv.theirs)}: it runs {span(arxiv.ahead)} {way} arXiv's. {_NOTHING}. "
                "Set the clock right (timedatectl set-ntp true) and run again"
            )
        return
    if last_cycle is not None and last_cycle - now > TOLERANCE:
        raise ClockError(
            f"this machine's clock reads {utc_text(now)}, {span(last_cycle - now)} before the "
            f"last cycle's start ({utc_text(last_cycle)}), and arXiv's answers carried no Date "
            f"to tell which of the two is wrong. {_NOTHING}. Set the clock right and run "
            f"again; if it is right, the last cycle ran under a clock that was ahead, and "
            f"digest runs again once the clock passes {utc_text(last_cycle)}"
        )


def future_records(
    now: datetime,
    *,
    last_cycle: datetime | None = None,
    last_fetch: datetime | None = None,
    last_slot: datetime | None = None,
    states: Iterable[SubscriberState] = (),
) -> tuple[str, ...]:
    """The stored times that ``known`` reads as unknown, each worded for the operator."""
    found = [
        f"{name} ({utc_text(when)})"
        for name, when in (
            ("the last cycle", last_cycle),
            ("the last fetch", last_fetch),
            ("the last completed slot", last_slot),
        )
        if when is not None and known_time(when, now) is None
    ]
    kinds: dict[str, list[str]] = {}
    for state in states:
        times = {
            "starting points": max(state.watermarks.values(), default=None),
            "first-seen times": state.first_seen,
            "weekly slots": state.served_slot,
            "cadence changes": state.cadence_since,
        }
        for kind, when in times.items():
            if when is not None and known_time(when, now) is None:
                kinds.setdefault(kind, []).append(state.email)
    for kind, emails in kinds.items():
        more = f" and {len(emails) - 3} more" if len(emails) > 3 else ""
        noun = "reader" if len(emails) == 1 else "readers"
        found.append(f"the {kind} of {len(emails)} {noun} ({', '.join(emails[:3])}{more})")
    return tuple(found)
