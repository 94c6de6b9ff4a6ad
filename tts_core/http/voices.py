"""Model and voice lists: /v1/models, /v1/audio/voices (with the Piper catalogue), /v1/audio/models.

The two /v1/audio lists are open even with TTS_API_KEY set: Open WebUI fetches them with no
Authorization header at all (routers/audio.py, get_available_voices and
get_available_models), and they name only what /ready already shows. The Piper catalogue
(`?available=true`) is asked of the hub once per CATALOGUE_TTL_S, not once per listing.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends

from ..config import OPENAI_VOICES
from .context import GUARDED, ApiContext, api_context
from .errors import ApiError
from .protocol import error_responses

router = APIRouter()
# How long the Piper catalogue (or the hub's refusal) is kept before the hub is asked again.
CATALOGUE_TTL_S = 600.0
CATALOGUE_ERROR_TTL_S = 30.0


@router.get("/v1/models", dependencies=GUARDED, responses=error_responses(401))
def list_models(ctx: ApiContext = Depends(api_context)):
    """The loaded models, then the OpenAI names that reach them (`alias_of`)."""
    names = ctx.pipeline.registry.available_models()
    openai_models = ctx.settings.openai_models
    aliases = [a for a in openai_models if a not in names]
    return {"object": "list", "data": [
        {"id": n, "object": "model", "created": 0, "owned_by": "tts-studio",
         "alias_of": openai_models.get(n) or names[0] if n in aliases else None}
        for n in names + aliases]}


@router.get("/v1/audio/voices", responses=error_responses(422, 503))
def list_voices(available: bool = False, language: str | None = None,
                ctx: ApiContext = Depends(api_context)):
    """OpenAI-style `data`, and `voices` as objects: what Open WebUI reads, {id, name};
    with `available=true`, the Piper catalogue too, under its own key."""
    data = []
    for card in (warm.card for warm in ctx.pipeline.registry.warm):
        spoken = card.language_name or card.language
        for voice in card.voices:
            data.append({"id": voice, "object": "voice", "name": _voice_label(voice, card.name, spoken),
                         "model": card.name, "language": spoken,
                         "aliases": [a for a in OPENAI_VOICES if ctx.voice_for(card, a) == voice]})
    voices = [{k: d[k] for k in ("id", "name", "model", "language")} for d in data]
    listing = {"object": "list", "data": data, "voices": voices}
    if available:
        listing["available"] = _catalogue_listing(ctx, language)
    return listing


@router.get("/v1/audio/models")
def list_audio_models(ctx: ApiContext = Depends(api_context)):
    """{"models": [{id, name}]}: the loaded models, then the OpenAI names that reach them."""
    registry = ctx.pipeline.registry
    models = [{"id": card.name, "name": f"{card.name} ({card.spoken_language}, {card.family})"}
              for card in (warm.card for warm in registry.warm)]
    models += [{"id": alias, "name": f"{alias} -> {ctx.model_for(alias)}"}
               for alias in ctx.settings.openai_models if alias not in registry.engines]
    return {"models": models}


def _voice_label(voice: str, model: str, language: str | None) -> str:
    """A voice as a person picks it from a list: 'joe (en_US-joe-medium, English)'."""
    return f"{voice} ({model}, {language})" if language else f"{voice} ({model})"


def _catalogue_listing(ctx: ApiContext, language: str | None) -> dict:
    """The Piper catalogue's voices by language and quality, the loaded ones marked."""
    from ..catalog import PIPER_VOICES_REPO, CatalogueError, loaded_keys, sorted_voices

    revision = ctx.settings.piper_voices_revision
    catalogue = _cached_catalogue(ctx, revision)
    if isinstance(catalogue, CatalogueError):
        raise ApiError(503, str(catalogue), type_="server_error", code="catalogue_unavailable")
    loaded = loaded_keys(ctx.pipeline.registry.engines.values())
    voices = [dict(v.to_dict(), loaded=v.key in loaded, model=loaded.get(v.key),
                   spec=f"piper:{v.key}")
              for v in sorted_voices(catalogue) if not language or v.language == language
              or v.language.split("_")[0] == language]
    return {"repository": PIPER_VOICES_REPO, "revision": revision, "count": len(voices),
            "voices": voices}


def _cached_catalogue(ctx: ApiContext, revision: str):
    """The catalogue at `revision` (or the CatalogueError the hub gave), fetched at most once
    per CATALOGUE_TTL_S (an error: per CATALOGUE_ERROR_TTL_S); concurrent listings wait for
    one fetch."""
    from ..catalog import CatalogueError, load_catalogue

    with ctx.catalogue_lock:
        fetched, catalogue = ctx.catalogues.get(revision, (None, None))
        ttl = CATALOGUE_ERROR_TTL_S if isinstance(catalogue, CatalogueError) else CATALOGUE_TTL_S
        if fetched is None or time.monotonic() - fetched > ttl:
            try:
                catalogue = load_catalogue(revision)
            except CatalogueError as e:
                catalogue = e
            ctx.catalogues[revision] = (time.monotonic(), catalogue)
        return catalogue
