"""The daemon and its IMAP inbox: replies read before the catch-up, polls that never hold a cycle.

The inbox is a real Dovecot where the replies matter, and a scripted peer
(``tests.support.imap_fake``) where the server misbehaves.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.config import loading as config_mod
from digest.cycle.timing import previous_run
from digest.models import WEEKDAYS
from digest.store.store import Store
from tests.support.arxiv_server import ArxivServer
from tests.support.clock import FakeTime
from tests.support.configs import config_dict
from tests.support.daemon import NotifySocket, run_in_process, start
from tests.support.dovecot import Dovecot
from tests.support.imap_fake import FakeImap, Peer, serve_until
from tests.support.mail_clients import gmail
from tests.support.reply_site import (
    ALICE,
    BOB,
    both_keywords,
    imap_site,
    list_unsubscribe,
)
from tests.support.smtp_server import SmtpServer
from tests.support.waiting import wait_for

# the daemon with a real Dovecot or a scripted IMAP peer, in real time
pytestmark = pytest.mark.servers


@pytest.mark.servers
def test_a_reader_who_unsubscribed_overnight_gets_no_catch_up_digest(
    arxiv: ArxivServer, smtp: SmtpServer, write_config, dovecot: Dovecot, monkeypatch
) -> None:
    fake = FakeTime(datetime.now(UTC))
    # the slot was an hour ago, while the daemon was down: it is caught up at start
    missed = fake.now - timedelta(hours=1)
    site, folder = imap_site(
        arxiv, smtp, write_config, dovecot, send_at=f"{missed:%H:%M:%S}", days=list(WEEKDAYS)
    )
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", dovecot.password)
    first = site.cycle()  # yesterday's digest, by hand
    dovecot.append(folder, gmail(list_unsubscribe(first[ALICE]), ALICE))  # overnight
    both_keywords(site)  # and something new for both
    sent = len(smtp.received)

    def caught_up() -> bool:
        with Store.open(site.db, readonly=True) as store:
            return store.last_slot() is not None

    env = {"DIGEST_IMAP_PASSWORD": dovecot.password}
    assert run_in_process(site.cfg, fake, caught_up, timedelta(hours=1), env) == 0
    assert caught_up()
    # digests come from the list's address; the unsubscribe's acknowledgement from <>
    digests = [r.rcpt_tos for r in smtp.received[sent:] if r.mail_from != "<>"]
    assert digests == [[BOB]]
    assert [r.rcpt_tos for r in smtp.received[sent:] if r.mail_from == "<>"] == [[ALICE]]
    assert dovecot.contents(folder) == []


def dribble_at_login(peer: Peer) -> None:
    if serve_until(peer, lambda rest: rest.upper().startswith(b"LOGIN")):
        peer.dribble(1.0)


def inbox_at(port: int) -> dict[str, object]:
    return {"host": "127.0.0.1", "port": port, "security": "none", "username": "u", "timeout": 30}


def test_a_poll_that_never_ends_does_not_hold_the_cycle_past_its_slot(
    arxiv: ArxivServer, smtp: SmtpServer, write_config
) -> None:
    fake = FakeTime(datetime.now(UTC).replace(microsecond=0))
    slot = fake.now + timedelta(seconds=6)
    with FakeImap(dribble_at_login) as imap:
        cfg = write_config(
            config_dict(
                arxiv.url,
                smtp.port,
                send_at=f"{slot:%H:%M:%S}",
                days=list(WEEKDAYS),
                inbox=inbox_at(imap.port),
            )
        )
        # the previous slot was served: the next cycle is the one 6 s away
        settings = config_mod.load(cfg, {}).settings
        with Store.open(cfg.parent / "digest.json") as store:
            store.set_last_slot(previous_run(fake.now, settings))

        # should the poll hang for good, closing the server after 30 s releases it
        release = threading.Timer(30, imap.closing.set)
        release.start()
        began = time.monotonic()
        try:
            code = run_in_process(
                cfg,
                fake,
                lambda: len(smtp.received) >= 2,
                timedelta(hours=1),
                {"DIGEST_IMAP_PASSWORD": "p"},
            )
        finally:
            release.cancel()
        took = time.monotonic() - began
        logged_in = any(c.upper().split(b" ")[1:2] == [b"LOGIN"] for c in imap.peers[0].commands)
    assert code == 0
    assert logged_in  # the poll did start, and hung
    assert took < 12  # the poll gave way when the slot came (6 s on the daemon's clock)
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == [ALICE, BOB]


def test_sigterm_during_a_hung_poll_stops_the_daemon_within_10_seconds(
    arxiv: ArxivServer, smtp: SmtpServer, write_config, tmp_path: Path, monkeypatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "imap-password").write_text("p")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        with FakeImap(dribble_at_login) as imap:
            data = config_dict(arxiv.url, smtp.port, days=list(WEEKDAYS), inbox=inbox_at(imap.port))
            cfg = write_config(data)
            log = tmp_path / "daemon.log"
            proc = start(cfg, notify, log)
            try:
                assert wait_for(lambda: bool(imap.peers) and len(imap.peers[0].commands) >= 2)
                time.sleep(1.5)  # well into the dribbled LOGIN
                proc.send_signal(signal.SIGTERM)
                asked = time.monotonic()
                code = proc.wait(timeout=30)
                took = time.monotonic() - asked
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    finally:
        notify.close()
    assert code == 0, log.read_text()
    assert took < 10, log.read_text()
