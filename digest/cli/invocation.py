"""What every ``digest`` command starts from: the configuration it was pointed at, and the clock.

Shared by ``digest.cli.commands`` and ``digest.cli.status``, so neither imports the other.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime

from digest import config
from digest.models import Config


def load_config(args: argparse.Namespace) -> Config:
    return config.load(
        config.resolve_path(args.config, os.environ),
        origin=config.path_origin(args.config, os.environ),
    )


def wall_now() -> datetime:
    return datetime.now(UTC)
