"""Reading subscribers.yaml into a frozen Config: schema, problems, secrets, libraries."""

from __future__ import annotations

from digest.config.credentials import credential_path, missing_passwords
from digest.config.library import ids_to_look_up
from digest.config.loading import address_report, load, load_named, path_origin, resolve_path

__all__ = [
    "address_report",
    "credential_path",
    "ids_to_look_up",
    "load",
    "load_named",
    "missing_passwords",
    "path_origin",
    "resolve_path",
]
