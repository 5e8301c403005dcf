"""`digest run`: the long-running service (schedule, catch-up, reload, stop, sd_notify).

Two parts with two jobs. ``schedule`` owns the wake-up: its jobs, one per
cycle day at ``send_at``, set a flag that wakes the loop, and its
``idle_seconds`` says how long the loop may sleep. It does not decide what is
owed: it keeps no state across restarts, does not replay missed runs and
stops rescheduling a job that raised (schedule 1.2's behaviour). That is
``timing.due_slot``'s job, from the slot the store says was completed last on
the injected clock, which gives catch-up after downtime and never two cycles
for one slot. So a test can drive the daemon in-process on a fake clock and
a fake sleep: the flag and ``idle_seconds`` only make it wake sooner.

Sleeps are sliced (at most ``SLICE`` seconds) because monotonic sleeps do not
advance during suspend. The watchdog is fed only while the work moves or
rests (``notify.Watchdog``), so a cycle stuck on a peer, or on itself, gets
the daemon restarted. Signals are handled on the event loop: SIGHUP
reloads, SIGTERM/SIGINT stop after the message in flight (each delivery is
recorded as it is accepted, so state is never half-written).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import schedule

from digest import ranking
from digest.config import loading as config_mod
from digest.cycle import (
    Options,
    clock_text,
    collaborators,
    due_slot,
    known_time,
    local_text,
    next_run,
    run_cycle,
    utc_text,
)
from digest.errors import (
    ClockError,
    ConfigError,
    DigestError,
    FetchError,
    InboxConfigError,
    MissingExtraError,
    Stopped,
    translate,
)
from digest.models import WEEKDAY_NAMES, Config
from digest.replies import POLL_BUDGET, load_secret, poll_inbox, reply_context, send_replies
from digest.service.notify import Watchdog
from digest.service.notify import sd_notify as sd_notify
from digest.service.notify import watchdog_interval as watchdog_interval
from digest.stop import Sleep, Stop
from digest.store import Store

log = logging.getLogger(__name__)

SLICE = 30.0  # longest single sleep, in seconds
RETRY_AFTER_FETCH_ERROR = timedelta(minutes=15)
RETRY_AFTER_OTHER_ERROR = timedelta(minutes=5)
MIN_POLL = 5.0  # seconds: a poll with less time before a cycle waits until after it


def build_scheduler(cfg: Config, wake: Callable[[], None] = lambda: None) -> schedule.Scheduler:
    """One job per cycle day at ``send_at`` in the configured zone; the job calls ``wake``."""
    sched = schedule.Scheduler()
    at = cfg.settings.send_at.strftime("%H:%M:%S")
    for day in cfg.settings.days:
        getattr(sched.every(), WEEKDAY_NAMES[day]).at(at, cfg.settings.timezone).do(wake)
    return sched


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class Daemon:
    def __init__(
        self,
        config_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Sleep = asyncio.sleep,
        notify: Callable[[str], bool] | None = None,
    ) -> None:
        self.config_path = config_path
        self.env = dict(os.environ if env is None else env)
        self.clock = clock
        self.sleep = sleep
        self.notify = notify or (lambda state: sd_notify(state, self.env))
        self.stop = asyncio.Event()
        # every wait of every cycle and poll goes through it; the watchdog reads its pulse
        self.pulse = Stop(self.stop, sleep=sleep)
        self.wake = asyncio.Event()
        self.reload_requested = False
        self.config: Config | None = None
        self.config_digest: str | None = None
        self.scheduler: schedule.Scheduler | None = None
        self.last_slot: datetime | None = None
        self.future_slot: datetime | None = None  # a last slot already reported as in the future
        self.given_up: datetime | None = None  # a slot whose cycle cannot succeed as configured
        self.retry_at: datetime | None = None
        self.last_summary = "no cycle yet"
        self.next_poll: datetime | None = None  # of settings.inbox; None: at once

    # -- set-up --------------------------------------------------------------

    def _load(self) -> Config:
        cfg = config_mod.load(self.config_path, self.env)
        self.config_digest = _file_digest(self.config_path)
        if cfg.settings.semantic:
            # a missing extra is a configuration this machine cannot run: refused
            # at start (78) and on reload (the previous one kept), never found out
            # by a slot that then fails every reader
            ranking.load_semantic()
        return cfg

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        # first thing: Python's default SIGHUP action would kill the process
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        loop.add_signal_handler(signal.SIGTERM, self._on_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._on_stop, "SIGINT")

    def _on_hup(self) -> None:
        self.reload_requested = True
        self.wake.set()

    def _on_stop(self, name: str) -> None:
        log.info("%s received: stopping", name)
        self.stop.set()
        self.wake.set()

    # -- reload ------------------------------------------------------------------

    def _maybe_reload(self) -> None:
        changed = _file_digest(self.config_path) != self.config_digest
        if not (self.reload_requested or changed):
            return
        why = "SIGHUP" if self.reload_requested else "the file changed"
        self.reload_requested = False
        self.notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            cfg = self._load()
        except (ConfigError, MissingExtraError) as exc:
            # keep the last good config; remember this file so we do not log it every tick
            self.config_digest = _file_digest(self.config_path)
            log.error("reload (%s) failed, keeping the previous configuration: %s", why, exc)
        else:
            self.config = cfg
            self.given_up = None  # the edit may have fixed what made the cycle fail
            self.scheduler = build_scheduler(cfg, self.wake.set)
            log.info(
                "reloaded %s (%s): %d subscribers", self.config_path, why, len(cfg.subscribers)
            )
        self.notify("READY=1")
        self._status()

    # -- the loop --------------------------------------------------------------

    def _last_slot(self, now: datetime) -> datetime | None:
        """The slot last completed, unless it lies in the future of the clock.

        A slot recorded under a clock that ran ahead would block every cycle
        until the clock caught up with it: it is read as unknown, so the slot
        owed now runs, and that cycle checks the clock against arXiv's before it
        records anything (``digest.cycle.clock``).
        """
        last = known_time(self.last_slot, now)
        if self.last_slot is not None and last is None and self.future_slot != self.last_slot:
            self.future_slot = self.last_slot  # said once, not on every tick
            log.warning(
                "the last completed slot (%s) lies in the future of this machine's clock "
                "(%s): it was recorded under a clock that ran ahead, and is read as unknown",
                utc_text(self.last_slot),
                utc_text(now),
            )
        return last

    def _status(self) -> None:
        if self.config is None:
            return
        now = self.clock()
        nxt = next_run(now, self.config.settings, known_time(self.last_slot, now))
        self.notify(
            f"STATUS=last: {self.last_summary}; next: {local_text(nxt, self.config.settings)}"
        )

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        self.config = self._load()  # ConfigError -> exit 78 before READY
        with Store.open(self.config.settings.database) as store:  # corrupt/locked -> exit
            self.last_slot = store.last_slot()
        self.scheduler = build_scheduler(self.config, self.wake.set)
        self.notify("READY=1")
        self._status()
        settings = self.config.settings
        now = self.clock()
        log.info(
            "digest daemon started: %d subscribers, cycles %s at %s %s; next cycle %s",
            len(self.config.subscribers),
            ",".join(settings.days),
            clock_text(settings.send_at),
            settings.timezone,
            local_text(next_run(now, settings, self._last_slot(now)), settings),
        )
        if settings.inbox is not None:
            log.info(
                "replies: reading %s on %s:%d every %g minutes between cycles",
                settings.inbox.folder,
                settings.inbox.host,
                settings.inbox.port,
                settings.inbox.poll_interval,
            )
        watchdog = watchdog_interval(self.env)
        pinger = asyncio.create_task(self._watchdog(watchdog)) if watchdog else None
        try:
            # Replies that came while the daemon was down (an unsubscribe overnight)
            # are acted on before a catch-up cycle mails anyone.
            await self._maybe_poll()
            while not self.stop.is_set():
                # cleared before the work, not before the sleep: a SIGHUP or a job
                # that fires during a cycle must cut the following sleep short
                self.wake.clear()
                self._maybe_reload()
                await self._maybe_cycle()
                if self.stop.is_set():
                    break
                await self._maybe_poll()
                if self.stop.is_set():
                    break
                await self._sleep()
        finally:
            self.notify("STOPPING=1")
            if pinger is not None:
                pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pinger
        log.info("digest daemon stopped")
        return 0

    async def _watchdog(self, interval: float) -> None:
        # a task on the same event loop: a blocked loop stops the pings, as it should;
        # so does a loop that turns while the work stands still (``Watchdog``)
        watchdog = Watchdog(self.pulse)
        while True:
            if watchdog.due():
                self.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def _sleep(self) -> None:
        assert self.scheduler is not None
        self.scheduler.run_pending()
        idle = self.scheduler.idle_seconds
        timeout = SLICE if idle is None else min(max(idle, 0.0), SLICE)
        for at in (self.retry_at, self._poll_due()):
            if at is not None:
                timeout = min(timeout, max(0.0, (at - self.clock()).total_seconds()))
        # whichever comes first: the timeout, a scheduled job, a signal
        sleeper = asyncio.ensure_future(self.sleep(timeout + 0.05))
        waker = asyncio.ensure_future(self.wake.wait())
        try:
            with self.pulse.rest():
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    def _poll_due(self) -> datetime | None:
        if self.config is None or self.config.settings.inbox is None:
            return None
        return self.next_poll or self.clock()

    async def _maybe_poll(self) -> None:
        """At start-up, then every ``inbox.poll_interval`` minutes between cycles: read replies.

        The poll runs in a thread (imaplib blocks); its handler opens the
        store at the first message, and the loop starts no cycle meanwhile.
        So the poll is given until the next cycle is due at most
        (``POLL_BUDGET`` when that is further): a slow or hung server never
        delays a cycle, and a SIGTERM ends it within seconds. Confirmations
        go out after the poll, on this loop.
        """
        cfg = self.config
        due = self._poll_due()
        now = self.clock()
        if cfg is None or cfg.settings.inbox is None or due is None or now < due:
            return
        budget = min(POLL_BUDGET, (next_run(now, cfg.settings) - now).total_seconds())
        if budget < MIN_POLL:
            return  # the cycle comes first; the poll follows it
        self.next_poll = now + timedelta(minutes=cfg.settings.inbox.poll_interval)
        try:
            ctx = reply_context(cfg.settings, self.env)
            # a thread the pulse cannot see into; the poll ends within its
            # budget whatever the server does, so it counts as a wait of known length
            with self.pulse.rest():
                _, replies = await asyncio.to_thread(
                    poll_inbox, cfg, ctx, self.clock, self.stop.is_set, budget
                )
        except Stopped:
            log.info("inbox: poll interrupted by stop")
            return
        except (InboxConfigError, ConfigError) as exc:
            log.error("inbox: %s; replies are not read until it is fixed", exc)
            return
        except DigestError as exc:
            log.warning("inbox: %s; trying again at the next poll", exc)
            return
        except Exception:  # a bug must not kill the service
            log.exception("inbox poll crashed; trying again at the next poll")
            return
        if replies and not self.stop.is_set():
            await send_replies(cfg.settings.smtp, replies, stop=self.pulse)

    async def _maybe_cycle(self) -> None:
        assert self.config is not None
        now = self.clock()
        slot = due_slot(now, self.config.settings, self._last_slot(now))
        if slot is None or slot == self.given_up:
            return
        if self.retry_at is not None and now < self.retry_at:
            return
        try:
            await self._cycle(self.config, now, slot)
        except Exception as exc:
            error = translate(exc)  # a full disk is a failure to retry, not a crash
            if error is None:  # a bug must not kill the service: log it and try again later
                self.retry_at = now + RETRY_AFTER_FETCH_ERROR
                self.last_summary = f"{now:%Y-%m-%d %H:%M} UTC crashed"
                log.exception("cycle crashed; retrying at %s", f"{self.retry_at:%H:%M} UTC")
            elif self.stop.is_set():
                log.info("cycle interrupted by stop: %s", error)
            else:
                self._failed(now, error)
        finally:
            self._status()

    async def _cycle(self, cfg: Config, now: datetime, slot: datetime) -> None:
        with Store.open(cfg.settings.database, now=now) as store:
            secret = load_secret(cfg.settings, self.env)
            async with collaborators(
                cfg.settings, Options(), now=now, stop=self.pulse, secret=secret
            ) as collab:
                report = await run_cycle(cfg, store, replace(collab, clock=self.clock), now=now)
            if self.stop.is_set() and report.exit_code != 0:
                # stopped part-way: what went out is recorded; the rest is owed
                log.info("cycle interrupted by stop: %s", report.summary())
                return
            store.set_last_slot(slot)
        self.last_slot = slot
        self.retry_at = None
        self.last_summary = f"{now:%Y-%m-%d %H:%M} UTC {report.result}"
        level = logging.INFO if report.exit_code == 0 else logging.WARNING
        log.log(level, "%s", report.summary())

    def _failed(self, now: datetime, exc: DigestError) -> None:
        if not exc.retryable:
            # retrying will not help (a rejected query, a broken template):
            # the slot counts as done, the next slot or a reload tries again
            self.given_up = due_slot(now, self.config.settings, None) if self.config else None
            self.last_summary = f"{now:%Y-%m-%d %H:%M} UTC failed (not retried)"
            log.error("cycle failed: %s; not retried until the next slot or a reload", exc)
            return
        is_fetch = isinstance(exc, FetchError)
        # a wrong clock is found by a fetch: retried no more often than arXiv trouble
        slow = is_fetch or isinstance(exc, ClockError)
        self.retry_at = now + (RETRY_AFTER_FETCH_ERROR if slow else RETRY_AFTER_OTHER_ERROR)
        self.last_summary = f"{now:%Y-%m-%d %H:%M} UTC failed" + (" (arXiv)" if is_fetch else "")
        log.error("cycle failed: %s; retrying at %s", exc, f"{self.retry_at:%H:%M} UTC")
