"""The outside programs some tests run, each with the Debian package that brings it.

A test that needs one carries the ``servers`` marker (``pytest -m "not servers"``
runs the rest on a bare machine) and calls ``require`` first, so on a machine
without the program it is skipped with the package to install, never an error.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

# program -> (how it is found: a name on PATH or an absolute path, the Debian package)
PROGRAMS: dict[str, tuple[str, str]] = {
    "openssl": ("openssl", "openssl"),
    "dovecot": ("/usr/sbin/dovecot", "dovecot-imapd"),
    "spamassassin": ("spamassassin", "spamassassin"),
    "systemd-analyze": ("systemd-analyze", "systemd"),
    "postfix": ("/usr/sbin/postfix", "postfix"),
    "faketime": ("faketime", "faketime"),
}


def available(program: str) -> bool:
    where, _ = PROGRAMS[program]
    return Path(where).exists() if where.startswith("/") else shutil.which(where) is not None


def require(program: str) -> None:
    """Skip the calling test unless ``program`` is installed, naming the package."""
    if not available(program):
        _, package = PROGRAMS[program]
        pytest.skip(f"needs {program} (Debian package {package})")


def marks(*programs: str) -> list[pytest.MarkDecorator]:
    """The marks of a module that runs ``programs``: ``servers``, and a skip naming the
    package of each one missing (``pytestmark = marks("spamassassin")``)."""
    found = [pytest.mark.servers]
    for program in programs:
        _, package = PROGRAMS[program]
        reason = f"needs {program} (Debian package {package})"
        found.append(pytest.mark.skipif(not available(program), reason=reason))
    return found


def needs(*programs: str) -> Callable[[T], T]:
    """``@needs("dovecot")``: the same marks on one test."""

    def mark(test: T) -> T:
        for m in marks(*programs):
            test = m(test)
        return test

    return mark


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed EC certificate for localhost and 127.0.0.1 (EC: fast to make).

    The one recipe for every TLS test (SMTP STARTTLS, implicit TLS, Dovecot).
    """
    require("openssl")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key
