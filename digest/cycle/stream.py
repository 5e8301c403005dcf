"""The compose stream: each sending reader's plan made again, ranked, composed, one at a time.

Delivery pulls from ``compose_each`` as its connections are ready, so at most
a few messages wait in memory. The messages come from one source of two
kinds: a pool of processes when there are many (``digest.cycle.pool``), or
this process. Ranking sits between plan and compose: the corpus is built once
per cycle (on first need), each reader's profile from their likes, and
``compose`` gets the ranked matches.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from dataclasses import replace

from digest import compose, ranking
from digest.cycle import pool as composer
from digest.cycle.dispatch import Outgoing
from digest.cycle.phases import Phases
from digest.cycle.plan import Candidates, Plan, Snapshot, plan_subscriber
from digest.cycle.report import Status, SubscriberReport
from digest.cycle.state import Run
from digest.errors import DigestError
from digest.models import Digest, Ranked, Subscriber
from digest.replies import mailroom, reader_links

# what composing one message takes: the plan, its matches ranked, the reader's link maker
Ranking = tuple[Plan, Sequence[Ranked], compose.LinkMaker | None]
# a plan with its digest and message, or with why they could not be composed
Made = tuple[Plan, tuple[Digest, bytes] | str]


def replan(
    run: Run, subs: Sequence[Subscriber], before: Snapshot, pool: Candidates
) -> Iterator[Plan]:
    """The plans of ``subs`` again, one at a time (the same pure function, the same answer)."""
    for sub in subs:
        with run.phases.phase("plan"):
            state, reader = before.state(sub.email), before.reader(sub.email)
            plan = plan_subscriber(
                sub, state, pool, run.config.settings, run.now, before.last_fetch, reader
            )
        yield plan


async def compose_each(run: Run, plans: Iterator[Plan], count: int) -> AsyncIterator[Outgoing]:
    """Each plan's message, composed when the senders are ready for it.

    On a stop nothing more is composed or handed on. A message that could not
    be composed is reported failed (its matches stay pending); a dry run
    without an outbox reports what it would send instead of sending it.
    """
    stopped = run.collab.stop.is_set
    looks_only = run.options.dry_run and run.options.outbox is None
    made = _source(run, plans, count)
    try:
        async for plan, result in made:
            if stopped():
                return
            if isinstance(result, str):
                run.emit(SubscriberReport(plan.subscriber.email, "failed", detail=result))
                continue
            digest, message = result
            item = Outgoing(plan, message, digest)
            if looks_only:
                run.emit(item_report(item, "dry-run"))
            else:
                yield item
            # not held while the next message is composed
            del item, result, digest, message
    finally:
        await made.aclose()


def _source(run: Run, plans: Iterator[Plan], count: int) -> AsyncGenerator[Made, None]:
    """The plans' messages, from a pool of processes when there are many, else from this one."""
    ranked = ((p, _rank(run, p), _links(run, p.subscriber.email)) for p in plans)
    # the preview hook is shown each rendering, which never leaves the process that made it
    workers = 0 if run.hooks.on_composed is not None else composer.workers_for(count)
    if workers:
        stopped = run.collab.stop.is_set
        pooled = composer.pooled(ranked, run.config.settings, run.now, workers, stopped)
        return _from_pool(pooled, run.phases)
    return _in_process(run, ranked)


async def _from_pool(
    pooled: AsyncGenerator[tuple[Plan, composer.Composed], None], phases: Phases
) -> AsyncGenerator[Made, None]:
    try:
        async for plan, result in pooled:
            if isinstance(result, str):
                yield plan, result
                continue
            digest, message, seconds = result
            # the workers' time: it overlaps sending, so the split sums to more than the wall
            phases.add("compose", seconds)
            yield plan, (digest, message)
    finally:
        await pooled.aclose()


async def _in_process(run: Run, ranked: Iterator[Ranking]) -> AsyncGenerator[Made, None]:
    # composing is CPU work: between messages the event loop serves the
    # connections, SIGTERM and the watchdog; on a stop nothing more is composed
    while not run.collab.stop.is_set():
        with run.phases.phase("compose"):
            got = next(ranked, None)
            if got is None:
                return
            plan, order, links = got
            result: tuple[Digest, bytes] | str
            try:
                result = composer.message(
                    plan, order, run.config.settings, run.now, links, run.hooks.on_composed
                )
            except DigestError as exc:
                result = str(exc)
        yield plan, result
        del got, order, result  # not held while the next message is composed
        await asyncio.sleep(0)


def _rank(run: Run, plan: Plan) -> tuple[Ranked, ...]:
    """``plan``'s matches scored for its reader: keywords, and closeness to their likes."""
    # likes: from subscribers.yaml and from "more like this" replies; dislikes:
    # "less like this" (plan.as_chosen merged them into the plan's subscriber)
    likes, dislikes = plan.subscriber.likes, plan.subscriber.dislikes
    profile = (
        ranking.build_profile(run.corpus, likes, dislikes=dislikes, papers=run.papers)
        if likes or dislikes
        else None
    )
    return ranking.rank(plan.matches, run.corpus, profile or ranking.NO_PROFILE)


def _links(run: Run, email: str) -> compose.LinkMaker | None:
    """The reader's tokened reply links, when the cycle has the reply secret."""
    secret = run.collab.secret
    if secret is None:
        return None
    operator, list_name = mailroom.operator(run.config.settings)
    # a partial, not a lambda: it crosses to the composing processes
    return functools.partial(reader_links, secret, operator, email, list_name=list_name)


def item_report(item: Outgoing, status: Status, detail: str = "") -> SubscriberReport:
    """The item's report; once the mail went out, what it showed, in its order, with scores."""
    report = item.report(status, detail)
    if status not in ("sent", "outbox", "dry-run"):
        return report  # nothing recorded: every match stays pending
    shown = item.digest.shown
    return replace(
        report,
        papers=len(shown),
        titles=tuple(r.match.paper.title for r in shown),
        scores=tuple(r.score for r in shown),
        skipped=item.digest.left_out,
    )
