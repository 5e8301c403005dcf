"""Reader state: the pure rules for unsubscribes, pauses, preferences and bounces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from digest.models import ReaderState
from digest.replies.readers import (
    Asked,
    Bounced,
    Lifted,
    Verified,
    apply,
    describe,
    effective_frequency,
    is_suppressed,
    suppression,
)

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
FRESH = ReaderState()


def test_unsubscribe_suppresses_the_reader() -> None:
    state, effects = apply(FRESH, Verified("unsubscribe", message_id="<m1@x>"), NOW)
    assert effects.changed and is_suppressed(state, NOW + timedelta(days=365))


def test_unsubscribe_is_shown_as_a_dated_phrase() -> None:
    state, _ = apply(FRESH, Verified("unsubscribe"), NOW)
    assert suppression(state, NOW) == "unsubscribed by reply on 2026-12-03"


def test_a_replayed_message_changes_nothing() -> None:
    once, _ = apply(FRESH, Verified("pause", message_id="<m1@x>"), NOW)
    twice, effects = apply(once, Verified("pause", message_id="<m1@x>"), NOW + timedelta(days=3))
    assert twice == once and not effects.changed


def test_a_second_unsubscribe_keeps_the_first_date() -> None:
    once, _ = apply(FRESH, Verified("unsubscribe", message_id="<m1@x>"), NOW)
    later = NOW + timedelta(days=2)
    twice, _ = apply(once, Verified("unsubscribe", message_id="<m2@x>"), later)
    assert twice.unsubscribed_at == NOW


def test_pause_lasts_a_week_the_day_of_the_request_and_six_more_inclusive() -> None:
    state, _ = apply(FRESH, Verified("pause"), NOW)
    last_day = NOW.replace(hour=23, minute=59) + timedelta(days=6)
    assert is_suppressed(state, last_day)
    assert not is_suppressed(state, last_day + timedelta(minutes=1))


def test_resume_lifts_unsubscribe_pause_and_suspension() -> None:
    state = ReaderState(unsubscribed_at=NOW, suspended_at=NOW, paused_until=NOW + timedelta(days=3))
    resumed, _ = apply(state, Verified("resume"), NOW + timedelta(hours=1))
    assert not is_suppressed(resumed, NOW + timedelta(hours=1))


def test_weekly_overrides_the_configured_frequency() -> None:
    state, _ = apply(FRESH, Verified("weekly"), NOW)
    assert effective_frequency(state, "daily") == "weekly"
    assert effective_frequency(FRESH, "daily") == "daily"


def test_less_like_this_moves_a_liked_paper_to_the_dislikes() -> None:
    liked, _ = apply(FRESH, Verified("more", "2202.12139"), NOW)
    disliked, _ = apply(liked, Verified("less", "2202.12139"), NOW)
    assert (liked.likes, disliked.likes, disliked.dislikes) == (
        ("2202.12139",),
        (),
        ("2202.12139",),
    )


def test_three_hard_bounces_within_30_days_suspend() -> None:
    state = FRESH
    for day in (0, 10, 20):
        state, effects = apply(
            state, Bounced(True, "5.1.1", verified=True), NOW + timedelta(days=day)
        )
    assert state.suspended_at == NOW + timedelta(days=20)
    assert "suspended" in effects.log


def test_three_hard_bounces_spread_over_more_than_30_days_do_not_suspend() -> None:
    state = FRESH
    for day in (0, 20, 40):
        state, _ = apply(state, Bounced(True, "5.1.1", verified=True), NOW + timedelta(days=day))
    assert state.suspended_at is None and len(state.hard_bounces) == 2


def test_soft_bounces_only_log() -> None:
    state = FRESH
    for day in range(5):
        state, effects = apply(state, Bounced(False, "4.4.1"), NOW + timedelta(days=day))
    assert state == FRESH and not effects.changed


def test_the_same_bounce_delivered_three_times_counts_once() -> None:
    state = FRESH
    for _ in range(3):
        state, _ = apply(state, Bounced(True, "5.1.1", "<dsn1@mx>", verified=True), NOW)
    assert len(state.hard_bounces) == 1 and state.suspended_at is None


def test_a_plain_reply_asks_for_a_confirmation() -> None:
    state, effects = apply(FRESH, Asked("unsubscribe", "<p1@x>"), NOW)
    assert effects.confirm == "unsubscribe"
    assert not is_suppressed(state, NOW)  # a From address proves nothing


def test_at_most_three_confirmations_a_day_for_one_sender() -> None:
    state, sent = FRESH, 0
    for i in range(10):
        state, effects = apply(state, Asked("pause", f"<p{i}@x>"), NOW)
        sent += effects.confirm is not None
    assert sent == 3


def test_confirmations_are_allowed_again_a_day_later() -> None:
    state = FRESH
    for i in range(3):
        state, _ = apply(state, Asked("pause", f"<p{i}@x>"), NOW)
    _, effects = apply(state, Asked("pause", "<p9@x>"), NOW + timedelta(days=1))
    assert effects.confirm == "pause"


def test_a_plain_unsubscribe_from_an_unsubscribed_reader_is_not_answered() -> None:
    state = ReaderState(unsubscribed_at=NOW)
    _, effects = apply(state, Asked("unsubscribe"), NOW)
    assert effects.confirm is None


def test_the_operator_can_lift_every_suppression() -> None:
    state = ReaderState(unsubscribed_at=NOW, suspended_at=NOW, hard_bounces=(NOW,) * 3)
    lifted, effects = apply(state, Lifted(), NOW)
    assert not is_suppressed(lifted, NOW) and lifted.hard_bounces == () and effects.changed


def test_describe_lists_every_choice() -> None:
    state = ReaderState(paused_until=NOW + timedelta(days=7), frequency="weekly", likes=("a",))
    assert (
        describe(state, NOW)
        == "paused by reply through 2026-12-10; weekly by reply; 1 liked, 0 disliked"
    )


def test_describe_of_a_reader_who_chose_nothing_is_empty() -> None:
    assert describe(FRESH, NOW) == ""


def test_unverified_hard_bounces_are_logged_but_never_counted() -> None:
    state = FRESH
    for day in range(5):
        state, effects = apply(state, Bounced(True, "5.1.1"), NOW + timedelta(days=day))
    assert state == FRESH and "not counted" in effects.log


def test_other_senders_do_not_count_against_the_readers_own_three() -> None:
    state = FRESH
    for i in range(5):
        asked = Asked("pause", f"<f{i}@x>", sender=f"bulk{i}@spam.example", own=False)
        state, effects = apply(state, asked, NOW)
        assert effects.confirm == "pause"
    _, effects = apply(state, Asked("pause", "<own@x>"), NOW)
    assert effects.confirm == "pause"
