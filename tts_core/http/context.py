"""What every route shares: the pipeline and readiness, the key check, the bounded body read.

The context lives on `app.state.tts`; routes take it with `Depends(api_context)`. Reading a
request body goes through `read_json` alone, so a bound on bodies (size, nesting, numbers)
is set in one place.
"""

from __future__ import annotations

import hmac
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from starlette.requests import ClientDisconnect

from ..config import OPENAI_VOICES
from ..live_models import ModelManager
from ..pipeline import Pipeline
from ..registry import listed_voices
from ..server import Readiness
from .errors import ApiError
from .guard import REFUSED, KeyBackoff, client_of, retry_after, route_label

# A JSON body nested deeper than this is refused (the speech body is 1 deep), before any
# recursive code (pydantic, an error message's json.dumps) could meet it.
MAX_JSON_DEPTH = 32
# An integer with more digits than this is refused (a seed has at most 10).
MAX_INTEGER_DIGITS = 30


@dataclass
class ApiContext:
    """The one warm pipeline the routes serve, its readiness, and the live-model manager."""

    pipeline: Pipeline
    readiness: Readiness
    models: ModelManager
    key_backoff: KeyBackoff = field(default_factory=KeyBackoff)
    # The Piper catalogue listing, by revision: (when fetched, the catalogue or its error).
    catalogues: dict = field(default_factory=dict)
    catalogue_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def settings(self):
        return self.pipeline.settings

    def model_for(self, requested: str) -> str:
        """A loaded model's name for a requested one: its own, or an OpenAI name mapped to one."""
        registry, aliases = self.pipeline.registry, self.settings.openai_models
        if requested in registry.engines:
            return requested
        if requested in aliases:
            return aliases[requested] or registry.default.name
        loaded = ", ".join(registry.available_models())
        raise ApiError(404, f"Unknown model {requested!r}. Loaded models: {loaded}; OpenAI names "
                            f"{', '.join(aliases)} map to them.", param="model",
                       code="model_not_found")

    def voice_for(self, engine, requested: str) -> str:
        """This app's voice for a requested name: its own, a configured alias, or an OpenAI name."""
        if requested in engine.voices or requested == "":
            return requested
        target = self.settings.openai_voices.get(requested)
        if target:
            return target if target in engine.voices else engine.default_voice
        if requested in OPENAI_VOICES:  # OpenAI's voices take the model's voices in turn
            voices = listed_voices(engine)  # never another caller's one-off voice
            return voices[OPENAI_VOICES.index(requested) % len(voices)]
        return requested  # unknown: the pipeline says so, listing the valid ones


def api_context(request: Request) -> ApiContext:
    return request.app.state.tts


def authorize(request: Request, ctx: ApiContext = Depends(api_context)) -> None:
    """The API key check (401). No key configured: whatever the client sends is ignored,
    which is how LibreChat's literal "Authorization: undefined" and SillyTavern's or Open
    WebUI's empty "Bearer " get through."""
    key = ctx.settings.api_key
    if key is None:
        return
    client = client_of(request)
    wait_s = ctx.key_backoff.wait_s(client)
    if wait_s:  # even a right key waits: a guess must not learn that it was right
        ctx.pipeline.refused(REFUSED, "unauthorized")
        raise ApiError(429, f"Too many wrong API keys from this address; try again in "
                            f"{retry_after(wait_s)} s.", type_="rate_limit_error",
                       code="too_many_key_failures", headers={"Retry-After": retry_after(wait_s)})
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        if token.strip():  # a key was tried (no key at all is not a guess)
            ctx.key_backoff.failed(client)
        ctx.pipeline.refused(route_label(request), "unauthorized")
        raise ApiError(401, "Missing or wrong API key: send 'Authorization: Bearer <key>'.",
                       code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


GUARDED = [Depends(authorize)]


async def read_body(request: Request, limit: int, too_big: ApiError) -> bytes:
    """The request's body, read no further than `limit` bytes: `too_big` (a 413) as soon as it is
    known to be larger, from its Content-Length or the bytes read so far."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    try:
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise too_big
    except ClientDisconnect:  # nobody reads the answer; no traceback for it either
        raise ApiError(499, "The client went away before sending its whole body.",
                       code="client_gone") from None
    return bytes(body)


def operator_only(what: str, code: str):
    """A dependency: 403 unless the server has an API key (then GUARDED checks it was sent);
    `what` is what it opens ("Adding and removing models")."""
    def check(ctx: ApiContext = Depends(api_context)) -> None:
        if ctx.settings.api_key is None:
            raise ApiError(403, f"{what} is open only when the server has an API key: start it "
                                "with TTS_API_KEY set and send 'Authorization: Bearer <key>'.",
                           type_="permission_error", code=code)
    return check


async def read_json(request: Request, ctx: ApiContext = Depends(api_context)) -> dict[str, Any]:
    """The request's body as a JSON object, read no further than TTS_MAX_BODY_BYTES (413)."""
    limit = ctx.settings.max_body_bytes
    return parse_json(await read_body(request, limit, too_large(limit)))


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"The request body is larger than {limit} bytes.", code="body_too_large")


def parse_json(body: bytes) -> dict[str, Any]:
    """A body as a JSON object: 400 for what is not JSON, nested past MAX_JSON_DEPTH, or holds
    an integer no field can take."""
    try:
        data = json.loads(body, parse_int=_integer)
    except _BadNumber as e:
        raise ApiError(400, f"The request body has a number out of range: {e}",
                       code="invalid_json") from None
    except RecursionError:
        data = None
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"The request body is not valid JSON: {e}", code="invalid_json") from e
    if data is None or _deeper_than(data, MAX_JSON_DEPTH):
        raise ApiError(400, f"The request body is nested more than {MAX_JSON_DEPTH} levels deep.",
                       code="invalid_json")
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return data


class _BadNumber(ValueError):
    """A JSON integer no field can take (past a float, it would overflow where it is used).
    Floats past a float's range read as inf, which each field's own check names."""


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _BadNumber(f"an integer of {len(text.lstrip('-'))} digits (at most "
                         f"{MAX_INTEGER_DIGITS}).")
    return int(text)


def _deeper_than(data: Any, limit: int) -> bool:
    """Whether `data` nests lists or objects more than `limit` deep (iterative: no recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children
                         if isinstance(child, (dict, list)))
    return False
