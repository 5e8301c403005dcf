"""Shared fixtures: loopback arXiv and SMTP servers, and config files that point at them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.arxiv_server import ArxivServer, recent_entries
from tests.support.configs import CORPUS
from tests.support.daemon import NotifySocket
from tests.support.dovecot import Dovecot
from tests.support.programs import make_certificate, require
from tests.support.smtp_server import SmtpServer


@pytest.fixture
def arxiv() -> Iterator[ArxivServer]:
    header, entries = recent_entries(CORPUS)
    with ArxivServer(header, entries) as srv:
        yield srv


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as srv:
        yield srv




@pytest.fixture
def write_config(tmp_path: Path):
    def write(data: dict[str, Any], name: str = "subscribers.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1 (skips without openssl)."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One real Dovecot for the session; tests keep apart by using their own folders."""
    require("dovecot")
    require("openssl")
    with Dovecot() as srv:
        yield srv


# fixtures that start or make something with an outside program: a test using
# one (directly or through another fixture) needs that program installed
_SERVER_FIXTURES = {"certificate", "dovecot"}


_FAULT_SUITE = Path(__file__).resolve().parent / "faults"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``servers`` every test that needs an outside program (found by its fixtures)
    and the fault suite (the real CLI and daemon against loopback servers, minutes long)."""
    for item in items:
        if _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) or _FAULT_SUITE in (
            item.path.parents
        ):
            item.add_marker(pytest.mark.servers)


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()
