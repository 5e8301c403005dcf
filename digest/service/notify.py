"""The systemd notify protocol: READY, STATUS, WATCHDOG, over $NOTIFY_SOCKET (sd_notify(3))."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

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
    """Half of ``$WATCHDOG_USEC`` in seconds, if the watchdog is ours."""
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.05, int(usec) / 2e6)
    except ValueError:
        return None
