"""The compose stream: one reader's ranking or rendering failure is theirs alone.

Both sources of composed messages are tried: this process, and the pool of
processes many readers are composed in (forced here with two workers).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from digest import ranking
from digest.cycle import pool as pool_mod
from digest.errors import DigestError
from tests.support.arxiv_server import ArxivServer
from tests.support.configs import config_dict
from tests.support.cycles import delivered, once
from tests.support.smtp_server import SmtpServer

READERS = [
    {"email": "alice@example.org", "name": "Alice", "keywords": ["deep learning", "proton"]},
    {"email": "bob@example.org", "keywords": ["metamorphic testing", "electron"]},
]


@pytest.fixture(params=["in-process", "pool"])
def source(request, monkeypatch) -> str:
    if request.param == "pool":
        monkeypatch.setattr(pool_mod, "workers_for", lambda messages: 2)
    return str(request.param)


def failing_first(real: Callable[..., Any], error: Exception) -> Callable[..., Any]:
    """``real``, except that its first call raises ``error`` (the first reader's)."""
    calls: list[int] = []

    def fake(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise error
        return real(*args, **kwargs)

    return fake


@pytest.mark.parametrize(
    "error",
    [DigestError("the profile could not be built"), RuntimeError("a bug in ranking")],
    ids=["an operator's error", "a bug"],
)
def test_a_ranking_failure_fails_that_reader_and_the_cycle_goes_on(
    arxiv: ArxivServer, smtp: SmtpServer, write_config, monkeypatch, source: str, error: Exception
) -> None:
    monkeypatch.setattr(ranking, "rank", failing_first(ranking.rank, error))
    cfg = write_config(config_dict(arxiv.url, smtp.port, READERS))
    report = once(cfg)
    assert [r.rcpt_tos for r in smtp.received] == [["bob@example.org"]]
    assert [(r.email, r.status) for r in report.subscribers] == [
        ("alice@example.org", "failed"),
        ("bob@example.org", "sent"),
    ]
    assert str(error) in report.subscribers[0].detail
    assert report.exit_code == 75 and report.result == "partial"
    assert delivered(cfg)["alice@example.org"] == {}  # her papers stay pending


def test_a_rendering_bug_for_one_reader_fails_only_that_reader(
    arxiv: ArxivServer, smtp: SmtpServer, write_config, tmp_path: Path, source: str
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    # an operator's subject that breaks (ZeroDivisionError, not a Jinja error) for alice only
    (templates / "subject.txt").write_text(
        '{{ (1 // 0) if subscriber.email.startswith("alice") else "Papers" }}', encoding="utf-8"
    )
    cfg = write_config(config_dict(arxiv.url, smtp.port, READERS, templates=str(templates)))
    report = once(cfg, now=datetime.now(UTC))
    assert [r.rcpt_tos for r in smtp.received] == [["bob@example.org"]]
    alice = report.subscribers[0]
    assert (alice.email, alice.status) == ("alice@example.org", "failed")
    assert "ZeroDivisionError" in alice.detail
    assert report.exit_code == 75
