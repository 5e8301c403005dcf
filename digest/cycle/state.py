"""What one cycle carries: the caller's options and hooks, its collaborators, its moving parts.

Split from ``digest.cycle.run`` so the steps in ``digest.cycle.stream`` and
``digest.cycle.likes`` can take the run without importing the orchestrator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from digest import compose, ranking
from digest.arxiv import ArxivClient, Progress
from digest.cycle.dispatch import Delivery
from digest.cycle.phases import Phases
from digest.cycle.report import SubscriberReport
from digest.models import Config, Digest, Paper
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


@dataclass
class Run:
    """One cycle's moving parts, so the steps below take few arguments."""

    config: Config
    store: Store
    collab: Collaborators
    now: datetime
    options: Options
    hooks: Hooks
    reports: list[SubscriberReport] = field(default_factory=list)
    # what ranking reads: the cache, the fetch and the liked papers looked up
    papers: dict[str, Paper] = field(default_factory=dict)
    background: tuple[Paper, ...] = ()  # the corpus's papers
    # seconds per phase (fetch, match, plan, compose, send, record, housekeeping)
    phases: Phases = field(default_factory=Phases)

    @cached_property
    def corpus(self) -> ranking.Corpus:
        """The cycle's recent papers as tf-idf vectors: built once, on first need."""
        return ranking.build_corpus(self.background)

    @property
    def records(self) -> bool:
        return not self.options.dry_run

    def emit(self, report: SubscriberReport) -> None:
        self.reports.append(report)
        if self.hooks.report_line:
            self.hooks.report_line(report)
