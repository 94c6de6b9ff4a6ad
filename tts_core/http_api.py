"""HTTP API beside the UI: OpenAI-compatible speech, model and voice lists, health, readiness, metrics.

Same process, same warm pipeline, same gate as the Gradio app: every synthesis here goes
through `Pipeline`, so the gate's back-pressure applies (429 with Retry-After). Errors
are JSON in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import math
from typing import Any, AsyncIterator, Iterator

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from . import audio as audio_io
from .config import OPENAI_VOICES
from .errors import (GateBusyError, GateTimeoutError, InputError, SynthesisError, TTSError,
                     UnknownModelError, UnknownVoiceError)
from .metrics import LatencyRecord
from .pipeline import Pipeline
from .request import SpeechRequest
from .server import Readiness
from .timings import to_srt, to_vtt

logger = logging.getLogger(__name__)

SPEECH_ROUTE = "/v1/audio/speech"
CAPTIONED_ROUTE = "/v1/audio/captioned"  # speech with word timings and subtitles
DEFAULT_FORMAT = "mp3"  # OpenAI's default response_format


class ApiError(Exception):
    """An HTTP error in OpenAI's shape."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def from_tts_error(e: TTSError) -> ApiError:
    """The one place pipeline errors become HTTP statuses."""
    if isinstance(e, UnknownModelError):
        return ApiError(404, str(e), param="model", code="model_not_found")
    if isinstance(e, UnknownVoiceError):
        return ApiError(400, str(e), param="voice", code="voice_not_found")
    if isinstance(e, InputError):
        return ApiError(400, str(e), param=e.param, code="invalid_value")
    if isinstance(e, GateBusyError):
        return ApiError(429, str(e), type_="rate_limit_error", code="server_busy",
                        headers={"Retry-After": str(math.ceil(e.retry_after_s))})
    if isinstance(e, GateTimeoutError):
        return ApiError(503, str(e), type_="server_error", code="gate_timeout",
                        headers={"Retry-After": "5"})
    if isinstance(e, SynthesisError):
        return ApiError(500, str(e), type_="server_error", code="synthesis_failed")
    return ApiError(500, str(e), type_="server_error")


def latency_headers(record: LatencyRecord, rate: int) -> dict[str, str]:
    return {
        "X-Queue-Ms": f"{record.queue_ms:.1f}", "X-Text-Ms": f"{record.text_ms:.1f}",
        "X-Inference-Ms": f"{record.inference_ms:.1f}", "X-Encode-Ms": f"{record.encode_ms:.1f}",
        "X-Total-Ms": f"{record.total_ms:.1f}", "X-First-Audio-Ms": f"{record.first_audio_ms:.1f}",
        "X-Audio-Seconds": f"{record.audio_seconds:.3f}", "X-RTF": f"{record.rtf:.4f}",
        "X-Model": record.model, "X-Device": record.device, "X-Sample-Rate": str(rate),
        "X-Latency": json.dumps(record.to_dict(), separators=(",", ":")),
    }


def create_http_api(pipeline: Pipeline, readiness: Readiness) -> FastAPI:
    """The routes, on a FastAPI app that the Gradio UI is then mounted onto."""
    settings = pipeline.settings
    api = FastAPI(title="TTS Studio API", docs_url="/api/docs", openapi_url="/api/openapi.json",
                  redoc_url=None)

    @api.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        if e.status < 500 and e.code not in ("server_busy",):
            logger.info("%s %s -> %d %s", request.method, request.url.path, e.status, e.code)
        return e.response()

    def authorize(request: Request) -> None:
        # No key configured: whatever the client sends is ignored, which is how LibreChat's
        # literal "Authorization: undefined" and SillyTavern's or Open WebUI's empty
        # "Bearer " get through.
        if settings.api_key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                                 settings.api_key.encode()):
            pipeline.refused(request.url.path, "unauthorized")
            raise ApiError(401, "Missing or wrong API key: send 'Authorization: Bearer <key>'.",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorize)]

    # --- probes and metrics (always open) -----------------------------------------------

    @api.get("/health")
    def health():
        return {"status": "stopping" if readiness.stopping else "ok"}

    @api.get("/ready")
    def ready():
        table = [warm.to_dict() for warm in pipeline.registry.warm]
        if readiness.stopping:
            return JSONResponse({"status": "stopping", "models": table}, status_code=503)
        return {"status": "ready", "models": table}

    @api.get("/metrics")
    def metrics():
        return Response(pipeline.prometheus_text(), media_type=CONTENT_TYPE_LATEST)

    # --- OpenAI-compatible --------------------------------------------------------------

    @api.get("/v1/models", dependencies=guarded)
    def list_models():
        names = pipeline.registry.available_models()
        aliases = [a for a in settings.openai_models if a not in names]
        return {"object": "list", "data": [
            {"id": n, "object": "model", "created": 0, "owned_by": "tts-studio",
             "alias_of": settings.openai_models.get(n) or names[0] if n in aliases else None}
            for n in names + aliases]}

    # The two discovery lists are open even with TTS_API_KEY set: Open WebUI fetches them
    # with no Authorization header at all (routers/audio.py, get_available_voices and
    # get_available_models), and they name only what /ready already shows.

    @api.get("/v1/audio/voices")
    def list_voices(available: bool = False, language: str | None = None):
        """OpenAI-style `data`, and `voices` as objects: what Open WebUI reads, {id, name};
        with `available=true`, the Piper catalogue too, under its own key."""
        data = []
        for card in (warm.card for warm in pipeline.registry.warm):
            spoken = card.language_name or card.language
            for voice in card.voices:
                data.append({
                    "id": voice, "object": "voice", "name": _voice_label(voice, card.name,
                                                                          spoken),
                    "model": card.name, "language": spoken,
                    "aliases": [a for a in OPENAI_VOICES if _voice_for(card, a) == voice]})
        voices = [{k: d[k] for k in ("id", "name", "model", "language")} for d in data]
        listing = {"object": "list", "data": data, "voices": voices}
        if available:
            listing["available"] = _catalogue_listing(language)
        return listing

    @api.get("/v1/audio/models")
    def list_audio_models():
        """{"models": [{id, name}]}: the loaded models, then the OpenAI names that reach them."""
        models = [{"id": card.name, "name": f"{card.name} ({card.spoken_language}, {card.family})"}
                  for card in (warm.card for warm in pipeline.registry.warm)]
        models += [{"id": alias, "name": f"{alias} -> {_model_for(alias)}"}
                   for alias in settings.openai_models if alias not in pipeline.registry.engines]
        return {"models": models}

    def _catalogue_listing(language: str | None) -> dict:
        """The Piper catalogue's voices by language and quality, the loaded ones marked."""
        from .catalog import (PIPER_VOICES_REPO, CatalogueError, load_catalogue, loaded_keys,
                              sorted_voices)

        revision = settings.piper_voices_revision
        try:
            catalogue = load_catalogue(revision)
        except CatalogueError as e:
            raise ApiError(503, str(e), type_="server_error", code="catalogue_unavailable") from e
        loaded = loaded_keys(pipeline.registry.engines.values())
        voices = [dict(v.to_dict(), loaded=v.key in loaded, model=loaded.get(v.key),
                       spec=f"piper:{v.key}")
                  for v in sorted_voices(catalogue) if not language or v.language == language
                  or v.language.split("_")[0] == language]
        return {"repository": PIPER_VOICES_REPO, "revision": revision, "count": len(voices),
                "voices": voices}

    def _voice_for(engine, requested: str) -> str:
        """This app's voice for a requested name: its own, a configured alias, or an OpenAI name."""
        if requested in engine.voices or requested == "":
            return requested
        target = settings.openai_voices.get(requested)
        if target:
            return target if target in engine.voices else engine.default_voice
        if requested in OPENAI_VOICES:  # OpenAI's voices take the model's voices in turn
            return engine.voices[OPENAI_VOICES.index(requested) % len(engine.voices)]
        return requested  # unknown: the pipeline says so, listing the valid ones

    def _model_for(requested: str) -> str:
        if requested in pipeline.registry.engines:
            return requested
        if requested in settings.openai_models:
            return settings.openai_models[requested] or pipeline.registry.default.name
        loaded = ", ".join(pipeline.registry.available_models())
        raise ApiError(404, f"Unknown model {requested!r}. Loaded models: {loaded}; OpenAI names "
                            f"{', '.join(settings.openai_models)} map to them.", param="model",
                       code="model_not_found")

    async def speech_call(request: Request, route: str) -> tuple[SpeechRequest, bool]:
        """A speech body, read and checked once for both routes: the request (model and voice
        resolved) and whether the client asked for a stream."""
        try:
            body = await _read_json(request, settings.max_body_bytes)
            fields = _speech_fields(body)
            if body.get("instructions"):  # gpt-4o-mini-tts's style prompt; sent by Home Assistant
                logger.debug("ignoring 'instructions': the models here do not take a style prompt")
            model = _model_for(fields["model"])
        except ApiError as e:
            pipeline.refused(route, "bad_request")
            raise e
        try:  # the model may have been removed a moment ago
            voice = _voice_for(pipeline.registry.get(model), fields["voice"])
        except TTSError as e:
            pipeline.refused(route, "bad_request")
            raise from_tts_error(e) from e
        return SpeechRequest(text=fields["input"], model=model, voice=voice, speed=fields["speed"],
                             format=fields["response_format"], loudness=fields["loudness"],
                             true_peak=fields["true_peak"]), fields["stream"]

    @api.post(SPEECH_ROUTE, dependencies=guarded)
    async def speech(request: Request):
        call, stream = await speech_call(request, SPEECH_ROUTE)
        model = call.model
        try:
            if not stream:
                result = await anyio.to_thread.run_sync(
                    lambda: pipeline.synthesize(call, route=SPEECH_ROUTE))
                rate = audio_io.output_rate(result.format, result.sample_rate)
                return Response(result.data, media_type=audio_io.MEDIA_TYPES[result.format],
                                headers=latency_headers(result.record, rate))
            synthesis = pipeline.stream(call, route=SPEECH_ROUTE, continuous=True)
            chunks = iter(synthesis)
            first = await _first(synthesis, chunks)
        except TTSError as e:
            raise from_tts_error(e) from e
        rate = audio_io.output_rate(synthesis.format, synthesis.sample_rate)
        headers = {"X-Model": model, "X-Device": synthesis.engine.device, "X-Sample-Rate": str(rate)}
        return StreamingResponse(_stream_body(request, synthesis, chunks, first,
                                              settings.stream_stall_s),
                                 media_type=audio_io.MEDIA_TYPES[synthesis.format], headers=headers)

    @api.post(CAPTIONED_ROUTE, dependencies=guarded)
    async def captioned(request: Request):
        """The speech body; JSON with the audio (base64), its words timed, SRT and WebVTT.
        With "stream": true, NDJSON: a line per piece of audio with the words that start in
        it, then a last line with the latency record and the subtitles."""
        call, stream = await speech_call(request, CAPTIONED_ROUTE)
        call, model = call.but(timings=True), call.model
        try:
            if not stream:
                result = await anyio.to_thread.run_sync(
                    lambda: pipeline.synthesize(call, route=CAPTIONED_ROUTE))
                return {"audio": _b64(result.data), "format": result.format,
                        "sample_rate": audio_io.output_rate(result.format, result.sample_rate),
                        **captions(result.words), "latency": result.record.to_dict()}
            synthesis = pipeline.stream(call, route=CAPTIONED_ROUTE)
            lines = _caption_lines(synthesis)
            first = await _first(synthesis, lines)
        except TTSError as e:
            raise from_tts_error(e) from e
        return StreamingResponse(_stream_body(request, synthesis, lines, first, settings.stream_stall_s),
                                 media_type="application/x-ndjson",
                                 headers={"X-Model": model, "X-Device": synthesis.engine.device})

    from .operator_api import add_operator_routes  # here: it reuses ApiError from this module

    api.state.models = add_operator_routes(api, pipeline, guarded, _read_json)
    from .http_voices import voices_router  # cloned voices: POST/GET/DELETE /v1/audio/voices...

    api.include_router(voices_router(pipeline, guarded))

    # Last: any other /v1 path or method still gets an error in OpenAI's shape (the UI
    # mounted at / would otherwise answer with its own {"detail": ...}).
    @api.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                   include_in_schema=False)
    def unknown_v1(request: Request, rest: str):
        path = request.url.path
        allowed = sorted({m for r in api.routes if isinstance(r, APIRoute) and r.path != "/v1/{rest:path}"
                          and r.path_regex.match(path) for m in r.methods})
        if allowed:
            raise ApiError(405, f"{request.method} is not allowed on {path}; use {', '.join(allowed)}.",
                           code="method_not_allowed", headers={"Allow": ", ".join(allowed)})
        raise ApiError(404, f"There is no route {path}. Routes: POST {SPEECH_ROUTE}, GET /v1/models, "
                            "POST /v1/audio/captioned, GET /v1/audio/voices, GET /v1/audio/models; operators: POST "
                            "/v1/models, GET and DELETE /v1/models/{name}.", code="not_found")

    @api.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):
        logger.exception("%s %s failed", request.method, request.url.path)
        return ApiError(500, f"The server failed unexpectedly ({type(e).__name__}); the log "
                             "has the details.", type_="server_error").response()
    return api


def _voice_label(voice: str, model: str, language: str | None) -> str:
    """A voice as a person picks it from a list: 'joe (en_US-joe-medium, English)'."""
    return f"{voice} ({model}, {language})" if language else f"{voice} ({model})"


# Chunks made ahead of a slow reader; past this the producer waits for the client.
STREAM_AHEAD_CHUNKS = 4
# Producer tasks outlive the response that started them (they clean up after a client that
# went away), and asyncio keeps only weak references to tasks: these are the strong ones.
_PRODUCERS: set[asyncio.Task] = set()
# How often a waiting producer looks whether its client is still there.
DISCONNECT_POLL_S = 0.5


async def _first(synthesis, items):
    """The stream's first item (made in a thread: the request waits its turn at the gate),
    before any header is sent, so an error still gets its status; the synthesis is closed
    (its gate place freed) if that fails or the client leaves meanwhile. anyio lets the
    thread finish even then."""
    try:
        return await anyio.to_thread.run_sync(next, items, None)
    except BaseException:
        synthesis.close()
        raise


async def _stream_body(request: Request, synthesis, chunks, first,
                       stall_s: float) -> AsyncIterator[bytes]:
    """Send chunks as they are made, from a producer that runs ahead of the network.

    The producer, not the response, watches the client: the response's own cleanup can
    wait for the garbage collector after a disconnect. It stops making chunks (and frees
    the request's place at the gate) when the client goes away, or when the client has
    not taken a chunk for `stall_s` seconds: a client that never reads cannot hold a
    place forever.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    space = asyncio.Semaphore(STREAM_AHEAD_CHUNKS - 1)
    queue.put_nowait(first.data)

    async def room_for_a_chunk() -> bool:
        """Wait until the client has taken a chunk; False once it has gone away."""
        deadline = loop.time() + stall_s
        while not await request.is_disconnected():
            try:
                await asyncio.wait_for(space.acquire(), max(0.0, min(DISCONNECT_POLL_S,
                                                                     deadline - loop.time())))
                return True
            except asyncio.TimeoutError:
                if loop.time() >= deadline:
                    raise
        return False

    async def produce():
        pending = None
        try:
            while await room_for_a_chunk():
                pending = loop.run_in_executor(None, next, chunks, None)
                # Shielded: a chunk being made holds the device; let it finish, then stop.
                chunk = await asyncio.shield(pending)
                pending = None
                if chunk is None:
                    return
                queue.put_nowait(chunk.data)
            logger.info("client went away mid-stream")
        except asyncio.TimeoutError:
            logger.warning("client read nothing for %.0f s; ending its stream", stall_s)
        except TTSError as e:
            logger.warning("stream ended early: %s", e)  # headers are sent: all we can do is stop
        finally:
            if pending is not None:
                await asyncio.wait([pending])  # waits without cancelling it
            # Synchronous, with no await: a cancel landing now cannot skip it. It only ends
            # a generator paused between chunks (the gate place is freed), so it is quick.
            synthesis.close()
            queue.put_nowait(None)

    producer = asyncio.create_task(produce())
    _PRODUCERS.add(producer)
    producer.add_done_callback(_PRODUCERS.discard)
    try:
        while (data := await queue.get()) is not None:
            yield data
            space.release()
    finally:
        # No await here: this may run inside a cancelled scope (the client left). The
        # producer finishes the chunk in hand, closes the synthesis and frees its place.
        producer.cancel()


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
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


def _speech_fields(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's speech body with types checked (422); values are the pipeline's to judge (400)."""
    def typed(name, kinds, default, what):
        value = body.get(name, default)
        if value is None and default is not None:
            value = default
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise ApiError(422, f"'{name}' must be {what}; got {json.dumps(value)[:80]}.",
                           param=name, code="invalid_type")
        return value

    if "input" not in body:
        raise ApiError(422, "'input' is required: the text to speak.", param="input",
                       code="missing_field")
    # Fields this app does not use ('instructions', 'backend', 'user', ...) are ignored. An
    # empty model or format means the default, as a missing one does.
    fields = {
        "input": typed("input", (str,), None, "a string"),
        "model": typed("model", (str,), "tts-1", "a string") or "tts-1",
        "voice": typed("voice", (str,), "", "a string"),
        "response_format": typed("response_format", (str,), DEFAULT_FORMAT, "a string") or DEFAULT_FORMAT,
        "speed": typed("speed", (int, float), SpeechRequest.speed, "a number"),
        "stream": typed("stream", (bool,), False, "true or false"),
        # Not OpenAI's: a loudness target in LUFS (null or absent: TTS_LOUDNESS) and its
        # true-peak ceiling in dBTP; the pipeline checks their ranges.
        "loudness": _number_or_none(body, "loudness"),
        "true_peak": _number_or_none(body, "true_peak"),
    }
    stream_format = body.get("stream_format", "audio")
    if stream_format != "audio":
        raise ApiError(400, "Only stream_format 'audio' is supported.", param="stream_format",
                       code="unsupported_value")
    return fields


def _number_or_none(body: dict[str, Any], name: str) -> float | bool | None:
    """A number, null (the server's setting) or false (off, for `loudness`)."""
    value = body.get(name)
    if value is None or (value is False and name == "loudness"):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(422, f"'{name}' must be a number; got {json.dumps(value)[:80]}.",
                       param=name, code="invalid_type")
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def captions(words) -> dict[str, Any]:
    """`words` as JSON, with SubRip and WebVTT subtitles made from them."""
    return {"words": [w.to_dict() for w in words], "srt": to_srt(words), "vtt": to_vtt(words)}


class _Line:
    """One NDJSON line, shaped like a chunk for `_stream_body` (which sends `.data`)."""

    def __init__(self, obj: dict[str, Any]):
        self.data = json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _caption_lines(synthesis) -> Iterator[_Line]:
    """A captioned stream's lines: each piece (a complete file in the asked format) with the
    words that start in it, timed from the start of the whole audio; then the record."""
    rate = audio_io.output_rate(synthesis.format, synthesis.sample_rate)
    words = []
    for chunk in synthesis:
        words.extend(chunk.words)
        yield _Line({"chunk": chunk.index, "sentence": chunk.sentence, "text": chunk.text,
                     "audio": _b64(chunk.data), "format": synthesis.format, "sample_rate": rate,
                     "words": [w.to_dict() for w in chunk.words]})
    yield _Line({"done": True, **captions(words), "latency": synthesis.record.to_dict()})
