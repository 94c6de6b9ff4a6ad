"""wait_until: poll a condition until it holds or a deadline passes (tests order threads by state, not sleeps)."""

from __future__ import annotations

import time
from typing import Callable

POLL_S = 0.002


def wait_until(condition: Callable[[], object], timeout: float = 10, what: str = "") -> None:
    """Return as soon as `condition()` is true; fail the test, naming `what`, after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or condition}")
        time.sleep(POLL_S)
