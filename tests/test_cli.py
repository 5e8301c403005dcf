"""The ``digest`` command line: where global options may go."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest import cli

GOOD = "subscribers:\n  - email: a@example.org\n    keywords: [compiler]\n"
BROKEN = "subscribers:\n  - email: not-an-address\n    keywords: [compiler]\n"


@pytest.fixture
def two_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A valid ./subscribers.yaml in the working folder and a broken other.yaml."""
    (tmp_path / "subscribers.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "other.yaml").write_text(BROKEN, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [["--config", "other.yaml", "check"], ["check", "--config", "other.yaml"]],
    ids=["before-the-command", "after-the-command"],
)
def test_config_option_is_honoured_before_and_after_the_command(
    two_configs: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 78  # other.yaml was read, not ./subscribers.yaml
    assert "other.yaml" in capsys.readouterr().err


def test_without_config_option_the_working_folder_file_is_read(two_configs: Path) -> None:
    assert cli.main(["check"]) == 0


@pytest.mark.parametrize("argv", [["-v", "check"], ["check", "-v"]], ids=["before", "after"])
def test_verbose_is_honoured_before_and_after_the_command(
    two_configs: Path, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    monkeypatch.setattr(cli, "_setup_logging", seen.append)
    assert cli.main(argv) == 0
    assert seen == [True]


def test_the_later_config_option_wins(two_configs: Path) -> None:
    argv = ["--config", "other.yaml", "check", "--config", "subscribers.yaml"]
    assert cli.main(argv) == 0
