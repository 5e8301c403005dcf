"""Replace or create a file in one step: the one atomic-write helper (store, archive, outbox).

A reader, or the next start after a crash or power loss, sees either the old
file or the new one, never a torn mix: the new content goes to a temporary
file in the same folder (``os.replace`` is atomic only within one file
system), is fsynced, renamed over the target, and then the folder itself is
fsynced so that the rename survives a power loss too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TMP_PREFIX = ".tmp-"


def temp_glob(path: Path) -> str:
    """The pattern of the temporary files ``write_atomic`` makes for ``path``."""
    return f"{TMP_PREFIX}{path.name}.*"


def write_atomic(path: Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` (str is written as UTF-8); raises ``OSError``.

    A symlink is followed (its target is replaced); a device or a FIFO is
    written to, as it is.

    ``mode`` sets the file's permissions (``mkstemp`` creates 0600, right for a
    database but not for a page meant to be read). On failure the temporary
    file is removed and ``path`` is left as it was.
    """
    target = Path(os.path.realpath(path))  # a symlink's target is replaced, not the link
    if target.exists() and not target.is_file():
        # a device or a pipe (``-o /dev/stdout``, a FIFO): written through, never
        # replaced by a regular file (root would turn /dev/full into one)
        _write_through(target, data)
        return
    _publish(target, data, mode, replace=True)


def _write_through(path: Path, data: bytes | str) -> None:
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with open(path, "wb") as f:
        f.write(payload)


def create_atomic(path: Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Like ``write_atomic``, but never replaces: ``FileExistsError`` if ``path`` exists.

    The finished temporary file gets ``path`` as a second name (a hard link,
    which fails rather than replace), so nobody sees it half-written and a
    file already there is never touched.
    """
    _publish(path, data, mode, replace=False)


def _publish(path: Path, data: bytes | str, mode: int | None, *, replace: bool) -> None:
    folder = path.parent
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{TMP_PREFIX}{path.name}.")
    try:
        try:
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if mode is not None:
                os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)  # make the new name itself durable


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename, a new file) to disk."""
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
