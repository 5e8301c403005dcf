"""One daily pass: fetch, plan, rank, compose, deliver, record, tidy; and when passes are due."""

from __future__ import annotations

from digest.cycle.clock import known_time, utc_text
from digest.cycle.inputs import Hooks, Options, collaborators
from digest.cycle.plan import plan_cycle
from digest.cycle.report import CycleRecord, CycleReport, SubscriberReport
from digest.cycle.run import run_cycle, snapshot
from digest.cycle.timing import announcements_between, clock_text, due_slot, local_text, next_run

__all__ = [
    "CycleRecord",
    "CycleReport",
    "Hooks",
    "Options",
    "SubscriberReport",
    "announcements_between",
    "clock_text",
    "collaborators",
    "due_slot",
    "known_time",
    "local_text",
    "next_run",
    "plan_cycle",
    "run_cycle",
    "snapshot",
    "utc_text",
]
