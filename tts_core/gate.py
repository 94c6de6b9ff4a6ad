"""The one device gate: admits a bounded number of requests and gives the device's slots out in turn.

Every synthesis in the process, whatever route it came from, passes through one
`DeviceGate`. It has two levels:

* `admit()` is held for a whole request. At most `max_requests` are admitted at once;
  one more gets `GateBusyError` at once (back-pressure) rather than a place in an
  unbounded line. An admitted request is never dropped for being late. One `client` (an
  address) holds at most `max_per_client` places (`ClientBusyError` past it).
* `run(fn)` is held for one inference (one chunk). Turns are first come, first served,
  so a long streamed request and a short one interleave chunk by chunk, except that a
  turn marked `first` (a request that has no audio yet) goes before the turns of
  requests already being heard: each waiting request gets its first audio soonest. No
  turn is passed over more than `MAX_OVERTAKES` times, so a steady flow of new requests
  cannot starve one already being heard. A turn marked `background` (a long job) is the
  lowest priority of all: it runs only when no other turn is waiting, and never beside
  another background turn, so an interactive request waits for at most the one job
  turn already on the device. Background turns wait without `timeout_s`. It measures
  the wait and the time on the device, and always releases, whatever `fn` raises.
* The device has `slots`: that many turns run at once. A GPU has one (one inference at
  a time); a CPU may have more. On a CPU the gate also has `threads` (the cores), and
  the threads follow the load: each turn is given its share when it starts, the free
  threads divided among it and the turns about to start beside it, rounded down to one of
  `thread_shares(threads)` (all, half, a quarter ... one). A turn alone gets every
  thread; two at once get half each. The engine reads its share with `turn_threads()`
  inside the call (Piper picks the session made for that count; torch families set
  their threads); the caller reads it after its turn with `last_turn_threads()`.
* `run_item(key, item, run_batch)` is the same turn with micro-batching: when the device
  frees up, whoever is first in line also takes every waiting item with the same `key`
  (up to `max_batch`; waiting `batch_wait_s` for stragglers when others are already in
  line) and runs them in one `run_batch(items)` call. Each caller gets its own result
  back. If a batch fails, its items are run again one by one, so a bad item fails only
  its own request. `key=None` never batches. A turn waiting with a `cancel` event leaves
  the line once the event is set and `wake()` called (its client went away).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterator, Sequence, TypeVar

from .errors import (ClientBusyError, ClientGoneError, GateBusyError, GateTimeoutError,
                     InferenceTimeoutError)

logger = logging.getLogger(__name__)
T = TypeVar("T")
# The turn a thread is running (`threads`: its share of the cores) and the share of the
# last turn it asked for (`last`).
_turn = threading.local()

# Weight of the newest hold time in the moving average that Retry-After is derived from.
_EWMA_ALPHA = 0.2
MIN_RETRY_AFTER_S = 1.0
# A turn is passed over by newer requests' first turns at most this many times: a stream
# already playing waits for at most two others' first windows (tens of ms each) between
# two of its own, which its audio buffer covers.
MAX_OVERTAKES = 2


@dataclass(eq=False)
class _Ticket:
    key: Hashable | None
    item: Any
    run_batch: Callable[[Sequence[Any]], Sequence[Any]]
    taken: bool = False  # a leader has put it in its batch
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    started: float = 0.0
    held: float = 0.0
    batch_size: int = 1
    first: bool = False  # the request has no audio yet: it goes before those being heard
    overtaken: int = 0  # how many turns went before this one out of arrival order
    background: bool = False  # a job's turn: only when no other waits, one at a time
    threads: int | None = None  # the share of the cores the turn ran with (None: undivided)


def thread_shares(threads: int) -> tuple[int, ...]:
    """The thread counts a turn may be given, most first: all, half, a quarter ... one.
    An engine that keeps a session per thread count keeps one for each of these."""
    shares, n = [], max(1, threads)
    while n >= 1:
        shares.append(n)
        n //= 2
    return tuple(shares)


def turn_threads() -> int | None:
    """The threads the calling thread's device turn runs with (None outside a turn, or on
    a device whose threads are not divided, such as a GPU)."""
    return getattr(_turn, "threads", None)


def last_turn_threads() -> int | None:
    """The threads the calling thread's last `run_item` ran with."""
    return getattr(_turn, "last", None)


class DeviceGate:
    """Hands out the device's slots in turn (one slot: serializes device work); see the module docstring."""

    def __init__(self, max_requests: int = 16, timeout_s: float | None = 120.0,
                 max_batch: int = 1, batch_wait_s: float = 0.0, infer_timeout_s: float | None = None,
                 slots: int = 1, max_per_client: int | None = None,
                 threads: int | None = None):
        if slots < 1:
            raise ValueError(f"a device has at least one slot, not {slots}")
        self.slots = slots
        self.threads = threads  # the cores turns share (None: not divided, e.g. a GPU)
        self.threads_in_use = 0  # given to the turns running now (/metrics)
        self.max_requests = max_requests
        self.max_per_client = max_per_client  # places one client may hold; None: no bound
        self._by_client: dict[Hashable, int] = {}
        self.timeout_s = timeout_s
        self.infer_timeout_s = infer_timeout_s
        self.stuck_calls = 0  # calls given up on past infer_timeout_s (/metrics)
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self._cond = threading.Condition()
        self._turns: deque[_Ticket] = deque()  # waiting for the device, oldest first
        self._running = 0  # turns on the device now, at most `slots`
        self._background_running = 0  # background turns among them: at most one
        self._admitted = 0
        self._mean_hold_s = 0.0
        self.turns_served = 0  # device calls run (/metrics)
        self.items_served = 0  # items those calls ran: items / turns = the mean batch (/metrics)
        self.busy_s = 0.0  # slot-seconds held, summed over turns (busy_s / slots / wall = use)

    # --- request level ------------------------------------------------------------------

    @contextmanager
    def admit(self, client: Hashable | None = None) -> Iterator[None]:
        """Hold a place for one request, or raise GateBusyError when all places are taken, or
        when `client` (its address; None: unknown) already holds `max_per_client` of them."""
        with self._cond:
            if self._admitted >= self.max_requests:
                retry = self.retry_after_s()
                raise GateBusyError(
                    f"The server is busy: {self._admitted} requests are already waiting for the "
                    f"device. Try again in about {retry:.0f} s.",
                    retry_after_s=retry,
                )
            held = self._by_client.get(client, 0) if client is not None else 0
            if self.max_per_client is not None and held >= self.max_per_client:
                retry = self.retry_after_s()
                raise ClientBusyError(
                    f"Too many requests at once from one client: {held} requests of yours are "
                    f"already waiting for the device (at most {self.max_per_client}). Try again "
                    f"in about {retry:.0f} s.", retry_after_s=retry)
            self._admitted += 1
            if client is not None:
                self._by_client[client] = held + 1
        try:
            yield
        finally:
            with self._cond:
                self._admitted -= 1
                if client is not None:
                    if self._by_client[client] <= 1:
                        del self._by_client[client]
                    else:
                        self._by_client[client] -= 1

    def retry_after_s(self) -> float:
        """A fair guess of when a place frees up: the mean hold time times the line's length."""
        return max(MIN_RETRY_AFTER_S, self._mean_hold_s * max(1, self._admitted))

    @property
    def queue_depth(self) -> int:
        """Requests admitted and not finished (waiting or on the device)."""
        return self._admitted

    @property
    def busy(self) -> bool:
        return self._running > 0

    def one_slot(self) -> None:
        """From now on, one turn at a time (a GPU model was added to a CPU server); turns
        already running finish, and the next starts when none is left."""
        with self._cond:
            self.slots = 1
            self.threads = None

    @property
    def slots_in_use(self) -> int:
        """Turns on the device now (0 to `slots`)."""
        return self._running

    # --- inference level ----------------------------------------------------------------

    def run(self, fn: Callable[[], T], first: bool = False) -> tuple[T, float, float]:
        """Run `fn` in a slot of the device (alone, with one slot); return (result, seconds
        waited, seconds held)."""
        result, waited, held, _ = self.run_item(None, fn, lambda fns: [fns[0]()], first)
        return result, waited, held

    def run_item(self, key: Hashable | None, item: Any,
                 run_batch: Callable[[Sequence[Any]], Sequence[Any]],
                 first: bool = False, cancel: threading.Event | None = None,
                 background: bool = False) -> tuple[Any, float, float, int]:
        """Run `item` on the device, batched with same-`key` items that wait at the same time.

        `first`: the caller has no audio yet, so this turn goes before the turns of callers
        already being heard (first come, first served among each kind). `background`: a
        job's turn, after every other kind, one at a time, with no wait limit.
        `cancel`: once set (and `wake()` called), a turn still waiting leaves the line with
        ClientGoneError; one already taken into a batch gets its result.
        Returns (result, seconds waited, seconds the batch held the device, batch size).
        """
        start = time.perf_counter()
        ticket = _Ticket(key, item, run_batch, first=first and not background,
                         background=background)
        gone = cancel.is_set if cancel is not None else (lambda: False)
        with self._cond:
            self._turns.append(ticket)
            try:
                ok = self._cond.wait_for(lambda: ticket.done or self._is_next(ticket) or gone(),
                                         timeout=None if background else self.timeout_s)
                if ok and not ticket.taken and gone():  # the client left while it waited
                    raise ClientGoneError("The client went away; its turn was given up.")
                if not ok and ticket.taken:  # already in a running batch: its result is coming
                    self._cond.wait_for(lambda: ticket.done)
                elif not ok:
                    raise GateTimeoutError(
                        f"Waited {self.timeout_s:.0f} s for the device without getting a turn; "
                        "the server is overloaded. Try again later or raise TTS_GATE_TIMEOUT.")
            except BaseException:
                if not ticket.taken:
                    self._turns.remove(ticket)
                    self._cond.notify_all()
                raise
            if not ticket.done:
                batch = self._lead(ticket)
        if not ticket.done:
            self._execute(batch)
        _turn.last = ticket.threads
        if ticket.error is not None:
            raise ticket.error
        return ticket.result, ticket.started - start, ticket.held, ticket.batch_size

    def wake(self) -> None:
        """Let waiting turns look at their `cancel` events again (one was just set)."""
        with self._cond:
            self._cond.notify_all()

    def _is_next(self, ticket: _Ticket) -> bool:
        # A ticket taken into another's batch has left the line (which may now be empty).
        return (not ticket.taken and self._running < self.slots and bool(self._turns)
                and self._next() is ticket)

    def _next(self) -> _Ticket | None:
        """The oldest turn of a request with no audio yet, else the oldest turn; but the
        oldest turn once it has been passed over MAX_OVERTAKES times. Background turns
        only when no other waits, and none while another background turn runs."""
        waiting = [t for t in self._turns if not t.background]
        if not waiting:
            return self._turns[0] if not self._background_running else None
        oldest = waiting[0]
        if oldest.overtaken >= MAX_OVERTAKES:
            return oldest
        return next((t for t in waiting if t.first), oldest)

    def _lead(self, leader: _Ticket) -> list[_Ticket]:
        """With the lock held: take the device, and the same-key items waiting behind."""
        for ticket in self._turns:
            if ticket is leader:
                break
            ticket.overtaken += 1
        self._turns.remove(leader)
        leader.taken = True
        self._running += 1
        self._background_running += leader.background
        batch = [leader]
        self._take_followers(batch)
        if 1 < len(batch) < self.max_batch and self.batch_wait_s > 0:
            # Others are already in line: a few ms more may fill the batch.
            self._cond.wait(self.batch_wait_s)
            self._take_followers(batch)
        threads = self._share()
        for ticket in batch:
            ticket.threads = threads
        self.threads_in_use += threads or 0
        if self._running < self.slots:
            self._cond.notify_all()  # a slot is still free: the next in line may take it
        return batch

    def _share(self) -> int | None:
        """With the lock held, for a turn starting now: the free threads divided among it and
        the turns that start beside it (the line, up to the free slots), at least one."""
        if not self.threads:
            return None
        starting = 1 + min(len(self._turns), self.slots - self._running)
        claim = max(1, (self.threads - self.threads_in_use) // starting)
        return next(n for n in thread_shares(self.threads) if n <= claim)

    def _take_followers(self, batch: list[_Ticket]) -> None:
        key = batch[0].key
        if key is None:
            return
        for ticket in list(self._turns):
            if len(batch) >= self.max_batch:
                break
            if ticket.key == key and ticket.background == batch[0].background:
                self._turns.remove(ticket)
                ticket.taken = True
                batch.append(ticket)

    def _execute(self, batch: list[_Ticket]) -> None:
        """Run a batch outside the lock; every ticket ends done, whatever happens."""
        started = time.perf_counter()
        outcomes: list[tuple[Any, BaseException | None]] = []
        _turn.threads = batch[0].threads
        try:
            try:
                results = self._call(batch[0].run_batch, [t.item for t in batch])
                outcomes = [(r, None) for r in results]
            except InferenceTimeoutError as e:
                outcomes = [(None, e)] * len(batch)  # not retried one by one: it would hang again
            except Exception as e:
                if len(batch) == 1:
                    outcomes = [(None, e)]
                else:  # find the bad item: each runs alone, and only its own request fails
                    logger.warning("batch of %d failed (%s); running its items one by one",
                                   len(batch), e)
                    outcomes = [self._alone(t) for t in batch]
        except BaseException as e:  # KeyboardInterrupt and the like: nobody may wait forever
            outcomes = [(None, e)] * len(batch)
            raise
        finally:
            held = time.perf_counter() - started
            _turn.threads = None
            with self._cond:
                for ticket, (result, error) in zip(batch, outcomes or [(None, None)] * len(batch)):
                    ticket.result, ticket.error = result, error
                    ticket.started, ticket.held, ticket.batch_size = started, held, len(batch)
                    ticket.done = True
                self._running -= 1
                self._background_running -= batch[0].background
                self.threads_in_use -= batch[0].threads or 0
                self.busy_s += held
                self.turns_served += 1
                self.items_served += len(batch)
                self._mean_hold_s += _EWMA_ALPHA * (held - self._mean_hold_s)
                self._cond.notify_all()

    def _alone(self, ticket: _Ticket) -> tuple[Any, Exception | None]:
        try:
            return self._call(ticket.run_batch, [ticket.item])[0], None
        except Exception as e:
            return None, e

    def _call(self, fn: Callable[[list], Sequence[Any]], items: list) -> Sequence[Any]:
        """`fn(items)`, given up on after `infer_timeout_s` so a hung call cannot hold the gate.

        A thread cannot be killed: a call past its deadline is left to finish in the
        background (logged, counted in `stuck_calls`), its requests fail with a clear
        error, and the device is handed on.
        """
        if not self.infer_timeout_s:
            return fn(items)
        box: dict[str, Any] = {}
        finished = threading.Event()
        threads = turn_threads()

        def target():
            _turn.threads = threads  # the turn's share goes with the call
            try:
                box["result"] = fn(items)
            except BaseException as e:  # handed to the waiting caller below
                box["error"] = e
            finally:
                finished.set()

        threading.Thread(target=target, name="tts-inference", daemon=True).start()
        if not finished.wait(self.infer_timeout_s):
            self.stuck_calls += 1
            logger.error("an inference ran past %.0f s; giving up on it and moving on",
                         self.infer_timeout_s)
            raise InferenceTimeoutError(
                f"The model did not finish within {self.infer_timeout_s:.0f} s "
                "(TTS_INFER_TIMEOUT); the request was stopped. Try a shorter text.")
        if "error" in box:
            raise box["error"]
        return box["result"]
