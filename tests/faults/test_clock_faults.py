"""A wrong clock, and a schedule edited in the middle of a day: the real CLI under libfaketime.

libfaketime moves the clock of the ``digest`` process only; the loopback
arXiv and SMTP servers keep the real one. arXiv's ``Date`` header is the
world's time: a scenario that moves the whole world (the schedule edits)
moves the fault arXiv's ``Date`` by the same amount (``date_offset``) and
dates its papers from the moved time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import run_side_by_side
from tests.faults.world import World, corpus, fresh_entries
from tests.support.arxiv_server import make_entry
from tests.support.programs import marks
from tests.support.waiting import wait_for

pytestmark = marks("faketime")


# faketime(1)'s own setting: the loader expands $LIB to its library folder. The library
# is preloaded directly rather than through the faketime program, which forks and
# waits: a signal meant for the daemon would reach only the wrapper.
LIBFAKETIME = "/usr/$LIB/faketime/libfaketime.so.1"


def moved(w: World, spec: str | None) -> None:
    """Run digest with its clock moved by ``spec`` (``+7d``, ``@2026-12-14 06:00:05``), or not."""
    for name in ("LD_PRELOAD", "FAKETIME", "TZ"):
        w.env_extra.pop(name, None)
    if spec is not None:
        # TZ: faketime reads "@YYYY-MM-DD HH:MM:SS" in local time
        w.env_extra.update(LD_PRELOAD=LIBFAKETIME, FAKETIME=spec, TZ="UTC")


def at(w: World, when: datetime) -> None:
    """The whole world at ``when``: digest's clock, and arXiv's Date with it."""
    w.script.date_offset = when - datetime.now(UTC)
    moved(w, f"@{when:%Y-%m-%d %H:%M:%S}")


def sent(w: World) -> int:
    return len(w.smtp_script.accepted)


# -- (a) a cycle run once with the clock 200 days ahead -------------------------------


def ahead_200_days(tmp: Path) -> dict[str, Any]:
    with World(tmp) as w:
        first = w.once()
        moved(w, "+200d")
        before, real = sent(w), datetime.now(UTC)
        wrong = w.once()
        during = sent(w) - before
        moved(w, None)
        again = w.once()
        w.settle()
    return {
        "world": w,
        "first": first,
        "wrong": wrong,
        "again": again,
        "during": during,
        "real": real,
    }


# -- (b) a first cycle with the clock 7 days ahead ------------------------------------


def first_cycle_7_days_ahead(tmp: Path) -> dict[str, Any]:
    with World(tmp) as w:
        moved(w, "+7d")
        real = datetime.now(UTC)
        wrong = w.once()
        during = sent(w)
        moved(w, None)
        status = w.status()
        right = w.once()
        w.settle()
    return {
        "world": w,
        "wrong": wrong,
        "during": during,
        "status": status,
        "right": right,
        "real": real,
    }


# -- records made under a clock that ran ahead, read under a right one -----------------


def records_from_a_clock_ahead(tmp: Path) -> dict[str, Any]:
    """arXiv's answers carry no Date while the clock is 7 days ahead: nothing can tell."""
    with World(tmp) as w:
        w.script.send_date = False
        moved(w, "+7d")
        wrong = w.once()
        w.script.send_date = True
        moved(w, None)
        right = w.once()
        w.settle()
    return {"world": w, "wrong": wrong, "right": right}


# -- (c) a daemon that ran a week ahead, then corrected ---------------------------------


def daemon_corrected(tmp: Path) -> dict[str, Any]:
    with World(tmp) as w:
        w.once()  # a right clock: every reader has their papers
        w.script.send_date = False  # nothing tells the daemon its clock is wrong
        moved(w, "+7d")
        log = tmp / "ahead.log"
        proc = w.daemon(log)
        assert wait_for(lambda: "cycle ok" in log.read_text(), 60), log.read_text()
        w.stop(proc)
        # the clock is set right, arXiv's answers carry their Date, three new papers
        w.script.send_date = True
        moved(w, None)
        fresh = fresh_entries()
        w.script.entries[:0] = fresh
        w.script.ever.extend(fresh)
        log = tmp / "right.log"
        proc = w.daemon(log)
        delivered = wait_for(lambda: sent(w) == 7, 30)
        w.stop(proc)
        w.settle()
    return {"world": w, "delivered": delivered, "log": log.read_text()}


def daemon_ahead(tmp: Path) -> dict[str, Any]:
    """The daemon with its clock 200 days ahead: it refuses, retries later, keeps running."""
    with World(tmp) as w:
        w.once()
        moved(w, "+200d")
        log = tmp / "ahead.log"
        proc = w.daemon(log)
        refused = wait_for(lambda: "cycle failed" in log.read_text(), 60)
        alive = proc.poll() is None
        code, _ = w.stop(proc)
        moved(w, None)
        again = w.once()
        w.settle()
    return {
        "world": w,
        "refused": refused,
        "alive": alive,
        "code": code,
        "again": again,
        "log": log.read_text(),
    }


# -- schedule edits in the middle of a day ------------------------------------------------

# Monday 2026-12-14, 07:00:05 in Berlin (CET, UTC+1)
MONDAY = datetime(2026, 12, 14, 6, 0, 5, tzinfo=UTC)


def daemon_at(w: World, when: datetime, name: str, *, cycle: bool) -> str:
    """``digest run`` started at ``when``; stopped after its cycle, or 3 s after it started."""
    at(w, when)
    log = w.tmp / f"{name}.log"
    proc = w.daemon(log)
    assert wait_for(lambda: "daemon started" in log.read_text(), 60), log.read_text()
    if cycle:
        assert wait_for(lambda: "cycle ok" in log.read_text(), 60), log.read_text()
    else:
        time.sleep(3)  # a cycle owed starts at once: its fetch would be under way by now
    w.stop(proc)
    return log.read_text()


def schedule_edits(tmp: Path) -> dict[str, Any]:
    settings = {"timezone": "Europe/Berlin", "send_at": "07:00", "days": ["mon", "tue", "wed"]}
    with World(tmp, settings=settings) as w:
        w.write_config()
        _, entries = corpus(MONDAY)
        w.script.entries[:] = entries
        w.script.ever[:] = entries
        w.first_run = MONDAY
        out: dict[str, Any] = {"world": w}
        out["monday"] = daemon_at(w, MONDAY, "monday-0700-berlin", cycle=True)
        out["after monday"] = (sent(w), w.arxiv.requests)
        # 09:00 instead of 07:00, and three new papers: they are Tuesday's
        fresh = fresh_entries(MONDAY + timedelta(hours=2))
        w.script.entries[:0] = fresh
        w.script.ever.extend(fresh)
        w.settings["send_at"] = "09:00"
        w.write_config()
        out["send_at later"] = daemon_at(
            w, MONDAY + timedelta(hours=2), "monday-0900-berlin", cycle=False
        )
        out["after send_at"] = (sent(w), w.arxiv.requests)
        # London is an hour behind Berlin: 09:00 there is 10:00 in Berlin, still Monday
        w.settings["timezone"] = "Europe/London"
        w.write_config()
        out["timezone"] = daemon_at(
            w, MONDAY + timedelta(hours=3), "monday-0900-london", cycle=False
        )
        out["after timezone"] = (sent(w), w.arxiv.requests)
        tuesday = MONDAY + timedelta(days=1, hours=3)  # 09:00:05 in London
        out["tuesday"] = daemon_at(w, tuesday, "tuesday-0900-london", cycle=True)
        out["after tuesday"] = sent(w)
        # moved earlier: Wednesday's 06:00 is owed, not skipped
        w.settings["send_at"] = "06:00"
        w.write_config()
        wednesday = MONDAY + timedelta(days=2)  # 06:00:05 in London
        out["wednesday"] = daemon_at(w, wednesday, "wednesday-0600-london", cycle=True)
        at(w, wednesday + timedelta(minutes=1))
        w.settle()
    return out


# -- a reader switched to weekly on a day after their weekday --------------------------

FRIDAY = datetime(2026, 12, 11, 7, 5, tzinfo=UTC)


def weekly_switch(tmp: Path) -> dict[str, Any]:
    wendy = {"email": "wendy@example.org", "keywords": ["proton"]}
    settings = {"timezone": "UTC", "send_at": "07:00"}
    with World(tmp, readers=[wendy], settings=settings) as w:
        w.write_config()
        w.script.entries[:] = []
        w.script.ever[:] = []
        days = {
            "fri": FRIDAY,
            "mon": FRIDAY + timedelta(days=3),
            "tue": FRIDAY + timedelta(days=4),
            "wed": FRIDAY + timedelta(days=5),
            "thu": FRIDAY + timedelta(days=6),
            "next mon": FRIDAY + timedelta(days=10),
        }
        mail: dict[str, list[set[str]]] = {}
        codes: dict[str, int | None] = {}
        for n, (day, when) in enumerate(days.items()):
            entry = make_entry(
                f"2612.{n:05d}",
                f"A proton study {n}",
                "The proton.",
                published=when - timedelta(hours=1),
            )
            w.script.entries.insert(0, entry)
            w.script.ever.append(entry)
            if day == "wed":  # she asked for weekly, on Mondays, after Tuesday's digest
                w.readers[0].update(frequency="weekly", weekday="mon")
                w.write_config()
            before = len(w.messages_to("wendy@example.org"))
            at(w, when)
            codes[day] = w.once().code
            mail[day] = w.messages_to("wendy@example.org")[before:]
    return {"world": w, "mail": mail, "codes": codes}


SCENARIOS: dict[str, Callable[[Path], Any]] = {
    "200 days ahead": ahead_200_days,
    "first cycle 7 days ahead": first_cycle_7_days_ahead,
    "records from a clock ahead": records_from_a_clock_ahead,
    "daemon corrected": daemon_corrected,
    "daemon ahead": daemon_ahead,
    "schedule edits": schedule_edits,
    "weekly switch": weekly_switch,
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future[Any]]:
    return run_side_by_side(SCENARIOS, tmp_path_factory)


def outcome(outcomes: dict[str, Future[Any]], name: str) -> dict[str, Any]:
    result: dict[str, Any] = outcomes[name].result(timeout=600)
    return result


def day(when: datetime) -> str:
    return f"{when:%Y-%m-%d}"


def test_a_cycle_200_days_ahead_refuses_and_the_right_clock_then_resends_nothing(
    outcomes,
) -> None:
    out = outcome(outcomes, "200 days ahead")
    out["world"].check()  # every paper exactly once: no delivery record was pruned
    wrong = out["wrong"]
    assert wrong.code == 75 and out["during"] == 0, str(wrong)
    # the two times, the verdict and what to do, in a line for the operator
    assert day(out["real"] + timedelta(days=200)) in wrong.stderr, wrong.stderr
    assert day(out["real"]) in wrong.stderr and "ahead" in wrong.stderr
    assert "recorded nothing" in wrong.stderr and "Traceback" not in wrong.stderr
    assert out["again"].code == 0


def test_a_first_cycle_7_days_ahead_records_no_starting_point_and_nothing_is_lost(
    outcomes,
) -> None:
    out = outcome(outcomes, "first cycle 7 days ahead")
    out["world"].check()  # all delivered by the first cycle on a right clock; 0 pending
    wrong = out["wrong"]
    assert wrong.code == 75 and out["during"] == 0, str(wrong)
    assert day(out["real"] + timedelta(days=7)) in wrong.stderr and "7 days" in wrong.stderr
    # nothing was recorded: no cycle, no starting points
    assert "no cycle has run yet" in out["status"].stdout or (
        "none recorded" in out["status"].stdout
    ), out["status"].stdout


def test_records_made_under_a_clock_ahead_are_named_and_read_as_unknown(outcomes) -> None:
    out = outcome(outcomes, "records from a clock ahead")
    assert out["wrong"].code == 0  # arXiv gave no time: nothing could tell
    out["world"].check()  # the right clock's cycle delivers everything, 0 pending
    err = out["right"].stderr
    assert re.search(r"WARNING .*recorded under a clock that ran ahead", err), err
    assert "the last cycle" in err and "starting points" in err


def test_a_daemon_corrected_after_a_week_ahead_serves_at_once(outcomes) -> None:
    out = outcome(outcomes, "daemon corrected")
    assert out["delivered"], out["log"]  # not blocked for a week by its future slot
    out["world"].check()
    assert "the last completed slot" in out["log"], out["log"]


def test_a_daemon_200_days_ahead_refuses_each_cycle_and_keeps_running(outcomes) -> None:
    out = outcome(outcomes, "daemon ahead")
    assert out["refused"] and out["alive"] and out["code"] == 0, out["log"]
    assert "200 days ahead of arXiv's" in out["log"]
    assert re.search(r"retrying at \d\d:\d\d UTC", out["log"]), out["log"]
    out["world"].check()  # the right clock's cycle afterwards sent nothing again


def test_moving_send_at_or_the_timezone_never_doubles_a_day_nor_skips_one(outcomes) -> None:
    out = outcome(outcomes, "schedule edits")
    after_monday = out["after monday"]
    assert after_monday[0] == 4
    # Monday was served at 07:00 Berlin: 09:00 Berlin, then 09:00 London, are the same day
    assert out["after send_at"] == after_monday, out["send_at later"]
    assert out["after timezone"] == after_monday, out["timezone"]
    assert "next cycle 2026-12-15 09:00 Europe/London" in out["timezone"]
    # Tuesday brings the three new papers once; Wednesday at the earlier 06:00 is not skipped
    assert out["after tuesday"] == 7
    assert "cycle ok" in out["wednesday"]
    out["world"].check()


def test_a_reader_switched_to_weekly_gets_the_next_weekday_not_a_missed_week(outcomes) -> None:
    out = outcome(outcomes, "weekly switch")
    assert set(out["codes"].values()) == {0}, out["codes"]
    ids = {d: [sorted(m) for m in msgs] for d, msgs in out["mail"].items()}
    assert ids == {
        "fri": [["2612.00000"]],
        "mon": [["2612.00001"]],
        "tue": [["2612.00002"]],
        "wed": [],  # the change takes effect from her next Monday
        "thu": [],
        "next mon": [["2612.00003", "2612.00004", "2612.00005"]],
    }
