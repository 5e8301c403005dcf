"""Handing composed digests over: to the SMTP server, or as .eml files to an outbox.

Both take the messages as they are composed (an async iterable: composing
and sending overlap, and only a few messages are held at a time) and report
each message's fate through one callback as soon as it is known, so the
cycle records an accepted delivery before the next one is attempted.
Neither touches the store: what a fate means for the database is the cycle's.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from digest import atomic
from digest.cycle.plan import Plan
from digest.cycle.report import Status, SubscriberReport
from digest.errors import OutputError
from digest.mail import Item, Mailer, Outcome
from digest.models import Digest

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A composed message, the plan it carries out, and what it delivers."""

    plan: Plan
    message: bytes  # serialised once, as sent
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


@contextlib.contextmanager
def naming_if_unrecorded(item: Outgoing, status: Status) -> Iterator[None]:
    """Record ``item``'s delivery in the block; if that fails, log what will be sent again.

    The server (or the outbox) has the message and the database does not (a
    full disk, an I/O error), so the next cycle repeats exactly these papers
    to this reader: the log says so, with the count, before the error ends
    the cycle.
    """
    try:
        yield
    except Exception as exc:
        log.error(
            "%s: %s a digest of %d papers, but it could not be recorded (%s); "
            "the next cycle sends these papers again",
            item.email,
            "the SMTP server accepted" if status == "sent" else "the outbox holds",
            len(item.digest.delivers),
            exc,
        )
        raise


class Delivery(Protocol):
    async def deliver(
        self, items: AsyncIterable[Outgoing], on_fate: OnFate, total: int = 0
    ) -> None: ...


def _safe_name(email: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", email)


# names tried per reader and day (DATE-EMAIL.eml, DATE-EMAIL-2.eml, ...): a bound on the
# search for a free one, far above any real use
MAX_FILES_A_DAY = 1000


@dataclass(frozen=True, slots=True)
class Outbox:
    """Writes each message to ``folder/DATE-EMAIL.eml`` instead of sending it.

    A file is never overwritten: its papers are recorded as delivered, so a
    second run on the same day (new papers since) writes ``DATE-EMAIL-2.eml``.
    """

    folder: Path
    today: datetime

    async def deliver(
        self, items: AsyncIterable[Outgoing], on_fate: OnFate, total: int = 0
    ) -> None:
        made = False
        async for item in items:
            if not made:
                try:
                    self.folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise OutputError(
                        f"cannot create the outbox {self.folder}: {exc}", path=str(self.folder)
                    ) from exc
                made = True
            path, error = self._write(item)
            if error is not None:
                on_fate(item, "failed", f"cannot write {path}: {error}")
                continue
            on_fate(item, "outbox", str(path))

    def _write(self, item: Outgoing) -> tuple[Path, OSError | None]:
        """The new file holding ``item``; or where it could not be written, and why."""
        stem = f"{self.today:%Y-%m-%d}-{_safe_name(item.email)}"
        for n in range(1, MAX_FILES_A_DAY + 1):
            path = self.folder / (f"{stem}.eml" if n == 1 else f"{stem}-{n}.eml")
            try:
                # a reader's name, address and papers: owner-only, whatever the umask
                atomic.create_atomic(path, item.message, mode=0o600)
            except FileExistsError:
                continue
            except OSError as exc:
                return path, exc
            return path, None
        return self.folder, OSError(errno.EEXIST, f"{MAX_FILES_A_DAY} files for one reader today")


@dataclass(frozen=True, slots=True)
class SmtpDelivery:
    """Sends through ``mailer``; ``progress`` sees (done, total) after each message."""

    mailer: Mailer
    progress: Progress | None = None

    async def deliver(
        self, items: AsyncIterable[Outgoing], on_fate: OnFate, total: int = 0
    ) -> None:
        # the items in flight, by key: each is dropped as soon as its fate is known
        in_flight: dict[str, Outgoing] = {}
        done = 0

        async def batch() -> AsyncIterator[Item]:
            async for item in items:
                in_flight[item.email] = item
                yield item.email, item.email, item.message

        def on_outcome(outcome: Outcome) -> None:
            nonlocal done
            item = in_flight.pop(outcome.key)
            if outcome.status == "accepted":
                on_fate(item, "sent", "")
            else:
                log.warning("delivery to %s %s: %s", item.email, outcome.status, outcome.detail)
                on_fate(item, outcome.status, outcome.detail)
            done += 1
            if self.progress:
                self.progress(done, max(total, done + len(in_flight)))

        await self.mailer.send_all(batch(), on_outcome)
