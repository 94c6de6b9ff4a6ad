"""What a public URL needs from the HTTP layer: bounded labels and log lines, a client's address, key back-off.

Nothing a client chooses (a path, a header) becomes a metric label or a whole log line:
`route_label` gives the route's template or a fixed word, `shown` a bounded repr. The
client is its address (`client_of`): the peer's, or the one a trusted proxy forwarded
(uvicorn's `ProxyHeadersMiddleware`, installed only for `Settings.trusted_proxies`).
`KeyBackoff` answers a client that keeps sending wrong keys with 429 for a while.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

from fastapi import Request

# Metric labels for requests refused before a route template is known.
REFUSED, UNMATCHED = "refused", "unmatched"
# A path (or any client-chosen text) in a log line: its repr, cut to this many characters.
SHOWN_CHARS = 200
# Wrong keys from one client within KEY_FAILURE_WINDOW_S before it is answered 429.
KEY_FAILURES_ALLOWED = 10
KEY_FAILURE_WINDOW_S = 60.0
# Clients remembered at once (the oldest forgotten first), so the table itself is bounded.
KEY_CLIENTS_REMEMBERED = 10_000


def shown(text: str) -> str:
    """Client-chosen text as a log line may show it: repr (no raw escapes), at most 200 chars."""
    return repr(text)[:SHOWN_CHARS]


def route_label(request: Request) -> str:
    """The matched route's template (`/v1/models/{name}`), never the path the client sent."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def client_of(request: Request) -> str | None:
    """The client's address: the peer's, or a trusted proxy's X-Forwarded-For."""
    return request.client.host if request.client else None


class KeyBackoff:
    """Counts wrong keys per client in a sliding window; past the allowance, how long to wait."""

    def __init__(self, allowed: int = KEY_FAILURES_ALLOWED, window_s: float = KEY_FAILURE_WINDOW_S,
                 remembered: int = KEY_CLIENTS_REMEMBERED):
        self.allowed, self.window_s, self.remembered = allowed, window_s, remembered
        self._failures: OrderedDict[str | None, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait_s(self, client: str | None) -> float:
        """0 if `client` may try a key now; else the seconds until its oldest failure expires."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if len(times) < self.allowed:
                return 0.0
            return max(1.0, times[0] + self.window_s - now)

    def failed(self, client: str | None) -> None:
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            times.append(now)
            self._failures[client] = times[-self.allowed:]
            self._failures.move_to_end(client)
            while len(self._failures) > self.remembered:
                self._failures.popitem(last=False)

    def _recent(self, client: str | None, now: float) -> list[float]:
        return [t for t in self._failures.get(client, ()) if now - t < self.window_s]


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
