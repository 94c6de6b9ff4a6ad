"""TTS Studio: start-up and assembly; every synthesis goes through tts_core's pipeline and gate.

Importing this module warm-loads every model in TTS_MODELS (each run once), then builds
the UI (the `ui` package), so the first request is as fast as the hundredth. `python app.py`
opens the port first, so /health and /ready answer (ready: 503) while the models warm, then
serves the UI at / and the HTTP API (/v1/audio/speech, /v1/models, /ready, /metrics ...)
beside it.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import sys
from pathlib import Path

import gradio as gr
from fastapi import FastAPI

from tts_core import Pipeline, Settings, bootstrap, selfcheck
from tts_core.ffmpeg import expose_to_gradio, find_ffmpeg
from tts_core.http import create_http_api
from tts_core.server import BodyLimit, Readiness, StudioServer
from tts_core.wyoming_server import start_wyoming
from ui.result import model_rates, played_back_limit
from ui.studio import build_demo

logger = logging.getLogger("tts_studio")

UI_ASSETS = Path(__file__).parent / "assets" / "ui"  # the page's own CSS and script
UPLOAD_FORM_BYTES = 64 * 1024  # an upload's multipart headers and boundaries, beside the file
# Gradio's routes that write a body to disk as it comes: only bodies that say their length.
UPLOAD_PATHS = ("/gradio_api/upload", "/gradio_api/process_recording")


def _fail(message: str) -> None:
    """Stop startup with one line that says what to fix (never serve half-loaded)."""
    print(f"TTS Studio cannot start: {message}", file=sys.stderr)
    raise SystemExit(1)


def build_server(pipeline: Pipeline, demo: gr.Blocks, readiness: Readiness) -> FastAPI:
    """The HTTP API routes first, then the UI mounted at / on the same app: one process, one gate."""
    settings = pipeline.settings
    api = create_http_api(pipeline, readiness)
    auth = None
    if settings.ui_auth:  # any user name, the API key as password
        def auth(user: str, password: str) -> bool:
            return hmac.compare_digest(password.encode(), settings.api_key.encode())
    # enable_monitoring=False: Gradio's own per-endpoint timing (its /monitoring, shown on the
    # "Use via API" page as "p50: 0 ms" for /models) is of its queue's calls only, not speech
    # latency; the live panel and /metrics count every route's requests.
    app = gr.mount_gradio_app(api, demo, path="/", auth=auth, mcp_server=True,
                              enable_monitoring=False, max_file_size=settings.max_upload_bytes,
                              auth_message="Sign in with any name and the studio's API key.",
                              css_paths=[UI_ASSETS / "studio.css"],
                              head=f"<script>{(UI_ASSETS / 'studio.js').read_text()}</script>")
    app.add_middleware(BodyLimit, limit=lambda: body_limit(pipeline), length_required=UPLOAD_PATHS)
    # Gradio's session heartbeats (its MCP tools call the events through a client that keeps
    # one open) end when its stop event is set, which its own launch() does and a mount does not.
    readiness.on_stop += [r.app.stop_event.set for r in app.routes
                          if isinstance(getattr(r, "app", None), gr.routes.App)]
    if demo.mcp_server:  # Gradio's own MCP server: the `synthesize` and `models` events as tools
        logger.info("MCP tools at /gradio_api/mcp/ (streamable HTTP)")
    else:
        logger.warning("No MCP endpoint: %s", getattr(demo, "mcp_error", None) or "see above")
    return app


def body_limit(pipeline: Pipeline) -> int:
    """The largest request body any route reads (Gradio's included): an upload of
    TTS_MAX_UPLOAD_BYTES, or the page's player handing back the longest stream a loaded
    model can make. /v1's own, smaller bound (TTS_MAX_BODY_BYTES) is the HTTP API's."""
    settings = pipeline.settings
    return max(settings.max_upload_bytes + UPLOAD_FORM_BYTES,
               played_back_limit(settings, model_rates(pipeline)))


def load_settings() -> Settings:
    """The start-up's first step (settings, logging), or one line and exit 1."""
    try:
        return bootstrap.settings()
    except bootstrap.StartupError as e:
        _fail(str(e))


def create_app(settings: Settings) -> tuple[Pipeline, gr.Blocks]:
    """The start-up's second step (environment summary, warm load), then the UI."""
    ffmpeg = find_ffmpeg()
    if ffmpeg is None:
        logger.warning("No ffmpeg found: no AAC, and where the page cannot stream through "
                       "Web Audio, Stream plays whole files instead")
    else:
        expose_to_gradio(ffmpeg)  # Gradio's streamed audio runs ffmpeg by name
    try:
        pipeline = bootstrap.pipeline(settings)
    except bootstrap.StartupError as e:
        _fail(str(e))
    return pipeline, build_demo(pipeline, ffmpeg is not None)


def self_check(settings: Settings) -> None:
    """`python app.py --check`: the report, each model loaded once, exit 0 or 1 with the problem."""
    checks, problem = selfcheck.run(settings)
    print(selfcheck.format_report(checks))
    if problem:
        _fail(problem)
    print("All checks passed.")
    raise SystemExit(0)


settings = load_settings()
if __name__ == "__main__":
    cli = argparse.ArgumentParser(description="TTS Studio: warm text-to-speech UI and HTTP API")
    cli.add_argument("--check", action="store_true",
                     help="check the environment and that every model loads, then exit 0 or 1")
    if cli.parse_args().check:
        self_check(settings)
    try:  # the port opens before the models load: probes see "starting", then "ready"
        server = StudioServer(settings.host, settings.port).start()
    except (OSError, TimeoutError) as e:
        _fail(str(e))
    logger.info("Listening on %s; warming up %d model(s)", server.url, len(settings.models))
pipeline, demo = create_app(settings)

if __name__ == "__main__":
    server.attach(build_server(pipeline, demo, server.readiness))
    try:  # TTS_WYOMING_URI: Home Assistant's protocol, on the same pipeline
        wyoming = start_wyoming(pipeline)
    except bootstrap.StartupError as e:
        _fail(str(e))
    server.serve_until_signal()
