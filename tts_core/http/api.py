"""The HTTP API's assembly: one FastAPI app from the routers, its error handlers and the /v1 fallback.

Same process, same warm pipeline, same gate as the Gradio app, which is mounted onto this
app afterwards. A new router goes in `ROUTERS`.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ..jobs import jobs_for
from ..live_models import manager_for
from ..pipeline import Pipeline
from ..server import Readiness
from ..voices.library import library_for
from . import jobs, operator, probes, speech, voice_library, voices
from .context import ApiContext
from .errors import ApiError
from .guard import shown

logger = logging.getLogger(__name__)

ROUTERS = (probes.router, voices.router, voice_library.router, speech.router, operator.router,
           jobs.router)
FALLBACK_ROUTE = "/v1/{rest:path}"


def create_http_api(pipeline: Pipeline, readiness: Readiness) -> FastAPI:
    """The routes, on a FastAPI app that the Gradio UI is then mounted onto."""
    api = FastAPI(title="TTS Studio API", docs_url="/api/docs", openapi_url="/api/openapi.json",
                  redoc_url=None)
    api.state.tts = ApiContext(pipeline, readiness, manager_for(pipeline))
    library_for(pipeline)  # the saved voices, warm before the first request (started once)
    if pipeline.settings.trusted_proxies:  # the client's address from their headers, no one else's
        api.add_middleware(ProxyHeadersMiddleware,
                           trusted_hosts=list(pipeline.settings.trusted_proxies))
    log_what_the_key_protects(pipeline.settings)
    jobs_for(pipeline)  # unfinished jobs in TTS_JOBS_DIR carry on now
    api.add_exception_handler(ApiError, _api_error)
    api.add_exception_handler(RequestValidationError, _invalid_parameter)
    api.add_exception_handler(Exception, _unexpected)
    for router in ROUTERS:
        api.include_router(router)
    # Last: any other /v1 path or method still gets an error in OpenAI's shape (the UI
    # mounted at / would otherwise answer with its own {"detail": ...}).
    api.add_api_route(FALLBACK_ROUTE, unknown_v1, methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                      include_in_schema=False)
    return api


def log_what_the_key_protects(settings) -> None:
    """One start-up line: what TTS_API_KEY guards here, and what stays open."""
    if settings.api_key is None:
        logger.warning("No TTS_API_KEY: every route is open to anyone who can reach this port, "
                       "and adding or removing models over HTTP is closed")
        return
    opened = ("the UI, Gradio's API (/gradio_api/...) and MCP synthesis need no key "
              "(TTS_UI_AUTH is off)" if not settings.ui_auth else
              "the UI and Gradio's API need the sign-in, the key as password (TTS_UI_AUTH), and "
              "MCP tool calls are refused (Gradio's MCP client cannot sign in)")
    logger.info("TTS_API_KEY protects /v1/audio/speech, /v1/audio/captioned and /v1/models "
                "(adding and removing models too); /health, /ready, /metrics, /v1/audio/voices "
                "and /v1/audio/models are open; %s", opened)


def unknown_v1(request: Request, rest: str):
    """405 naming the methods a known path takes; 404 listing the app's /v1 routes."""
    path = request.url.path[:200]
    routes = served_routes()
    allowed = sorted({m for r in routes if r.path_regex.match(path) for m in r.methods})
    if allowed:
        raise ApiError(405, f"{request.method} is not allowed on {path}; use {', '.join(allowed)}.",
                       code="method_not_allowed", headers={"Allow": ", ".join(allowed)})
    raise ApiError(404, f"There is no route {path}. Routes: {route_list(routes)}.", code="not_found")


def served_routes() -> list[APIRoute]:
    """The app's routes, read from its routers (an included router is not flattened into
    `app.routes` by this FastAPI)."""
    return [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]


def route_list(routes: list[APIRoute]) -> str:
    """'POST /v1/audio/speech, GET and POST /v1/models, ...': the /v1 routes in the order served."""
    methods: dict[str, set[str]] = {}
    for route in routes:
        if route.path.startswith("/v1/"):
            methods.setdefault(route.path, set()).update(route.methods)
    return ", ".join(f"{' and '.join(sorted(m))} {path}" for path, m in methods.items())


async def _api_error(request: Request, e: ApiError):
    if e.status < 500 and e.code not in ("server_busy",):
        logger.info("%s %s -> %d %s", request.method, shown(request.url.path), e.status, e.code)
    return e.response()


async def _invalid_parameter(request: Request, e: RequestValidationError):
    """A query or path parameter of the wrong type (bodies are typed by `protocol`)."""
    first = e.errors()[0]
    name = str(first["loc"][-1])
    return await _api_error(request, ApiError(422, f"'{name}': {first['msg']}.", param=name,
                                              code="invalid_type"))


async def _unexpected(request: Request, e: Exception):
    logger.exception("%s %s failed", request.method, shown(request.url.path))
    return ApiError(500, f"The server failed unexpectedly ({type(e).__name__}); the log "
                         "has the details.", type_="server_error").response()
