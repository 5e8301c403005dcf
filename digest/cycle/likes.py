"""The ranking step's inputs: liked papers looked up by id, and the papers ranking reads.

A reader's profile is built from their likes (``digest.ranking.relevance``); a liked paper
neither cached nor fetched is looked up in one ``id_list`` request at most,
and cached like any paper by the cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from digest.arxiv import window
from digest.config import library
from digest.cycle.plan import Candidates, Snapshot
from digest.cycle.state import Run
from digest.errors import FetchError
from digest.models import Paper, Subscriber

log = logging.getLogger("digest.cycle.run")


async def look_up_likes(
    run: Run, subs: Sequence[Subscriber], before: Snapshot, fetched: Sequence[Paper]
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


def gather(run: Run, pool: Candidates, liked: Sequence[Paper], before: Snapshot) -> None:
    """Set what ranking reads: every paper by id, and the corpus's background papers."""
    run.papers = {**pool.by_id, **{p.id: p for p in liked if p.id not in pool.by_id}}
    # the background that word weights are measured against: the papers of
    # the fetch window (the cache keeps half a year; ranking needs today's)
    since, _ = window(run.now, before.last_fetch, run.config.settings.lookback_days)
    run.background = tuple(p for p in pool.ordered if p.published >= since) or pool.ordered
