"""Serving: the port answers /health and /ready from the first second, the app once it is warm.

Orchestrators (RunPod, Kubernetes, Spaces) probe a container while its models load. So
the server starts before warm loading with a small `StagedApp` in front: while the
models warm, `/health` is 200 ("starting"), `/ready` and everything else 503. When the
real app (FastAPI routes with the Gradio UI mounted on them) is attached, its lifespan is
entered on the server's loop and every request goes to it. On SIGTERM or SIGINT,
`/ready` turns 503 first, then the server drains and stops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn

logger = logging.getLogger(__name__)

STARTING_RETRY_AFTER_S = 5
TOO_LARGE = "The request body is larger than {} bytes, the most this server reads; send less."


@dataclass
class Readiness:
    """Shared by the probes. Ready is implied by the real app being attached (before that
    the StagedApp answers 503); once `stopping`, /ready is 503 again."""

    stopping: bool = False
    # Run on the server's loop when stopping begins: streams that would otherwise hold the
    # drain open to its timeout end at once (the UI's session heartbeats).
    on_stop: list = field(default_factory=list)


class StagedApp:
    """ASGI app answering probes until the real app is attached, then forwarding to it."""

    def __init__(self, readiness: Readiness):
        self.readiness = readiness
        self.app = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's, known at startup
        self._lifespan_task: asyncio.Task | None = None
        self._stop_lifespan: asyncio.Event | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)
        elif self.app is not None:
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await self._starting(scope, send)
        # websockets before the app exists: closed by returning without accepting

    async def attach(self, app) -> None:
        """Enter `app`'s lifespan on this loop, then route every request to it.

        The lifespan is entered and left by one task of its own: the task groups inside it
        (Gradio's MCP session manager has one) must be exited by the task that entered them.
        """
        entered, self._stop_lifespan = asyncio.Event(), asyncio.Event()

        async def hold_lifespan():
            async with app.router.lifespan_context(app):
                entered.set()
                await self._stop_lifespan.wait()

        self._lifespan_task = asyncio.create_task(hold_lifespan())
        waiting = asyncio.create_task(entered.wait())
        await asyncio.wait({self._lifespan_task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if not entered.is_set():
            waiting.cancel()
            self._lifespan_task.result()  # raises what the app's startup raised
        self.app = app

    async def _serve_lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.loop = asyncio.get_running_loop()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.readiness.stopping = True
                if self._lifespan_task is not None:
                    self._stop_lifespan.set()
                    await self._lifespan_task
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _starting(self, scope, send):
        path = scope.get("path", "")
        if path == "/health":
            status, body = 200, {"status": "starting"}
        elif path == "/ready":
            status, body = 503, {"status": "starting", "models": []}
        else:
            status, body = 503, {"error": {
                "message": "The models are still warming up; try again in a few seconds.",
                "type": "server_error", "param": None, "code": "warming_up"}}
        payload = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
            (b"retry-after", str(STARTING_RETRY_AFTER_S).encode())]})
        await send({"type": "http.response.body", "body": payload})


class BodyLimit:
    """ASGI middleware: no route reads a request body past `limit()` bytes.

    On the outer app, so Gradio's routes (/gradio_api/upload, /run/predict, /call/...) are
    bounded as /v1 is: a Content-Length past the limit is answered 413 before anything is
    read, and a body that goes on past it (chunked, or longer than it said) is answered 413
    as soon as it does, and the app is told the client left. `limit` is asked per request
    (models added while serving change what the page's player may hand back).
    `length_required`: paths that write the body to disk as it comes (Gradio's uploads) take
    only a body that says its length (411 otherwise), since a body cut short there would
    leave its part written.
    """

    def __init__(self, app, limit: Callable[[], int], length_required: tuple[str, ...] = ()):
        self.app, self.limit, self.length_required = app, limit, length_required

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit()
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            return await _refuse(send, 413, TOO_LARGE.format(limit))
        if declared is None and scope["path"] in self.length_required:
            return await _refuse(send, 411, "An upload must say its length (Content-Length).")
        received, started, refused = 0, False, False

        async def counted():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await _refuse(send, 413, TOO_LARGE.format(limit))
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message):
            nonlocal started
            if refused and not started:
                return  # the 413 was the answer; the app's own reply to a "disconnect" goes
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, guarded)


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error",
                                 "param": None, "code": "body_too_large" if status == 413
                                 else "length_required"}}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class StudioServer:
    """uvicorn on a background thread in front of a StagedApp; `attach` the real app when warm."""

    def __init__(self, host: str, port: int, readiness: Readiness | None = None):
        self.readiness = readiness or Readiness()
        self.staged = StagedApp(self.readiness)
        # proxy_headers off: X-Forwarded-* are believed only from TTS_TRUSTED_PROXIES (the
        # HTTP API's own middleware), never from any peer at 127.0.0.1 (uvicorn's default).
        config = uvicorn.Config(self.staged, host=host, port=port, log_level="warning",
                                lifespan="on", timeout_graceful_shutdown=10, proxy_headers=False)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def start(self, timeout_s: float = 30.0) -> "StudioServer":
        self._thread.start()
        waited = 0.0
        while not self.server.started:
            if not self._thread.is_alive():
                raise OSError(f"the server could not start on {self.url} (is the port in use?)")
            self._thread.join(0.02)
            waited += 0.02
            if waited > timeout_s:
                raise TimeoutError(f"the server did not start on {self.url} in {timeout_s:.0f} s")
        return self

    @property
    def url(self) -> str:
        host = self.server.config.host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.server.config.port}"

    def attach(self, app) -> None:
        """Hand every request to `app` (FastAPI with the UI mounted) from now on."""
        asyncio.run_coroutine_threadsafe(self.staged.attach(app), self.staged.loop).result(timeout=60)
        logger.info("Ready: serving on %s", self.url)

    def _begin_stop(self) -> None:
        """/ready turns 503 first; then uvicorn stops accepting, drains and exits."""
        self.readiness.stopping = True
        if self.staged.loop is not None:
            for end in self.readiness.on_stop:
                self.staged.loop.call_soon_threadsafe(end)
        self.server.should_exit = True

    def stop(self) -> None:
        self._begin_stop()
        self._thread.join(timeout=30)

    def serve_until_signal(self) -> None:
        """Block the main thread until SIGINT/SIGTERM; then turn /ready off and drain."""
        done = threading.Event()

        def handle(signum, frame):
            logger.info("Signal %s: no longer ready, draining", signum)
            self._begin_stop()
            done.set()

        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)
        while self._thread.is_alive() and not done.is_set():
            done.wait(0.5)
        self._thread.join(timeout=30)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that nothing listens on now (the OS picks it), for a server started next."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float, alive: Callable[[], bool] = lambda: True,
               poll_s: float = 0.2) -> bool:
    """Poll `url`/ready: True once it answers 200; False when `timeout` s pass or `alive()`
    turns false first (the server's process exited). Used by the tests, bench.py and scripts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass  # 503 while warming (HTTPError is a URLError), or not listening yet
        time.sleep(poll_s)
    return False
