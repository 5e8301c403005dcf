"""The ``digest`` commands that show what is stored: ``status`` and ``readers``.

``status`` plans with the cycle's own planner on the cache alone, so it agrees
with ``once``; ``readers --resume`` is the one change they make.
"""

from __future__ import annotations

import argparse
import logging
import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from digest import config, replies
from digest.cli.writable import check_owner
from digest.cycle import (
    CycleRecord,
    announcements_between,
    known_time,
    local_text,
    next_run,
    plan_cycle,
    snapshot,
)
from digest.errors import EXIT_OK, StoreCorruptError, UsageError
from digest.models import ReaderState, address_key
from digest.store import Store

log = logging.getLogger("digest")


def cmd_status(args: argparse.Namespace) -> int:
    cfg = config.load_named(args.config, os.environ)
    now = datetime.now(UTC)
    if not cfg.settings.database.exists():
        print(f"no cycle has run yet (no database at {cfg.settings.database})")
        print(f"next cycle: {local_text(next_run(now, cfg.settings), cfg.settings)}")
        return EXIT_OK
    with Store.open(cfg.settings.database, readonly=True) as store:
        stored = store.last_cycle()
        if stored:
            last = CycleRecord.from_dict(stored)
            print(
                f"last cycle: {local_text(last.finished, cfg.settings)}, {last.result}: "
                f"{last.fetched} fetched, {last.new_papers} new, {last.counts_text()}"
                + (f"; {last.error}" if last.error else "")
            )
            note = quiet_cycle_note(last)
            if note:
                print(f"  {note}")
            if last.not_delivered:
                print("  not delivered, their papers stay pending:")
                for email, outcome in last.not_delivered.items():
                    print(f"    {email}: {outcome}")
                if last.unnamed():
                    print(f"    and {last.unnamed()} more (the cycle's log names them)")
        else:
            print("last cycle: none recorded")
        last_slot = known_time(store.last_slot(), now)
        print(f"next cycle: {local_text(next_run(now, cfg.settings, last_slot), cfg.settings)}")
        # the planner the cycle uses, on the cache alone: status agrees with once
        before, damaged = snapshot(store, cfg.subscribers)
        for email, why in damaged.items():
            print(f"  {email}: {why}; not mailed until then")
        planned = [s for s in cfg.subscribers if s.email not in damaged]
        plans = plan_cycle(planned, cfg.settings, before, (), now).plans
        for plan in plans:
            email = plan.subscriber.email
            state = before.state(email)
            skipped = (
                f", {len(state.skipped)} skipped (left out for size, not offered again)"
                if state.skipped
                else ""
            )
            chosen = replies.describe(before.reader(email), now, ZoneInfo(cfg.settings.timezone))
            print(
                f"  {email}: {len(state.delivered)} delivered, "
                f"{len(plan.matches)} pending{skipped}" + (f"; {chosen}" if chosen else "")
            )
    return EXIT_OK


def cmd_readers(args: argparse.Namespace) -> int:
    cfg = config.load_named(args.config, os.environ)
    now = datetime.now(UTC)
    if args.resume and not args.email:
        raise UsageError("--resume needs the reader's EMAIL")
    if args.resume:
        check_owner(cfg)
    zone = ZoneInfo(cfg.settings.timezone)  # a pause's last day is a day of the installation
    if not cfg.settings.database.exists():
        print(f"no reader has replied yet (no database at {cfg.settings.database})")
        return EXIT_OK
    configured = {address_key(s.email): s.email for s in cfg.subscribers}
    with Store.open(cfg.settings.database, readonly=not args.resume, now=now) as store:
        stored = store.readers_with_state()
        if args.email is None:
            for who in sorted(stored):
                what = replies.describe(store.reader_state(who), now, zone) or "nothing chosen"
                gone = "" if address_key(who) in configured else " (not in the configuration)"
                print(f"{who}: {what}{gone}")
            if not stored:
                print("no reader has chosen anything by reply")
            return EXIT_OK
        by_key = {address_key(e): e for e in stored} | configured
        found = by_key.get(address_key(args.email))
        if found is None:
            raise UsageError(f"no subscriber {args.email} in {cfg.path} and no reply state stored")
        email = found
        try:
            state = store.reader_state(email)
            damaged = False
        except StoreCorruptError:
            if not args.resume:
                raise
            log.warning("%s: the stored reply state was damaged and starts afresh", email)
            state, damaged = ReaderState(), True
        if args.resume:
            state, effects = replies.apply(state, replies.Lifted(), now)
            if effects.changed or damaged:
                store.set_reader_state(email, state)
                store.flush()
            log.info("%s: %s", email, effects.log if effects.changed else "nothing to lift")
        print(f"{email}: {replies.describe(state, now, zone) or 'receives mail as configured'}")
        if state.last_replies:
            print("last replies, newest first:")
            for note in reversed(state.last_replies):
                print(f"  {note.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC  {note.what}: {note.done}")
    return EXIT_OK


def quiet_cycle_note(last: CycleRecord) -> str | None:
    """Whether a cycle that found nothing new is expected (no announcement) or suspicious."""
    if last.new_papers or last.result == "failed":
        return None
    if last.previous_fetch is None:
        return "the first cycle found nothing: check the keywords and settings.arxiv.api_url"
    n = announcements_between(last.previous_fetch, last.started)
    if n == 0:
        return "nothing new, as expected: arXiv made no announcement since the previous cycle"
    return (
        f"suspicious: arXiv announced {n} time{'s' if n > 1 else ''} since the previous "
        "cycle but nothing new was fetched; check the log, the keywords and "
        "settings.arxiv.api_url (an arXiv holiday would also explain it)"
    )
