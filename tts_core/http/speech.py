"""Speech routes: OpenAI's /v1/audio/speech, and /v1/audio/captioned (audio with word timings).

Both take the same body (`protocol.SpeechBody`); with `"stream": true` they answer through
`streaming`. Every synthesis goes through the pipeline, so the gate's back-pressure applies
(429 with Retry-After), with the client's address for its per-client bound. A whole file
whose client hangs up stops at once (its turn given up, its place freed), as a stream does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from .. import audio as audio_io
from ..captions import b64, captions
from ..errors import ClientGoneError, TTSError
from ..metrics import LatencyRecord
from ..request import SpeechRequest
from .context import GUARDED, ApiContext, api_context, read_json
from .errors import ApiError, from_tts_error
from .guard import client_of
from .protocol import OPENAI_DEFAULT_FORMAT, OPENAI_DEFAULT_MODEL, SpeechBody, documented_body, \
    error_responses, parse_speech
from .streaming import stream_audio, stream_captioned

logger = logging.getLogger(__name__)

SPEECH_ROUTE = "/v1/audio/speech"
CAPTIONED_ROUTE = "/v1/audio/captioned"  # speech with word timings and subtitles

# How often a whole-file request looks whether its client is still there.
WHOLE_FILE_POLL_S = 0.1

router = APIRouter(dependencies=GUARDED)
# Read (bounded) by `read_json`, typed by `parse_speech`; documented on the OpenAPI page.
_BODY = documented_body(SpeechBody)
_ERRORS = error_responses(400, 401, 404, 413, 422, 429, 500, 503)
_AUDIO = {"content": {t: {} for t in sorted(set(audio_io.MEDIA_TYPES.values()))},
          "description": "The audio; with stream, sent as it is made."}


def latency_headers(record: LatencyRecord, rate: int) -> dict[str, str]:
    return {
        "X-Queue-Ms": f"{record.queue_ms:.1f}", "X-Text-Ms": f"{record.text_ms:.1f}",
        "X-Inference-Ms": f"{record.inference_ms:.1f}", "X-Encode-Ms": f"{record.encode_ms:.1f}",
        "X-Total-Ms": f"{record.total_ms:.1f}", "X-First-Audio-Ms": f"{record.first_audio_ms:.1f}",
        "X-Audio-Seconds": f"{record.audio_seconds:.3f}", "X-RTF": f"{record.rtf:.4f}",
        "X-Model": record.model, "X-Device": record.device, "X-Sample-Rate": str(rate),
        "X-Latency": json.dumps(record.to_dict(), separators=(",", ":")),
    }


def speech_request(body: SpeechBody, route: str, ctx: ApiContext) -> SpeechRequest:
    """The body as the pipeline's request, model and voice resolved (OpenAI names mapped)."""
    if body.instructions:  # gpt-4o-mini-tts's style prompt; sent by Home Assistant
        logger.debug("ignoring 'instructions': the models here do not take a style prompt")
    try:
        model = ctx.model_for(body.model or OPENAI_DEFAULT_MODEL)
        # the model may have been removed a moment ago
        voice = ctx.voice_for(ctx.pipeline.registry.get(model), body.voice or "")
    except TTSError as e:
        ctx.pipeline.refused(route, "bad_request")
        raise from_tts_error(e) from e
    except ApiError:
        ctx.pipeline.refused(route, "bad_request")
        raise
    speed = SpeechRequest.speed if body.speed is None else body.speed
    return SpeechRequest(text=body.input, model=model, voice=voice, speed=speed, seed=body.seed,
                         format=body.response_format or OPENAI_DEFAULT_FORMAT,
                         loudness=body.loudness, true_peak=body.true_peak)


def _speech_body(route: str):
    """A dependency: the route's body read and typed (a refusal counted in the metrics)."""
    async def typed(request: Request, ctx: ApiContext = Depends(api_context)) -> SpeechBody:
        try:
            return parse_speech(await read_json(request, ctx))
        except ApiError as e:
            ctx.pipeline.refused(route, "cancelled" if e.code == "client_gone" else "bad_request")
            raise
    return typed


async def _synthesize(request: Request, ctx: ApiContext, call: SpeechRequest, route: str):
    """The whole file, made in a thread; stopped (its gate place freed) when the client leaves."""
    pipeline, cancel = ctx.pipeline, threading.Event()
    work = asyncio.ensure_future(anyio.to_thread.run_sync(lambda: pipeline.synthesize(
        call, route=route, client=client_of(request), cancel=cancel)))
    try:
        while not (await asyncio.wait({work}, timeout=WHOLE_FILE_POLL_S))[0]:
            if not cancel.is_set() and await request.is_disconnected():
                logger.info("client went away; stopping its whole-file request")
                pipeline.cancel(cancel)
        return work.result()
    except ClientGoneError as e:  # nobody reads this answer
        raise ApiError(499, str(e), code="client_gone") from e
    except TTSError as e:
        raise from_tts_error(e) from e
    finally:
        if not work.done():  # this handler was cancelled: let the thread stop soon
            pipeline.cancel(cancel)


@router.post(SPEECH_ROUTE, openapi_extra=_BODY, responses={200: _AUDIO, **_ERRORS})
async def speech(request: Request, body: SpeechBody = Depends(_speech_body(SPEECH_ROUTE)),
                 ctx: ApiContext = Depends(api_context)):
    """Speak `input`: the whole file, or with `"stream": true` the audio as it is made."""
    call = speech_request(body, SPEECH_ROUTE, ctx)
    if body.stream:
        return await stream_audio(request, ctx.pipeline, call, SPEECH_ROUTE)
    result = await _synthesize(request, ctx, call, SPEECH_ROUTE)
    rate = audio_io.output_rate(result.format, result.sample_rate)
    return Response(result.data, media_type=audio_io.MEDIA_TYPES[result.format],
                    headers=latency_headers(result.record, rate))


@router.post(CAPTIONED_ROUTE, openapi_extra=_BODY, responses=_ERRORS)
async def captioned(request: Request, body: SpeechBody = Depends(_speech_body(CAPTIONED_ROUTE)),
                    ctx: ApiContext = Depends(api_context)):
    """The speech body; JSON with the audio (base64), its words timed, SRT and WebVTT.
    With "stream": true, NDJSON: a line per piece of audio with the words that start in
    it, then a last line with the latency record and the subtitles."""
    call = dataclasses.replace(speech_request(body, CAPTIONED_ROUTE, ctx), timings=True)
    if body.stream:
        return await stream_captioned(request, ctx.pipeline, call, CAPTIONED_ROUTE)
    result = await _synthesize(request, ctx, call, CAPTIONED_ROUTE)
    return {"audio": b64(result.data), "format": result.format,
            "sample_rate": audio_io.output_rate(result.format, result.sample_rate),
            **captions(result.words), "latency": result.record.to_dict()}
