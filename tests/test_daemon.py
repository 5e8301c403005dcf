"""`digest run` as a real process: catch-up, SIGHUP reloads, SIGTERM, the notify protocol."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from digest.daemon import build_scheduler, sd_notify, watchdog_interval
from digest.models import Config, Settings
from digest.store import Store
from tests.conftest import config_dict

ROOT = Path(__file__).resolve().parent.parent
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


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


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


@contextlib.contextmanager
def running(cfg: Path, notify: NotifySocket, log: Path) -> Iterator[subprocess.Popen]:
    """``digest run`` as a subprocess, killed on the way out if a test left it running."""
    proc = start(cfg, notify, log)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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


def send_at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%H:%M:%S")


def test_the_daemon_end_to_end(arxiv, smtp, write_config, notify, tmp_path: Path) -> None:
    data = config_dict(arxiv.url, smtp.port, send_at=send_at(timedelta(hours=1)), days=ALL_DAYS)
    cfg = write_config(data)
    log = tmp_path / "daemon.log"
    with running(cfg, notify, log) as proc:
        # READY once config and store are loaded; the missed slot is caught up at once
        assert wait_for(lambda: "READY" in notify.states()), log.read_text()
        assert wait_for(lambda: len(smtp.received) == 2), log.read_text()
        assert sorted(r.rcpt_tos[0] for r in smtp.received) == [
            "alice@example.org",
            "bob@example.org",
        ]
        assert wait_for(lambda: notify.states().count("WATCHDOG") >= 2)

        # a broken edit: logged with its place, the daemon keeps running
        cfg.write_text("subscribers:\n  - email: broken\n    keywords: [x\n")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reload (SIGHUP) failed" in log.read_text()), log.read_text()
        assert "line 4, column 1: YAML syntax error" in log.read_text()
        assert proc.poll() is None

        # a good edit: a new subscriber, and a cycle a few seconds from now
        data["subscribers"].append({"email": "carol@example.org", "keywords": ["proton"]})
        data["settings"]["send_at"] = send_at(timedelta(seconds=3))
        cfg.write_text(yaml.safe_dump(data))
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reloaded" in log.read_text()), log.read_text()
        assert wait_for(lambda: len(smtp.received) == 3, timeout=30), log.read_text()
        assert smtp.received[2].rcpt_tos == ["carol@example.org"]  # the others had theirs

        # SIGTERM: exit 0 within 10 seconds, with STOPPING sent
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - t0 < 10
    states = notify.states()
    assert states[0] == "READY" and states[-1] == "STOPPING"
    assert "STATUS" in states and "RELOADING" in states
    assert states.index("RELOADING") < len(states) - 1 - states[::-1].index("READY")
    # journald style: priority prefixes, no timestamps of our own
    lines = [ln for ln in log.read_text().splitlines() if ln]
    assert lines and all(ln[:3] in ("<3>", "<4>", "<6>", "<7>") for ln in lines), lines
    assert any("cycle ok:" in ln for ln in lines)
    # the store is readable and records both slots' deliveries
    with Store.open(cfg.parent / "digest.json", readonly=True) as store:
        delivered = {e: store.subscriber(e).delivered for e in store.subscriber_emails()}
    assert all(delivered[e] for e in ("alice@example.org", "bob@example.org", "carol@example.org"))

    # restarted on the same day: the slot is done, nothing is sent twice
    notify.messages.clear()
    with running(cfg, notify, log) as proc:
        assert wait_for(lambda: "READY" in notify.states())
        time.sleep(1.5)
        assert len(smtp.received) == 3
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def test_a_broken_config_at_start_exits_78_before_ready(tmp_path: Path, notify) -> None:
    cfg = tmp_path / "subscribers.yaml"
    cfg.write_text("subscribers: []\n")
    log = tmp_path / "daemon.log"
    proc = start(cfg, notify, log)
    assert proc.wait(30) == 78
    assert "subscribers: needs at least one subscriber" in log.read_text()
    assert "READY" not in notify.states()


def test_sigterm_during_a_slow_fetch_stops_quickly_and_records_nothing(
    arxiv, smtp, write_config, notify, tmp_path: Path
) -> None:
    arxiv.state.delay = 1.0  # each page takes a second: 3 pages
    cfg = write_config(config_dict(arxiv.url, smtp.port, days=ALL_DAYS))
    log = tmp_path / "daemon.log"
    with running(cfg, notify, log) as proc:
        assert wait_for(lambda: len(arxiv.state.requests) >= 1)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - t0 < 10
    assert smtp.received == []
    with Store.open(cfg.parent / "digest.json", readonly=True) as store:
        assert all(not store.subscriber(e).delivered for e in store.subscriber_emails())


def test_sd_notify_without_systemd_is_a_no_op() -> None:
    assert sd_notify("READY=1", {}) is False


def test_sd_notify_abstract_and_path_sockets(notify) -> None:
    assert sd_notify("STATUS=hello", {"NOTIFY_SOCKET": str(notify.path)}) is True
    assert wait_for(lambda: notify.messages == ["STATUS=hello"])


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "120000000"}) == 60.0
    assert watchdog_interval({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None


def test_scheduler_has_one_job_per_cycle_day_in_the_configured_zone() -> None:
    cfg = Config(settings=Settings(timezone="Europe/Berlin"), subscribers=(), path=Path("x"))
    sched = build_scheduler(cfg)
    assert len(sched.jobs) == 5
    assert {j.start_day for j in sched.jobs} == {
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
    }
    assert all(str(j.at_time_zone) == "Europe/Berlin" for j in sched.jobs)
    assert sched.idle_seconds is not None and sched.idle_seconds > 0
