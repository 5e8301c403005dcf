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

Ranking sits between plan and compose: the corpus is built once per cycle
(on first need) from the fetch window's papers, each reader's profile from
their likes (liked papers not cached are looked up in one ``id_list``
request at most, and cached), and ``compose`` gets the ranked matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from digest import compose, composer, housekeeping, library, mailroom, rank
from digest.commands import reader_links
from digest.dispatch import Delivery, Outbox, Outgoing, SmtpDelivery
from digest.errors import DigestError, FetchError
from digest.fetch import ArxivClient, Progress
from digest.mailer import Mailer
from digest.models import Config, Digest, Paper, Ranked, Settings, Subscriber, newest_versions
from digest.plan import (
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
from digest.query import build_queries, window
from digest.readers import ReaderState, from_dict
from digest.report import CycleReport, Status, SubscriberReport
from digest.stop import Stop
from digest.store import Store
from digest.tokens import ReplySecret

log = logging.getLogger(__name__)

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
    hooks: Hooks = Hooks(),
    secret: ReplySecret | None = None,
) -> AsyncIterator[Collaborators]:
    """The real ones: arXiv over HTTP, and SMTP or the outbox, sharing one ``stop``.

    ``secret`` signs the reply links; by default the credential or the file
    beside the database (``mailroom.load_secret``).
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
        return mailroom.load_secret(settings, os.environ)
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


@dataclass
class _Run:
    """One cycle's moving parts, so the steps below take few arguments."""

    config: Config
    store: Store
    collab: Collaborators
    now: datetime
    options: Options
    hooks: Hooks
    reports: list[SubscriberReport] = field(default_factory=list)
    # what ranking reads: the cache, the fetch and the liked papers looked up
    papers: dict[str, Paper] = field(default_factory=dict)
    background: tuple[Paper, ...] = ()  # the corpus's papers
    # seconds per phase (fetch, match, plan, compose, send, record, housekeeping)
    timings: dict[str, float] = field(default_factory=dict)
    timer: Callable[[], float] = time.perf_counter
    pooled: bool = False  # composed by other processes, beside sending

    @cached_property
    def corpus(self) -> rank.Corpus:
        """The cycle's recent papers as tf-idf vectors: built once, on first need."""
        return rank.build_corpus(self.background)

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = self.timer()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + self.timer() - started

    @property
    def records(self) -> bool:
        return not self.options.dry_run

    def emit(self, report: SubscriberReport) -> None:
        self.reports.append(report)
        if self.hooks.report_line:
            self.hooks.report_line(report)


async def run_cycle(
    config: Config,
    store: Store,
    collab: Collaborators,
    *,
    now: datetime,
    options: Options = Options(),
    hooks: Hooks = Hooks(),
) -> CycleReport:
    """Run one cycle; never raises for a single subscriber's failure."""
    subs = select_subscribers(config, options.only)
    run = _Run(config, store, collab, now, options, hooks)
    with run.timed("record"):
        before = snapshot(store, subs)
    fetched: tuple[Paper, ...] = ()
    error: str | None = None
    try:
        with run.timed("fetch"):
            fetched = await _fetch(run, subs, before)
        if run.records:
            with run.timed("record"):
                store.add_papers(fetched, now)
                store.set_last_fetch(now)
                store.flush()
        liked = await _look_up_likes(run, subs, before, fetched)
        if run.records and liked:
            store.add_papers(liked, now)  # cached like any paper; pruning keeps them
            store.flush()
        with run.timed("match"):
            pool = candidates(before.cached, fetched)
            _index_terms(pool, subs)
        run.papers = {**pool.by_id, **{p.id: p for p in liked if p.id not in pool.by_id}}
        # the background that word weights are measured against: the papers of
        # the fetch window (the cache keeps half a year; ranking needs today's)
        since, _ = window(now, before.last_fetch, config.settings.lookback_days)
        run.background = tuple(p for p in pool.ordered if p.published >= since) or pool.ordered
        sending = await _plan(run, subs, before, pool)
        if sending:
            plans = _replan(run, sending, before, pool)
            # planning, composing and recording happen inside delivery: "send" is the rest
            before_send = run.timer() - run.timings.get("record", 0.0) - run.timings["plan"]
            await collab.delivery.deliver(
                _compose_each(run, plans, len(sending)),
                lambda item, s, d: _on_fate(run, item, s, d),
                total=len(sending),
            )
            inside = run.timings.get("record", 0.0) + run.timings["plan"]
            if not run.pooled:
                inside += run.timings.get("compose", 0.0)
            run.timings["send"] = run.timer() - before_send - inside
        if run.records:
            with run.timed("housekeeping"):
                housekeeping.tidy(config, store, now, pool.index)
    except DigestError as exc:
        error = str(exc)
        raise
    finally:
        report = CycleReport(
            started=now,
            finished=collab.clock(),
            requests=collab.arxiv.stats.requests,
            fetched=len(fetched),
            new_papers=count_new(before, fetched),
            subscribers=tuple(run.reports),
            error=error,
            dry_run=options.dry_run,
            previous_fetch=before.last_fetch,
            timings=dict(run.timings),
        )
        if run.records:
            with run.timed("record"):
                store.set_last_cycle(report.record().to_dict())
                store.flush()
        log.debug("cycle timings: %s", ", ".join(f"{k} {v:.3f} s" for k, v in run.timings.items()))
    return report


def _index_terms(pool: Candidates, subs: Sequence[Subscriber]) -> None:
    """Match every distinct keyword and author once, up front (the index remembers)."""
    for sub in subs:
        for phrase in (*sub.keywords, *sub.exclude):
            pool.index.phrase(phrase)
        for name in sub.authors:
            pool.index.author(name)


async def _fetch(run: _Run, subs: Sequence[Subscriber], before: Snapshot) -> tuple[Paper, ...]:
    settings = run.config.settings
    terms = fetch_terms(subs, settings.arxiv.categories)
    start, end = window(run.now, before.last_fetch, settings.lookback_days)
    queries = build_queries(
        terms, start, end, api_url=settings.arxiv.api_url, page_size=settings.arxiv.page_size
    )
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


async def _look_up_likes(
    run: _Run, subs: Sequence[Subscriber], before: Snapshot, fetched: Sequence[Paper]
) -> tuple[Paper, ...]:
    """Liked papers known only by id and not cached: one ``id_list`` request at most."""
    settings = run.config.settings
    known = {p.id for p in before.cached} | {p.id for p in fetched}
    ids = library.ids_to_look_up(
        subs, known, api_url=settings.arxiv.api_url, page_size=settings.arxiv.page_size
    )
    if not ids:
        return ()
    try:
        papers = await run.collab.arxiv.fetch_ids(ids)
    except FetchError as exc:
        # the mail does not wait for it: ranking uses the likes it has, and
        # the lookup is tried again next cycle
        log.warning("could not look up %d liked papers (tried next cycle): %s", len(ids), exc)
        return ()
    log.info("looked up %d of %d liked papers", len(papers), len(ids))
    return papers


async def _plan(
    run: _Run, subs: Sequence[Subscriber], before: Snapshot, pool: Candidates
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


def _replan(
    run: _Run, subs: Sequence[Subscriber], before: Snapshot, pool: Candidates
) -> Iterator[Plan]:
    """The plans of ``subs`` again, one at a time (the same pure function, the same answer)."""
    settings = run.config.settings
    for sub in subs:
        with run.timed("plan"):
            state, reader = before.state(sub.email), before.reader(sub.email)
            plan = plan_subscriber(sub, state, pool, settings, run.now, before.last_fetch, reader)
        yield plan


async def _compose_each(run: _Run, plans: Iterator[Plan], count: int) -> AsyncIterator[Outgoing]:
    """Each plan's message, composed when the senders are ready for it.

    Composing is CPU work: between messages the event loop serves the
    connections, SIGTERM and the watchdog; on a stop nothing more is composed.
    Many messages are composed by a pool of processes (``digest.composer``).
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
                    run.emit(_report(item, "dry-run"))
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
            run.emit(_report(item, "dry-run"))
            continue
        yield item
        del item
        await asyncio.sleep(0)


def _record_unsent(run: _Run, plan: Plan) -> None:
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


def _rank(run: _Run, plan: Plan) -> tuple[Ranked, ...]:
    """``plan``'s matches scored for its reader: keywords, and closeness to their likes."""
    # likes: from subscribers.yaml and from "more like this" replies; dislikes:
    # "less like this" (plan.as_chosen merged them into the plan's subscriber)
    likes, dislikes = plan.subscriber.likes, plan.subscriber.dislikes
    profile = (
        rank.build_profile(run.corpus, likes, dislikes=dislikes, papers=run.papers)
        if likes or dislikes
        else None
    )
    return rank.rank(plan.matches, run.corpus, profile or rank.NO_PROFILE)


def _links(run: _Run, email: str) -> compose.LinkMaker | None:
    """The reader's tokened reply links, when the cycle has the reply secret."""
    secret = run.collab.secret
    if secret is None:
        return None
    operator, list_name = mailroom.operator(run.config.settings)
    # a partial, not a lambda: it crosses to the composing processes
    return functools.partial(reader_links, secret, operator, email, list_name=list_name)


def _compose(run: _Run, plan: Plan) -> Outgoing:
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


def _on_fate(run: _Run, item: Outgoing, status: Status, detail: str) -> None:
    if status in ("sent", "outbox") and run.records:
        # side effect first, bookkeeping second: record only what was accepted
        with run.timed("record"):
            _record_delivery(run.store, item, run.now)
    elif (
        status == "refused"
        and run.records
        # our relay refused the reader for good: a verified hard bounce
        and mailroom.record_refusal(run.store, item.email, detail, run.now)
    ):
        run.store.flush()
    run.emit(_report(item, status, detail))


def _report(item: Outgoing, status: Status, detail: str = "") -> SubscriberReport:
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
