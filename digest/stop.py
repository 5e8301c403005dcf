"""A stop request that every wait and every request of a cycle gives way to, and its pulse.

The daemon sets it on SIGTERM/SIGINT; fetch and mailer sleep and make their
requests through it, so a stop is served within moments in every phase
(fetch, back-off, compose, send) instead of after arXiv's or SMTP's timeouts
(systemd kills a service that takes longer than ``TimeoutStopSec``).

Because every wait passes through it, it also tells the daemon's watchdog
whether the work moves: ``progress`` counts the waits that ended (a page
answered or failed, a message sent, a back-off over), and ``resting`` is
true during a deliberate wait of known length (a back-off, the daemon's
sleep between cycles). Work that neither moves nor rests is stuck: a peer
that never answers, or tasks waiting on each other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from digest.errors import Stopped

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class Stop:
    """Wraps an ``asyncio.Event``; a ``Stop()`` that nobody sets never interrupts."""

    def __init__(self, event: asyncio.Event | None = None, sleep: Sleep = asyncio.sleep) -> None:
        self.event = event if event is not None else asyncio.Event()
        self._sleep = sleep  # the clock's sleep (a fake one in tests)
        self.progress = 0  # waits that ended, and steps the work reported (``advance``)
        self._rests = 0

    def advance(self) -> None:
        """The work moved on (a wait ended, a step was taken)."""
        self.progress += 1

    @property
    def resting(self) -> bool:
        return self._rests > 0

    @contextlib.contextmanager
    def rest(self) -> Iterator[None]:
        """A deliberate wait of known length: not being stuck, though nothing moves."""
        self._rests += 1
        try:
            yield
        finally:
            self._rests -= 1
            self.advance()

    def is_set(self) -> bool:
        return self.event.is_set()

    def check(self, what: str) -> None:
        if self.event.is_set():
            raise Stopped(f"stopping: {what} was interrupted; nothing of it was recorded")

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or raise ``Stopped`` as soon as the stop is requested."""
        self.check("a wait")
        with self.rest():
            await self.run(self._sleep(seconds), "a wait")

    async def run(self, work: Awaitable[T], what: str, grace: float = 0.0) -> T:
        """Await ``work``; on a stop, give it ``grace`` seconds more, then cancel it."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self.event.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done() and grace > 0:
                await asyncio.wait({task}, timeout=grace)
            if task.done():
                return task.result()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise Stopped(f"stopping: {what} was interrupted; nothing of it was recorded")
        finally:
            stopped.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self.advance()
