"""What every route shares: the pipeline and readiness, the key check, the bounded body read.

The context lives on `app.state.tts`; routes take it with `Depends(api_context)`. Reading a
request body goes through `read_json` alone, so a bound on bodies is set in one place.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request

from ..config import OPENAI_VOICES
from ..live_models import ModelManager
from ..pipeline import Pipeline
from ..server import Readiness
from .errors import ApiError


@dataclass
class ApiContext:
    """The one warm pipeline the routes serve, its readiness, and the live-model manager."""

    pipeline: Pipeline
    readiness: Readiness
    models: ModelManager

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
            return engine.voices[OPENAI_VOICES.index(requested) % len(engine.voices)]
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
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        ctx.pipeline.refused(request.url.path, "unauthorized")
        raise ApiError(401, "Missing or wrong API key: send 'Authorization: Bearer <key>'.",
                       code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


GUARDED = [Depends(authorize)]


async def read_json(request: Request, ctx: ApiContext = Depends(api_context)) -> dict[str, Any]:
    """The request's body as a JSON object, read no further than TTS_MAX_BODY_BYTES (413)."""
    limit = ctx.settings.max_body_bytes
    declared = request.headers.get("content-length")
    too_big = ApiError(413, f"The request body is larger than {limit} bytes.", code="body_too_large")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise too_big
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"The request body is not valid JSON: {e}", code="invalid_json") from e
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return data
