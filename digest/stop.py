"""A stop request that every wait and every request of a cycle gives way to.

The daemon sets it on SIGTERM/SIGINT; fetch and mailer sleep and make their
requests through it, so a stop is served within moments in every phase
(fetch, back-off, compose, send) instead of after arXiv's or SMTP's timeouts
(systemd kills a service that takes longer than ``TimeoutStopSec``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from digest.errors import Stopped

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class Stop:
    """Wraps an ``asyncio.Event``; a ``Stop()`` that nobody sets never interrupts."""

    def __init__(self, event: asyncio.Event | None = None, sleep: Sleep = asyncio.sleep) -> None:
        self.event = event if event is not None else asyncio.Event()
        self._sleep = sleep  # the clock's sleep (a fake one in tests)

    def is_set(self) -> bool:
        return self.event.is_set()

    def check(self, what: str) -> None:
        if self.event.is_set():
            raise Stopped(f"stopping: {what} was interrupted; nothing of it was recorded")

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or raise ``Stopped`` as soon as the stop is requested."""
        self.check("a wait")
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
