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
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

from digest import compose, ranking, replies
from digest.cycle import pool as composer
from digest.cycle.dispatch import Outgoing
from digest.cycle.inputs import Cycle
from digest.cycle.phases import Phases
from digest.cycle.plan import NO_BEYOND, Beyond, Candidates, Plan, Snapshot, plan_subscriber
from digest.cycle.report import Reports, Status, SubscriberReport, Unmade, unmade
from digest.models import Digest, Match, Offer, Paper, Ranked, Subscriber
from digest.replies import reader_links

log = logging.getLogger(__name__)

# a plan with its digest and message, or with why they could not be made
Made = tuple[Plan, tuple[Digest, bytes] | Unmade]


@dataclass(frozen=True)
class Matched:
    """The match step's product: the candidate pool, and what ranking reads beside it.

    Not slotted, for the cached corpus: it is built on first need, so a cycle
    that mails nobody never builds it.
    """

    pool: Candidates
    papers: Mapping[str, Paper]  # every paper by id: the pool's, and liked papers looked up
    background: tuple[Paper, ...]  # the papers word weights are measured against
    embed: ranking.Embed | None = None  # the semantic model, with settings.semantic

    @cached_property
    def corpus(self) -> ranking.Corpus:
        """The cycle's recent papers as vectors (and embeddings): built once, on first need."""
        return ranking.build_corpus(self.background, self.embed)


def replan(
    cycle: Cycle,
    subs: Sequence[Subscriber],
    before: Snapshot,
    pool: Candidates,
    phases: Phases,
    beyond: Beyond = NO_BEYOND,
) -> Iterator[Plan]:
    """The plans of ``subs`` again, one at a time (the same pure function, the same answer).

    With ``beyond``, each plan also holds what its reader may be offered beyond their keywords.
    """
    for sub in subs:
        with phases.phase("plan"):
            state, reader = before.state(sub.email), before.reader(sub.email)
            plan = plan_subscriber(
                sub,
                state,
                pool,
                cycle.settings,
                cycle.now,
                before.last_fetch,
                reader,
                beyond=beyond,
            )
        yield plan


async def compose_each(
    cycle: Cycle,
    matched: Matched,
    plans: Iterator[Plan],
    count: int,
    phases: Phases,
    reports: Reports,
) -> AsyncIterator[Outgoing]:
    """Each plan's message, composed when the senders are ready for it.

    On a stop nothing more is composed or handed on. A message that could not
    be ranked or composed is that reader's failure, reported with its reason
    (their matches stay pending), and the next reader's comes; a dry run
    without an outbox reports what it would send instead of sending it.
    """
    stopped = cycle.collab.stop.is_set
    looks_only = cycle.options.dry_run and cycle.options.outbox is None
    made = _source(cycle, matched, plans, count, phases)
    try:
        async for plan, result in made:
            if stopped():
                return
            if isinstance(result, Unmade):
                email = plan.subscriber.email
                log.warning("%s: no digest this cycle: %s", email, result.reason)
                log.debug("%s: where it failed:\n%s", email, result.trace)
                failed = SubscriberReport(email, "failed", len(plan.matches), detail=result.reason)
                reports.emit(failed)
                continue
            digest, message = result
            item = Outgoing(plan, message, digest)
            if looks_only:
                reports.emit(item_report(item, "dry-run"))
            else:
                yield item
            # not held while the next message is composed
            del item, result, digest, message
    finally:
        await made.aclose()


def _source(
    cycle: Cycle, matched: Matched, plans: Iterator[Plan], count: int, phases: Phases
) -> AsyncGenerator[Made, None]:
    """The plans' messages, from a pool of processes when there are many, else from this one."""
    ranked = _ranked(cycle, matched, plans)
    # the preview hook is shown each rendering, which never leaves the process that made it
    workers = 0 if cycle.hooks.on_composed is not None else composer.workers_for(count)
    if workers:
        stopped = cycle.collab.stop.is_set
        pooled = composer.pooled(ranked, cycle.settings, cycle.now, workers, stopped)
        return _from_pool(pooled, phases)
    return _in_process(cycle, ranked, phases)


async def _from_pool(
    pooled: AsyncGenerator[tuple[Plan, composer.Composed], None], phases: Phases
) -> AsyncGenerator[Made, None]:
    try:
        async for plan, result in pooled:
            if isinstance(result, Unmade):
                yield plan, result
                continue
            digest, message, seconds = result
            # the workers' time: it overlaps sending, so the split sums to more than the wall
            phases.add("compose", seconds)
            yield plan, (digest, message)
    finally:
        await pooled.aclose()


async def _in_process(
    cycle: Cycle, ranked: Iterator[tuple[Plan, composer.Ranking]], phases: Phases
) -> AsyncGenerator[Made, None]:
    # composing is CPU work: between messages the event loop serves the
    # connections, SIGTERM and the watchdog; on a stop nothing more is composed
    while not cycle.collab.stop.is_set():
        with phases.phase("compose"):
            got = next(ranked, None)
            if got is None:
                return
            plan, ranking = got
            result = ranking if isinstance(ranking, Unmade) else _compose(cycle, plan, *ranking)
        yield plan, result
        del got, ranking, result  # not held while the next message is composed
        await asyncio.sleep(0)


def _compose(
    cycle: Cycle,
    plan: Plan,
    order: Sequence[Ranked],
    offers: Sequence[Offer],
    links: compose.LinkMaker | None,
) -> tuple[Digest, bytes] | Unmade:
    try:
        return composer.message(
            plan, order, cycle.settings, cycle.now, links, cycle.hooks.on_composed, beyond=offers
        )
    except Exception as exc:
        return unmade(exc)


def _ranked(
    cycle: Cycle, matched: Matched, plans: Iterator[Plan]
) -> Iterator[tuple[Plan, composer.Ranking]]:
    """Each plan with its ranked matches, offers and link maker, or why ranking failed.

    The candidates beyond the keywords (a few thousand papers) stay in this
    process: only the offers cross to a composing one.
    """
    configured = {s.email: s for s in cycle.config.subscribers}
    for plan in plans:
        ranking: composer.Ranking
        try:
            order, offers = _rank(matched, plan, configured.get(plan.subscriber.email))
            ranking = (order, offers, _links(cycle, plan.subscriber.email))
        except Exception as exc:
            ranking = unmade(exc)
        yield replace(plan, beyond=()), ranking


def _rank(
    matched: Matched, plan: Plan, configured: Subscriber | None
) -> tuple[tuple[Ranked, ...], tuple[Offer, ...]]:
    """``plan``'s matches scored for its reader, and what to offer them beyond the keywords.

    Matches score by keywords and every signal of the reader's taste. The
    papers beyond the keywords are scored among the matches, so that their
    closeness is measured against the day's (``compose.pick_beyond`` keeps
    those close to a liked paper); the matches' order is their own ranking's,
    unchanged by them.
    """
    # likes: from subscribers.yaml and from "more like this" replies (those
    # plan.as_chosen added to the configured ones); dislikes: "less like this"
    sub = plan.subscriber
    given = configured.likes if configured is not None else ()
    asked = {x.arxiv_id for x in sub.likes} - {x.arxiv_id for x in given}
    profile = ranking.build_profile(
        matched.corpus,
        sub.likes,
        dislikes=sub.dislikes,
        papers=matched.papers,
        asked={i for i in asked if i},
        followed=[m.paper for m in plan.matches if m.authors],
        categories=sub.categories,
    )
    ranked = ranking.rank(plan.matches, matched.corpus, profile)
    if not sub.likes or not plan.beyond:
        return ranked, ()
    candidates = (Match(paper=p, keywords=()) for p in plan.beyond)
    scored = ranking.rank((*plan.matches, *candidates), matched.corpus, profile)
    return ranked, compose.pick_beyond(scored, plan.liked_categories)


def _links(cycle: Cycle, email: str) -> compose.LinkMaker | None:
    """The reader's tokened reply links, when the cycle has the reply secret."""
    secret = cycle.collab.secret
    if secret is None:
        return None
    operator, list_name = replies.operator(cycle.settings)
    # a partial, not a lambda: it crosses to the composing processes
    return functools.partial(
        reader_links, secret, operator, email, issued=cycle.now.date(), list_name=list_name
    )


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
