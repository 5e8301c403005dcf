"""Composing in a process pool gives the in-process messages, in plan order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from digest.arxiv.feed import parse_page
from digest.cycle import pool as composer
from digest.cycle.plan import Plan
from digest.matching.rules import match_all
from digest.models import Ranked, Settings, Subscriber
from tests.support.paths import FIXTURES

FIXTURE = FIXTURES / "api_new_2026-04_all-testing_start-0_max-100.xml"
NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
SETTINGS = Settings()
PAPERS = parse_page(FIXTURE.read_bytes()).papers


def plan(i: int, keywords: tuple[str, ...]) -> Plan:
    sub = Subscriber(f"u{i}@example.org", keywords)
    return Plan(sub, "send", match_all(PAPERS, sub), cycle_id=f"20261130.{i:010d}")


def ranked(p: Plan) -> tuple[Ranked, ...]:
    # a worker composes in the order it is given (the cycle ranks before the pool)
    return tuple(Ranked(m, float(-i)) for i, m in enumerate(p.matches))


async def collect(plans: list[Plan], stop_after: int | None = None) -> list[tuple[Plan, object]]:
    out: list[tuple[Plan, object]] = []
    limit = len(plans) if stop_after is None else stop_after
    pairs = [(p, (ranked(p), (), None)) for p in plans]
    gen = composer.pooled(pairs, SETTINGS, NOW, 2, lambda: len(out) >= limit)
    async for got in gen:
        out.append(got)
    return out


def test_the_pool_returns_the_in_process_messages_in_plan_order() -> None:
    plans = [plan(i, kws) for i, kws in enumerate([("fuzzing",), ("test case",), ("coverage",)])]
    got = asyncio.run(collect(plans))
    assert [p for p, _ in got] == plans
    for p, result in got:
        assert isinstance(result, tuple)
        assert result[:2] == composer.message(p, ranked(p), SETTINGS, NOW)


def test_a_stop_ends_the_pool_without_composing_the_rest() -> None:
    plans = [plan(i, ("fuzzing",)) for i in range(12)]
    got = asyncio.run(collect(plans, stop_after=1))
    # what was already queued (two per worker) still arrives; nothing after it
    assert 1 <= len(got) <= 2 * composer.AHEAD + 1
