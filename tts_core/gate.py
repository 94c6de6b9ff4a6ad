"""The one GPU gate: admits a bounded number of requests and gives the device to one at a time.

Every synthesis in the process, whatever route it came from, passes through one
`GpuGate`. It has two levels:

* `admit()` is held for a whole request. At most `max_requests` are admitted at once;
  one more gets `GateBusyError` at once (back-pressure) rather than a place in an
  unbounded line. An admitted request is never dropped for being late.
* `run(fn)` is held for one inference (one chunk). Turns are first come, first served,
  so a long streamed request and a short one interleave chunk by chunk. It measures
  the wait and the time on the device, and always releases, whatever `fn` raises.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

from .errors import GateBusyError, GateTimeoutError

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Weight of the newest hold time in the moving average that Retry-After is derived from.
_EWMA_ALPHA = 0.2
MIN_RETRY_AFTER_S = 1.0


class GpuGate:
    """Serializes device work; see the module docstring."""

    def __init__(self, max_requests: int = 16, timeout_s: float | None = 120.0):
        self.max_requests = max_requests
        self.timeout_s = timeout_s
        self._cond = threading.Condition()
        self._turns: deque[object] = deque()  # tickets waiting for the device, oldest first
        self._busy = False
        self._admitted = 0
        self._mean_hold_s = 0.0
        self.turns_served = 0

    # --- request level ------------------------------------------------------------------

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a place for one request, or raise GateBusyError when all places are taken."""
        with self._cond:
            if self._admitted >= self.max_requests:
                retry = self.retry_after_s()
                raise GateBusyError(
                    f"The server is busy: {self._admitted} requests are already waiting for the "
                    f"device. Try again in about {retry:.0f} s.",
                    retry_after_s=retry,
                )
            self._admitted += 1
        try:
            yield
        finally:
            with self._cond:
                self._admitted -= 1

    def retry_after_s(self) -> float:
        """A fair guess of when a place frees up: the mean hold time times the line's length."""
        return max(MIN_RETRY_AFTER_S, self._mean_hold_s * max(1, self._admitted))

    @property
    def queue_depth(self) -> int:
        """Requests admitted and not finished (waiting or on the device)."""
        return self._admitted

    @property
    def busy(self) -> bool:
        return self._busy

    # --- inference level ----------------------------------------------------------------

    def run(self, fn: Callable[[], T]) -> tuple[T, float, float]:
        """Run `fn` alone on the device; return (result, seconds waited, seconds held)."""
        waited = self._acquire()
        start = time.perf_counter()
        try:
            result = fn()
        finally:
            held = time.perf_counter() - start
            self._release(held)
        return result, waited, held

    def _acquire(self) -> float:
        start = time.perf_counter()
        ticket = object()
        with self._cond:
            self._turns.append(ticket)
            try:
                ok = self._cond.wait_for(
                    lambda: not self._busy and self._turns[0] is ticket, timeout=self.timeout_s
                )
            except BaseException:
                self._turns.remove(ticket)
                self._cond.notify_all()
                raise
            if not ok:
                self._turns.remove(ticket)
                self._cond.notify_all()
                raise GateTimeoutError(
                    f"Waited {self.timeout_s:.0f} s for the device without getting a turn; "
                    "the server is overloaded. Try again later or raise TTS_GATE_TIMEOUT."
                )
            self._turns.popleft()
            self._busy = True
        return time.perf_counter() - start

    def _release(self, held_s: float) -> None:
        with self._cond:
            self._busy = False
            self.turns_served += 1
            self._mean_hold_s += _EWMA_ALPHA * (held_s - self._mean_hold_s)
            self._cond.notify_all()
