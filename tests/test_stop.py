"""digest.stop: every wait gives way to a stop at once, and the pulse tells moving from stuck."""

from __future__ import annotations

import asyncio

import pytest

from digest.errors import Stopped
from digest.stop import Stop


def test_a_stop_nobody_sets_lets_work_finish_and_counts_it() -> None:
    async def main() -> tuple[int, int]:
        stop = Stop()
        return await stop.run(asyncio.sleep(0, result=7), "a request"), stop.progress

    assert asyncio.run(main()) == (7, 1)


def test_a_stop_cancels_a_wait_at_once_instead_of_after_its_length() -> None:
    async def main() -> float:
        stop = Stop()
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, stop.event.set)
        started = loop.time()
        with pytest.raises(Stopped, match="a wait was interrupted"):
            await stop.sleep(60)
        return loop.time() - started

    assert asyncio.run(main()) < 5


def test_a_request_in_flight_gets_its_grace_then_is_cancelled() -> None:
    async def main() -> list[str]:
        stop = Stop()
        seen: list[str] = []

        async def send() -> str:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise
            return "sent"

        stop.event.set()
        with pytest.raises(Stopped):
            await stop.run(send(), "a message", grace=0.05)
        return seen

    assert asyncio.run(main()) == ["cancelled"]


def test_check_raises_only_once_a_stop_is_asked() -> None:
    stop = Stop(asyncio.Event())
    stop.check("the fetch")
    stop.event.set()
    with pytest.raises(Stopped, match="the fetch was interrupted"):
        stop.check("the fetch")


def test_a_deliberate_wait_rests_and_counts_as_progress_when_it_ends() -> None:
    async def main() -> tuple[bool, bool, int]:
        slept: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            slept.append(seconds)

        stop = Stop(sleep=fake_sleep)
        with stop.rest():
            during = stop.resting
        await stop.sleep(30)
        assert slept == [30]
        return during, stop.resting, stop.progress

    during, after, progress = asyncio.run(main())
    assert during and not after
    assert progress >= 2
