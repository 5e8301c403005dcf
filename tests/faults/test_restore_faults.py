"""The database breaks after a day's cycles; the operator does what digest's message says.

The backup is taken when the database is opened (once a day); the day's
later cycles deliver after it. Following the advice must not send those
deliveries again, or must say beforehand, reader by reader, what it will send.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import run_side_by_side
from tests.faults.invariants import ids_in
from tests.faults.world import World, fresh_entries


def follow(w: World, advice: str) -> Any:
    """Do what the error message says: run the command it names, or the copy."""
    if "digest restore" in advice:
        return w.run("restore", timeout=120)
    copy = re.search(r"cp (\S+) (\S+)", advice)
    assert copy, f"no advice to follow in: {advice}"
    shutil.copyfile(copy[1], copy[2])
    return None


def broken_after_the_days_second_cycle(forget_since_backup: bool) -> Callable[[Path], Any]:
    def scenario(tmp: Path) -> dict[str, Any]:
        with World(tmp) as w:
            w.once()  # the first cycle: every reader has the recorded papers
            fresh = fresh_entries()
            w.script.entries[:0] = fresh
            w.script.ever.extend(fresh)
            w.once()  # the backup is taken as it opens; it delivers the three new papers
            w.db.write_bytes(b"\xff\xfe\x00garbage" + w.db.read_bytes()[:100])
            broken = w.once()
            if forget_since_backup:  # a backup taken before digest kept what followed it
                for extra in tmp.glob("state/*.bak.journal"):
                    extra.unlink()
            before = len(w.smtp_script.accepted)
            restored = follow(w, broken.stderr)
            after = w.once()
            again = w.smtp_script.accepted[before:]
            w.settle()
        return {
            "world": w,
            "broken": broken,
            "restored": restored,
            "after": after,
            "again": again,
        }

    return scenario


SCENARIOS: dict[str, Callable[[Path], Any]] = {
    "replayed": broken_after_the_days_second_cycle(forget_since_backup=False),
    "forgotten": broken_after_the_days_second_cycle(forget_since_backup=True),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future[Any]]:
    return run_side_by_side(SCENARIOS, tmp_path_factory)


def test_following_the_advice_after_a_broken_database_sends_nothing_again(outcomes) -> None:
    out = outcomes["replayed"].result(timeout=300)
    assert out["broken"].code == 78, str(out["broken"])
    out["world"].check()  # nothing delivered twice, nothing lost
    restored = out["restored"]
    assert restored is not None and restored.code == 0, str(restored)
    assert re.search(r"the backup taken \d{4}-\d\d-\d\d \d\d:\d\d", restored.stdout)
    assert "nothing will be sent again" in restored.stdout, restored.stdout
    assert out["after"].code == 0


def test_a_restore_that_cannot_replay_names_what_the_next_cycle_sends_again(outcomes) -> None:
    out = outcomes["forgotten"].result(timeout=300)
    restored = out["restored"]
    assert restored is not None and restored.code == 0, str(restored)
    text = restored.stdout
    assert "will be sent again" in text and "nothing will be sent again" not in text, text
    # the readers and counts it named are what the next cycle sent
    named = {m[1]: int(m[2]) for m in re.finditer(r"^ +(\S+@\S+): (\d+) papers?", text, re.M)}
    sent = {a.rcpt_tos[0]: len(ids_in(a)) for a in out["again"]}  # one message each
    assert named and named == sent, (text, sent)
