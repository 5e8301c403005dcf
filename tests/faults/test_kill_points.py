"""SIGKILL at every moment of a cycle, then a normal one: nothing lost, at most one message twice.

The moments are chosen from the outside: the loopback servers kill the
``digest once`` process when arXiv receives request k (or while it makes
the client wait), when the SMTP server sees the connection, EHLO, MAIL,
RCPT, DATA or the end of the data of message n, right after it answered
"250" to message n, and at QUIT; a few more are timed from the start. No
hook inside digest is needed.

The bound: a kill between the server's "250" and digest's record may make
the next cycle send that one message again (the server has it, the store
does not). Everywhere else, not even that.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.conftest import run_side_by_side
from tests.faults.world import World

READERS = 4  # messages per cycle


@dataclass(frozen=True)
class KillPoint:
    name: str
    arm: Callable[[World, Callable[[], None]], None]  # installs the trigger; calls kill()
    may_repeat: bool = False  # the window between the server's "250" and the record
    # a timed kill after the last message may come after a fast cycle has ended:
    # then the run is a clean one, and the invariants are checked all the same
    may_finish: bool = False


def at_request(k: int, fault: str | None = None, after: float = 0.0) -> Callable[..., None]:
    def arm(w: World, kill: Callable[[], None]) -> None:
        if fault:
            w.script.faults[k] = fault

        def on_request(number: int) -> None:
            if number == k:
                threading.Timer(after, kill).start() if after else kill()

        w.script.on_request = on_request

    return arm


def at_event(event: str, n: int, *, nth: int = 1, after: float = 0.0) -> Callable[..., None]:
    """Kill at the ``nth`` time the SMTP server sees ``event`` for message ``n``."""

    def arm(w: World, kill: Callable[[], None]) -> None:
        seen = [0]
        fired = [False]

        def on_event(name: str, number: int) -> None:
            if name == event and number == n:
                seen[0] += 1
                if seen[0] == nth:
                    fired[0] = True
                    threading.Timer(after, kill).start() if after else kill()

        def rule(name: str, number: int, arg: str) -> str | None:
            # a client that died before the end of its data leaves the server nothing to keep
            if name == "EOD" and fired[0] and event == "EOD" and number == n:
                return "451 4.3.0 Client vanished, message not accepted"
            return None

        w.smtp_script.on_event = on_event
        w.smtp_script.rule = rule

    return arm


def after_start(seconds: float) -> Callable[..., None]:
    def arm(w: World, kill: Callable[[], None]) -> None:
        w.on_start = lambda: threading.Timer(seconds, kill).start()

    return arm


def at_reconnect(w: World, kill: Callable[[], None]) -> None:
    """Message 3 meets a 421 at DATA; the kill comes as digest connects again."""
    closed = [False]

    def rule(name: str, number: int, arg: str) -> str | None:
        if name == "DATA" and number == 3 and not closed[0]:
            closed[0] = True
            return "421 4.3.2 Shutting down"
        return None

    def on_event(name: str, number: int) -> None:
        if name == "CONNECT" and closed[0]:
            kill()

    w.smtp_script.rule = rule
    w.smtp_script.on_event = on_event


POINTS: list[KillPoint] = [
    KillPoint("0.05 s after start (imports)", after_start(0.05)),
    KillPoint("0.3 s after start (config, store)", after_start(0.3)),
    KillPoint("arXiv request 1 arrives", at_request(1)),
    KillPoint("arXiv request 2 arrives", at_request(2)),
    KillPoint("arXiv request 3 (the last page) arrives", at_request(3)),
    KillPoint("arXiv stalls mid-body", at_request(2, "stall", after=0.5)),
    KillPoint("during the back-off after a 503", at_request(1, "503", after=0.5)),
    KillPoint("at the retry after a 503", at_request(2, "503-retry-after")),
    KillPoint("SMTP connect", at_event("CONNECT", 0)),
    KillPoint("EHLO", at_event("EHLO", 0)),
    *(
        KillPoint(f"{event} of message {n}", at_event(event, n), may_repeat=event == "ACCEPTED")
        for n in range(1, READERS + 1)
        for event in ("MAIL", "RCPT", "DATA", "EOD", "ACCEPTED")
    ),
    KillPoint("QUIT", at_event("QUIT", READERS)),
    KillPoint(
        "0.02 s after QUIT (cycle record, pruning)",
        at_event("QUIT", READERS, after=0.02),
        may_finish=True,
    ),
    KillPoint("reconnecting after a 421", at_reconnect),
]


def scenario(point: KillPoint) -> Callable[[Path], World]:
    def run(tmp: Path) -> World:
        with World(tmp, settings={"archive": str(tmp / "papers.md")}) as w:
            point.arm(w, lambda: w.kill(signal.SIGKILL) and None)
            w.script.hold_seconds = 3.0
            killed = w.once()
            finished = point.may_finish and killed.code == 0
            assert finished or killed.code == -signal.SIGKILL, f"not killed: {killed}"
            if w.db.exists():
                json.loads(w.db.read_text(encoding="utf-8"))  # readable right after the kill
            w.script.on_request = None
            w.smtp_script.on_event = None
            w.smtp_script.rule = None
            w.on_start = None
            w.script.faults.clear()
            recovered = w.once()
            assert recovered.code == 0, str(recovered)
        return w.settle()

    return run


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Future[World]]:
    return run_side_by_side({p.name: scenario(p) for p in POINTS}, tmp_path_factory, workers=6)


def test_there_are_at_least_30_distinct_kill_points() -> None:
    assert len({p.name for p in POINTS}) == len(POINTS) >= 30


@pytest.mark.parametrize("point", [p for p in POINTS if not p.may_repeat], ids=lambda p: p.name)
def test_sigkill_then_a_normal_cycle_delivers_everything_exactly_once(outcomes, point) -> None:
    w = outcomes[point.name].result(timeout=300)
    assert w.check(max_repeated=0).repeated_messages == 0


@pytest.mark.parametrize("point", [p for p in POINTS if p.may_repeat], ids=lambda p: p.name)
def test_sigkill_right_after_the_servers_250_repeats_at_most_that_message(outcomes, point) -> None:
    w = outcomes[point.name].result(timeout=300)
    verdict = w.check(max_repeated=1)
    n = int(point.name.rsplit(" ", 1)[1])
    in_flight = next(a for a in w.smtp_script.accepted if a.number == n)
    for number in verdict.repeated:  # the repeat, if any, is the in-flight message's reader's
        repeat = next(a for a in w.smtp_script.accepted if a.number == number)
        assert number > n and repeat.rcpt_tos == in_flight.rcpt_tos
    print(f"{point.name}: the in-flight message was repeated {verdict.repeated_messages} time(s)")
