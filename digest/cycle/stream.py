"""The compose stream: each sending reader's plan made again, ranked, composed, one at a time.

Delivery pulls from ``compose_each`` as its connections are ready, so at most
a few messages wait in memory; many messages are composed by a pool of
processes (``digest.cycle.pool``). Ranking sits between plan and compose: the
corpus is built once per cycle (on first need), each reader's profile from
their likes, and ``compose`` gets the ranked matches.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace

from digest import compose, ranking, replies
from digest.cycle import pool as composer
from digest.cycle.dispatch import Outgoing
from digest.cycle.plan import Candidates, Plan, Snapshot, plan_subscriber
from digest.cycle.report import Status, SubscriberReport
from digest.cycle.state import Run
from digest.errors import DigestError
from digest.models import Ranked, Subscriber
from digest.replies import reader_links


def replan(
    run: Run, subs: Sequence[Subscriber], before: Snapshot, pool: Candidates
) -> Iterator[Plan]:
    """The plans of ``subs`` again, one at a time (the same pure function, the same answer)."""
    settings = run.config.settings
    for sub in subs:
        with run.timed("plan"):
            state, reader = before.state(sub.email), before.reader(sub.email)
            plan = plan_subscriber(sub, state, pool, settings, run.now, before.last_fetch, reader)
        yield plan


async def compose_each(run: Run, plans: Iterator[Plan], count: int) -> AsyncIterator[Outgoing]:
    """Each plan's message, composed when the senders are ready for it.

    Composing is CPU work: between messages the event loop serves the
    connections, SIGTERM and the watchdog; on a stop nothing more is composed.
    Many messages are composed by a pool of processes (``digest.cycle.pool``).
    """
    workers = 0 if run.hooks.on_composed is not None else composer.workers_for(count)
    if workers:
        stopped = run.collab.stop.is_set
        settings = run.config.settings
        ranked = ((plan, _rank(run, plan), _links(run, plan.subscriber.email)) for plan in plans)
        pooled = composer.pooled(ranked, settings, run.now, workers, stopped)
        try:
            while True:
                got = await anext(pooled, None)
                if got is None or stopped():
                    return
                plan, result = got
                if isinstance(result, str):
                    run.emit(SubscriberReport(plan.subscriber.email, "failed", detail=result))
                    continue
                digest, message, seconds = result
                # the workers' time: it overlaps sending, so the split sums to more than the wall
                run.timings["compose"] = run.timings.get("compose", 0.0) + seconds
                run.pooled = True
                item = Outgoing(plan, message, digest)
                if run.options.dry_run and run.options.outbox is None:
                    run.emit(item_report(item, "dry-run"))
                    continue
                yield item
        finally:
            await pooled.aclose()
        return
    for plan in plans:
        if run.collab.stop.is_set():
            return
        try:
            with run.timed("compose"):
                item = _compose(run, plan)
        except DigestError as exc:
            run.emit(SubscriberReport(plan.subscriber.email, "failed", detail=str(exc)))
            continue
        if run.options.dry_run and run.options.outbox is None:
            run.emit(item_report(item, "dry-run"))
            continue
        yield item
        del item
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
    operator, list_name = replies.operator(run.config.settings)
    # a partial, not a lambda: it crosses to the composing processes
    return functools.partial(
        reader_links, secret, operator, email, issued=run.now.date(), list_name=list_name
    )


def _compose(run: Run, plan: Plan) -> Outgoing:
    settings = run.config.settings
    links = _links(run, plan.subscriber.email)
    if run.hooks.on_composed is None:
        digest, message = composer.message(plan, _rank(run, plan), settings, run.now, links)
        return Outgoing(plan, message, digest)
    digest, rendered = compose.compose(
        plan.subscriber,
        _rank(run, plan),
        settings,
        cycle_id=plan.cycle_id,
        created=run.now,
        revisions=plan.revisions,
        empty_reason=plan.empty_reason,
        links=links,
    )
    run.hooks.on_composed(digest, rendered)
    return Outgoing(plan, compose.build_message(digest, rendered, settings), digest)


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
