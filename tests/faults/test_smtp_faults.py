"""The SMTP server refuses, defers, drops, locks out, vanishes: nothing is lost or doubled."""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pytest

from tests.faults import disk
from tests.faults.conftest import run_side_by_side
from tests.faults.world import World
from tests.support.network import free_port

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

MARKER = "pw-MARKER-7f3a9c"  # a password we can search for


def refuse_bob(tmp: Path) -> World:
    with World(tmp) as w:
        w.smtp_script.rule = lambda ev, n, arg: (
            "550 5.1.1 No such user" if ev == "RCPT" and "bob@" in arg else None
        )
        w.once()
        w.smtp_script.rule = None
        w.once()
        w.once()
    return w.settle()


def greylist_bob(tmp: Path) -> World:
    with World(tmp) as w:
        w.smtp_script.rule = lambda ev, n, arg: (
            "450 4.2.0 Greylisted, come back later" if ev == "RCPT" and "bob@" in arg else None
        )
        w.once()
        w.smtp_script.rule = None
        w.once()
    return w.settle()


def closing_after_two(tmp: Path) -> World:
    with World(tmp) as w:
        w.smtp_script.rule = lambda ev, n, arg: (
            "421 4.3.2 Too many messages, closing" if ev == "DATA" and n > 2 else None
        )
        w.once()
        w.smtp_script.rule = None
        w.once()
    return w.settle()


def drop_mid_data(tmp: Path) -> World:
    with World(tmp) as w:
        dropped: list[int] = []

        def rule(ev: str, n: int, arg: str) -> str | None:
            if ev == "DATA" and n == 2 and not dropped:
                dropped.append(n)
                return "mid-data"
            return None

        w.smtp_script.rule = rule
        w.once()
        w.once()
    return w.settle()


def starttls_fails(how: str) -> Callable[[Path], World]:
    def scenario(tmp: Path) -> World:
        cert, key = CERT
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert), str(key))
        settings = {"smtp": {"security": "starttls", "ca_file": str(cert)}}
        with World(tmp, smtp_tls=ctx, settings=settings) as w:
            w.env_extra["DIGEST_SMTP_HOST"] = "localhost"
            w.smtp_script.rule = lambda ev, n, arg: how if ev == "STARTTLS" else None
            w.once()
            w.smtp_script.rule = None
            w.once()
        return w.settle()

    return scenario


def wrong_password(tmp: Path) -> World:
    with World(tmp) as w:
        w.smtp_script.logins = {"digest": "the-right-one"}
        w.env_extra.update(DIGEST_SMTP_USERNAME="digest", DIGEST_SMTP_PASSWORD=MARKER)
        w.once()
        w.once("-v")
        w.env_extra["DIGEST_SMTP_PASSWORD"] = "the-right-one"
        w.once()
    return w.settle()


def server_down(tmp: Path) -> World:
    with World(tmp) as w:
        w.env_extra["DIGEST_SMTP_PORT"] = str(free_port())
        w.once()
        del w.env_extra["DIGEST_SMTP_PORT"]
        w.once()
    return w.settle()


def quit_hangs(tmp: Path) -> World:
    with World(tmp) as w:
        w.smtp_script.rule = lambda ev, n, arg: "hang" if ev == "QUIT" else None
        w.once()
        w.smtp_script.rule = None
        w.once()
    return w.settle()


MANY = [
    {"email": f"r{i:02d}@example.org", "keywords": ["testing", "proton", "electron"]}
    for i in range(30)
]


def disk_full_mid_send(tmp: Path) -> World:
    """The state folder runs out of space while the third message is being accepted."""
    with disk.small_disk(tmp / "state"), World(tmp, readers=MANY) as w:

        def on_event(ev: str, n: int) -> None:
            if (ev, n) == ("EOD", 3):  # before the server answers "250"
                disk.fill(w.db.parent)

        w.smtp_script.on_event = on_event
        w.once(timeout=60)
        w.smtp_script.on_event = None
        disk.free(w.db.parent)
        w.once()
        w.settle()
    return w


CERT: tuple[Path, Path] = (Path(), Path())
SCENARIOS: dict[str, Callable[[Path], World]] = {
    "550 for one recipient": refuse_bob,
    "450 for one recipient": greylist_bob,
    "421 after two messages": closing_after_two,
    "connection dropped mid-DATA": drop_mid_data,
    "STARTTLS refused": starttls_fails("454 4.7.0 TLS not available due to temporary reason"),
    "STARTTLS handshake aborted": starttls_fails("tls-abort"),
    "wrong password": wrong_password,
    "server down for a whole cycle": server_down,
    "QUIT never answered": quit_hangs,
    "disk full mid-send": disk_full_mid_send,
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, certificate) -> dict[str, Future[World]]:
    global CERT
    CERT = certificate
    return run_side_by_side(SCENARIOS, tmp_path_factory)


def world(outcomes: dict[str, Future[World]], name: str) -> World:
    return outcomes[name].result(timeout=180)


def rcpts(w: World) -> list[str]:
    return [a.rcpt_tos[0] for a in w.smtp_script.accepted]


def test_550_for_one_recipient_leaves_only_them_pending_until_accepted(outcomes) -> None:
    w = world(outcomes, "550 for one recipient")
    assert [r.code for r in w.runs[:3]] == [75, 0, 0]
    assert "bob@example.org: refused by the server" in w.runs[0].stderr
    assert rcpts(w).count("bob@example.org") == 1 and rcpts(w)[-1] == "bob@example.org"
    w.check()


def test_450_for_one_recipient_is_retried_then_left_pending(outcomes) -> None:
    w = world(outcomes, "450 for one recipient")
    assert [r.code for r in w.runs[:2]] == [75, 0]
    assert "bob@example.org: deferred" in w.runs[0].stderr
    w.check()


def test_421_after_n_messages_defers_the_rest_to_the_next_cycle(outcomes) -> None:
    w = world(outcomes, "421 after two messages")
    assert [r.code for r in w.runs[:2]] == [75, 0]
    assert len([a for a in w.smtp_script.accepted if a.number <= 2]) == 2
    w.check()


def test_a_connection_dropped_mid_data_is_retried_within_the_cycle(outcomes) -> None:
    w = world(outcomes, "connection dropped mid-DATA")
    assert [r.code for r in w.runs[:2]] == [0, 0]
    # the first, then one after the drop; the second run has nothing to send
    assert w.smtp_script.connections == 2
    w.check()


@pytest.mark.parametrize("name", ["STARTTLS refused", "STARTTLS handshake aborted"])
def test_a_starttls_failure_sends_nothing_in_clear_and_defers_everything(outcomes, name) -> None:
    w = world(outcomes, name)
    first, second = w.runs[:2]
    assert first.code == 75 and "Traceback" not in first.stderr, str(first)
    assert second.code == 0, str(second)
    assert len(w.smtp_script.accepted) == 4  # all from the second run
    assert ("MAIL", 0) not in w.smtp_script.events  # no MAIL ever went out before TLS
    w.check()


def test_a_wrong_password_names_the_setting_and_tries_once(outcomes) -> None:
    w = world(outcomes, "wrong password")
    first, verbose, fixed = w.runs[:3]
    assert first.code == 75 and verbose.code == 75 and fixed.code == 0, str(first)
    for run in (first, verbose):
        assert "refused the login for 'digest'" in run.stderr
        assert "DIGEST_SMTP_PASSWORD" in run.stderr  # where to fix it
        assert MARKER not in run.stderr + run.stdout
    assert "Traceback" not in first.stderr
    # one login per cycle (aiosmtplib tries each of the server's 2 mechanisms once), not
    # one per reader and retry (that storm would be 4 readers x 3 attempts); then the good one
    assert w.smtp_script.auth_attempts == 2 + 2 + 1
    w.check()


def test_the_server_down_for_a_whole_cycle_keeps_everything_pending(outcomes) -> None:
    w = world(outcomes, "server down for a whole cycle")
    first, second = w.runs[:2]
    assert first.code == 75 and "cannot connect to 127.0.0.1:" in first.stderr, str(first)
    assert first.seconds < 30  # the rest are deferred at once, not knocked on one by one
    assert second.code == 0
    w.check()


def test_a_server_that_accepts_then_hangs_on_quit_loses_and_repeats_nothing(outcomes) -> None:
    w = world(outcomes, "QUIT never answered")
    first, second = w.runs[:2]
    assert first.code == 0, str(first)
    assert first.seconds < 30
    assert second.code == 0 and len(w.smtp_script.accepted) == 4
    w.check()


UNRECORDED = re.compile(
    r"(\S+@example\.org): the SMTP server accepted a digest of (\d+) papers?, "
    r"but it could not be recorded"
)


def test_a_disk_full_mid_send_ends_the_cycle_with_75_and_names_what_will_repeat(
    outcomes,
) -> None:
    w = world(outcomes, "disk full mid-send")
    full, after = w.runs[:2]
    assert full.code == 75, str(full)
    assert full.seconds < 30, str(full)  # it ended; it did not wait for anything
    assert "No space left on device" in full.stderr and str(w.db.parent) in full.stderr
    assert "Traceback" not in full.stderr
    assert after.code == 0, str(after)
    # what the server took but the database could not keep is named, reader and papers ...
    named = {m[1]: int(m[2]) for m in UNRECORDED.finditer(full.stderr)}
    assert named, full.stderr
    verdict = w.check(max_repeated=len(named))
    # ... and is exactly what the next cycle sent again
    repeated = {a.rcpt_tos[0] for a in w.smtp_script.accepted if a.number in verdict.repeated}
    assert repeated == set(named)
    for reader, papers in named.items():
        assert all(len(ids) == papers for ids in w.messages_to(reader)), reader
