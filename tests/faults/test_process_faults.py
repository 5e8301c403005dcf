"""The operator and the machine: SIGTERM in every phase, a broken database, two processes at once.

Also: a full disk (a small tmpfs) before a cycle, an output nobody reads,
a second outbox run on one day, and a daemon stuck on its SMTP peer whose
watchdog must go quiet. A wrong clock is test_clock_faults.py's.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.faults import disk, invariants
from tests.faults.conftest import run_side_by_side
from tests.faults.smtp import Accepted
from tests.faults.world import Run, World
from tests.support.waiting import wait_for

# -- SIGTERM to `digest run` in each phase of its cycle ---------------------------


def sigterm_when(
    arm: Callable[[World, threading.Event], None], readers: list[dict[str, Any]] | None = None
) -> Callable[[Path], Any]:
    """Start the daemon, SIGTERM it when ``arm``'s trigger fires, then run one clean cycle."""

    def scenario(tmp: Path) -> dict[str, Any]:
        kw = {"readers": readers} if readers else {}
        with World(tmp, **kw) as w:
            fire = threading.Event()
            arm(w, fire)
            proc = w.daemon()
            assert fire.wait(60), (tmp / "daemon.log").read_text()
            connections_before = w.smtp_script.connections
            accepted_before = len(w.smtp_script.accepted)
            code, seconds = w.stop(proc)
            during = len(w.smtp_script.accepted)
            w.script.faults.clear()
            w.script.on_request = None
            w.smtp_script.on_event = None
            w.smtp_script.rule = None
            clean = w.once()
            w.settle()
        return {
            "world": w,
            "code": code,
            "seconds": seconds,
            "connections_before": connections_before,
            "accepted_before": accepted_before,
            "accepted_by_daemon": during,
            "clean": clean,
            "log": (tmp / "daemon.log").read_text(),
        }

    return scenario


def during_fetch(w: World, fire: threading.Event) -> None:
    w.script.faults[2] = "hold"  # page 2 takes 3 s
    w.script.on_request = lambda n: fire.set() if n == 2 else None


def during_backoff(w: World, fire: threading.Event) -> None:
    w.script.faults[1] = "503-retry-after-60"
    w.script.on_request = lambda n: threading.Timer(0.5, fire.set).start() if n == 1 else None


def during_compose(w: World, fire: threading.Event) -> None:
    # 40 readers of 21 papers each: composing takes seconds; the last page starts it
    w.script.on_request = lambda n: threading.Timer(0.3, fire.set).start() if n == 3 else None


def during_send(w: World, fire: threading.Event) -> None:
    w.smtp.pause_seconds = 1.0  # well inside the client's 3 s timeout
    w.smtp_script.on_event = lambda ev, n: fire.set() if (ev, n) == ("MAIL", 2) else None
    w.smtp_script.rule = lambda ev, n, arg: "pause" if (ev, n) == ("MAIL", 2) else None


def when_idle(w: World, fire: threading.Event) -> None:
    def later() -> None:
        wait_for(lambda: len(w.smtp_script.accepted) == 4 and w.smtp_script.events[-1][0] == "QUIT")
        fire.set()

    threading.Thread(target=later, daemon=True).start()


MANY = [
    {"email": f"r{i:02d}@example.org", "keywords": ["testing", "proton", "electron"]}
    for i in range(40)
]

SIGTERM = {
    "fetch": sigterm_when(during_fetch),
    "back-off": sigterm_when(during_backoff),
    "compose": sigterm_when(during_compose, readers=MANY),
    "send": sigterm_when(during_send),
    "idle": sigterm_when(when_idle),
}


# -- two daemons and a `digest once` on one database -------------------------------


def contenders(tmp: Path) -> dict[str, Any]:
    """Daemon A is in its cycle (and holds the database); daemon B and `once` start meanwhile."""
    with World(tmp, settings={"arxiv": {"timeout": 60}}) as w:
        busy = threading.Event()
        w.script.faults[2] = "hold"  # A's second page takes 20 s
        w.script.hold_seconds = 20
        w.script.on_request = lambda n: busy.set() if n == 2 else None
        a = w.daemon(tmp / "a.log")
        assert busy.wait(60), (tmp / "a.log").read_text()
        b = w.daemon(tmp / "b.log")
        once = w.once()
        b_code = b.wait(30)
        assert wait_for(lambda: len(w.smtp_script.accepted) == 4), (tmp / "a.log").read_text()
        a_code, _ = w.stop(a)
        final = w.once()
        w.settle()
    return {
        "world": w,
        "a": (a.pid, a_code, (tmp / "a.log").read_text()),
        "b": (b_code, (tmp / "b.log").read_text()),
        "once": once,
        "final": final,
    }


def racing(tmp: Path) -> dict[str, Any]:
    """Two daemons and `once` started at the same instant; then a clean cycle."""
    with World(tmp) as w:
        a = w.daemon(tmp / "a.log")
        b = w.daemon(tmp / "b.log")
        once = w.once()
        wait_for(lambda: len(w.smtp_script.accepted) >= 4, 30)
        codes = [w.stop(p)[0] if p.poll() is None else p.returncode for p in (a, b)]
        final = w.once()
        w.settle()
    logs = [(tmp / n).read_text() for n in ("a.log", "b.log")]
    return {"world": w, "codes": codes, "logs": logs, "once": once, "final": final}


# -- a full disk, an output nobody reads -------------------------------------------------


THIRTY = MANY[:30]


def disk_full_before_a_cycle(tmp: Path) -> dict[str, Any]:
    """Not a byte free in the state folder before the first cycle; then room again."""
    with disk.small_disk(tmp / "state"), World(tmp) as w:
        disk.fill(w.db.parent)
        once = w.once(timeout=60)
        daemon = w.run("run", timeout=60)
        disk.free(w.db.parent)
        clean = w.once()
        w.settle()
    return {"world": w, "once": once, "daemon": daemon, "clean": clean}


def closed_output(how: str) -> Callable[[Path], dict[str, Any]]:
    """``digest once`` whose stdout and stderr go to a pipe nobody reads, then a clean one."""

    def scenario(tmp: Path) -> dict[str, Any]:
        with World(tmp, readers=THIRTY) as w:
            cmd = [sys.executable, "-m", "digest", "once", "--config", str(w.cfg)]
            w.first_run = datetime.now(UTC)  # the checker's lookback counts from here
            t0 = time.monotonic()
            if how == "closed":  # the reader is gone before digest starts
                r, wr = os.pipe()
                os.close(r)
                proc = subprocess.Popen(
                    cmd, cwd=tmp, env=w.env(), stdout=wr, stderr=wr, start_new_session=True
                )
                os.close(wr)
            else:  # the reader goes away after 5 bytes
                code_file = tmp / "code"
                shell = (
                    f"{shlex.join(cmd)} 2>&1 | head -c 5; "
                    f"echo ${{PIPESTATUS[0]}} > {shlex.quote(str(code_file))}"
                )
                proc = subprocess.Popen(
                    ["bash", "-c", shell],
                    cwd=tmp,
                    env=w.env(),
                    stdout=subprocess.PIPE,
                    start_new_session=True,
                )
            try:
                out, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # digest too, not only the shell
                proc.communicate()
                raise AssertionError(f"digest once with its output {how} hung for 60 s") from None
            code = proc.returncode if how == "closed" else int(code_file.read_text())
            stdout = (out or b"").decode(errors="replace")
            first = Run(("once",), code, stdout, "", time.monotonic() - t0)
            accepted = len(w.smtp_script.accepted)
            clean = w.once()
            w.settle()
        return {"world": w, "first": first, "accepted": accepted, "clean": clean}

    return scenario


def outbox_twice(tmp: Path) -> dict[str, Any]:
    """Two ``once --outbox`` runs on one day, new papers in between: every paper in a file."""
    with World(tmp) as w:
        box = tmp / "outbox"
        first = w.once("--outbox", str(box))
        w.script.entries[:0] = w.script.fresh  # three new submissions arrive
        w.script.ever.extend(w.script.fresh)
        second = w.once("--outbox", str(box))
        w.settle()
    return {"world": w, "first": first, "second": second, "box": box}


# -- a daemon stuck on its SMTP peer: the watchdog goes quiet ---------------------------


class Notifications:
    """A unix datagram socket standing in for systemd's $NOTIFY_SOCKET; keeps arrival times."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.got: list[tuple[float, str]] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self._open = True
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while self._open:
            try:
                self.got.append((time.monotonic(), self.sock.recv(4096).decode()))
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._open = False
        self._thread.join(2)
        self.sock.close()

    def pings(self, start: float, end: float) -> int:
        return sum(1 for t, m in self.got if start <= t < end and "WATCHDOG=1" in m)


WATCHDOG_USEC = 1_000_000


def stuck_peer(tmp: Path) -> dict[str, Any]:
    """The server never answers DATA of message 2 (and digest's own timeout is a minute)."""
    with World(tmp, settings={"smtp": {"timeout": 60}}) as w:
        notes = Notifications(tmp / "notify.sock")
        w.env_extra.update(NOTIFY_SOCKET=str(notes.path), WATCHDOG_USEC=str(WATCHDOG_USEC))
        stuck = threading.Event()
        stuck_at: list[float] = []

        def on_event(ev: str, n: int) -> None:
            if (ev, n) == ("DATA", 2):
                stuck_at.append(time.monotonic())
                stuck.set()

        w.smtp_script.on_event = on_event
        w.smtp_script.rule = lambda ev, n, arg: "hang" if (ev, n) == ("DATA", 2) else None
        proc = w.daemon()
        assert stuck.wait(60), (tmp / "daemon.log").read_text()
        time.sleep(4 * WATCHDOG_USEC / 1e6)
        code, seconds = w.stop(proc)
        notes.close()
        w.smtp_script.on_event = None
        w.smtp_script.rule = None
        clean = w.once()
        w.settle()
    t = stuck_at[0]
    return {
        "world": w,
        "code": code,
        "seconds": seconds,
        "before": notes.pings(0, t),
        # a check that saw the last progress may still ping within one period
        "while_stuck": notes.pings(t + WATCHDOG_USEC / 1e6, t + 4 * WATCHDOG_USEC / 1e6),
        "clean": clean,
        "log": (tmp / "daemon.log").read_text(),
    }


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Future[Any]]:
    scenarios: dict[str, Callable[[Path], Any]] = {f"SIGTERM {k}": v for k, v in SIGTERM.items()}
    scenarios.update(contenders=contenders, racing=racing)
    scenarios.update(
        {
            "disk full before a cycle": disk_full_before_a_cycle,
            "output closed": closed_output("closed"),
            "output cut by head": closed_output("head"),
            "outbox twice": outbox_twice,
            "stuck peer": stuck_peer,
        }
    )
    return run_side_by_side(scenarios, tmp_path_factory)


def sigterm_outcome(outcomes: dict[str, Future[Any]], phase: str) -> dict[str, Any]:
    out: dict[str, Any] = outcomes[f"SIGTERM {phase}"].result(timeout=300)
    assert out["code"] == 0 and out["seconds"] < 10, out["log"]
    assert "Traceback" not in out["log"]
    assert out["clean"].code == 0, str(out["clean"])
    out["world"].check()
    return out


def test_sigterm_during_the_fetch_stops_within_10_s_sending_nothing(outcomes) -> None:
    out = sigterm_outcome(outcomes, "fetch")
    assert out["accepted_by_daemon"] == 0


def test_sigterm_during_the_arxiv_backoff_stops_within_10_s(outcomes) -> None:
    out = sigterm_outcome(outcomes, "back-off")
    assert out["accepted_by_daemon"] == 0


def test_sigterm_while_composing_stops_within_10_s_before_any_mail(outcomes) -> None:
    out = sigterm_outcome(outcomes, "compose")
    assert out["connections_before"] == 0  # the signal did land before the send phase
    assert out["accepted_by_daemon"] == 0


def test_sigterm_while_sending_finishes_the_message_in_flight_and_records_it(outcomes) -> None:
    out = sigterm_outcome(outcomes, "send")
    assert out["accepted_before"] == 1
    assert out["accepted_by_daemon"] == 2  # the one in flight went out, the rest wait
    # and check() proved the clean cycle did not send it again


def test_sigterm_when_idle_stops_within_10_s(outcomes) -> None:
    out = sigterm_outcome(outcomes, "idle")
    assert out["accepted_by_daemon"] == 4


def test_a_second_daemon_and_once_fail_with_75_naming_the_owner(outcomes) -> None:
    out = outcomes["contenders"].result(timeout=300)
    pid, a_code, a_log = out["a"]
    b_code, b_log = out["b"]
    once = out["once"]
    assert a_code == 0, a_log
    assert b_code == 75 and once.code == 75, b_log + str(once)
    for text in (b_log, once.stderr):
        assert f"is in use by digest (pid {pid})" in text and "Traceback" not in text
    assert out["final"].code == 0
    out["world"].check()  # A's cycle delivered everything once; nobody doubled it


def test_processes_racing_for_one_database_never_double_a_delivery(outcomes) -> None:
    out = outcomes["racing"].result(timeout=300)
    assert out["final"].code == 0
    assert out["once"].code in (0, 75), str(out["once"])
    if out["once"].code == 75:
        assert "is in use by digest" in out["once"].stderr
    assert all(code in (0, 75) for code in out["codes"]), out["logs"]
    out["world"].check()


# -- a broken database: exit 78 with its path, left byte for byte as it was ---------


def truncate(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


def garble(db: Path) -> None:
    db.write_bytes(b"\xff\xfe\x00garbage" + db.read_bytes()[:100])


def make_folder(db: Path) -> None:
    db.unlink()
    db.mkdir()


def no_access(db: Path) -> None:
    db.chmod(0)


BREAKAGES = {
    "truncated": truncate,
    "not UTF-8": garble,
    "a folder": make_folder,
    "permission denied": no_access,
}


@pytest.mark.parametrize("how", BREAKAGES, ids=list(BREAKAGES))
def test_a_broken_database_exits_78_naming_it_and_stays_untouched(tmp_path, how) -> None:
    with World(tmp_path) as w:
        assert w.once().code == 0
        BREAKAGES[how](w.db)
        if how == "permission denied":
            if not shutil.which("setpriv"):
                pytest.fail("setpriv (util-linux) is needed to drop root's file access")
            if os.geteuid() == 0:  # root reads anything: drop the capabilities that allow it
                w.prefix = [
                    "setpriv",
                    "--inh-caps=-all",
                    "--bounding-set=-dac_override,-dac_read_search",
                    "--",
                ]
        before = w.db.read_bytes() if w.db.is_file() else None
        mtime = w.db.stat().st_mtime_ns
        for args in (("once",), ("status",), ("run",)):
            run = w.run(*args, timeout=60)
            assert run.code == 78, str(run)
            assert str(w.db) in run.stderr and "Traceback" not in run.stderr
        assert w.db.stat().st_mtime_ns == mtime
        if before is not None:
            w.db.chmod(0o600)
            assert w.db.read_bytes() == before
        assert len(w.smtp_script.accepted) == 4  # only the first, good run sent anything


def test_the_checker_catches_a_duplicate_and_a_stranger(tmp_path) -> None:
    """The invariant checker itself can fail: a repeated and a non-matching delivery."""
    with World(tmp_path) as w:
        assert w.once().code == 0
        accepted = w.smtp_script.accepted
        accepted.append(accepted[0])  # the same digest twice
        with pytest.raises(AssertionError, match="repeated papers"):
            w.check()
        accepted.pop()
        w.readers[0]["keywords"] = ["metamorphic testing"]  # alice's papers now unwanted
        w.write_config()
        with pytest.raises(AssertionError, match=r"alice@example\.org: message 1 delivered"):
            w.check()


# -- a full disk, an output nobody reads -------------------------------------------------


def test_a_full_disk_before_a_cycle_exits_75_naming_the_path(outcomes) -> None:
    out = outcomes["disk full before a cycle"].result(timeout=300)
    w = out["world"]
    for run in (out["once"], out["daemon"]):
        assert run.code == 75, str(run)
        assert "No space left on device" in run.stderr, str(run)
        assert str(w.db.parent) in run.stderr and "Traceback" not in run.stderr, str(run)
        assert "unexpected error" not in run.stderr, str(run)
    assert out["clean"].code == 0, str(out["clean"])
    w.check()


@pytest.mark.parametrize("how", ["closed", "cut by head"])
def test_an_output_nobody_reads_ends_the_cycle_with_75_and_loses_nothing(outcomes, how) -> None:
    out = outcomes[f"output {how}"].result(timeout=300)
    first = out["first"]
    assert first.code == 75, str(first)
    assert first.seconds < 30, str(first)
    assert 1 <= out["accepted"] < 30  # it stopped early: the rest wait for the next cycle
    if how == "cut by head":
        assert len(first.stdout) == 5
    assert out["clean"].code == 0, str(out["clean"])
    out["world"].check()  # each accepted digest was recorded before its line was written


def test_a_second_outbox_run_on_one_day_keeps_every_file(outcomes) -> None:
    out = outcomes["outbox twice"].result(timeout=300)
    w, box = out["world"], out["box"]
    assert out["first"].code == 0 and out["second"].code == 0, str(out["second"])
    files = sorted(box.glob("*.eml"))
    assert len(files) == 4 + 3, [f.name for f in files]  # 3 readers got a fresh paper
    written = []
    for n, f in enumerate(files, 1):
        raw = f.read_bytes()
        msg = Accepted(n, "", [], raw).message
        written.append(Accepted(n, "", [str(msg["To"].addresses[0].addr_spec)], raw))
    # every paper recorded as delivered is in a file, and in one file only
    want = w.expected()
    invariants.check_deliveries(written, want)
    assert invariants.status_counts(w.settled.stdout) == {r: (len(i), 0) for r, i in want.items()}


def test_a_daemon_stuck_on_its_smtp_peer_stops_feeding_the_watchdog(outcomes) -> None:
    out = outcomes["stuck peer"].result(timeout=300)
    assert out["before"] >= 1, out["log"]  # fed while the cycle moved
    assert out["while_stuck"] == 0, out["log"]  # so systemd would restart it
    assert out["code"] == 0 and out["seconds"] < 10, out["log"]
    assert out["clean"].code == 0, str(out["clean"])
    out["world"].check()
