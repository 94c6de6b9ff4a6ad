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
import threading
from dataclasses import dataclass, field

import uvicorn

logger = logging.getLogger(__name__)

STARTING_RETRY_AFTER_S = 5


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


class StudioServer:
    """uvicorn on a background thread in front of a StagedApp; `attach` the real app when warm."""

    def __init__(self, host: str, port: int, readiness: Readiness | None = None):
        self.readiness = readiness or Readiness()
        self.staged = StagedApp(self.readiness)
        config = uvicorn.Config(self.staged, host=host, port=port, log_level="warning",
                                lifespan="on", timeout_graceful_shutdown=10)
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
