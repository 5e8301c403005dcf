"""One pass: fetch -> match -> diff -> compose -> send -> record.

The order of side effects is the delivery contract (design.md): papers are
cached first; a subscriber's papers are recorded as delivered only after the
SMTP server accepted that subscriber's message, and the database is flushed
right then, so a crash afterwards cannot make anyone receive a paper twice.
One failing subscriber never blocks the others, and the cycle record is
saved in ``finally`` even when the cycle fails part-way.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from digest import archive, compose
from digest.errors import EXIT_OK, EXIT_TEMPFAIL, DigestError, UsageError
from digest.fetch import ArxivClient, Clock, Progress, Sleep
from digest.mailer import Mailer, Outcome
from digest.matching import match_paper, normalize_words, paper_text
from digest.models import Config, Digest, Match, Paper, Settings, Subscriber
from digest.query import build_queries, collect_terms, window
from digest.store import Store, SubscriberState
from digest.timing import announcements_between, weekly_slot

log = logging.getLogger(__name__)

# New versions are watched for this long after a paper was sent (each batch of
# about 300 ids costs one more request per cycle).
REVISION_WATCH_DAYS = 30

Status = Literal["sent", "nothing", "waiting", "dry-run", "outbox", "deferred", "refused", "failed"]


@dataclass(frozen=True, slots=True)
class Options:
    dry_run: bool = False
    outbox: Path | None = None
    only: str | None = None  # --subscriber EMAIL


@dataclass(frozen=True, slots=True)
class SubscriberReport:
    email: str
    status: Status
    papers: int = 0
    titles: tuple[str, ...] = ()
    detail: str = ""
    revisions: int = 0
    empty: bool = False  # a "nothing new" note
    served_slot: datetime | None = None

    def line(self) -> str:
        n = f"{self.papers} paper{'s' if self.papers != 1 else ''}"
        if self.revisions:
            n += f" and {self.revisions} update{'s' if self.revisions != 1 else ''}"
        if self.empty:
            n = 'a "nothing new" note'
        text = {
            "sent": f"sent {n}",
            "nothing": "nothing new",
            "waiting": "not due today",
            "dry-run": f"would send {n}",
            "outbox": f"wrote {n} to the outbox",
            "deferred": f"deferred, {n} stay pending",
            "refused": f"refused by the server, {n} stay pending",
            "failed": f"failed, {n} stay pending",
        }[self.status]
        return f"{self.email}: {text}" + (f" ({self.detail})" if self.detail else "")


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

    @property
    def exit_code(self) -> int:
        if self.error or any(
            r.status in ("deferred", "refused", "failed") for r in self.subscribers
        ):
            return EXIT_TEMPFAIL
        return EXIT_OK

    @property
    def result(self) -> str:
        if self.error:
            return "failed"
        return "ok" if self.exit_code == EXIT_OK else "partial"

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.subscribers:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def summary(self) -> str:
        c = self.counts()
        papers = sum(r.papers for r in self.subscribers if r.status in ("sent", "outbox"))
        parts = [
            f"cycle {self.result}: {self.requests} arXiv requests, {self.fetched} papers "
            f"fetched ({self.new_papers} new)"
        ]
        parts.append(", ".join(f"{v} {k}" for k, v in sorted(c.items())) or "no subscribers")
        if papers:
            parts.append(f"{papers} papers delivered")
        if self.error:
            parts.append(self.error)
        return "; ".join(parts)

    def record(self) -> dict[str, Any]:
        return {
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "result": self.result,
            "requests": self.requests,
            "fetched": self.fetched,
            "new_papers": self.new_papers,
            "counts": self.counts(),
            "error": self.error,
            "matched": sum(r.papers for r in self.subscribers),
            "previous_fetch": self.previous_fetch.isoformat() if self.previous_fetch else None,
        }


# --------------------------------------------------------------------------
# The diff (pure)


def term_key(kind: Literal["k", "a"], phrase: str) -> str:
    """Watermark key: normalised, so re-capitalising a keyword does not restart it."""
    return f"{kind}:{' '.join(normalize_words(phrase))}"


def term_keys(sub: Subscriber) -> tuple[str, ...]:
    return tuple(term_key("k", k) for k in sub.keywords) + tuple(
        term_key("a", a) for a in sub.authors
    )


def pending_matches(
    sub: Subscriber,
    papers: Iterable[Paper],
    delivered: Mapping[str, int],
    watermarks: Mapping[str, datetime],
    global_categories: Sequence[str] = (),
    texts: Mapping[str, str] | None = None,
) -> tuple[Match, ...]:
    """The matches ``sub`` has not been sent, each keyword counted from its watermark.

    A paper submitted before a keyword's watermark (the keyword is newer
    than ``lookback_days`` allows) does not count for that keyword.
    """
    oldest = min(watermarks.values(), default=None)
    out = []
    for p in papers:
        if p.id in delivered or (oldest is not None and p.published < oldest):
            continue
        m = match_paper(p, sub, global_categories, texts.get(p.id) if texts else None)
        if m is None:
            continue
        kws = tuple(k for k in m.keywords if p.published >= watermarks[term_key("k", k)])
        aus = tuple(a for a in m.authors if p.published >= watermarks[term_key("a", a)])
        if kws or aus:
            out.append(Match(paper=p, keywords=kws, authors=aus))
    return tuple(out)


def revised_matches(
    sub: Subscriber,
    delivered: Mapping[str, int],
    candidates: Mapping[str, Paper],
    global_categories: Sequence[str] = (),
) -> tuple[Match, ...]:
    """Papers ``sub`` was sent that now have a newer version (each version once)."""
    out = []
    for paper_id, version in delivered.items():
        p = candidates.get(paper_id)
        if p is not None and p.version > version:
            m = match_paper(p, sub, global_categories)
            out.append(m or Match(paper=p, keywords=()))
    return tuple(out)


def revision_watch(subs: Sequence[Subscriber], store: Store, now: datetime) -> set[str]:
    """Ids whose new versions someone wants to hear of: delivered within the watch period."""
    since = now - timedelta(days=REVISION_WATCH_DAYS)
    ids: set[str] = set()
    for sub in subs:
        if sub.include_revisions:
            state = store.subscriber(sub.email)
            ids.update(i for i, at in state.delivered_at.items() if at >= since)
    return ids


def cycle_id(now: datetime, matches: Sequence[Match]) -> str:
    """Same day and same papers give the same id (and so the same Message-ID)."""
    digest = hashlib.sha256(",".join(sorted(m.paper.id for m in matches)).encode())
    return f"{now:%Y%m%d}.{digest.hexdigest()[:10]}"


def _safe_name(email: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", email)


# --------------------------------------------------------------------------
# The pass


@dataclass
class _Pending:
    """A composed message waiting for delivery, and what to record once it is accepted."""

    sub: Subscriber
    matches: tuple[Match, ...]
    message: EmailMessage
    digest: Digest
    served_slot: datetime | None = None  # a weekly subscriber's slot this serves
    empty_day: str | None = None  # set for a "nothing new" mail

    def report(self, status: Status, detail: str = "") -> SubscriberReport:
        titles = tuple(m.paper.title for m in self.matches)
        return SubscriberReport(
            self.sub.email,
            status,
            len(self.matches),
            titles,
            detail,
            revisions=len(self.digest.revisions),
            empty=self.empty_day is not None,
        )

    def record(self, store: Store, now: datetime) -> None:
        delivers = self.digest.delivers
        if delivers:
            store.record_delivery(self.sub.email, delivers, now, served_slot=self.served_slot)
        store.mark_served(
            self.sub.email,
            served_slot=None if delivers else self.served_slot,
            empty_day=self.empty_day,
        )
        store.flush()


@dataclass(frozen=True, slots=True)
class _Plan:
    matches: tuple[Match, ...]
    revisions: tuple[Match, ...] = ()
    empty_reason: str | None = None
    served_slot: datetime | None = None


def _plan(
    sub: Subscriber,
    state: SubscriberState,
    marks: Mapping[str, datetime],
    ordered: Sequence[Paper],
    candidates: Mapping[str, Paper],
    texts: Mapping[str, str],
    settings: Settings,
    now: datetime,
    previous_fetch: datetime | None,
) -> _Plan | SubscriberReport:
    """What ``sub`` gets this cycle: a plan for a message, or a report saying why not."""
    served_slot = None
    if sub.frequency == "weekly" and sub.weekday:
        slot = weekly_slot(now, sub.weekday, settings)
        # served once per weekly slot; a new subscriber waits for the next one
        anchor = state.served_slot or state.first_seen or now
        if anchor >= slot:
            return SubscriberReport(sub.email, "waiting", detail=f"weekly on {sub.weekday}")
        served_slot = slot
    cats = settings.arxiv.categories
    matches = pending_matches(sub, ordered, state.delivered, marks, cats, texts)
    revisions = (
        revised_matches(sub, state.delivered, candidates, cats) if (sub.include_revisions) else ()
    )
    if matches or revisions:
        return _Plan(matches, revisions, None, served_slot)
    if sub.send_empty and state.last_empty != f"{now:%Y-%m-%d}":
        since = state.last_sent or previous_fetch or now - timedelta(days=1)
        if announcements_between(since, now) == 0:
            reason = "arXiv has announced no new papers since your last digest"
        else:
            reason = "none of the papers arXiv announced since your last digest matched"
        return _Plan((), (), reason, served_slot)
    return SubscriberReport(sub.email, "nothing", served_slot=served_slot)


async def run_cycle(
    config: Config,
    store: Store,
    *,
    now: datetime,
    options: Options = Options(),
    transport: Any = None,
    clock: Clock | None = None,
    sleep: Sleep | None = None,
    mailer: Mailer | None = None,
    fetch_progress: Progress | None = None,
    send_progress: Callable[[int, int], None] | None = None,
    report_line: Callable[[SubscriberReport], None] | None = None,
    on_composed: Callable[[compose.Digest, compose.Rendered], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CycleReport:
    """Run one cycle; never raises for a single subscriber's failure."""
    settings = config.settings
    subs = config.subscribers
    if options.only:
        subs = tuple(s for s in subs if s.email.casefold() == options.only.casefold())
        if not subs:
            raise UsageError(f"no subscriber {options.only} in {config.path}")
    record = not options.dry_run
    reports: list[SubscriberReport] = []
    requests = fetched = new = 0
    error: str | None = None
    previous_fetch = store.last_fetch()

    def emit(r: SubscriberReport) -> None:
        reports.append(r)
        if report_line:
            report_line(r)

    try:
        # -- fetch ------------------------------------------------------------
        terms = collect_terms(subs, settings.arxiv.categories)
        start, end = window(now, previous_fetch, settings.lookback_days)
        queries = build_queries(
            terms, start, end, api_url=settings.arxiv.api_url, page_size=settings.arxiv.page_size
        )
        kwargs: dict[str, Any] = {"transport": transport}
        if clock is not None:
            kwargs["clock"] = clock
        if sleep is not None:
            kwargs["sleep"] = sleep
        client = ArxivClient(settings.arxiv, **kwargs)
        watch = revision_watch(subs, store, now)
        async with client:
            try:
                papers = await client.fetch_all(
                    queries, progress=fetch_progress, should_stop=should_stop
                )
                if watch:
                    # the window is on v1 submission dates, so a new version of an
                    # older paper never shows up in it: ask for those papers by id
                    seen = {p.id: p for p in papers}
                    for p in await client.fetch_ids(sorted(watch), should_stop=should_stop):
                        if p.id not in seen or seen[p.id].version < p.version:
                            seen[p.id] = p
                    papers = tuple(seen.values())
            finally:
                requests = client.stats.requests
        fetched = len(papers)
        log.info(
            "fetched %d papers with %d queries in %d requests", fetched, len(queries), requests
        )
        if record:
            new = store.add_papers(papers, now)
            store.set_last_fetch(now)
            store.flush()
        # -- match and diff -------------------------------------------------------
        candidates: dict[str, Paper] = {p.id: p for p in store.papers()}
        for p in papers:
            have = candidates.get(p.id)
            if have is None or have.version < p.version:
                candidates[p.id] = p
        if not record:
            new = sum(1 for p in papers if store.paper(p.id) is None)
        ordered = sorted(candidates.values(), key=lambda p: (p.published, p.id), reverse=True)
        texts = {p.id: paper_text(p) for p in ordered}
        lookback_start = now - timedelta(days=settings.lookback_days)
        todo: list[_Pending] = []
        for sub in subs:
            # Composing is CPU work: let the event loop run between subscribers so
            # SIGTERM and the watchdog are served, and stop composing once told to.
            await asyncio.sleep(0)
            if should_stop is not None and should_stop():
                break
            try:
                state = store.subscriber(sub.email)
                if record:
                    marks = store.ensure_watermarks(
                        sub.email, term_keys(sub), lookback_start, now=now
                    )
                else:
                    marks = {k: state.watermarks.get(k, lookback_start) for k in term_keys(sub)}
                plan = _plan(
                    sub, state, marks, ordered, candidates, texts, settings, now, previous_fetch
                )
                if isinstance(plan, SubscriberReport):
                    emit(plan)
                    if plan.status == "nothing" and record and plan.served_slot:
                        store.mark_served(sub.email, served_slot=plan.served_slot)
                    continue
                digest, rendered = compose.compose(
                    sub,
                    plan.matches,
                    settings,
                    cycle_id=cycle_id(now, (*plan.matches, *plan.revisions)),
                    created=now,
                    revisions=plan.revisions,
                    empty_reason=plan.empty_reason,
                )
                if on_composed is not None:
                    on_composed(digest, rendered)
                message = compose.build_message(digest, rendered, settings)
                item = _Pending(
                    sub,
                    plan.matches,
                    message,
                    digest,
                    plan.served_slot,
                    f"{now:%Y-%m-%d}" if plan.empty_reason else None,
                )
                if options.dry_run and options.outbox is None:
                    emit(item.report("dry-run"))
                    continue
                todo.append(item)
            except DigestError as exc:
                emit(SubscriberReport(sub.email, "failed", detail=str(exc)))
        if record:
            store.flush()
        # -- deliver and record -------------------------------------------------
        if options.outbox is not None:
            _write_outbox(options.outbox, todo, now, store if record else None, emit)
        elif todo:
            await _send(
                todo, store, settings, now, mailer, options, emit, send_progress, should_stop
            )
    except DigestError as exc:
        error = str(exc)
        raise
    finally:
        report = CycleReport(
            started=now,
            finished=datetime.now(now.tzinfo),
            requests=requests,
            fetched=fetched,
            new_papers=new,
            subscribers=tuple(reports),
            error=error,
            dry_run=options.dry_run,
            previous_fetch=previous_fetch,
        )
        if record:
            store.set_last_cycle(report.record())
            # one selection serves both: pruning keeps exactly what the page shows
            keywords = archive.keywords_in_order(config.subscribers)
            selection = archive.select(keywords, store.papers())
            store.prune(now, keep=archive.kept_ids(selection))
            store.flush()
            if settings.archive is not None:
                archive.write_atomic(settings.archive, archive.render_selection(selection, now))
    return report


def _write_outbox(
    outbox: Path,
    todo: Sequence[_Pending],
    now: datetime,
    store: Store | None,
    emit: Callable[[SubscriberReport], None],
) -> None:
    try:
        outbox.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigestError(f"cannot create the outbox {outbox}: {exc}") from exc
    for item in todo:
        path = outbox / f"{now:%Y-%m-%d}-{_safe_name(item.sub.email)}.eml"
        try:
            path.write_bytes(bytes(item.message))
        except OSError as exc:
            emit(item.report("failed", f"cannot write {path}: {exc}"))
            continue
        if store is not None:
            item.record(store, now)
        emit(item.report("outbox", str(path)))


async def _send(
    todo: Sequence[_Pending],
    store: Store,
    settings: Any,
    now: datetime,
    mailer: Mailer | None,
    options: Options,
    emit: Callable[[SubscriberReport], None],
    progress: Callable[[int, int], None] | None,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    mailer = mailer or Mailer(settings.smtp, connections=settings.smtp.connections)
    by_email = {item.sub.email: item for item in todo}
    done = 0

    def on_outcome(outcome: Outcome) -> None:
        nonlocal done
        item = by_email[outcome.key]
        if outcome.status == "accepted":
            # side effect first, bookkeeping second: record only what was accepted
            item.record(store, now)
            emit(item.report("sent"))
        else:
            log.warning("delivery to %s %s: %s", item.sub.email, outcome.status, outcome.detail)
            emit(item.report(outcome.status, outcome.detail))
        done += 1
        if progress:
            progress(done, len(todo))

    await mailer.send_all(
        [(item.sub.email, item.sub.email, item.message) for item in todo],
        on_outcome,
        should_stop,
    )
