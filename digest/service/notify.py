"""The systemd notify protocol (READY, STATUS, WATCHDOG over $NOTIFY_SOCKET), and when to ping."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from digest.stop import Stop

log = logging.getLogger("digest.service.daemon")


def sd_notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one notification to systemd (sd_notify(3)); False when not under systemd.

    A few lines over the datagram socket rather than the ``sdnotify``
    package, which swallows every error.
    """
    env = os.environ if env is None else env
    addr = env.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr[0] == "@":
        addr = "\0" + addr[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(state.encode())
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", env.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def watchdog_interval(env: Mapping[str, str]) -> float | None:
    """How often to look at the work, in seconds: a quarter of ``$WATCHDOG_USEC``, if ours.

    A ping follows each look that finds progress, so work that moves at
    least every three quarters of ``WatchdogSec`` is never killed (with
    the unit's 120 s: every 90 s; SMTP and arXiv time out well before).
    """
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.05, int(usec) / 4e6)
    except ValueError:
        return None


class Watchdog:
    """Whether to send ``WATCHDOG=1`` now: only if the work moved since the last ping, or rests.

    Feeding on a timer alone would prove only that the event loop turns; a
    cycle stuck on a peer that never answers, or on tasks waiting on each
    other, would be kept alive for ever. Fed on ``pulse``, the pings stop,
    systemd kills the daemon (SIGABRT, with a traceback of every thread
    under ``PYTHONFAULTHANDLER``) and restarts it.
    """

    def __init__(self, pulse: Stop) -> None:
        self.pulse = pulse
        self._seen: int | None = None

    def due(self) -> bool:
        progress = self.pulse.progress
        if self.pulse.resting or progress != self._seen:
            self._seen = progress
            return True
        return False
