"""Where a cycle's time goes: each moment charged to the innermost phase, on a fake clock."""

from __future__ import annotations

from digest.cycle.phases import Phases


class FakeTimer:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_phase_inside_another_is_not_counted_twice() -> None:
    clock = FakeTimer()
    phases = Phases(clock)
    with phases.phase("send"):
        clock.now += 1.0
        with phases.phase("compose"):
            clock.now += 5.0
        clock.now += 2.0
        with phases.phase("record"):
            clock.now += 0.5
    assert phases.seconds() == {"send": 3.0, "compose": 5.0, "record": 0.5}


def test_a_phase_run_again_adds_up_and_time_outside_phases_is_nobody_s() -> None:
    clock = FakeTimer()
    phases = Phases(clock)
    clock.now += 10.0  # before any phase: not charged
    for _ in range(3):
        with phases.phase("plan"):
            clock.now += 1.0
        clock.now += 4.0  # between phases: not charged
    assert phases.seconds() == {"plan": 3.0}


def test_time_spent_elsewhere_is_added_beside_the_phase_running() -> None:
    clock = FakeTimer()
    phases = Phases(clock)
    with phases.phase("send"):
        clock.now += 2.0
        phases.add("compose", 7.0)  # the composing processes' seconds
    assert phases.seconds() == {"send": 2.0, "compose": 7.0}


def test_a_phase_that_raises_is_still_charged() -> None:
    clock = FakeTimer()
    phases = Phases(clock)
    try:
        with phases.phase("fetch"):
            clock.now += 1.5
            raise RuntimeError("arXiv went away")
    except RuntimeError:
        pass
    with phases.phase("record"):
        clock.now += 0.25
    assert phases.seconds() == {"fetch": 1.5, "record": 0.25}
