"""A fake clock for the daemon in-process: sleeping moves the clock, nothing waits for real."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta


class FakeTime:
    """The daemon's clock and sleep: sleeping moves the clock, and nothing waits for real."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.on_sleep: Callable[[], None] = lambda: None

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.on_sleep()
        await asyncio.sleep(0)
