"""digest.atomic: a reader sees the old file or the new one, never a torn mix or a stray temp."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from digest.atomic import create_atomic, temp_glob, write_atomic


def test_write_replaces_the_whole_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "digest.json"
    target.write_text("old and longer than the new text")
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert list(tmp_path.glob(temp_glob(target))) == []


def test_str_is_written_as_utf8_and_bytes_as_given(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a", "Schrödinger ∂")
    write_atomic(tmp_path / "b", b"\x00\xff")
    assert (tmp_path / "a").read_bytes() == "Schrödinger ∂".encode()
    assert (tmp_path / "b").read_bytes() == b"\x00\xff"


def test_the_default_mode_is_owner_only_and_mode_sets_it(tmp_path: Path) -> None:
    write_atomic(tmp_path / "secret", "x")
    write_atomic(tmp_path / "page", "x", mode=0o644)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "page").stat().st_mode) == 0o644


def test_a_failed_write_leaves_the_old_file_and_removes_its_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "digest.json"
    target.write_text("old")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert list(tmp_path.glob(temp_glob(target))) == []


def test_create_never_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "2026-12-07-alice@example.org.eml"
    create_atomic(target, "first")
    with pytest.raises(FileExistsError):
        create_atomic(target, "second")
    assert target.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_a_symlink_keeps_pointing_and_its_target_gets_the_text(tmp_path: Path) -> None:
    real = tmp_path / "pages" / "README.md"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "page.md"
    link.symlink_to(real)
    write_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_a_fifo_is_written_to_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "page.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_atomic(fifo, "through the pipe")
    reader.join(timeout=10)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and got == [b"through the pipe"]


def test_a_device_is_written_to_not_replaced(tmp_path: Path) -> None:
    # a private node of the null device, so that a regression replaces nothing real
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    write_atomic(null, "into the void")
    assert stat.S_ISCHR(null.stat().st_mode)
    assert list(tmp_path.glob(temp_glob(null))) == []
