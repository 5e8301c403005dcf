"""The fault suite's shared machinery: scenarios run side by side, tests judge them one by one.

Most scenarios spend their time waiting (arXiv back-off is 2.5-7.5 s per
retry, SMTP retries 1-2 s, client timeouts), so a module runs all of its
scenarios at once in a thread pool, each in its own World (own servers, own
database, own ``digest`` processes), and every test then asserts on its
scenario's finished World. A scenario that raised re-raises in its test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

Scenario = Callable[[Path], Any]


def run_side_by_side(
    scenarios: Mapping[str, Scenario], tmp: pytest.TempPathFactory, workers: int = 32
) -> dict[str, Future[Any]]:
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scenario")
    futures = {name: pool.submit(fn, tmp.mktemp(name)) for name, fn in scenarios.items()}
    pool.shutdown(wait=False)
    return futures

