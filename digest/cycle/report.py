"""What a cycle did: per-subscriber reports as they are made, the cycle record, their wording.

``CycleRecord`` is what the store keeps of the last cycle (``status`` and the
quiet-cycle note read it); ``to_dict``/``from_dict`` are its only translation
to and from the store's JSON, so nobody reads the record by string keys.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from digest.errors import (
    EXIT_OK,
    EXIT_TEMPFAIL,
    DigestError,
    MachineError,
    Stopped,
    StoreError,
    machine_cause,
)

Status = Literal[
    "sent", "nothing", "waiting", "suppressed", "dry-run", "outbox", "deferred", "refused", "failed"
]
Result = Literal["ok", "partial", "failed"]

_NOT_DELIVERED = ("deferred", "refused", "failed")
# readers not delivered that the cycle record names (the counts hold them all): a
# server down for 10,000 readers must not make the record 10,000 lines long
NAMED = 20


def reader_failure(exc: BaseException) -> str | None:
    """Why one reader's digest could not be made, or None when ``exc`` is the whole cycle's.

    The cycle's are those after which nobody's mail can go on: a stop
    request, the database, a full or failing disk or a closed output,
    memory, an interrupt. Anything else met while one reader's digest is
    planned, ranked or rendered (an operator's template, their library, a
    bug met on their papers) fails that reader alone: their matches stay
    pending and the others are mailed.
    """
    if not isinstance(exc, Exception) or isinstance(
        exc, Stopped | StoreError | MachineError | MemoryError
    ):
        return None
    if machine_cause(exc) is not None:
        return None
    if isinstance(exc, DigestError):
        return str(exc)
    return f"a bug in digest: {type(exc).__name__}: {exc} (-v shows the traceback)"


def cycle_failure(exc: BaseException) -> str:
    """What the cycle record says of the failure that ended a cycle (never "ok")."""
    if isinstance(exc, DigestError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
        return "interrupted"
    return f"a bug in digest: {type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class Unmade:
    """Why one reader's message could not be made, and where (crosses from a worker process)."""

    reason: str
    trace: str = ""  # the traceback, logged at debug level (``-v``)


def unmade(exc: Exception) -> Unmade:
    """``exc`` as one reader's failure; raises it again when it is the whole cycle's.

    Call inside the ``except`` block that caught ``exc``.
    """
    reason = reader_failure(exc)
    if reason is None:
        raise exc
    return Unmade(reason, traceback.format_exc())


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


@dataclass(frozen=True, slots=True)
class SubscriberReport:
    email: str
    status: Status
    papers: int = 0
    titles: tuple[str, ...] = ()
    detail: str = ""
    revisions: int = 0
    empty: bool = False  # a "nothing new" note
    scores: tuple[float, ...] = ()  # beside ``titles``: the rank order's scores
    skipped: int = 0  # lower-ranked matches left out for the size limit

    def line(self) -> str:
        return f"{self.email}: {self.outcome()}"

    def outcome(self) -> str:
        """The line without the address: ``failed, 3 papers stay pending (why)``."""
        n = _plural(self.papers, "paper")
        if self.skipped:
            n += f" ({self.skipped} lower-ranked left out for size)"
        if self.revisions:
            n += f" and {_plural(self.revisions, 'update')}"
        if self.empty:
            n = 'a "nothing new" note'
        # a reader who failed before their papers were counted: no count to give
        pending = f", {n} stay pending" if self.papers or self.empty else ""
        text = {
            "sent": f"sent {n}",
            "nothing": "nothing new",
            "waiting": "not due today",
            "suppressed": "not mailed",
            "dry-run": f"would send {n}",
            "outbox": f"wrote {n} to the outbox",
            "deferred": f"deferred{pending}",
            "refused": f"refused by the server{pending}",
            "failed": f"failed{pending}",
        }[self.status]
        return text + (f" ({self.detail})" if self.detail else "")


class Reports:
    """Where the steps of a cycle put each subscriber's report, passed on to ``line`` at once.

    The CLI prints each line as it happens; the cycle's report lists them all.
    """

    def __init__(self, line: Callable[[SubscriberReport], None] | None = None) -> None:
        self._line = line
        self._made: list[SubscriberReport] = []

    def emit(self, report: SubscriberReport) -> None:
        self._made.append(report)
        if self._line:
            self._line(report)

    def all(self) -> tuple[SubscriberReport, ...]:
        return tuple(self._made)


@dataclass(frozen=True, slots=True)
class CycleRecord:
    """The stored summary of the last cycle."""

    started: datetime
    finished: datetime
    result: Result
    requests: int
    fetched: int
    new_papers: int
    counts: Mapping[str, int] = field(default_factory=dict)  # status -> subscribers
    error: str | None = None
    matched: int = 0
    previous_fetch: datetime | None = None
    # the readers not delivered (deferred, refused, failed), the first ``NAMED`` of
    # them: address -> what became of them and why (``SubscriberReport.outcome``)
    not_delivered: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "result": self.result,
            "requests": self.requests,
            "fetched": self.fetched,
            "new_papers": self.new_papers,
            "counts": dict(self.counts),
            "error": self.error,
            "matched": self.matched,
            "previous_fetch": self.previous_fetch.isoformat() if self.previous_fetch else None,
            "not_delivered": dict(self.not_delivered),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CycleRecord:
        previous = d.get("previous_fetch")
        return cls(
            started=datetime.fromisoformat(d["started"]),
            finished=datetime.fromisoformat(d["finished"]),
            result=d["result"],
            requests=int(d.get("requests", 0)),
            fetched=int(d.get("fetched", 0)),
            new_papers=int(d.get("new_papers", 0)),
            counts={str(k): int(v) for k, v in (d.get("counts") or {}).items()},
            error=d.get("error"),
            matched=int(d.get("matched", 0)),
            previous_fetch=datetime.fromisoformat(previous) if previous else None,
            not_delivered={str(k): str(v) for k, v in (d.get("not_delivered") or {}).items()},
        )

    def counts_text(self) -> str:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(self.counts.items()))
        return counts or "no subscriber reached"

    def unnamed(self) -> int:
        """How many readers not delivered the record does not name (past ``NAMED``)."""
        total = sum(n for status, n in self.counts.items() if status in _NOT_DELIVERED)
        return max(0, total - len(self.not_delivered))


@dataclass(frozen=True, slots=True)
class CycleReport:
    started: datetime
    finished: datetime
    requests: int
    fetched: int
    new_papers: int
    subscribers: tuple[SubscriberReport, ...] = ()
    error: str | None = None
    dry_run: bool = False
    previous_fetch: datetime | None = None
    # seconds per phase: fetch, match, plan, compose, send, record, housekeeping, each
    # moment charged to the innermost phase running (plan, compose and record run
    # inside send); a pool's composing time is added beside, overlapping send
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if self.error or self.not_delivered():
            return EXIT_TEMPFAIL
        return EXIT_OK

    @property
    def result(self) -> Result:
        if self.error:
            return "failed"
        return "ok" if self.exit_code == EXIT_OK else "partial"

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.subscribers:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def summary(self) -> str:
        papers = sum(r.papers for r in self.subscribers if r.status in ("sent", "outbox"))
        parts = [
            f"cycle {self.result}: {self.requests} arXiv requests, {self.fetched} papers "
            f"fetched ({self.new_papers} new)",
            self.record().counts_text(),
        ]
        if papers and self.dry_run:
            # --dry-run --outbox writes files but records nothing: not "delivered"
            parts.append(f"{papers} papers written to the outbox, nothing recorded (dry run)")
        elif papers:
            parts.append(f"{papers} papers delivered")
        if self.error:
            parts.append(self.error)
        return "; ".join(parts)

    def record(self) -> CycleRecord:
        return CycleRecord(
            started=self.started,
            finished=self.finished,
            result=self.result,
            requests=self.requests,
            fetched=self.fetched,
            new_papers=self.new_papers,
            counts=self.counts(),
            error=self.error,
            matched=sum(r.papers for r in self.subscribers),
            previous_fetch=self.previous_fetch,
            not_delivered={r.email: r.outcome() for r in self.not_delivered()[:NAMED]},
        )

    def not_delivered(self) -> tuple[SubscriberReport, ...]:
        """The readers whose message did not go out: deferred, refused or failed."""
        return tuple(r for r in self.subscribers if r.status in _NOT_DELIVERED)
