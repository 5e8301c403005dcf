"""One pass: fetch -> plan -> compose -> dispatch -> record, then housekeeping.

This module only orchestrates; each step's rules live in the module named
after it. The order of side effects is the delivery contract (docs/delivery.md):
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

Each step takes what it needs and returns what it made; what the cycle was
given is one frozen ``Cycle`` (``digest.cycle.inputs``), the reports go to one
sink and the seconds per phase to one recorder (``digest.cycle.phases``). The
ranked compose stream that delivery pulls from is ``digest.cycle.stream``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from digest import compose, ranking, replies
from digest.arxiv import build_queries, category_query, last_announced, unfit_terms, window
from digest.config import library
from digest.cycle import clock, housekeeping
from digest.cycle.dispatch import Outgoing, naming_if_unrecorded
from digest.cycle.inputs import DEFAULTS, NO_HOOKS, Collaborators, Cycle, Hooks, Options
from digest.cycle.phases import Phases
from digest.cycle.plan import (
    NO_BEYOND,
    Beyond,
    Candidates,
    Plan,
    Snapshot,
    as_chosen,
    candidates,
    count_new,
    fetch_terms,
    liked_categories,
    plan_subscriber,
    revision_watch,
    select_subscribers,
)
from digest.cycle.report import (
    CycleRecord,
    CycleReport,
    Reports,
    Status,
    SubscriberReport,
    cycle_failure,
    reader_failure,
)
from digest.cycle.stream import Matched, compose_each, item_report, replan
from digest.errors import ClockError, FetchError, StoreCorruptError
from digest.models import Config, Paper, ReaderState, Subscriber, newest_versions
from digest.store import Store

log = logging.getLogger(__name__)

# The pages the papers beyond the readers' keywords may cost a cycle: one query
# for every category they like, newest first; on a busy day the oldest
# papers of the latest announcement are the ones not seen.
BEYOND_PAGES = 3


def snapshot(store: Store, subs: Sequence[Subscriber]) -> tuple[Snapshot, dict[str, str]]:
    """What the planner may know of the store, read once; and whose reply state is damaged.

    A reader whose stored choices do not decode (StoreCorruptError) may have
    unsubscribed: mailing them is the worse mistake, so they are left out of
    the snapshot and the plan, named with why; nobody else's mail waits.
    """
    readers: dict[str, ReaderState] = {}
    damaged: dict[str, str] = {}
    for s in subs:
        try:
            readers[s.email] = store.reader_state(s.email)
        except StoreCorruptError as exc:
            damaged[s.email] = str(exc)
    before = Snapshot(
        states={s.email: store.subscriber(s.email) for s in subs if s.email not in damaged},
        cached=store.papers(),
        last_fetch=store.last_fetch(),
        readers=readers,
    )
    return before, damaged


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
    cycle = Cycle(config, store, collab, now, options, hooks)
    subs = select_subscribers(config, options.only)
    phases = Phases()
    reports = Reports(hooks.report_line)
    with phases.phase("record"):
        stored, damaged = snapshot(store, subs)
        last_cycle = _last_cycle_start(store)
        future = clock.future_records(
            now,
            last_cycle=last_cycle,
            last_fetch=stored.last_fetch,
            last_slot=store.last_slot(),
            states=stored.states.values(),
        )
    for email, why in damaged.items():
        log.warning("%s: not mailed: %s", email, why)
        reports.emit(SubscriberReport(email, "failed", detail=why))
    subs = tuple(s for s in subs if s.email not in damaged)
    # a last fetch in the future of the clock is unknown: the window starts afresh
    before = replace(stored, last_fetch=clock.known_time(stored.last_fetch, now))
    fetched: tuple[Paper, ...] = ()
    error: str | None = None
    refused = False
    try:
        # a missing extra is known before arXiv is asked (exit 78; the cycle is
        # recorded as failed, naming it, and nothing else)
        embed = ranking.load_semantic() if config.settings.semantic else None
        with phases.phase("fetch"):
            fetched = await _fetch(cycle, subs, before)
        _check_clock(cycle, last_cycle, future)
        await _cache(cycle, fetched, phases)
        matched = await _match(cycle, subs, before, fetched, phases, embed)
        sending = await _plan(cycle, subs, before, matched.pool, phases, reports)
        beyond = await _fetch_beyond(cycle, sending, before, matched, phases)
        await _deliver(cycle, sending, before, matched, beyond, phases, reports)
        # the compose caches serve the readers of one cycle; a daemon gives the memory back
        compose.forget_cycle()
        if cycle.records:
            with phases.phase("housekeeping"):
                housekeeping.tidy(config, store, now, matched.pool.index)
    except BaseException as exc:
        # whatever ended it, a bug included: the record never calls this cycle "ok"
        error = cycle_failure(exc)
        refused = isinstance(exc, ClockError)
        raise
    finally:
        report = _finish(cycle, before, fetched, error, phases, reports, record=not refused)
    return report


def _check_clock(cycle: Cycle, last_cycle: datetime | None, future: Sequence[str]) -> None:
    """Refuse a wrong clock, and name what an earlier one recorded in the future.

    Called before anything is recorded, since every record carries the clock's
    time (``digest.cycle.clock``); raises ``ClockError``.
    """
    stats = cycle.collab.arxiv.stats
    arxiv = clock.arxiv_time(stats.server_date, stats.server_date_seen)
    clock.check(cycle.now, arxiv, last_cycle)
    if future:
        against = "which agrees with arXiv's" if arxiv else "(arXiv gave no time to check)"
        log.warning(
            "these times lie in the future of this machine's clock, %s: they were recorded "
            "under a clock that ran ahead, and are read as unknown (a fresh fetch window, "
            "starting points set afresh, a future slot owes nothing): %s",
            against,
            "; ".join(future),
        )


def _last_cycle_start(store: Store) -> datetime | None:
    stored = store.last_cycle()
    return CycleRecord.from_dict(stored).started if stored else None


async def _cache(cycle: Cycle, fetched: Sequence[Paper], phases: Phases) -> None:
    """The fetched papers are cached before anything else is recorded."""
    if cycle.records:
        with phases.phase("record"):
            cycle.store.add_papers(fetched, cycle.now)
            cycle.store.set_last_fetch(cycle.now)
            cycle.store.flush()


async def _match(
    cycle: Cycle,
    subs: Sequence[Subscriber],
    before: Snapshot,
    fetched: Sequence[Paper],
    phases: Phases,
    embed: ranking.Embed | None = None,
) -> Matched:
    """The candidate pool with every keyword matched once, and what ranking reads beside it.

    A reader's profile is built from their likes (``digest.ranking.relevance``);
    a liked paper neither cached nor fetched is looked up here, and cached
    like any paper (pruning keeps them).
    """
    liked = await _look_up_likes(cycle, subs, before, fetched)
    if cycle.records and liked:
        with phases.phase("record"):
            cycle.store.add_papers(liked, cycle.now)
            cycle.store.flush()
    with phases.phase("match"):
        pool = candidates(before.cached, fetched)
        _index_terms(pool, subs)
        papers = {**pool.by_id, **{p.id: p for p in liked if p.id not in pool.by_id}}
        # the background that word weights are measured against: the papers of
        # the fetch window (the cache keeps half a year; ranking needs today's)
        since, _ = window(cycle.now, before.last_fetch, cycle.settings.lookback_days)
        background = tuple(p for p in pool.ordered if p.published >= since) or pool.ordered
    return Matched(pool, papers, background, embed)


async def _look_up_likes(
    cycle: Cycle, subs: Sequence[Subscriber], before: Snapshot, fetched: Sequence[Paper]
) -> tuple[Paper, ...]:
    """Liked papers known only by id and not cached: one ``id_list`` request at most."""
    settings = cycle.settings
    known = {p.id for p in before.cached} | {p.id for p in fetched}
    ids = library.ids_to_look_up(
        subs, known, api_url=settings.arxiv.api_url, page_size=settings.arxiv.page_size
    )
    if not ids:
        return ()
    try:
        papers = await cycle.collab.arxiv.fetch_ids(ids)
    except FetchError as exc:
        # the mail does not wait for it: ranking uses the likes it has, and
        # the lookup is tried again next cycle
        log.warning("could not look up %d liked papers (tried next cycle): %s", len(ids), exc)
        return ()
    log.info("looked up %d of %d liked papers", len(papers), len(ids))
    return papers


async def _plan(
    cycle: Cycle,
    subs: Sequence[Subscriber],
    before: Snapshot,
    pool: Candidates,
    phases: Phases,
    reports: Reports,
) -> tuple[Subscriber, ...]:
    """Everybody's plan; the watermarks are saved before anything is sent.

    Returns the subscribers who get a message, not their plans: 10,000
    plans of a few hundred matches each would hold memory in proportion to
    the readers; ``replan`` makes each again (pure, a millisecond) when its
    message is composed.
    """
    settings, now = cycle.settings, cycle.now
    sending: list[Subscriber] = []
    for sub in subs:
        # let the event loop run between subscribers so SIGTERM and the
        # watchdog are served, and stop once told to
        await asyncio.sleep(0)
        if cycle.collab.stop.is_set():
            break
        try:
            with phases.phase("plan"):
                state = before.state(sub.email)
                reader = before.reader(sub.email)
                plan = plan_subscriber(sub, state, pool, settings, now, before.last_fetch, reader)
            if cycle.records:
                with phases.phase("record"):
                    _record_plan(cycle.store, plan, now)
            if plan.sends and sub.library_problem is not None:
                # ranked without the papers they like, the digest would not be theirs:
                # it waits, pending, until the file can be read
                why = f"library {sub.library_problem}"
                log.warning("%s: no digest this cycle: %s", sub.email, why)
                reports.emit(SubscriberReport(sub.email, "failed", len(plan.matches), detail=why))
            elif plan.sends:
                sending.append(sub)
            else:
                _record_unsent(cycle, plan, reports)
        except Exception as exc:
            reason = reader_failure(exc)
            if reason is None:
                raise
            log.warning("%s: not planned this cycle: %s", sub.email, reason)
            log.debug("%s: where it failed", sub.email, exc_info=True)
            reports.emit(SubscriberReport(sub.email, "failed", detail=reason))
    if cycle.records:
        with phases.phase("record"):
            cycle.store.flush()
    return tuple(sending)


async def _fetch_beyond(
    cycle: Cycle,
    sending: Sequence[Subscriber],
    before: Snapshot,
    matched: Matched,
    phases: Phases,
) -> Beyond:
    """The papers of the categories the readers who get a digest like, to offer beyond keywords.

    One query for the union of their liked categories over arXiv's latest
    announcement, ``BEYOND_PAGES`` pages at most. Not cached: they are no
    one's matches. The mail does not wait for them: on a failure nothing is
    offered this cycle.
    """
    settings = cycle.settings
    wanted = dict.fromkeys(
        category
        for sub in sending
        for category in liked_categories(
            as_chosen(sub, before.reader(sub.email), settings).likes, matched.papers
        )
    )
    if not wanted:
        return NO_BEYOND
    opened, _ = last_announced(cycle.now)
    query = category_query(
        tuple(wanted),
        opened,
        cycle.now,
        within=settings.arxiv.categories,
        api_url=settings.arxiv.api_url,
        page_size=settings.arxiv.page_size,
    )
    try:
        with phases.phase("fetch"):
            papers = await cycle.collab.arxiv.fetch_newest(query, BEYOND_PAGES)
    except FetchError as exc:
        log.warning("could not fetch papers beyond the keywords (none offered): %s", exc)
        return NO_BEYOND
    log.info("fetched %d papers of %d liked categories", len(papers), len(wanted))
    return Beyond.of(papers, matched.papers)


async def _deliver(
    cycle: Cycle,
    sending: Sequence[Subscriber],
    before: Snapshot,
    matched: Matched,
    beyond: Beyond,
    phases: Phases,
    reports: Reports,
) -> None:
    """Compose and send to those who get a message, recording each accepted one."""
    if not sending:
        return
    plans = replan(cycle, sending, before, matched.pool, phases, beyond)
    with phases.phase("send"):
        await cycle.collab.delivery.deliver(
            compose_each(cycle, matched, plans, len(sending), phases, reports),
            functools.partial(_on_fate, cycle, phases, reports),
            total=len(sending),
        )


def _record_plan(store: Store, plan: Plan, now: datetime) -> None:
    """What the store must hold of a reader before anything is sent to them."""
    email = plan.subscriber.email
    store.ensure_watermarks(
        email,
        plan.term_keys,
        plan.watermark_start or now,
        now=now,
        reset=plan.reset_keys,
        reset_first_seen=plan.reset_first_seen,
    )
    if plan.cadence_changed:
        store.set_cadence(email, plan.cadence, plan.cadence_since)


def _finish(
    cycle: Cycle,
    before: Snapshot,
    fetched: Sequence[Paper],
    error: str | None,
    phases: Phases,
    reports: Reports,
    *,
    record: bool = True,
) -> CycleReport:
    """The cycle's report, saved as its record even after a failure.

    Not after a refusal by the clock check: its times would be wrong too.
    """
    report = CycleReport(
        started=cycle.now,
        finished=cycle.collab.clock(),
        requests=cycle.collab.arxiv.stats.requests,
        fetched=len(fetched),
        new_papers=count_new(before, fetched),
        subscribers=reports.all(),
        error=error,
        dry_run=cycle.options.dry_run,
        previous_fetch=before.last_fetch,
        timings=phases.seconds(),
    )
    if cycle.records and record:
        with phases.phase("record"):
            cycle.store.set_last_cycle(report.record().to_dict())
            cycle.store.flush()
    timings = phases.seconds()
    log.debug("cycle timings: %s", ", ".join(f"{k} {v:.3f} s" for k, v in timings.items()))
    return report


def _index_terms(pool: Candidates, subs: Sequence[Subscriber]) -> None:
    """Match every distinct keyword and author once, up front (the index remembers)."""
    for sub in subs:
        for phrase in (*sub.keywords, *sub.exclude):
            pool.index.phrase(phrase)
        for name in sub.authors:
            pool.index.author(name)


async def _fetch(cycle: Cycle, subs: Sequence[Subscriber], before: Snapshot) -> tuple[Paper, ...]:
    """Fetch the window (and revisions); nothing is recorded here."""
    settings, now = cycle.settings, cycle.now
    terms = fetch_terms(subs, settings.arxiv.categories)
    start, end = window(now, before.last_fetch, settings.lookback_days)
    queries = build_queries(
        terms, start, end, api_url=settings.arxiv.api_url, page_size=settings.arxiv.page_size
    )
    for unfit in unfit_terms(subs, settings.arxiv):
        log.warning("%s: not fetched; the others are", unfit)
    client = cycle.collab.arxiv
    papers = await client.fetch_all(queries, progress=cycle.hooks.fetch_progress)
    watch = revision_watch(subs, before, now)
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


def _record_unsent(cycle: Cycle, plan: Plan, reports: Reports) -> None:
    sub = plan.subscriber
    if plan.reason == "suppressed":
        reports.emit(SubscriberReport(sub.email, "suppressed", detail=plan.suppressed or ""))
        return
    if plan.reason == "waiting":
        reports.emit(SubscriberReport(sub.email, "waiting", detail=f"weekly on {sub.weekday}"))
        return
    reports.emit(SubscriberReport(sub.email, "nothing"))
    if cycle.records and plan.served_slot is not None:
        # a weekly subscriber with nothing new is served silently, not retried daily
        cycle.store.mark_served(sub.email, served_slot=plan.served_slot)


def _on_fate(
    cycle: Cycle, phases: Phases, reports: Reports, item: Outgoing, status: Status, detail: str
) -> None:
    if status in ("sent", "outbox") and cycle.records:
        # side effect first, bookkeeping second: record only what was accepted
        with phases.phase("record"), naming_if_unrecorded(item, status):
            _record_delivery(cycle.store, item, cycle.now)
    elif (
        status == "refused"
        and cycle.records
        # our relay refused the reader for good: a verified hard bounce
        and replies.record_refusal(cycle.store, item.email, detail, cycle.now)
    ):
        cycle.store.flush()
    reports.emit(item_report(item, status, detail))


def _record_delivery(store: Store, item: Outgoing, now: datetime) -> None:
    delivers = item.digest.delivers
    plan = item.plan
    if delivers:
        store.record_delivery(item.email, delivers, now, served_slot=plan.served_slot)
    # left out for size: the mail said so; not delivered, and not offered again
    store.record_skipped(item.email, item.digest.skips, now)
    # shown beyond the keywords: no match, so not delivered; not offered again
    store.record_offered(item.email, item.digest.offers, now)
    store.mark_served(
        item.email,
        served_slot=None if delivers else plan.served_slot,
        empty_day=f"{now:%Y-%m-%d}" if plan.reason == "empty-note" else None,
    )
    store.flush()
