"""Small helpers the tests share."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` every ``interval`` seconds until it is true or ``timeout`` seconds have passed.

    Returns the last answer (true when the condition was met), so ``assert wait_until(...)`` fails
    with the condition still false, and a test waits only as long as the condition takes.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
