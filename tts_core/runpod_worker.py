"""RunPod serverless worker: the same warm pipeline behind RunPod's job queue.

    python -m tts_core.runpod_worker                      # on RunPod
    python -m tts_core.runpod_worker --test_input '{"input": {"text": "Hello there."}}'

The hard-won lesson of the worker this product grew from: models load once, at worker
start, never per request (lazy loading cost 10 to 30 s per cold request). So `main()`
warm-loads every model in TTS_MODELS before `runpod.serverless.start`, and the handler
only ever uses that warm pipeline.

Job input: `{"text", "model", "voice", "speed", "seed", "temperature", "format", "stream",
"timings", "loudness", "true_peak"}`, all but `text` optional (format: wav, mp3, opus, flac,
ogg, pcm; default wav; loudness: a target in LUFS such as -16, true_peak its ceiling in
dBTP). Output: base64 audio with the latency record, and with `timings: true` the `words`
({word, start, end} in seconds), `srt` and `vtt`; with `stream: true`, one partial per
piece (a sentence, or a window of one; with timings, the words that start in it) and a
last one with the record (and the subtitles). Bad input returns `{"error": "..."}` and the worker carries on.

A job may also bring a one-off voice for a cloning model: `reference_audio` (a base64 audio
file) and `reference_text` (its transcript; optional where Whisper can hear it). The clip is
prepared and encoded for the job, spoken, and forgotten: it is never saved.

A long text or a book (`"long": true`, with `text` or `file_base64`) renders as a job in the
same call, with `runpod.serverless.progress_update` while it renders (`jobs.worker`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import sys
from contextlib import contextmanager
from dataclasses import fields, replace
from typing import Any, AsyncIterator, Callable, Iterator

from . import audio as audio_io
from . import bootstrap
from .captions import b64, captions
from .config import name_problem
from .errors import TTSError
from .jobs.worker import is_long, run_long
from .pipeline import Pipeline
from .request import SpeechRequest
from .voices.library import library_for

logger = logging.getLogger(__name__)

# A job's fields: the request's own (all but the speaker embedding, which a job has no way
# to send), and "stream", which says how the audio comes back (listed after "format").
REQUEST_KEYS = tuple(f.name for f in fields(SpeechRequest) if f.name != "speaker_embedding")
_AFTER_FORMAT = REQUEST_KEYS.index("format") + 1
CLONE_KEYS = ("reference_audio", "reference_text")  # a one-off voice, never saved
INPUT_KEYS = REQUEST_KEYS[:_AFTER_FORMAT] + ("stream",) + REQUEST_KEYS[_AFTER_FORMAT:] + CLONE_KEYS


ROUTE = "runpod"  # the worker's requests in the metrics


class JobError(ValueError):
    """The job's input is unusable; its message goes back to the caller as {"error": ...}."""


def parse_input(job: Any) -> tuple[SpeechRequest, bool]:
    """A job's input as a request, and whether it asked for a stream."""
    payload = job.get("input") if isinstance(job, dict) else None
    if not isinstance(payload, dict):
        raise JobError('The job needs an "input" object, e.g. {"input": {"text": "Hello there."}}.')
    unknown = sorted(set(payload) - set(INPUT_KEYS))
    if unknown:
        raise JobError(f"Unknown input field(s) {', '.join(unknown)}; fields: {', '.join(INPUT_KEYS)}.")
    if "text" not in payload:
        raise JobError('"text" is required: the text to speak.')
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise JobError('"stream" must be true or false.')
    timings = payload.get("timings", False)
    if not isinstance(timings, bool):
        raise JobError('"timings" must be true or false.')
    if payload.get("format") == "aac":
        raise JobError("aac is not offered by the worker; use wav, mp3, opus, flac, ogg or pcm.")
    given = {key: payload[key] for key in REQUEST_KEYS if key in payload}
    # An empty model or voice means the default, as a missing one does.
    given.update(model=payload.get("model") or None, voice=payload.get("voice") or None)
    if given["model"] is not None and (problem := name_problem(given["model"])):
        raise JobError(f'"model": {problem}.')
    return SpeechRequest(**given), stream


@contextmanager
def reference_voice(pipeline: Pipeline, job: dict, request: SpeechRequest) -> Iterator[SpeechRequest]:
    """`request` speaking the job's `reference_audio` as a voice of its own for as long as the
    block runs (the clip prepared, encoded at the gate, then forgotten); else `request`."""
    payload = job["input"]
    clip, text = payload.get("reference_audio"), payload.get("reference_text")
    if clip is None:
        if text is not None:
            raise JobError('"reference_text" goes with "reference_audio", the clip it transcribes.')
        yield request
        return
    if payload.get("voice"):
        raise JobError('Send "voice" or "reference_audio", not both.')
    if not isinstance(clip, str) or not (text is None or isinstance(text, str)):
        raise JobError('"reference_audio" must be base64 text and "reference_text" text.')
    try:
        data = base64.b64decode(clip, validate=True)
    except (binascii.Error, ValueError) as e:
        raise JobError(f'"reference_audio" is not valid base64: {e}.') from e
    with library_for(pipeline).temporary(request.model, data, text) as voice:
        yield replace(request, voice=voice)


def make_handlers(pipeline: Pipeline) -> tuple[Callable[[dict], dict], Callable[[dict], Iterator[dict]]]:
    """(whole-job handler, streaming generator) over one warm pipeline."""

    def handle(job: dict) -> dict:
        if is_long(job):  # a book: rendered as a job, its progress reported (`jobs.worker`)
            return run_long(job, pipeline)
        try:
            request, _ = parse_input(job)
            with reference_voice(pipeline, job, request) as request:
                result = pipeline.synthesize(request, route=ROUTE)
        except (JobError, TTSError) as e:
            return {"error": str(e)}
        out = {"audio_base64": b64(result.data), "format": result.format,
               "sample_rate": audio_io.output_rate(result.format, result.sample_rate),
               "latency": result.record.to_dict()}
        return out | (captions(result.words) if request.timings else {})

    def handle_stream(job: dict) -> Iterator[dict]:
        if is_long(job):
            yield handle(job)
            return
        try:
            request, stream = parse_input(job)
        except JobError as e:
            yield {"error": str(e)}
            return
        if not stream:
            yield handle(job)
            return
        try:
            with reference_voice(pipeline, job, request) as request:
                synthesis = pipeline.stream(request, route=ROUTE)
                rate = audio_io.output_rate(synthesis.format, synthesis.sample_rate)
                words = []
                for chunk in synthesis:
                    words.extend(chunk.words)
                    part = {"chunk": chunk.index, "sentence": chunk.sentence, "text": chunk.text,
                            "audio_base64": b64(chunk.data),
                            "format": synthesis.format, "sample_rate": rate}
                    if request.timings:
                        part["words"] = [w.to_dict() for w in chunk.words]
                    yield part
        except (JobError, TTSError) as e:
            yield {"error": str(e)}
            return
        done = {"done": True, "latency": synthesis.record.to_dict()}
        yield done | (captions(words) if request.timings else {})

    return handle, handle_stream


def make_async_handler(handle_stream: Callable[[dict], Iterator[dict]]):
    """RunPod's generator handler; synthesis runs in a thread so several jobs can wait at the gate."""

    async def handler(job: dict) -> AsyncIterator[dict]:
        parts = handle_stream(job)
        while (part := await asyncio.to_thread(next, parts, None)) is not None:
            yield part

    return handler


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        settings, pipeline = bootstrap.start()  # warm, once, before the job loop
    except bootstrap.StartupError as e:
        print(f"TTS worker cannot start: {e}", file=sys.stderr)
        return 1
    import runpod

    handle, handle_stream = make_handlers(pipeline)
    # The SDK's local test mode (--test_input) runs one job through a plain handler and
    # prints its result; on RunPod the generator handler serves both kinds of job.
    local_test = "--test_input" in argv
    runpod.serverless.start({
        "handler": handle if local_test else make_async_handler(handle_stream),
        "return_aggregate_stream": True,
        # As many jobs at once as the gate admits: they wait their turn there, not at RunPod.
        "concurrency_modifier": lambda current: settings.queue_size,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
