"""systemd/digest.service: `systemd-analyze verify` silent, security rated OK or better."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "digest.service"


@pytest.fixture
def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing: .ci/run installs Debian's systemd package")
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    return tool


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    # verify checks that ExecStart= exists: point it at this environment's digest
    digest = Path(sys.executable).with_name("digest")
    text = UNIT.read_text().replace("/opt/digest/venv/bin/digest", str(digest))
    out = tmp_path / "digest.service"
    out.write_text(text)
    return out


def test_unit_has_the_required_settings() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "DynamicUser=yes",
        "StateDirectory=digest",
        "ConfigurationDirectory=digest",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
        "LoadCredential=smtp-password:/etc/digest/smtp-password",
        "Environment=DIGEST_DATABASE=%S/digest/digest.json",
    ):
        assert line in text.splitlines(), line
    assert re.search(r"^WatchdogSec=\d+s$", text, re.M)
    assert re.search(r"^ExecStart=\S+/digest run --config %E/digest/subscribers.yaml$", text, re.M)


def test_systemd_analyze_verify_prints_nothing(analyze: str, unit: Path) -> None:
    # verify exits 0 even on unknown keys: any output at all is a failure
    proc = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stderr


def test_security_exposure_is_ok_or_better(analyze: str, unit: Path) -> None:
    proc = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=39", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    m = re.search(r"Overall exposure level for digest.service: (\d+\.\d) (\w+)", proc.stdout)
    assert m, proc.stdout + proc.stderr
    assert float(m.group(1)) <= 3.9 and m.group(2) in ("OK", "SAFE", "EXCELLENT", "PERFECT")
    assert proc.returncode == 0
