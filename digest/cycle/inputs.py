"""What one cycle is given: the caller's options and hooks, its collaborators, the lot as one value.

``collaborators`` makes the real collaborators; tests pass loopback or fake ones.

The steps of ``digest.cycle.run`` and the compose stream read ``Cycle`` and
change none of it; what a step makes, it returns.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from digest import compose, replies
from digest.arxiv import ArxivClient, Progress
from digest.cycle.dispatch import Delivery, Outbox, SmtpDelivery
from digest.cycle.report import SubscriberReport
from digest.errors import DigestError
from digest.mail import Mailer
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


@contextlib.asynccontextmanager
async def collaborators(
    settings: Settings,
    options: Options,
    *,
    now: datetime,
    stop: Stop | None = None,
    hooks: Hooks = NO_HOOKS,
    secret: ReplySecret | None = None,
) -> AsyncIterator[Collaborators]:
    """The real ones: arXiv over HTTP, and SMTP or the outbox, sharing one ``stop``.

    ``secret`` signs the reply links; by default the credential or the file
    beside the database (``replies.load_secret``).
    """
    stop = stop if stop is not None else Stop()
    secret = secret or _reply_secret(settings, options)
    async with ArxivClient(settings.arxiv, stop=stop, fail_fast=options.interactive) as client:
        delivery: Delivery
        if options.outbox is not None:
            delivery = Outbox(options.outbox, now)
        else:
            mailer = Mailer(settings.smtp, connections=settings.smtp.connections, stop=stop)
            delivery = SmtpDelivery(mailer, hooks.send_progress)
        yield Collaborators(client, delivery, stop=stop, secret=secret)


def _reply_secret(settings: Settings, options: Options) -> ReplySecret:
    try:
        return replies.load_secret(settings, os.environ)
    except DigestError:
        if not options.dry_run:
            raise
        # a preview by someone who cannot read the state folder: its links
        # are for looking at, and are never mailed
        return ReplySecret(secrets.token_bytes(32))


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
