"""A small disk that a scenario can fill: a tmpfs mounted on the state folder.

ENOSPC cannot be injected into a subprocess without a file system that
really runs out, so the database's folder becomes a tmpfs of a few MB.
Mounting needs root (or CAP_SYS_ADMIN): elsewhere the scenario is skipped,
with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FILLER = ".filler"


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "4m") -> Iterator[Path]:
    """``folder`` as a tmpfs of ``size`` for the block; unmounted on the way out."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs to run out of space needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder: Path) -> int:
    """Take every free byte of ``folder``'s file system; returns how many were taken."""
    taken = 0
    fd = os.open(folder / FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1):
            block = b"\0" * chunk
            while True:
                try:
                    taken += os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return taken


def free(folder: Path) -> None:
    """Give back what ``fill`` took."""
    (folder / FILLER).unlink(missing_ok=True)
