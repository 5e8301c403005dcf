"""`digest run` as a real process: catch-up, SIGHUP reloads, SIGTERM, the notify protocol."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from digest.models import WEEKDAYS, Config, Settings
from digest.service.daemon import build_scheduler, sd_notify, watchdog_interval
from digest.service.notify import Watchdog
from digest.stop import Stop
from digest.store.store import Store
from tests.support.arxiv_server import make_entry
from tests.support.clock import FakeTime
from tests.support.configs import config_dict
from tests.support.daemon import NotifySocket, run_in_process, start
from tests.support.waiting import wait_for

# the daemon, in-process and as a process, against loopback servers
pytestmark = pytest.mark.servers

ALL_DAYS = list(WEEKDAYS)


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


def send_at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%H:%M:%S")


@pytest.fixture
def caught_up(arxiv, smtp, write_config, notify, tmp_path: Path):
    """A running daemon that has served the slot it missed (send_at is an hour away)."""
    data = config_dict(arxiv.url, smtp.port, send_at=send_at(timedelta(hours=1)), days=ALL_DAYS)
    cfg = write_config(data)
    log = tmp_path / "daemon.log"
    with running(cfg, notify, log) as proc:
        assert wait_for(lambda: "READY" in notify.states()), log.read_text()
        assert wait_for(lambda: len(smtp.received) == 2), log.read_text()
        yield proc, cfg, data, log


def test_ready_and_the_missed_slot_is_caught_up_at_once(caught_up, smtp, notify) -> None:
    _, cfg, _, log = caught_up
    assert notify.states()[0] == "READY"
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == [
        "alice@example.org",
        "bob@example.org",
    ]
    assert wait_for(lambda: "cycle ok:" in log.read_text()), log.read_text()
    with Store.open(cfg.parent / "digest.json", readonly=True) as store:
        assert store.last_slot()  # the slot is recorded as done


def test_the_watchdog_is_fed_and_the_status_told(caught_up, notify) -> None:
    assert wait_for(lambda: notify.states().count("WATCHDOG") >= 2)
    assert wait_for(lambda: any(m.startswith("STATUS=last: ") for m in notify.messages))


def test_log_lines_are_journald_style(caught_up) -> None:
    _, _, _, log = caught_up
    assert wait_for(lambda: "cycle ok:" in log.read_text())
    lines = [ln for ln in log.read_text().splitlines() if ln]
    # priority prefixes, no timestamps of our own
    assert lines and all(ln[:3] in ("<3>", "<4>", "<6>", "<7>") for ln in lines), lines


def test_a_broken_edit_is_logged_with_its_place_and_the_daemon_keeps_running(caught_up) -> None:
    proc, cfg, _, log = caught_up
    cfg.write_text("subscribers:\n  - email: broken\n    keywords: [x\n")
    proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload (SIGHUP) failed" in log.read_text()), log.read_text()
    assert "line 4, column 1: YAML syntax error" in log.read_text()
    assert proc.poll() is None


def test_a_good_edit_reloads_and_its_new_slot_is_served(caught_up, smtp, notify) -> None:
    proc, cfg, data, log = caught_up
    data["subscribers"].append({"email": "carol@example.org", "keywords": ["proton"]})
    data["settings"]["send_at"] = send_at(timedelta(seconds=3))
    cfg.write_text(yaml.safe_dump(data))
    proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reloaded" in log.read_text()), log.read_text()
    assert wait_for(lambda: len(smtp.received) == 3, timeout=30), log.read_text()
    assert smtp.received[2].rcpt_tos == ["carol@example.org"]  # the others had theirs
    states = notify.states()
    assert states.index("RELOADING") < len(states) - 1 - states[::-1].index("READY")


def test_sigterm_exits_0_within_10_seconds_with_stopping_last(caught_up, notify) -> None:
    proc, _, _, _ = caught_up
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert time.monotonic() - t0 < 10
    assert wait_for(lambda: notify.states()[-1] == "STOPPING")


def test_a_restart_on_the_same_day_sends_nothing_twice(caught_up, smtp, notify) -> None:
    proc, cfg, _, log = caught_up
    assert wait_for(lambda: "cycle ok:" in log.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    notify.messages.clear()
    with running(cfg, notify, log) as again:
        assert wait_for(lambda: "READY" in notify.states())
        time.sleep(1.5)
        assert len(smtp.received) == 2
        again.send_signal(signal.SIGINT)
        assert again.wait(10) == 0


def test_a_broken_config_at_start_exits_78_before_ready(tmp_path: Path, notify) -> None:
    cfg = tmp_path / "subscribers.yaml"
    cfg.write_text("subscribers: []\n")
    log = tmp_path / "daemon.log"
    proc = start(cfg, notify, log)
    assert proc.wait(30) == 78
    assert "subscribers: needs at least one subscriber" in log.read_text()
    assert "READY" not in notify.states()


@pytest.fixture
def without_semantic_extra(tmp_path: Path, monkeypatch) -> None:
    """Processes started from here on import no wordllama, as where the extra is not installed."""
    site = tmp_path / "no-extra"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['wordllama'] = None\n")
    monkeypatch.setenv("PYTHONPATH", str(site))


def test_semantic_without_its_extra_exits_78_at_start_before_ready(
    without_semantic_extra, arxiv, smtp, write_config, notify, tmp_path: Path
) -> None:
    cfg = write_config(config_dict(arxiv.url, smtp.port, semantic=True, days=ALL_DAYS))
    log = tmp_path / "daemon.log"
    proc = start(cfg, notify, log)
    assert proc.wait(30) == 78
    assert "pip install 'daily-papers-digest[semantic]'" in log.read_text()
    assert "READY" not in notify.states() and arxiv.state.requests == []


def test_a_reload_asking_for_semantic_without_its_extra_keeps_the_previous_config(
    without_semantic_extra, caught_up, smtp
) -> None:
    proc, cfg, data, log = caught_up
    data["settings"]["semantic"] = True
    cfg.write_text(yaml.safe_dump(data))
    proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload (SIGHUP) failed" in log.read_text()), log.read_text()
    assert "wordllama is not installed" in log.read_text()
    assert proc.poll() is None and len(smtp.received) == 2


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
    assert nothing_delivered(cfg)


def stop_in_phase(proc: subprocess.Popen) -> float:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    return time.monotonic() - t0


def nothing_delivered(cfg: Path) -> bool:
    with Store.open(cfg.parent / "digest.json", readonly=True) as store:
        return all(not store.subscriber(e).delivered for e in store.subscriber_emails())


def test_sigterm_during_the_arxiv_back_off_exits_at_once_and_records_nothing(
    arxiv, smtp, write_config, notify, tmp_path: Path
) -> None:
    arxiv.state.faults = ["503"] * 100  # back-off of 5, 10, 20, 40 s between attempts
    cfg = write_config(config_dict(arxiv.url, smtp.port, days=ALL_DAYS))
    log = tmp_path / "daemon.log"
    with running(cfg, notify, log) as proc:
        assert wait_for(lambda: "retry 1 of 4" in log.read_text()), log.read_text()
        assert stop_in_phase(proc) < 3
    assert len(arxiv.state.requests) == 1 and smtp.received == []
    assert nothing_delivered(cfg)


def test_sigterm_during_an_arxiv_request_cancels_it_and_records_nothing(
    arxiv, smtp, write_config, notify, tmp_path: Path
) -> None:
    arxiv.state.delay = 30.0  # the first page hangs (the client's timeout is 5 s)
    cfg = write_config(config_dict(arxiv.url, smtp.port, days=ALL_DAYS))
    log = tmp_path / "daemon.log"
    with running(cfg, notify, log) as proc:
        assert wait_for(lambda: len(arxiv.state.requests) >= 1)
        assert stop_in_phase(proc) < 3
    assert smtp.received == [] and nothing_delivered(cfg)


def test_sigterm_during_a_slow_send_exits_in_time_and_records_nothing(
    arxiv, smtp, write_config, notify, tmp_path: Path
) -> None:
    smtp.behaviour.data_delay = 30.0  # the server sits on the first message
    cfg = write_config(config_dict(arxiv.url, smtp.port, days=ALL_DAYS))
    log = tmp_path / "daemon.log"
    with running(cfg, notify, log) as proc:
        assert wait_for(lambda: "fetched" in log.read_text()), log.read_text()
        time.sleep(0.5)  # composing is quick: the first DATA is in flight
        assert stop_in_phase(proc) < 10
    assert smtp.received == [] and nothing_delivered(cfg)
    assert "cycle interrupted by stop" in log.read_text()


def test_sd_notify_without_systemd_is_a_no_op() -> None:
    assert sd_notify("READY=1", {}) is False


def test_sd_notify_on_a_path_socket(notify) -> None:
    assert sd_notify("STATUS=hello", {"NOTIFY_SOCKET": str(notify.path)}) is True
    assert wait_for(lambda: notify.messages == ["STATUS=hello"])


def test_sd_notify_on_an_abstract_socket() -> None:
    name = f"digest-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)  # Linux abstract namespace: no file on disk
        sock.settimeout(5)
        assert sd_notify("READY=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"READY=1"


def test_the_watchdog_looks_four_times_per_watchdog_usec() -> None:
    # a ping may come up to one look after the progress: work that moves every
    # 90 s of the unit's 120 s is never killed
    assert watchdog_interval({"WATCHDOG_USEC": "120000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None


def test_the_watchdog_is_fed_only_while_the_work_moves_or_rests() -> None:
    async def go() -> list[bool]:
        pulse = Stop()
        watchdog = Watchdog(pulse)
        seen = [watchdog.due()]  # the first look always pings
        never = asyncio.ensure_future(asyncio.Event().wait())  # a peer that never answers
        stuck = asyncio.ensure_future(pulse.run(never, "sending"))
        await asyncio.sleep(0.01)
        seen += [watchdog.due(), watchdog.due()]  # no wait ended: quiet
        stuck.cancel()
        await asyncio.gather(stuck, return_exceptions=True)
        seen.append(watchdog.due())  # the wait ended (here: cut): moved
        with pulse.rest():  # a back-off: nothing moves, nothing is stuck
            seen += [watchdog.due(), watchdog.due()]
        await pulse.run(asyncio.sleep(0), "a request")
        seen += [watchdog.due(), watchdog.due()]
        return seen

    assert asyncio.run(go()) == [True, False, False, True, True, True, True, False]


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


# -- in-process, on a fake clock -----------------------------------------------------


def test_on_a_fake_clock_the_next_slot_is_served_when_it_comes(arxiv, smtp, write_config) -> None:
    fake = FakeTime(datetime.now(UTC))
    slot = fake.now + timedelta(hours=1)
    cfg = write_config(config_dict(arxiv.url, smtp.port, send_at=f"{slot:%H:%M:%S}", days=ALL_DAYS))
    added: list[str] = []

    def until() -> bool:
        # half an hour in, a new proton paper appears: only the next slot can send it
        if not added and fake.now > slot - timedelta(minutes=30):
            arxiv.state.entries.insert(0, make_entry("2612.99999", "A proton", "Proton."))
            added.append(f"{fake.now:%H:%M}")
        return False

    assert run_in_process(cfg, fake, until, limit=timedelta(hours=3)) == 0
    rcpts = [r.rcpt_tos[0] for r in smtp.received]
    # the missed slot at once, then the new paper at the next slot, to alice only
    assert sorted(rcpts[:2]) == ["alice@example.org", "bob@example.org"]
    assert rcpts[2:] == ["alice@example.org"]
    with Store.open(cfg.parent / "digest.json", readonly=True) as store:
        last_slot = store.last_slot()
    assert last_slot is not None and last_slot.replace(microsecond=0) == slot.replace(microsecond=0)


def test_a_rejected_query_is_not_retried_but_arxiv_trouble_is(arxiv, smtp, write_config) -> None:
    arxiv.state.faults = ["error400"] * 100
    cfg = write_config(config_dict(arxiv.url, smtp.port, days=ALL_DAYS))
    fake = FakeTime(datetime.now(UTC))
    assert run_in_process(cfg, fake, lambda: False, limit=timedelta(hours=2)) == 0
    assert len(arxiv.state.requests) == 1  # not again every 15 minutes

    arxiv.state.requests.clear()
    arxiv.state.faults = ["503"] * 1000
    data = config_dict(arxiv.url, smtp.port, days=ALL_DAYS)
    data["settings"]["arxiv"]["max_retries"] = 0
    cfg.write_text(yaml.safe_dump(data))
    fake = FakeTime(datetime.now(UTC))
    assert run_in_process(cfg, fake, lambda: False, limit=timedelta(hours=2)) == 0
    assert 7 <= len(arxiv.state.requests) <= 9  # every 15 minutes for two hours


def test_the_start_line_keeps_seconds_and_says_when_the_next_cycle_is(
    arxiv, smtp, write_config, caplog
) -> None:
    fake = FakeTime(datetime(2026, 11, 30, 5, 0, tzinfo=UTC))  # a Monday
    data = config_dict(arxiv.url, smtp.port, send_at="23:30:15", timezone="Europe/Berlin")
    cfg = write_config(data)
    caplog.set_level(logging.INFO, logger="digest")
    run_in_process(cfg, fake, lambda: True, limit=timedelta(seconds=1))
    (line,) = [r.getMessage() for r in caplog.records if "daemon started" in r.getMessage()]
    assert "at 23:30:15 Europe/Berlin" in line
    assert "next cycle 2026-11-30 23:30:15 Europe/Berlin (22:30:15 UTC)" in line


def test_a_slot_recorded_in_the_future_of_the_clock_blocks_no_cycle(
    arxiv, smtp, write_config, caplog
) -> None:
    # a daemon ran a week ahead and recorded its slot there; the clock was then set right
    fake = FakeTime(datetime.now(UTC))
    data = config_dict(arxiv.url, smtp.port, send_at=send_at(timedelta(hours=1)), days=ALL_DAYS)
    cfg = write_config(data)
    ahead = fake.now + timedelta(days=7)
    with Store.open(cfg.parent / "digest.json", now=fake.now) as store:
        store.set_last_slot(ahead)
    caplog.set_level(logging.INFO, logger="digest")
    start = fake.now
    run_in_process(cfg, fake, lambda: len(smtp.received) == 2, limit=timedelta(minutes=30))
    # the slot owed now ran at once, not a week later
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["alice@example.org", "bob@example.org"]
    assert fake.now - start < timedelta(minutes=1)
    with Store.open(cfg.parent / "digest.json", readonly=True) as store:
        last_slot = store.last_slot()
    assert last_slot is not None and last_slot < fake.now  # the slot served replaced it
    messages = [r.getMessage() for r in caplog.records]
    assert any("the last completed slot" in m and "ran ahead" in m for m in messages), messages
