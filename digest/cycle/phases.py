"""Where a cycle's time goes: seconds per phase, each moment charged to one phase.

Delivery pulls its messages from the compose stream and records each
accepted one while it sends, so the phases nest: "plan", "compose" and
"record" run inside "send". Charging each moment to the innermost phase
running measures every phase as it runs, "send" included, with nothing
derived by subtraction. The nesting holds although several SMTP connections
run at once: no inner phase awaits, so no other task runs inside one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator


class Phases:
    """The seconds of each phase of one cycle; ``timer`` is a monotonic clock."""

    def __init__(self, timer: Callable[[], float] = time.perf_counter) -> None:
        self._timer = timer
        self._seconds: dict[str, float] = {}
        self._running: list[str] = []  # the innermost phase last
        self._since = timer()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Charge the time inside to ``name``, except what phases inside it take."""
        self._charge()
        self._running.append(name)
        self._seconds.setdefault(name, 0.0)
        try:
            yield
        finally:
            self._charge()
            self._running.pop()

    def add(self, name: str, seconds: float) -> None:
        """Seconds spent elsewhere (the composing processes), beside this process's phases."""
        self._seconds[name] = self._seconds.get(name, 0.0) + seconds

    def seconds(self) -> dict[str, float]:
        """A copy: the phases measured so far, in the order they first ran."""
        return dict(self._seconds)

    def _charge(self) -> None:
        now = self._timer()
        if self._running:
            self._seconds[self._running[-1]] += now - self._since
        self._since = now
