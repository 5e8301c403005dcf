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
