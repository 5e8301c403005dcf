"""``digest ingest --imap``: one poll of the inbox, for installations running cycles by timer."""

from __future__ import annotations

import pytest

from digest.cli.entry import main
from tests.support.arxiv_server import ArxivServer
from tests.support.configs import config_dict
from tests.support.dovecot import Dovecot
from tests.support.mail_clients import gmail
from tests.support.reply_site import (
    ALICE,
    BOB,
    both_keywords,
    imap_site,
    list_unsubscribe,
)
from tests.support.smtp_server import SmtpServer


@pytest.mark.servers
def test_ingest_imap_acts_on_the_inbox_once_before_a_timer_cycle(
    arxiv: ArxivServer, smtp: SmtpServer, write_config, dovecot: Dovecot, monkeypatch
) -> None:
    site, folder = imap_site(arxiv, smtp, write_config, dovecot)
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", dovecot.password)
    first = site.cycle()
    dovecot.append(folder, gmail(list_unsubscribe(first[ALICE]), ALICE))
    assert main(["ingest", "--imap", "--config", str(site.cfg)]) == 0
    assert "unsubscribed_at" in site.state(ALICE)
    assert dovecot.contents(folder) == [] and len(dovecot.contents(f"{folder}-done")) == 1
    both_keywords(site)
    assert sorted(site.cycle()) == [BOB]


def test_ingest_imap_without_an_inbox_is_a_configuration_error(
    arxiv: ArxivServer, write_config, capsys
) -> None:
    cfg = write_config(config_dict(arxiv.url))
    assert main(["ingest", "--imap", "--config", str(cfg)]) == 78
    assert "settings.inbox is not set: there is no inbox to poll" in capsys.readouterr().err


def test_ingest_imap_with_an_unreachable_inbox_exits_75(
    arxiv: ArxivServer, write_config, monkeypatch, capsys
) -> None:
    inbox = {"host": "127.0.0.1", "port": 1, "security": "none", "username": "u", "timeout": 2}
    cfg = write_config(config_dict(arxiv.url, inbox=inbox))
    monkeypatch.setenv("DIGEST_IMAP_PASSWORD", "p")
    assert main(["ingest", "--imap", "--config", str(cfg)]) == 75
    assert "cannot connect to 127.0.0.1:1" in capsys.readouterr().err
