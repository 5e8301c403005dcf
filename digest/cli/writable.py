"""Before any work: can the command write where it was told to (exit 73) or configured to (78)?"""

from __future__ import annotations

import os
from pathlib import Path

from digest.errors import CannotCreateError, OutputError
from digest.models import Config


def _writable_folder(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` (or its nearest existing parent), or None."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this user"
    return None


def _cannot_write(path: Path, *, folder: bool, parents: bool) -> str | None:
    """Why ``path`` (a file, or a folder to create) cannot be written, or None."""
    if path.exists():
        if path.is_dir() != folder:
            return f"{path} is {'not ' if folder else ''}a folder"
        if not os.access(path, os.W_OK):
            return f"{path} is read-only"
        return None
    if not parents and not path.parent.is_dir():
        return f"the folder {path.parent} does not exist"
    return _writable_folder(path.parent)


def check_output(
    path: Path | None, option: str, *, folder: bool = False, parents: bool = False
) -> None:
    """Before any work: an output named on the command line can be created (exit 73).

    ``parents``: missing folders on the way will be created (the archive page and
    the outbox do that); else the file's folder must exist.
    """
    if path is None:
        return
    why = _cannot_write(path, folder=folder, parents=parents)
    if why:
        raise CannotCreateError(f"{option} {path} cannot be written: {why}", path=str(path))


def check_writable(cfg: Config) -> None:
    """The database folder and the Daily Papers page must be writable (exit 78 if not)."""
    s = cfg.settings
    places = [("settings.database", s.database)]
    if s.archive is not None:
        places.append(("settings.archive", s.archive))
    for setting, path in places:
        if path.exists() and (path.is_dir() or not os.access(path, os.W_OK)):
            why: str | None = f"{path} is a folder" if path.is_dir() else f"{path} is read-only"
        else:
            why = _writable_folder(path.parent)
        if why:
            raise OutputError(
                f"{setting} {path} cannot be written: {why}", path=str(path), setting=setting
            )
