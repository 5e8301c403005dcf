"""The `digest` command: parsing, the subcommands, status, terminal output, exit codes."""

from __future__ import annotations

from digest.cli.entry import main

__all__ = [
    "main",
]
