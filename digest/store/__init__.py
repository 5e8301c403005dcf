"""The TinyDB database: the paper cache, deliveries, watermarks, reader state, the cycle record."""

from __future__ import annotations

from digest.store.restore import Restored
from digest.store.store import Store, SubscriberState

__all__ = [
    "Restored",
    "Store",
    "SubscriberState",
]
