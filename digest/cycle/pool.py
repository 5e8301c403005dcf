"""Composing a cycle's messages, on every core when there are many.

A digest takes tens of milliseconds of CPU to render (Jinja, highlighting,
CSS inlining) and a few to send, so with many readers composing is the
bound; a pool of processes uses the machine's other cores. Below
``POOL_READERS`` messages starting the pool costs more than it saves and
composing stays in the cycle's process. Results come back in plan order,
at most ``AHEAD`` per worker ahead of the senders, so memory stays flat.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime

from digest import compose
from digest.cycle.plan import Plan
from digest.cycle.report import Unmade, unmade
from digest.models import Digest, Offer, Ranked, Settings

POOL_READERS = 200  # fewer messages than this are composed in-process
AHEAD = 2  # messages composed ahead per worker

# (digest, message bytes, seconds it took), or why this reader's could not be made
Composed = tuple[Digest, bytes, float] | Unmade
# what a message is composed from: the reader's ranked matches, what the mail offers
# beyond the keywords, and the link maker; or why ranking them failed (that
# reader's failure, passed on in its place)
Ranking = tuple[Sequence[Ranked], Sequence[Offer], compose.LinkMaker | None] | Unmade


def message(
    plan: Plan,
    ranked: Sequence[Ranked],
    settings: Settings,
    created: datetime,
    links: compose.LinkMaker | None = None,
    seen: Callable[[Digest, compose.Rendered], None] | None = None,
    *,
    beyond: Sequence[Offer] = (),
) -> tuple[Digest, bytes]:
    """``plan``'s digest, its matches in ``ranked`` order, and its message, serialised once.

    ``seen`` is shown the rendering before it is serialised (the preview keeps
    the HTML); ``beyond``: what the mail offers beyond the keywords.
    """
    digest, rendered = compose.compose(
        plan.subscriber,
        ranked,
        settings,
        cycle_id=plan.cycle_id,
        created=created,
        revisions=plan.revisions,
        empty_reason=plan.empty_reason,
        links=links,
        away=plan.away,
        beyond=beyond,
    )
    if seen is not None:
        seen(digest, rendered)
    return digest, compose.build_message(digest, rendered, settings)


def _in_worker(
    plan: Plan,
    ranked: Sequence[Ranked],
    beyond: Sequence[Offer],
    settings: Settings,
    created: datetime,
    links: compose.LinkMaker | None,
) -> Composed:
    # a reader's failure crosses the process boundary as text: DigestError's
    # fields need not pickle, and a bug's traceback is logged by the cycle
    started = time.perf_counter()
    try:
        digest, data = message(plan, ranked, settings, created, links, beyond=beyond)
        return digest, data, time.perf_counter() - started
    except Exception as exc:
        return unmade(exc)


def workers_for(messages: int) -> int:
    """How many composing processes ``messages`` are worth (0: compose in-process)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if messages < POOL_READERS or (cores or 1) < 2:
        return 0
    return cores or 1


async def pooled(
    plans: Iterable[tuple[Plan, Ranking]],
    settings: Settings,
    created: datetime,
    workers: int,
    stopped: Callable[[], bool],
) -> AsyncGenerator[tuple[Plan, Composed], None]:
    """Each plan with its composed message, in order, from ``workers`` processes.

    The plans come ranked, with what they offer beyond the keywords and the
    reader's link maker: the cycle's corpus stays in the cycle's process and
    only each reader's ordered matches, offers and a picklable link maker
    cross to a worker. A plan whose ranking failed
    comes back in its turn with that failure, without a worker.
    """
    # forkserver: the cycle's process has threads (the event loop's), fork is unsafe
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["digest.cycle.pool"])
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    queued: deque[tuple[Plan, Future[Composed]]] = deque()
    todo = iter(plans)

    def submit() -> None:
        item = next(todo, None)
        if item is not None and not stopped():
            plan, ranking = item
            if isinstance(ranking, Unmade):
                work: Future[Composed] = Future()
                work.set_result(ranking)
            else:
                ranked, beyond, links = ranking
                work = pool.submit(_in_worker, plan, ranked, beyond, settings, created, links)
            queued.append((plan, work))

    try:
        for _ in range(workers * AHEAD):
            submit()
        while queued:
            plan, future = queued.popleft()
            result = await asyncio.wrap_future(future)
            submit()
            yield plan, result
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
