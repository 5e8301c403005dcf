"""Handing composed digests over: to the SMTP server, or as .eml files to an outbox.

Both report each message's fate through one callback as soon as it is known,
so the cycle records an accepted delivery before the next one is attempted.
Neither touches the store: what a fate means for the database is the cycle's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from digest.errors import OutputError
from digest.mailer import Mailer, Outcome
from digest.models import Digest
from digest.plan import Plan
from digest.report import Status, SubscriberReport

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A composed message, the plan it carries out, and what it delivers."""

    plan: Plan
    message: EmailMessage
    digest: Digest

    @property
    def email(self) -> str:
        return self.plan.subscriber.email

    def report(self, status: Status, detail: str = "") -> SubscriberReport:
        return SubscriberReport(
            self.email,
            status,
            len(self.plan.matches),
            tuple(m.paper.title for m in self.plan.matches),
            detail,
            revisions=len(self.digest.revisions),
            empty=self.plan.reason == "empty-note",
        )


# (item, status, detail): "sent"/"outbox" mean delivered, anything else pending
OnFate = Callable[[Outgoing, Status, str], None]


class Delivery(Protocol):
    async def deliver(self, items: Sequence[Outgoing], on_fate: OnFate) -> None: ...


def _safe_name(email: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", email)


@dataclass(frozen=True, slots=True)
class Outbox:
    """Writes each message to ``folder/DATE-EMAIL.eml`` instead of sending it."""

    folder: Path
    today: datetime

    async def deliver(self, items: Sequence[Outgoing], on_fate: OnFate) -> None:
        if not items:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot create the outbox {self.folder}: {exc}", path=str(self.folder)
            ) from exc
        for item in items:
            path = self.folder / f"{self.today:%Y-%m-%d}-{_safe_name(item.email)}.eml"
            try:
                path.write_bytes(bytes(item.message))
            except OSError as exc:
                on_fate(item, "failed", f"cannot write {path}: {exc}")
                continue
            on_fate(item, "outbox", str(path))


@dataclass(frozen=True, slots=True)
class SmtpDelivery:
    """Sends through ``mailer``; ``progress`` sees (done, total) after each message."""

    mailer: Mailer
    progress: Progress | None = None

    async def deliver(self, items: Sequence[Outgoing], on_fate: OnFate) -> None:
        if not items:
            return
        by_email = {item.email: item for item in items}
        done = 0

        def on_outcome(outcome: Outcome) -> None:
            nonlocal done
            item = by_email[outcome.key]
            if outcome.status == "accepted":
                on_fate(item, "sent", "")
            else:
                log.warning("delivery to %s %s: %s", item.email, outcome.status, outcome.detail)
                on_fate(item, outcome.status, outcome.detail)
            done += 1
            if self.progress:
                self.progress(done, len(items))

        batch = [(item.email, item.email, item.message) for item in items]
        await self.mailer.send_all(batch, on_outcome)
