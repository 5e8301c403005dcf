"""The daemon in tests: as a process beside a stand-in notify socket, or in-process, fake clock."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from digest.service.daemon import Daemon
from tests.support.clock import FakeTime
from tests.support.paths import ROOT


class NotifySocket:
    """A unix datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()

    def states(self) -> list[str]:
        return [line.split("=")[0] for m in self.messages for line in m.splitlines()]


def start(cfg: Path, notify: NotifySocket, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(
        NOTIFY_SOCKET=str(notify.path),
        WATCHDOG_USEC="1000000",
        JOURNAL_STREAM="8:1",
        PYTHONUNBUFFERED="1",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "run", "--config", str(cfg)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )


def run_in_process(
    cfg: Path,
    fake: FakeTime,
    until: Callable[[], bool],
    limit: timedelta,
    env: dict[str, str] | None = None,
) -> int:
    """Run the daemon until ``until()`` or until ``limit`` has passed on the fake clock."""

    async def go() -> int:
        daemon = Daemon(cfg, env=env or {}, clock=fake.clock, sleep=fake.sleep, notify=bool)
        start = fake.now

        def on_sleep() -> None:
            if until() or fake.now - start > limit:
                daemon.stop.set()
                daemon.wake.set()

        fake.on_sleep = on_sleep
        return await daemon.run()

    return asyncio.run(go())
