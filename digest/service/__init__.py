"""`digest run`: the long-running service (schedule, catch-up, reload, stop, systemd notify)."""

from __future__ import annotations

from digest.service.daemon import Daemon

__all__ = [
    "Daemon",
]
