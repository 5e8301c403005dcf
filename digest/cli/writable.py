"""Before any work: can the command write where it was told to (exit 73) or configured to (78)?

And may it: the state beside the database belongs to the user the service
runs as, and a command run by anyone else (``sudo digest once``) must not
create or rewrite a file there, or the service can no longer read it.
"""

from __future__ import annotations

import os
import pwd
import stat
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


# Beside the database: its journal, lock and backup (digest.store), the reply secret.
_STATE_SUFFIXES = ("", ".journal", ".lock", ".bak")
_SECRET = "reply-secret"


def _user(uid: int) -> str:
    try:
        return f"user {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:  # a systemd DynamicUser= has no passwd entry outside its unit
        return f"user {uid}"


def check_owner(cfg: Config) -> None:
    """Refuse (exit 78) to write state that belongs to another user.

    A file created or replaced now would belong to the user running this
    command, and the service's user could no longer read it. The state is
    another user's when any of its files is, or when there are none yet and
    its folder is (a world-writable sticky folder such as /tmp excepted:
    that one is everybody's).
    """
    database = cfg.settings.database
    me = os.geteuid()
    files = [database.with_name(database.name + s) for s in _STATE_SUFFIXES]
    files.append(database.with_name(_SECRET))
    owners = [(p, p.stat().st_uid) for p in files if p.exists()]
    if not owners and database.parent.is_dir():
        info = database.parent.stat()
        if not info.st_mode & stat.S_ISVTX:
            owners = [(database.parent, info.st_uid)]
    for path, uid in owners:
        if uid != me:
            raise OutputError(
                f"settings.database {database}: {path} belongs to {_user(uid)}, not to "
                f"{_user(me)} who runs this command; files it wrote would lock that user "
                "out, so run it as that user (README, 'Run as a service')",
                path=str(path),
                setting="settings.database",
            )
