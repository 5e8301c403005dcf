"""A cycle as digest once runs it, in-process, and what the store says was delivered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from digest.config import loading as config_mod
from digest.cycle.inputs import Options, collaborators
from digest.cycle.report import CycleReport
from digest.cycle.run import run_cycle
from digest.stop import Stop
from digest.store.store import Store


def delivered(cfg: Path) -> dict[str, dict[str, int]]:
    db = cfg.parent / "digest.json"
    if not db.exists():
        return {}
    with Store.open(db, readonly=True) as store:
        return {e: dict(store.subscriber(e).delivered) for e in store.subscriber_emails()}


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def once(cfg: Path, now: datetime | None = None) -> CycleReport:
    """A cycle as ``digest once`` runs it, with the back-off sleeps skipped (injected)."""
    conf = config_mod.load(cfg, env={})
    now = now or datetime.now(UTC)

    async def go(store: Store) -> CycleReport:
        stop = Stop(sleep=no_sleep)
        async with collaborators(conf.settings, Options(), now=now, stop=stop) as collab:
            return await run_cycle(conf, store, collab, now=now)

    with Store.open(conf.settings.database, now=now) as store:
        return asyncio.run(go(store))
