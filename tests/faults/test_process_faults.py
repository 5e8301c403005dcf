"""The operator and the machine: SIGTERM in every phase, a broken database, two processes at once.

Not covered here: a wrong clock (test_clock_faults.py) and a full disk (no
ENOSPC injection without a mount; see docs/reliability.md).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import run_side_by_side
from tests.faults.world import World, wait_for

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


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Future[Any]]:
    scenarios: dict[str, Callable[[Path], Any]] = {f"SIGTERM {k}": v for k, v in SIGTERM.items()}
    scenarios.update(contenders=contenders, racing=racing)
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
