"""The pure rules that change what a reader chose by mail (``models.ReaderState``).

The store keeps a reader's state beside their deliveries; ``subscribers.yaml``
stays the operator's file and a reader's choice overrides it for that reader
only. ``apply`` is the only place a state changes: it takes an event (a
verified command, a bounce, a plain reply, the operator lifting a
suppression) and returns the new state and the effects the shell carries
out (a log line, maybe a confirmation mail). Replaying a message changes
nothing: the Message-IDs of handled messages are remembered.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo

from digest.models import Frequency, ReaderState, ReplyNote
from digest.replies.commands import Action

# "Pause for a week": the day of the request and the six after it, inclusive, in
# the installation's zone. A pause asked for on Monday ends on Sunday, so the
# next Monday's cycle mails again (a 7-day span from Monday noon also took it).
PAUSE = timedelta(days=6)
# A pause ends on the day it names, but the instant is kept this long after, so
# the day can be told in any zone (up to UTC±14) before the pause is forgotten.
_PAUSE_KEPT = timedelta(days=2)
# Stops (unsubscribe, pause, suspension) remembered, so that what was announced
# during them is never sent later: the latest few, none older than the paper cache.
MAX_AWAY = 8
AWAY_KEPT = timedelta(days=180)
BOUNCE_WINDOW = timedelta(days=30)
HARD_BOUNCES_TO_SUSPEND = 3
CONFIRMATION_WINDOW = timedelta(days=1)
# Confirmations are counted by who asked (the envelope sender, else the From),
# so forgeries sent through other servers cannot use up the reader's own three;
# together such senders may cost a reader at most five mails a day.
CONFIRMATIONS_PER_SENDER = 3
CONFIRMATIONS_FROM_OTHERS = 5
# A reader learns by mail what a command changed, and how to undo it, once a
# day at most: a reader clicking "less like this" under ten papers gets one.
ACKNOWLEDGEMENT_WINDOW = timedelta(days=1)
MAX_PREFERENCES = 500  # likes and dislikes each, newest kept
MAX_HANDLED = 50  # Message-IDs remembered against replays
MAX_NOTES = 10  # the last replies ``digest readers EMAIL`` shows


# -- events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verified:
    """A command whose token matched this reader."""

    action: Action
    argument: str = ""
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class Bounced:
    """A failed delivery to this reader.

    ``verified``: we know we sent the mail that failed, because the bounce
    returned the reader's tokened link, or because our own SMTP relay
    refused the recipient during the cycle. Only verified hard bounces count:
    a forged bounce must not be able to suspend anyone.
    """

    hard: bool
    status: str = ""
    message_id: str | None = None
    verified: bool = False


@dataclass(frozen=True, slots=True)
class Asked:
    """Someone asked for ``action`` in a way that cannot act by itself: the reader confirms.

    ``sender`` is who asked (the envelope sender, else the From); ``own``
    says it is the reader's own address. Confirmations are counted per sender.
    """

    action: Action
    message_id: str | None = None
    sender: str = ""
    own: bool = True
    argument: str = ""


@dataclass(frozen=True, slots=True)
class Lifted:
    """The operator lifted every suppression (``digest readers EMAIL --resume``)."""


Event = Verified | Bounced | Asked | Lifted


@dataclass(frozen=True, slots=True)
class Effects:
    changed: bool  # the state differs: save it
    log: str  # one fact for the log
    confirm: Action | None = None  # send a confirmation mail offering this action
    acknowledge: bool = False  # tell the reader what the command changed


def apply(state: ReaderState, event: Event, now: datetime) -> tuple[ReaderState, Effects]:
    """The state after ``event`` at ``now``, and what to do about it."""
    message_id = getattr(event, "message_id", None)
    if message_id and message_id in state.handled:
        return state, Effects(False, f"message {message_id} was handled before; ignored")
    state = _forget_old(state, now)
    new, effects = _apply(state, event, now, message_id)
    return _track_away(state, new, now), effects


def _apply(
    state: ReaderState, event: Event, now: datetime, message_id: str | None
) -> tuple[ReaderState, Effects]:
    match event:
        case Verified(action, argument):
            new, log = _command(state, action, argument, now)
        case Bounced(hard, status, _, verified):
            new, log = _bounce(state, hard and verified, status, now)
            if hard and not verified:
                log = f"unverified hard bounce {status} (no returned digest); not counted"
        case Asked():
            return _asked(state, event, now)
        case Lifted():
            new = replace(
                state, unsubscribed_at=None, suspended_at=None, paused_until=None, hard_bounces=()
            )
            log = "suppression lifted by the operator"
    if new == state:
        return state, Effects(False, log)
    # Only a message that changed something is remembered: its replay is the danger.
    new = _remember(new, message_id)
    if not isinstance(event, Verified):
        return new, Effects(True, log)
    last = state.acknowledged_at
    if last is not None and now - last < ACKNOWLEDGEMENT_WINDOW:
        return new, Effects(True, f"{log}; acknowledged once in the last day already")
    new = replace(new, acknowledged_at=now)
    return new, Effects(True, f"{log}; acknowledged", acknowledge=True)


def _command(
    state: ReaderState, action: Action, argument: str, now: datetime
) -> tuple[ReaderState, str]:
    match action:
        case "unsubscribe":
            if state.unsubscribed_at is not None:
                return state, "already unsubscribed"
            return replace(state, unsubscribed_at=now), "unsubscribed by reply"
        case "pause":
            until = max(state.paused_until or now, now + PAUSE)
            return replace(state, paused_until=until), f"paused until {until:%Y-%m-%d}"
        case "resume":
            # A tokened resume proves the mailbox works: bounces are forgiven too.
            return (
                replace(
                    state,
                    unsubscribed_at=None,
                    suspended_at=None,
                    paused_until=None,
                    hard_bounces=(),
                ),
                "resumed by reply",
            )
        case "daily" | "weekly":
            return replace(state, frequency=action), f"frequency set to {action} by reply"
        case "more":
            return (
                replace(
                    state,
                    likes=_added(state.likes, argument),
                    dislikes=_removed(state.dislikes, argument),
                ),
                f"more like {argument}",
            )
        case "less":
            return (
                replace(
                    state,
                    dislikes=_added(state.dislikes, argument),
                    likes=_removed(state.likes, argument),
                ),
                f"less like {argument}",
            )


def _bounce(state: ReaderState, hard: bool, status: str, now: datetime) -> tuple[ReaderState, str]:
    if not hard:
        return state, f"soft bounce {status or '(no status)'}; nothing changes"
    bounces = (*state.hard_bounces, now)
    if state.suspended_at is None and len(bounces) >= HARD_BOUNCES_TO_SUSPEND:
        return (
            replace(state, hard_bounces=bounces, suspended_at=now),
            f"hard bounce {status}: {len(bounces)} in {BOUNCE_WINDOW.days} days, suspended",
        )
    return replace(state, hard_bounces=bounces), f"hard bounce {status} ({len(bounces)} counted)"


def _asked(state: ReaderState, event: Asked, now: datetime) -> tuple[ReaderState, Effects]:
    if event.action == "unsubscribe" and state.unsubscribed_at is not None:
        return state, Effects(False, "already unsubscribed; not answered")
    who = "" if event.own else event.sender
    asked = [s for _, s in state.confirmations]
    if asked.count(who) >= CONFIRMATIONS_PER_SENDER:
        return state, Effects(
            False,
            f"{CONFIRMATIONS_PER_SENDER} confirmations asked by {event.sender or 'this sender'} "
            "in the last day already; not answered",
        )
    if who and sum(1 for s in asked if s) >= CONFIRMATIONS_FROM_OTHERS:
        return state, Effects(
            False,
            f"{CONFIRMATIONS_FROM_OTHERS} confirmations asked from other addresses "
            "in the last day already; not answered",
        )
    new = replace(state, confirmations=(*state.confirmations, (now, who)))
    return _remember(new, event.message_id), Effects(
        True, "confirmation sent", confirm=event.action
    )


def noted(state: ReaderState, at: datetime, what: str, done: str) -> ReaderState:
    """``state`` keeping one more message about the reader, and what became of it."""
    notes = (*state.last_replies, ReplyNote(at, what, done))[-MAX_NOTES:]
    return replace(state, last_replies=notes)


def _track_away(before: ReaderState, after: ReaderState, now: datetime) -> ReaderState:
    """A stop begins when mail stops (a window opens), and ends when it resumes (it closes)."""
    stopped, stops = is_suppressed(before, now), is_suppressed(after, now)
    if stops and not stopped:
        return replace(after, away=(*after.away, (now, None))[-MAX_AWAY:])
    if stopped and not stops:
        return replace(after, away=_closed(after.away, now))
    return after


def _closed(
    away: tuple[tuple[datetime, datetime | None], ...], end: datetime
) -> tuple[tuple[datetime, datetime | None], ...]:
    return tuple((start, end if until is None else until) for start, until in away)


def _remember(state: ReaderState, message_id: str | None) -> ReaderState:
    if not message_id:
        return state
    return replace(state, handled=(*state.handled, message_id)[-MAX_HANDLED:])


def _forget_old(state: ReaderState, now: datetime) -> ReaderState:
    bounces = tuple(t for t in state.hard_bounces if now - t < BOUNCE_WINDOW)
    sent = tuple(c for c in state.confirmations if now - c[0] < CONFIRMATION_WINDOW)
    away = away_windows(state, now)
    away = tuple((s, e) for s, e in away if e is None or now - e < AWAY_KEPT)
    paused = state.paused_until
    if paused is not None and now - paused > _PAUSE_KEPT:
        paused = None
    return replace(state, hard_bounces=bounces, confirmations=sent, paused_until=paused, away=away)


def away_windows(
    state: ReaderState, now: datetime, zone: tzinfo = UTC
) -> tuple[tuple[datetime, datetime | None], ...]:
    """The reader's stops; one still open whose pause has run out ends where the pause did.

    A pause's end is ``paused_until``, an instant on the day it names: what arXiv
    announces later that day (its 20:00 US Eastern announcement) is for the next
    digest, the first the reader gets again.
    """
    if not state.away or state.away[-1][1] is not None or is_suppressed(state, now, zone):
        return state.away
    end = state.paused_until if state.paused_until is not None else now
    return _closed(state.away, end)


def _added(ids: tuple[str, ...], paper_id: str) -> tuple[str, ...]:
    return (*_removed(ids, paper_id), paper_id)[-MAX_PREFERENCES:]


def _removed(ids: tuple[str, ...], paper_id: str) -> tuple[str, ...]:
    return tuple(i for i in ids if i != paper_id)


# -- questions the planner and `digest status` ask -----------------------------


def _day(when: datetime, zone: tzinfo) -> date:
    return when.astimezone(zone).date()


def suppression(state: ReaderState, now: datetime, zone: tzinfo = UTC) -> str | None:
    """Why no mail goes to this reader now, as a phrase for ``digest status``; None: mail.

    A pause covers every day up to and including the one it names, in ``zone``
    (the installation's ``settings.timezone``).
    """
    if state.unsubscribed_at is not None:
        return f"unsubscribed by reply on {state.unsubscribed_at:%Y-%m-%d}"
    if state.suspended_at is not None:
        return (
            f"suspended on {state.suspended_at:%Y-%m-%d} after "
            f"{HARD_BOUNCES_TO_SUSPEND} hard bounces in {BOUNCE_WINDOW.days} days"
        )
    paused = state.paused_until
    if paused is not None and _day(now, zone) <= _day(paused, zone):
        return f"paused by reply through {_day(paused, zone):%Y-%m-%d}"
    return None


def is_suppressed(state: ReaderState, now: datetime, zone: tzinfo = UTC) -> bool:
    return suppression(state, now, zone) is not None


def effective_frequency(state: ReaderState, configured: Frequency) -> Frequency:
    return state.frequency or configured


def describe(state: ReaderState, now: datetime, zone: tzinfo = UTC) -> str:
    """Everything a reader chose, in one line for ``digest status``; "" when nothing."""
    parts = [p for p in (suppression(state, now, zone),) if p]
    if state.frequency:
        parts.append(f"{state.frequency} by reply")
    if state.likes or state.dislikes:
        parts.append(f"{len(state.likes)} liked, {len(state.dislikes)} disliked")
    if state.hard_bounces and state.suspended_at is None:
        parts.append(f"{len(state.hard_bounces)} hard bounce(s) in {BOUNCE_WINDOW.days} days")
    return "; ".join(parts)
