"""State files belong to the user the service runs as: nobody else creates or takes them over.

A command run by another user (``sudo digest …``) that created the reply
secret, the database or its journal would leave them owned by that user,
and the service could no longer read them: every cycle would then fail 78.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from digest.cli.entry import main
from tests.support.arxiv_server import ArxivServer
from tests.support.configs import config_dict
from tests.support.mail_clients import plain
from tests.support.smtp_server import SmtpServer

STRANGER = 4242  # the service's user, as another user sees it


def run(cfg: Path, *args: str) -> int:
    return main([args[0], "--config", str(cfg), *args[1:]])


def test_a_preview_and_a_dry_run_create_no_state_file(
    arxiv: ArxivServer, smtp: SmtpServer, write_config, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    cfg = write_config(config_dict(arxiv.url, smtp.port, database=str(state / "digest.json")))
    assert run(cfg, "preview", "alice@example.org", "-o", str(tmp_path / "alice.html")) == 0
    assert (tmp_path / "alice.html").exists()
    assert run(cfg, "once", "--dry-run") == 0
    assert sorted(p.name for p in state.iterdir()) == []


@pytest.fixture
def foreign_state(arxiv: ArxivServer, smtp: SmtpServer, write_config, tmp_path: Path):
    """A state folder that belongs to another user, as the service's does to an administrator."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to give the folder to another user")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, STRANGER, STRANGER)
    cfg = write_config(config_dict(arxiv.url, smtp.port, database=str(state / "digest.json")))
    return cfg, state


@pytest.mark.parametrize(
    "command", [["once"], ["readers", "alice@example.org", "--resume"], ["run"]]
)
def test_a_command_that_writes_refuses_a_state_folder_of_another_user(
    foreign_state, command: list[str], capsys
) -> None:
    cfg, state = foreign_state
    assert run(cfg, *command) == 78
    err = capsys.readouterr().err
    assert f"belongs to user {STRANGER}" in err and "settings.database" in err
    assert list(state.iterdir()) == []


def test_ingest_into_a_state_folder_of_another_user_is_offered_again_and_creates_nothing(
    foreign_state, monkeypatch, capsys
) -> None:
    cfg, state = foreign_state
    monkeypatch.setattr(
        "sys.stdin",
        io.TextIOWrapper(io.BytesIO(plain("alice@example.org", "unsubscribe", "unsubscribe"))),
    )
    assert run(cfg, "ingest") == 75
    assert f"belongs to user {STRANGER}" in capsys.readouterr().err
    assert list(state.iterdir()) == []


def test_read_only_commands_run_as_another_user_create_nothing(foreign_state, tmp_path) -> None:
    cfg, state = foreign_state
    assert run(cfg, "preview", "alice@example.org", "-o", str(tmp_path / "a.html")) == 0
    assert run(cfg, "once", "--dry-run") == 0
    assert run(cfg, "status") == 0
    assert list(state.iterdir()) == []
