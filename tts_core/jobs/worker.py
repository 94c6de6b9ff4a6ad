"""A long job in one RunPod worker call: rendered by the job manager, its progress sent with `progress_update`, the book returned as base64.

Job input: `{"long": true, "text": ..., "input_format": "text" | "markdown"}` or
`{"long": true, "file_base64": ..., "input_format": "epub" | ...}`, with the speech fields
(`model`, `voice`, `speed`, `seed`, `format`, `timings`, `loudness`, `true_peak`; format
also `m4b`). While it renders, `runpod.serverless.progress_update` gets the job's status
(progress 0 to 1, sentences, audio seconds, estimated finish) every few seconds; the
result is the book as base64 with its chapters (and subtitles with timings), or
`{"error": ...}`.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any, Callable

from ..captions import b64
from ..errors import TTSError
from ..request import SpeechRequest
from .manager import JobNotFound, jobs_for
from .source import read_input

PROGRESS_EVERY_S = 2.0
LONG_KEYS = ("long", "file_base64", "input_format")
_REQUEST_KEYS = ("model", "voice", "speed", "seed", "format", "timings", "loudness", "true_peak")


def is_long(job: Any) -> bool:
    payload = job.get("input") if isinstance(job, dict) else None
    return isinstance(payload, dict) and payload.get("long") is True


def run_long(job: dict, pipeline, update: Callable[[dict, Any], None] | None = None) -> dict:
    """Render the job's text or file as a book, reporting progress; its result as JSON."""
    if update is None:
        from runpod.serverless import progress_update as update
    payload = job["input"]
    unknown = sorted(set(payload) - set(LONG_KEYS + _REQUEST_KEYS + ("text",)))
    if unknown:
        return {"error": f"Unknown input field(s) {', '.join(unknown)} for a long job."}
    try:
        if "file_base64" in payload:
            data = base64.b64decode(payload["file_base64"], validate=True)
        elif isinstance(payload.get("text"), str):
            data = payload["text"]
        else:
            return {"error": 'A long job needs "text" or "file_base64".'}
        fields = {k: payload[k] for k in _REQUEST_KEYS if k in payload}
        fields.update(model=payload.get("model") or None, voice=payload.get("voice") or None)
        fields.setdefault("format", "mp3")
        chapters = read_input(data, payload.get("input_format") or "", None)
        manager = jobs_for(pipeline)
        made = manager.submit(chapters, SpeechRequest("", **fields), None,
                              payload.get("input_format") or "text")
    except binascii.Error as e:
        return {"error": f"file_base64 is not base64: {e}."}
    except TTSError as e:
        return {"error": str(e)}
    return _wait(job, manager, made["id"], update)


def _wait(job: dict, manager, job_id: str, update) -> dict:
    """Report progress until the job ends; then its book (base64) and chapters, and the
    job's files are removed."""
    try:
        while (state := manager.get(job_id))["status"] in ("queued", "running"):
            update(job, state)
            time.sleep(PROGRESS_EVERY_S)
        if state["status"] != "done":
            return {"error": state.get("error") or f"The job was {state['status']}."}
        out = {"audio_base64": b64(manager.file(job_id, None).read_bytes()),
               "format": state["format"], "audio_seconds": state["audio_seconds"],
               "chapters": [c["title"] for c in state["chapters"]]}
        try:
            out.update(srt=manager.file(job_id, None, "srt").read_text(),
                       vtt=manager.file(job_id, None, "vtt").read_text())
        except JobNotFound:  # no timings asked for
            pass
        return out
    finally:
        try:
            manager.delete(job_id)  # cancels it if it still runs (the call was stopped) ...
            manager.delete(job_id)  # ... and removes it
        except JobNotFound:
            pass
