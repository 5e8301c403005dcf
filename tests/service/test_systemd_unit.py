"""systemd/digest.service: `systemd-analyze verify` silent, security rated OK or better."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.servers

UNIT = ROOT / "systemd" / "digest.service"


@pytest.fixture
def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing: .ci/run installs Debian's systemd package")
        pytest.skip("needs systemd-analyze (Debian package systemd)")
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


# -- the README's service section and the unit agree -------------------------

README = UNIT.parent.parent / "README.md"


def _service_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index("### Installing the unit") : text.index("## Files")]


def _unit_value(key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", UNIT.read_text(), re.M)


def _systemd_paths(value: str) -> str:
    # the specifiers the unit uses, as they expand for a system service
    return value.replace("%S", "/var/lib").replace("%E", "/etc")


def test_readme_installs_the_binary_the_unit_starts_and_puts_it_on_the_path() -> None:
    section = _service_section()
    (exec_start,) = _unit_value("ExecStart")
    binary = exec_start.split()[0]
    venv = binary.removesuffix("/bin/digest")
    assert f"sudo python3 -m venv {venv}\n" in section
    assert f"sudo {venv}/bin/pip install ." in section
    assert f"sudo ln -sf {binary} /usr/local/bin/digest" in section  # sudo's secure_path has it
    assert "apt-get install -y python3-venv" in section


def test_readme_commands_use_the_unit_config_credential_and_documentation() -> None:
    section = _service_section()
    (exec_start,) = _unit_value("ExecStart")
    config = _systemd_paths(exec_start.split("--config ")[1])
    assert f"sudo install -m 0644 subscribers.yaml {config}" in section
    commands = "\n".join(re.findall(r"```sh\n(.*?)```", section, re.S))
    for line in commands.splitlines():
        if re.search(r"\bdigest (check|status|archive|preview)\b", line):
            assert f"--config {config}" in line, line
    (cred,) = _unit_value("LoadCredential")
    assert f"sudo install -m 0600 /dev/null {cred.split(':', 1)[1]}" in section
    (doc,) = _unit_value("Documentation")
    assert doc.startswith("file:") and f"README.md {doc.removeprefix('file:')}" in section


def test_readme_points_the_config_at_the_database_the_unit_uses(tmp_path: Path) -> None:
    from digest.config.loading import load

    (env,) = [v for v in _unit_value("Environment") if v.startswith("DIGEST_DATABASE=")]
    unit_db = _systemd_paths(env.split("=", 1)[1])
    (sed,) = [ln for ln in _service_section().splitlines() if ln.startswith("sudo sed ")]
    target = tmp_path / "subscribers.yaml"
    target.write_text((UNIT.parent.parent / "subscribers.yaml").read_text(encoding="utf-8"))
    script = re.search(r"'(s\|.*)'", sed)
    assert script, sed
    subprocess.run(["sed", "-i", script.group(1), str(target)], check=True, timeout=30)
    cfg = load(target, env={})  # no DIGEST_DATABASE: what `digest check` run by hand sees
    assert str(cfg.settings.database) == unit_db == "/var/lib/digest/digest.json"
