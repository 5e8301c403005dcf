"""What each subscriber is owed this cycle: pure functions, no I/O, no clock.

The planner takes the configuration, a read-only ``Snapshot`` of the store,
the papers just fetched and the time, and returns one ``Plan`` per subscriber
saying what to send and why (or why not). ``once``, ``run``, ``preview`` and
``status`` all ask it, so they can never disagree about what is pending.
What the store must remember afterwards (watermarks, the served slot) is in
the plan too; the cycle writes it only after the side effect it depends on.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from digest.arxiv import Terms, last_announced
from digest.cycle.clock import known_time
from digest.cycle.timing import (
    announced,
    announcements_between,
    local_date,
    weekly_slot,
)
from digest.errors import UsageError
from digest.matching import (
    PaperIndex,
    by_author,
    in_categories,
    match_paper,
    mentions,
    paper_text,
    phrase_key,
    unique_phrases,
)
from digest.models import (
    Config,
    Liked,
    Match,
    Paper,
    ReaderState,
    Settings,
    Subscriber,
    address_key,
    newest_first,
    newest_versions,
)
from digest.replies import away_windows, effective_frequency, is_suppressed, suppression
from digest.store import SubscriberState

# New versions are watched for this long after a paper was sent (each batch of
# about 300 ids costs one more request per cycle).
REVISION_WATCH_DAYS = 30

Reason = Literal["send", "nothing", "waiting", "empty-note", "suppressed"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the planner may know of the store, read once before the cycle."""

    states: Mapping[str, SubscriberState] = field(default_factory=dict)  # by email
    cached: tuple[Paper, ...] = ()  # the paper cache
    last_fetch: datetime | None = None
    readers: Mapping[str, ReaderState] = field(default_factory=dict)  # choices made by reply

    def state(self, email: str) -> SubscriberState:
        return self.states.get(email) or SubscriberState(email=email)

    def reader(self, email: str) -> ReaderState:
        return self.readers.get(email) or ReaderState()


@dataclass(frozen=True, slots=True)
class Plan:
    """One subscriber's part of the cycle, and the reason for it."""

    subscriber: Subscriber
    reason: Reason
    matches: tuple[Match, ...] = ()  # pending (also when "waiting": status counts them)
    revisions: tuple[Match, ...] = ()
    # announced while the reader's mail was stopped: not sent, counted in the next
    # digest and recorded as skipped with it (a vacation stop, not a backlog)
    away: tuple[Match, ...] = ()
    empty_reason: str | None = None  # set for an "empty-note"
    suppressed: str | None = None  # why a "suppressed" reader gets no mail (their reply)
    served_slot: datetime | None = None  # the weekly slot this serves, if weekly
    term_keys: tuple[str, ...] = ()  # watermarks the store must hold after the cycle
    watermark_start: datetime | None = None  # where a new term's watermark starts
    # stored in the future of the (checked) clock: set afresh, as for a new term or reader
    reset_keys: tuple[str, ...] = ()
    reset_first_seen: bool = False
    cadence: str = ""  # "daily" or "weekly:mon", as planned now
    cadence_since: datetime | None = None  # since when (None: as long as the store knows)
    cadence_changed: bool = False  # the store must be told (new, changed, or a future since)
    cycle_id: str = ""
    # papers that may be offered beyond the keywords (not matches), and why: the
    # categories of the papers the reader likes
    beyond: tuple[Paper, ...] = ()
    liked_categories: tuple[str, ...] = ()

    @property
    def sends(self) -> bool:
        return self.reason in ("send", "empty-note")


@dataclass(frozen=True, slots=True)
class CyclePlan:
    plans: tuple[Plan, ...]
    new_papers: int  # fetched ids the cache did not have


@dataclass(frozen=True, slots=True)
class Beyond:
    """What this cycle's sections beyond the readers' keywords are chosen from: ``Beyond.of``."""

    known: Mapping[str, Paper] = field(default_factory=dict)  # every paper by id, liked ones too
    # the liked categories' papers of arXiv's latest announcement, under each
    # category they carry: a reader looks at their few categories only
    by_category: Mapping[str, tuple[Paper, ...]] = field(default_factory=dict)
    texts: Mapping[str, str] = field(default_factory=dict)  # those papers normalised, by id

    @classmethod
    def of(cls, papers: Iterable[Paper], known: Mapping[str, Paper]) -> Beyond:
        by_category: dict[str, list[Paper]] = {}
        texts = {}
        for p in papers:
            texts[p.id] = paper_text(p)
            for c in dict.fromkeys(p.categories):
                by_category.setdefault(c, []).append(p)
        return cls(known, {c: tuple(ps) for c, ps in by_category.items()}, texts)


NO_BEYOND = Beyond()


# --------------------------------------------------------------------------
# Before the fetch


def select_subscribers(config: Config, only: str | None) -> tuple[Subscriber, ...]:
    """Everybody, or the one ``--subscriber`` asked for, in any spelling of the address."""
    if only is None:
        return config.subscribers
    wanted = address_key(only)
    subs = tuple(s for s in config.subscribers if address_key(s.email) == wanted)
    if not subs:
        raise UsageError(f"no subscriber {only} in {config.path}")
    return subs


def fetch_terms(subs: Iterable[Subscriber], categories: Sequence[str] = ()) -> Terms:
    """Union of everybody's keywords and authors, first-seen order.

    Phrases that normalise alike ("Compiler", "compilers") are asked once:
    matching is local anyway, the query only gathers candidates.
    """
    subs = tuple(subs)
    return Terms(
        unique_phrases(k for s in subs for k in s.keywords),
        unique_phrases(a for s in subs for a in s.authors),
        tuple(categories),
    )


def revision_watch(subs: Iterable[Subscriber], snapshot: Snapshot, now: datetime) -> set[str]:
    """Ids whose new versions someone wants to hear of: delivered within the watch period."""
    since = now - timedelta(days=REVISION_WATCH_DAYS)
    ids: set[str] = set()
    for sub in subs:
        if sub.include_revisions and not is_suppressed(snapshot.reader(sub.email), now):
            state = snapshot.state(sub.email)
            ids.update(i for i, at in state.delivered_at.items() if at >= since)
    return ids


# --------------------------------------------------------------------------
# The diff


def term_key(kind: Literal["k", "a"], phrase: str) -> str:
    """Watermark key: normalised, so re-capitalising a keyword does not restart it."""
    return f"{kind}:{phrase_key(phrase)}"


def term_keys(sub: Subscriber) -> tuple[str, ...]:
    return tuple(term_key("k", k) for k in sub.keywords) + tuple(
        term_key("a", a) for a in sub.authors
    )


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


def cycle_id(now: datetime, matches: Sequence[Match]) -> str:
    """Same day and same papers give the same id (and so the same Message-ID)."""
    digest = hashlib.sha256(",".join(sorted(m.paper.id for m in matches)).encode())
    return f"{now:%Y%m%d}.{digest.hexdigest()[:10]}"


@dataclass(frozen=True, slots=True)
class Candidates:
    """The papers every subscriber is matched against, prepared once per cycle."""

    ordered: tuple[Paper, ...]  # newest submission first
    by_id: Mapping[str, Paper]
    texts: Mapping[str, str]  # normalised once, not once per subscriber
    index: PaperIndex  # each distinct keyword and author matched once per cycle


def candidates(cached: Iterable[Paper], fetched: Iterable[Paper]) -> Candidates:
    """The cache and the fetch merged, the newest version of each paper winning."""
    by_id = newest_versions(cached, fetched)
    ordered = tuple(sorted(by_id.values(), key=newest_first, reverse=True))
    texts = {p.id: paper_text(p) for p in ordered}
    return Candidates(ordered, by_id, texts, PaperIndex(ordered, texts))


def pending_indexed(
    sub: Subscriber,
    pool: Candidates,
    delivered: Mapping[str, int],
    watermarks: Mapping[str, datetime],
    global_categories: Sequence[str] = (),
) -> tuple[Match, ...]:
    """The matches ``sub`` has not been sent, from the index: O(matches), not O(papers).

    Only the papers one of ``sub``'s terms matches are looked at; the rules
    applied to them are ``match_paper``'s (tests/test_index.py holds it equal to
    matching every paper one by one).
    """
    index = pool.index
    oldest = min(watermarks.values(), default=None)
    kws = [(k, index.phrase(k), watermarks[term_key("k", k)]) for k in sub.keywords]
    aus = [(a, index.author(a), watermarks[term_key("a", a)]) for a in sub.authors]
    hits: set[str] = set()
    for _, ids, _ in (*kws, *aus):
        hits.update(ids)
    for phrase in sub.exclude:
        hits.difference_update(index.phrase(phrase))
    out = []
    for pid in index.in_order(i for i in hits if i not in delivered):
        p = pool.by_id[pid]
        if oldest is not None and p.published < oldest:
            continue
        if not in_categories(p, global_categories):
            continue
        keywords: tuple[str, ...] = ()
        if in_categories(p, sub.categories):
            keywords = tuple(k for k, ids, mark in kws if pid in ids and p.published >= mark)
        authors = tuple(a for a, ids, mark in aus if pid in ids and p.published >= mark)
        if keywords or authors:
            out.append(Match(paper=p, keywords=keywords, authors=authors))
    return tuple(out)


def term_start(now: datetime, settings: Settings) -> datetime:
    """Where a term seen for the first time starts: its reader's first digest covers this much.

    At least arXiv's latest announcement whole (on a Tuesday morning Monday's,
    submitted from Friday 14:00 Eastern: a fixed two days would cut off the
    Friday and Saturday part, and on a Monday all of Sunday's), and at least
    ``lookback_days`` back.
    """
    opened, _ = last_announced(now)
    return min(opened, now - timedelta(days=settings.lookback_days))


def as_chosen(sub: Subscriber, reader: ReaderState, settings: Settings) -> Subscriber:
    """``sub`` as the reader's replies changed it: their frequency, their likes and dislikes.

    ``subscribers.yaml`` stays the operator's; a reader's choice overrides it
    for that reader only. A reader of a daily subscription who asks for
    weekly gets it on the first of ``settings.days``.
    """
    frequency = effective_frequency(reader, sub.frequency)
    weekday = sub.weekday if frequency == "weekly" else None
    if frequency == "weekly" and weekday is None:
        weekday = settings.days[0]
    liked = {like.arxiv_id for like in sub.likes}
    likes = sub.likes + tuple(Liked(arxiv_id=i) for i in reader.likes if i not in liked)
    disliked = set(reader.dislikes)
    likes = tuple(like for like in likes if like.arxiv_id not in disliked)
    if (frequency, weekday, likes, reader.dislikes) == (
        sub.frequency,
        sub.weekday,
        sub.likes,
        sub.dislikes,
    ):
        return sub
    return replace(sub, frequency=frequency, weekday=weekday, likes=likes, dislikes=reader.dislikes)


@dataclass(frozen=True, slots=True)
class Cadence:
    """A reader's cadence as planned now, since when it holds, and whether to record it."""

    value: str
    since: datetime | None
    changed: bool


def _cadence_of(sub: Subscriber) -> str:
    """``daily``, or ``weekly:`` and the weekday: what the store remembers of it."""
    return f"weekly:{sub.weekday}" if sub.frequency == "weekly" and sub.weekday else "daily"


def _cadence(sub: Subscriber, state: SubscriberState, now: datetime) -> Cadence:
    """``sub``'s cadence, since when it holds, and whether the store must be told.

    A change (daily to weekly, another weekday) holds from this cycle on, so it
    takes effect from the next slot of the new cadence: never at once as if a
    week had been missed. A cadence the store never knew has held always.
    """
    now_cadence = _cadence_of(sub)
    if state.cadence is None:
        return Cadence(now_cadence, None, True)
    if state.cadence != now_cadence:
        return Cadence(now_cadence, now, True)
    since = known_time(state.cadence_since, now)
    return Cadence(now_cadence, since, since != state.cadence_since)


def liked_categories(likes: Sequence[Liked], known: Mapping[str, Paper]) -> tuple[str, ...]:
    """The primary categories of the liked papers ``known`` holds, the most liked first.

    A liked paper known only by its text (a library entry without an id) has
    no category, nor one not looked up yet.
    """
    counts = Counter(
        known[like.arxiv_id].primary_category
        for like in likes
        if like.arxiv_id is not None and like.arxiv_id in known
    )
    return tuple(c for c, _ in counts.most_common())


def beyond_candidates(
    sub: Subscriber,
    handled: Mapping[str, int],
    beyond: Beyond,
    categories: Sequence[str],
    global_categories: Sequence[str] = (),
) -> tuple[Paper, ...]:
    """The papers ``sub`` may be offered beyond their keywords, before ranking.

    In one of ``categories`` (theirs: ``liked_categories``) and the global
    ones; touching nothing the reader set (no keyword, whatever the
    categories, no excluded phrase, no followed author: those are matches,
    or vetoed); not ``handled`` (delivered, skipped or offered before); not
    a paper they like or dislike.
    """
    own = {like.arxiv_id for like in sub.likes} | set(sub.dislikes)
    papers = dict.fromkeys(p for c in categories for p in beyond.by_category.get(c, ()))
    out = []
    for p in papers:
        if p.id in handled or p.id in own or not in_categories(p, global_categories):
            continue
        if mentions(p, (*sub.keywords, *sub.exclude), beyond.texts.get(p.id)):
            continue
        if not any(by_author(p, a) for a in sub.authors):
            out.append(p)
    return tuple(out)


def _weekly_slot(
    sub: Subscriber,
    state: SubscriberState,
    settings: Settings,
    now: datetime,
    since: datetime | None,
) -> tuple[datetime | None, bool]:
    """The weekly slot ``sub`` is owed (None for daily), and whether it waits instead.

    Served once per weekly slot, decided by the calendar day in the configured
    zone: a slot is waited out when the reader was served on or after its day
    (``send_at`` moved later that day changes nothing), when their cadence
    changed on or after it (``since``), or, for a new reader, when they were
    first seen on or after it. Times in the future of the clock are unknown
    (``known_time``): a reader the store knows but cannot date is owed the slot.
    """
    if sub.frequency != "weekly" or not sub.weekday:
        return None, False
    slot = weekly_slot(now, sub.weekday, settings)
    first_seen = now if state.first_seen is None else known_time(state.first_seen, now)
    served = known_time(state.served_slot, now)
    if served is not None:
        # served once per weekly slot, counted in calendar days of the configured zone
        anchors = [t for t in (served, since) if t is not None]
        return slot, local_date(max(anchors), settings) >= local_date(slot, settings)
    if since is not None and local_date(since, settings) >= local_date(slot, settings):
        return slot, True  # a cadence changed on or after this slot's day: the next one
    # Never served: owed their weekday's slot from the day they were first seen
    # on, so a reader a cycle first sees on their weekday is served that day,
    # not a week later; a slot of an earlier day came before them.
    return slot, first_seen is not None and local_date(slot, settings) < local_date(
        first_seen, settings
    )


def _empty_reason(state: SubscriberState, now: datetime, last_fetch: datetime | None) -> str:
    since = known_time(state.last_sent, now) or known_time(last_fetch, now)
    since = since or now - timedelta(days=1)
    if announcements_between(since, now) == 0:
        return "arXiv has announced no new papers since your last digest"
    return "none of the papers arXiv announced since your last digest matched"


def plan_subscriber(
    sub: Subscriber,
    state: SubscriberState,
    pool: Candidates,
    settings: Settings,
    now: datetime,
    last_fetch: datetime | None,
    reader: ReaderState | None = None,
    *,
    beyond: Beyond = NO_BEYOND,
) -> Plan:
    """What ``sub`` gets this cycle, and why; ``reader``: what they chose by reply.

    ``beyond``: the papers a reader with likes who gets a digest may be
    offered beyond their keywords (``Plan.beyond``, not matches).
    """
    reader = reader or ReaderState()
    sub = as_chosen(sub, reader, settings)
    start = term_start(now, settings)
    keys = term_keys(sub)
    # a watermark in the future of the clock was set under a clock that ran
    # ahead: it starts afresh, as a new term would, or nothing would ever pass it
    stored = state.watermarks
    reset = tuple(k for k in keys if k in stored and known_time(stored[k], now) is None)
    marks = {k: start if k in reset else stored.get(k, start) for k in keys}
    cats = settings.arxiv.categories
    # a match left out of an earlier mail for size is not offered again
    handled = {**state.skipped, **state.delivered} if state.skipped else state.delivered
    matches = pending_indexed(sub, pool, handled, marks, cats)
    revisions = (
        revised_matches(sub, state.delivered, pool.by_id, cats) if sub.include_revisions else ()
    )
    cad = _cadence(sub, state, now)
    slot, waiting = _weekly_slot(sub, state, settings, now, cad.since)
    zone = ZoneInfo(settings.timezone)
    matches, away = _while_away(matches, away_windows(reader, now, zone))
    base = Plan(
        sub,
        "nothing",
        matches,
        away=away,
        term_keys=keys,
        watermark_start=start,
        reset_keys=reset,
        reset_first_seen=state.first_seen is not None and known_time(state.first_seen, now) is None,
        cadence=cad.value,
        cadence_since=cad.since,
        cadence_changed=cad.changed,
    )
    why = suppression(reader, now, zone)
    if why is not None:
        # counted as pending (status shows them), never mailed
        return replace(base, reason="suppressed", suppressed=why)
    if waiting:
        return replace(base, reason="waiting")
    base = replace(base, served_slot=slot)
    if matches or revisions:
        ident = cycle_id(now, (*matches, *revisions))
        liked = liked_categories(sub.likes, beyond.known) if beyond.by_category else ()
        seen = {**handled, **state.offered} if state.offered else handled
        return replace(
            base,
            reason="send",
            revisions=revisions,
            cycle_id=ident,
            beyond=beyond_candidates(sub, seen, beyond, liked, cats) if liked else (),
            liked_categories=liked,
        )
    if sub.send_empty and state.last_empty != f"{now:%Y-%m-%d}":
        reason = _empty_reason(state, now, last_fetch)
        return replace(base, reason="empty-note", empty_reason=reason, cycle_id=cycle_id(now, ()))
    return base


def _while_away(
    matches: tuple[Match, ...], windows: Sequence[tuple[datetime, datetime | None]]
) -> tuple[tuple[Match, ...], tuple[Match, ...]]:
    """``matches`` split: those announced outside any stop, those announced during one.

    A stop still going counts from its start onwards; the reader gets no mail
    meanwhile anyway, and ``digest status`` shows no backlog building up.
    """
    if not windows:
        return matches, ()
    far = datetime.max.replace(tzinfo=UTC)
    spans = [(start, far if end is None else end) for start, end in windows]
    kept: list[Match] = []
    away: list[Match] = []
    for m in matches:
        when = announced(m.paper.published)
        (away if any(s <= when < e for s, e in spans) else kept).append(m)
    return tuple(kept), tuple(away)


def plan_cycle(
    subs: Sequence[Subscriber],
    settings: Settings,
    snapshot: Snapshot,
    fetched: Sequence[Paper],
    now: datetime,
) -> CyclePlan:
    """One ``Plan`` per subscriber, from the cache plus what was just fetched."""
    pool = candidates(snapshot.cached, fetched)
    plans = tuple(
        plan_subscriber(
            s,
            snapshot.state(s.email),
            pool,
            settings,
            now,
            snapshot.last_fetch,
            snapshot.reader(s.email),
        )
        for s in subs
    )
    return CyclePlan(plans, count_new(snapshot, fetched))


def count_new(snapshot: Snapshot, fetched: Iterable[Paper]) -> int:
    """Fetched ids the cache did not have."""
    known = {p.id for p in snapshot.cached}
    return len({p.id for p in fetched} - known)
