"""One pass: fetch -> plan -> compose -> dispatch -> record, then housekeeping.

This module only orchestrates; each step's rules live in the module named
after it. The order of side effects is the delivery contract (design.md):
papers are cached first; a subscriber's papers are recorded as delivered only
after the SMTP server accepted that subscriber's message, and the database is
flushed right then, so a crash afterwards cannot make anyone receive a paper
twice. One failing subscriber never blocks the others. ``finally`` only saves
the cycle record; pruning and the Daily Papers page come after delivery and
cannot change the cycle's outcome.

"Record" means one thing here: writing to the store what a side effect made
true (papers cached, a digest delivered, a slot served, the cycle's summary).
A digest delivers only the papers its mail shows; the matches it left out
for size are recorded as skipped with it, never as delivered.

Its parts: the run's state and collaborators in ``digest.cycle.state``, the
liked-paper lookup for ranking in ``digest.cycle.likes``, and the ranked compose
stream that delivery pulls from in ``digest.cycle.stream``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from digest import compose, replies
from digest.arxiv import ArxivClient, build_queries, unfit_terms, window
from digest.cycle import housekeeping, likes
from digest.cycle.dispatch import Delivery, Outbox, Outgoing, SmtpDelivery
from digest.cycle.plan import (
    Candidates,
    Plan,
    Snapshot,
    candidates,
    count_new,
    fetch_terms,
    plan_subscriber,
    revision_watch,
    select_subscribers,
)
from digest.cycle.report import CycleReport, Status, SubscriberReport
from digest.cycle.state import DEFAULTS, NO_HOOKS, Run
from digest.cycle.state import Collaborators as Collaborators
from digest.cycle.state import Hooks as Hooks
from digest.cycle.state import Options as Options
from digest.cycle.state import WallClock as WallClock
from digest.cycle.stream import compose_each, item_report, replan
from digest.errors import DigestError
from digest.mail import Mailer
from digest.models import Config, Paper, Settings, Subscriber, newest_versions
from digest.replies import ReaderState, ReplySecret, from_dict
from digest.stop import Stop
from digest.store import Store

log = logging.getLogger(__name__)


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


def snapshot(store: Store, subs: Sequence[Subscriber]) -> Snapshot:
    """What the planner may know of the store, read once.

    A damaged reply state stops the cycle (StoreCorruptError, naming the
    reader): mailing someone who may have unsubscribed is the worse mistake.
    """
    readers: dict[str, ReaderState] = {}
    for s in subs:
        doc = store.reader_state(s.email)
        if doc:
            readers[s.email] = from_dict(doc, who=s.email)
    return Snapshot(
        states={s.email: store.subscriber(s.email) for s in subs},
        cached=store.papers(),
        last_fetch=store.last_fetch(),
        readers=readers,
    )


async def run_cycle(
    config: Config,
    store: Store,
    collab: Collaborators,
    *,
    now: datetime,
    options: Options = DEFAULTS,
    hooks: Hooks = NO_HOOKS,
) -> CycleReport:
    """Run one cycle; never raises for a single subscriber's failure."""
    subs = select_subscribers(config, options.only)
    run = Run(config, store, collab, now, options, hooks)
    with run.timed("record"):
        before = snapshot(store, subs)
    fetched: tuple[Paper, ...] = ()
    error: str | None = None
    try:
        fetched = await _fetch_and_cache(run, subs, before)
        pool = await _match(run, subs, before, fetched)
        await _deliver(run, subs, before, pool)
        # the compose caches serve the readers of one cycle; a daemon gives the memory back
        compose.forget_cycle()
        if run.records:
            with run.timed("housekeeping"):
                housekeeping.tidy(config, store, now, pool.index)
    except DigestError as exc:
        error = str(exc)
        raise
    finally:
        report = _finish(run, before, fetched, error)
    return report


async def _fetch_and_cache(
    run: Run, subs: Sequence[Subscriber], before: Snapshot
) -> tuple[Paper, ...]:
    """Fetch the window (and revisions); the papers are cached before anything else."""
    with run.timed("fetch"):
        fetched = await _fetch(run, subs, before)
    if run.records:
        with run.timed("record"):
            run.store.add_papers(fetched, run.now)
            run.store.set_last_fetch(run.now)
            run.store.flush()
    return fetched


async def _match(
    run: Run, subs: Sequence[Subscriber], before: Snapshot, fetched: Sequence[Paper]
) -> Candidates:
    """The candidate pool with every keyword matched once, and ranking's inputs set."""
    liked = await likes.look_up_likes(run, subs, before, fetched)
    if run.records and liked:
        run.store.add_papers(liked, run.now)  # cached like any paper; pruning keeps them
        run.store.flush()
    with run.timed("match"):
        pool = candidates(before.cached, fetched)
        _index_terms(pool, subs)
    likes.gather(run, pool, liked, before)
    return pool


async def _deliver(
    run: Run, subs: Sequence[Subscriber], before: Snapshot, pool: Candidates
) -> None:
    """Plan everybody, then compose and send to those who get a message."""
    sending = await _plan(run, subs, before, pool)
    if not sending:
        return
    plans = replan(run, sending, before, pool)
    # planning, composing and recording happen inside delivery: "send" is the rest
    before_send = run.timer() - run.timings.get("record", 0.0) - run.timings["plan"]
    await run.collab.delivery.deliver(
        compose_each(run, plans, len(sending)),
        lambda item, s, d: _on_fate(run, item, s, d),
        total=len(sending),
    )
    inside = run.timings.get("record", 0.0) + run.timings["plan"]
    if not run.pooled:
        inside += run.timings.get("compose", 0.0)
    run.timings["send"] = run.timer() - before_send - inside


def _finish(run: Run, before: Snapshot, fetched: Sequence[Paper], error: str | None) -> CycleReport:
    """The cycle's report, saved as its record (always, even after a failure)."""
    report = CycleReport(
        started=run.now,
        finished=run.collab.clock(),
        requests=run.collab.arxiv.stats.requests,
        fetched=len(fetched),
        new_papers=count_new(before, fetched),
        subscribers=tuple(run.reports),
        error=error,
        dry_run=run.options.dry_run,
        previous_fetch=before.last_fetch,
        timings=dict(run.timings),
    )
    if run.records:
        with run.timed("record"):
            run.store.set_last_cycle(report.record().to_dict())
            run.store.flush()
    log.debug("cycle timings: %s", ", ".join(f"{k} {v:.3f} s" for k, v in run.timings.items()))
    return report


def _index_terms(pool: Candidates, subs: Sequence[Subscriber]) -> None:
    """Match every distinct keyword and author once, up front (the index remembers)."""
    for sub in subs:
        for phrase in (*sub.keywords, *sub.exclude):
            pool.index.phrase(phrase)
        for name in sub.authors:
            pool.index.author(name)


async def _fetch(run: Run, subs: Sequence[Subscriber], before: Snapshot) -> tuple[Paper, ...]:
    settings = run.config.settings
    terms = fetch_terms(subs, settings.arxiv.categories)
    start, end = window(run.now, before.last_fetch, settings.lookback_days)
    queries = build_queries(
        terms, start, end, api_url=settings.arxiv.api_url, page_size=settings.arxiv.page_size
    )
    for unfit in unfit_terms(subs, settings.arxiv):
        log.warning("%s: not fetched; the others are", unfit)
    client = run.collab.arxiv
    papers = await client.fetch_all(queries, progress=run.hooks.fetch_progress)
    watch = revision_watch(subs, before, run.now)
    if watch:
        # the window is on v1 submission dates, so a new version of an older
        # paper never shows up in it: ask for those papers by id
        revised = await client.fetch_ids(sorted(watch))
        papers = tuple(newest_versions(papers, revised).values())
    log.info(
        "fetched %d papers with %d queries in %d requests",
        len(papers),
        len(queries),
        client.stats.requests,
    )
    return papers


async def _plan(
    run: Run, subs: Sequence[Subscriber], before: Snapshot, pool: Candidates
) -> list[Subscriber]:
    """Everybody's plan; the watermarks are saved before anything is sent.

    Returns the subscribers who get a message, not their plans: 10,000
    plans of a few hundred matches each would hold memory in proportion to
    the readers; ``_replan`` makes each again (pure, a millisecond) when its
    message is composed.
    """
    settings = run.config.settings
    sending: list[Subscriber] = []
    for sub in subs:
        # let the event loop run between subscribers so SIGTERM and the
        # watchdog are served, and stop once told to
        await asyncio.sleep(0)
        if run.collab.stop.is_set():
            break
        try:
            with run.timed("plan"):
                state = before.state(sub.email)
                reader = before.reader(sub.email)
                plan = plan_subscriber(
                    sub, state, pool, settings, run.now, before.last_fetch, reader
                )
            if run.records:
                with run.timed("record"):
                    run.store.ensure_watermarks(
                        sub.email, plan.term_keys, plan.watermark_start or run.now, now=run.now
                    )
            if plan.sends:
                sending.append(sub)
            else:
                _record_unsent(run, plan)
        except DigestError as exc:
            run.emit(SubscriberReport(sub.email, "failed", detail=str(exc)))
    if run.records:
        with run.timed("record"):
            run.store.flush()
    return sending


def _record_unsent(run: Run, plan: Plan) -> None:
    sub = plan.subscriber
    if plan.reason == "suppressed":
        run.emit(SubscriberReport(sub.email, "suppressed", detail=plan.suppressed or ""))
        return
    if plan.reason == "waiting":
        run.emit(SubscriberReport(sub.email, "waiting", detail=f"weekly on {sub.weekday}"))
        return
    run.emit(SubscriberReport(sub.email, "nothing"))
    if run.records and plan.served_slot is not None:
        # a weekly subscriber with nothing new is served silently, not retried daily
        run.store.mark_served(sub.email, served_slot=plan.served_slot)


def _on_fate(run: Run, item: Outgoing, status: Status, detail: str) -> None:
    if status in ("sent", "outbox") and run.records:
        # side effect first, bookkeeping second: record only what was accepted
        with run.timed("record"):
            _record_delivery(run.store, item, run.now)
    elif (
        status == "refused"
        and run.records
        # our relay refused the reader for good: a verified hard bounce
        and replies.record_refusal(run.store, item.email, detail, run.now)
    ):
        run.store.flush()
    run.emit(item_report(item, status, detail))


def _record_delivery(store: Store, item: Outgoing, now: datetime) -> None:
    delivers = item.digest.delivers
    plan = item.plan
    if delivers:
        store.record_delivery(item.email, delivers, now, served_slot=plan.served_slot)
    # left out for size: the mail said so; not delivered, and not offered again
    store.record_skipped(item.email, item.digest.skips, now)
    store.mark_served(
        item.email,
        served_slot=None if delivers else plan.served_slot,
        empty_day=f"{now:%Y-%m-%d}" if plan.reason == "empty-note" else None,
    )
    store.flush()
