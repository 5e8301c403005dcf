"""What one cycle is given: the caller's options and hooks, its collaborators, the lot as one value.

The steps of ``digest.cycle.run`` and the compose stream read ``Cycle`` and
change none of it; what a step makes, it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from digest import compose
from digest.arxiv import ArxivClient, Progress
from digest.cycle.dispatch import Delivery
from digest.cycle.report import SubscriberReport
from digest.models import Config, Digest, Settings
from digest.replies import ReplySecret
from digest.stop import Stop
from digest.store import Store

WallClock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Options:
    dry_run: bool = False
    outbox: Path | None = None
    only: str | None = None  # --subscriber EMAIL
    interactive: bool = False  # a person waits: give up at once if arXiv is unreachable


@dataclass(frozen=True, slots=True)
class Hooks:
    """Where the cycle tells its caller how it is going (all optional)."""

    fetch_progress: Progress | None = None
    send_progress: Callable[[int, int], None] | None = None
    report_line: Callable[[SubscriberReport], None] | None = None
    on_composed: Callable[[Digest, compose.Rendered], None] | None = None


# the defaults of ``run_cycle`` and ``collaborators`` (frozen: one shared value is safe)
DEFAULTS = Options()
NO_HOOKS = Hooks()


@dataclass(frozen=True, slots=True)
class Collaborators:
    """Everything the cycle talks to, ready-made (tests pass loopback or fake ones)."""

    arxiv: ArxivClient
    delivery: Delivery
    clock: WallClock = field(default=lambda: datetime.now(UTC))
    stop: Stop = field(default_factory=Stop)
    # signs the reply links in each digest; None: digests carry none (tests of other parts)
    secret: ReplySecret | None = None


@dataclass(frozen=True, slots=True)
class Cycle:
    """One cycle's givens, so its steps take few arguments."""

    config: Config
    store: Store
    collab: Collaborators
    now: datetime
    options: Options
    hooks: Hooks

    @property
    def settings(self) -> Settings:
        return self.config.settings

    @property
    def records(self) -> bool:
        """Whether the cycle writes what it did to the store (not in a dry run)."""
        return not self.options.dry_run
