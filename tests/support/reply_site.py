"""A digest site for reply tests: loopback arXiv and SMTP, real cycles, the links digests carry."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from digest.cli.entry import main
from digest.models import ReaderState
from digest.store.format import reader_state_to_doc
from digest.store.store import Store
from tests.support.arxiv_server import ArxivServer, make_entry
from tests.support.configs import config_dict
from tests.support.dovecot import Dovecot
from tests.support.paths import ROOT
from tests.support.smtp_server import SmtpServer

ALICE, BOB = "alice@example.org", "bob@example.org"


class Site:
    """One installation: its config, its arXiv and SMTP servers, and what it mailed."""

    def __init__(self, cfg: Path, arxiv: ArxivServer, smtp: SmtpServer) -> None:
        self.cfg = cfg
        self.arxiv = arxiv
        self.smtp = smtp
        self.db = cfg.parent / "digest.json"
        self._papers = 0

    def cycle(self) -> dict[str, EmailMessage]:
        """``digest once``; the digests it mailed, by recipient."""
        before = len(self.smtp.received)
        assert main(["once", "--config", str(self.cfg)]) == 0
        return {r.rcpt_tos[0]: r.message for r in self.smtp.received[before:]}

    def new_paper(self, title: str, abstract: str, minutes_ago: int = 5) -> str:
        """A paper published just now; returns its id."""
        self._papers += 1
        paper_id = f"2612.{90000 + self._papers}"
        when = datetime.now(UTC) - timedelta(minutes=minutes_ago)
        self.arxiv.state.entries.insert(0, make_entry(paper_id, title, abstract, published=when))
        return paper_id

    def ingest(self, raw: bytes, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """``digest ingest`` as an MTA pipe runs it: the message on stdin, the exit code back."""
        return subprocess.run(
            [sys.executable, "-m", "digest", "ingest", "--config", str(self.cfg)],
            input=raw,
            capture_output=True,
            timeout=60,
            cwd=self.cfg.parent,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        )

    def reader(self, email_: str) -> ReaderState:
        with Store.open(self.db, readonly=True) as store:
            return store.reader_state(email_)

    def state(self, email_: str) -> dict[str, Any]:
        """The reader's choices as the database holds them."""
        return reader_state_to_doc(self.reader(email_))

    def choices(self) -> dict[str, dict[str, Any]]:
        """What readers chose or were counted, without the notes of their replies."""
        kept = {
            k: {n: v for n, v in s.items() if n != "last_replies"} for k, s in self.states().items()
        }
        return {k: s for k, s in kept.items() if s}

    def states(self) -> dict[str, dict[str, Any]]:
        with Store.open(self.db, readonly=True) as store:
            return {
                k: reader_state_to_doc(store.reader_state(k)) for k in store.readers_with_state()
            }




def list_unsubscribe(msg: EmailMessage) -> str:
    raw = str(msg["List-Unsubscribe"])
    assert raw.startswith("<mailto:") and raw.endswith(">"), raw
    return raw[1:-1]


def both_keywords(site: Site) -> None:
    """A paper alice (proton) and bob (electron) both follow, so each has something new."""
    site.new_paper("Electron and proton scattering", "We scatter an electron off a proton.")


def imap_site(
    arxiv: ArxivServer, smtp: SmtpServer, write_config, dovecot: Dovecot, **settings: Any
) -> tuple[Site, str]:
    folder = f"wired-{len(dovecot.contents('INBOX'))}-{os.urandom(3).hex()}"
    dovecot.create(folder)
    inbox = {
        "host": "127.0.0.1",
        "port": dovecot.port,
        "security": "starttls",
        "username": dovecot.user,
        "folder": folder,
        "handled_folder": f"{folder}-done",
        "timeout": 5,
        "ca_file": str(dovecot.certificate),
    }
    cfg = write_config(config_dict(arxiv.url, smtp.port, inbox=inbox, **settings))
    return Site(cfg, arxiv, smtp), folder
