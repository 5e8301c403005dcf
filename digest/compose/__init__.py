"""From ranked matches to a rendered digest: which papers show, what the templates see, the page."""

from __future__ import annotations

from digest.compose.render import LinkMaker, Rendered, build_message, compose, forget_cycle
from digest.compose.selection import pick_beyond

__all__ = [
    "LinkMaker",
    "Rendered",
    "build_message",
    "compose",
    "forget_cycle",
    "pick_beyond",
]
