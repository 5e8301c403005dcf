"""What the ``digest`` command writes outside stdout: here, syslog for ``digest ingest``."""

from __future__ import annotations

import io
import logging
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.cli import terminal
from digest.cli.entry import main
from tests.support.configs import config_dict


@pytest.fixture
def syslog(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A syslog socket of our own in place of /dev/log, stderr not a terminal."""
    with tempfile.TemporaryDirectory() as folder:  # short: a socket path has ~100 bytes
        path = Path(folder) / "log"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        sock.settimeout(5)
        monkeypatch.setattr(terminal, "SYSLOG_SOCKET", path)
        monkeypatch.setattr(terminal, "stderr_is_tty", lambda: False)
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
        root = logging.getLogger()
        before = list(root.handlers)
        try:
            yield sock
        finally:
            for handler in set(root.handlers) - set(before):
                root.removeHandler(handler)
                handler.close()
            sock.close()


def lines(sock: socket.socket) -> list[str]:
    sock.settimeout(0.5)
    got: list[str] = []
    try:
        while True:
            got.append(sock.recv(65536).decode())
    except TimeoutError:
        return got


def test_ingest_logs_what_it_did_to_syslog_for_the_mail_server_discards_stderr(
    syslog: socket.socket, write_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config(config_dict("http://127.0.0.1:9/api/query"))
    message = b"From: alice@example.org\nSubject: hello\n\nAre you the editor?\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(message)))
    assert main(["ingest", "--config", str(cfg)]) == 0
    (line,) = [x for x in lines(syslog) if "reply:" in x]
    # <mail.info>, the identifier journald reads, then the line
    assert line.startswith("<22>digest[") and "ignored: no command (from alice@example.org)" in line


def test_a_failing_ingest_says_why_in_syslog(
    syslog: socket.socket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "subscribers.yaml"
    cfg.write_text("settings: [")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"Subject: x\n\nx\n")))
    assert main(["ingest", "--config", str(cfg)]) == 75
    assert any("offered again" in x for x in lines(syslog))


def test_nothing_goes_to_syslog_on_a_terminal(
    syslog: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(terminal, "stderr_is_tty", lambda: True)
    terminal.log_to_syslog()
    logging.getLogger("digest").warning("seen on the terminal only")
    assert lines(syslog) == []
