"""Secrets that never go in subscribers.yaml: from the environment or systemd credentials.

A password in the YAML would end up in backups and version control, so it
comes from ``$DIGEST_SMTP_PASSWORD`` / ``$DIGEST_IMAP_PASSWORD``, else from
the systemd credential of that name (``LoadCredential=`` puts it in
``$CREDENTIALS_DIRECTORY``). The values are never logged (``repr=False`` on
the fields of ``digest.models``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from digest.models import Settings


def credential_path(env: Mapping[str, str], name: str) -> Path | None:
    """Where systemd put the credential ``name``; None when no credentials were passed."""
    folder = env.get("CREDENTIALS_DIRECTORY")
    return Path(folder) / name if folder else None


def smtp_password(env: Mapping[str, str]) -> str | None:
    """``$DIGEST_SMTP_PASSWORD``, else systemd's credential ``smtp-password``."""
    return _secret(env, "DIGEST_SMTP_PASSWORD", "smtp-password")


def imap_password(env: Mapping[str, str]) -> str | None:
    """``$DIGEST_IMAP_PASSWORD``, else systemd's credential ``imap-password``."""
    return _secret(env, "DIGEST_IMAP_PASSWORD", "imap-password")


def _secret(env: Mapping[str, str], var: str, credential: str) -> str | None:
    if env.get(var):
        return env[var]
    path = credential_path(env, credential)
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def missing_passwords(settings: Settings) -> list[str]:
    """A username set without a password, as problems for ``digest check`` (exit 78).

    Not refused when loading: the password may be a credential that only the
    unit is given, and the daemon then reports the refused login itself.
    """
    problems = []
    if settings.smtp.username and not settings.smtp.password:
        problems.append(_no_password("settings.smtp.username", settings.smtp.username, "SMTP"))
    inbox = settings.inbox
    if inbox is not None and not inbox.password:
        problems.append(_no_password("settings.inbox.username", inbox.username, "IMAP"))
    return problems


def _no_password(setting: str, username: str, kind: str) -> str:
    credential = f"{kind.lower()}-password"
    return (
        f"{setting} {username!r} has no password: set $DIGEST_{kind}_PASSWORD, or give the "
        f"systemd credential {credential} (a file {credential} in $CREDENTIALS_DIRECTORY; "
        f"LoadCredential={credential}:PATH in the unit)"
    )
