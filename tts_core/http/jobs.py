"""Long-form job routes: POST/GET /v1/audio/jobs, GET/DELETE /v1/audio/jobs/{id}, its audio and subtitles.

A job takes the speech body's fields (JSON, `input` the text; `input_format` "text" or
"markdown"), or the same fields as multipart form fields with the text or an EPUB as
`file`. It answers 202 with the job, which renders in the background (`jobs.JobManager`).
With TTS_API_KEY set every route needs the key, and a job is seen only with the key that
made it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.formparsers import MultiPartException, MultiPartParser

from ..errors import InputError, TTSError
from ..jobs import JobManager, JobNotFound, jobs_for, read_input
from ..jobs.assemble import MEDIA_TYPES
from ..jobs.manager import owner_for_key
from .context import GUARDED, ApiContext, api_context, parse_json, read_body, too_large
from .errors import ApiError, from_tts_error
from .protocol import parse_speech
from .speech import speech_request

logger = logging.getLogger(__name__)

JOBS_ROUTE = "/v1/audio/jobs"
# A job's body (an EPUB with its pictures, or a long text) may be far larger than a speech
# body: it is read up to this, or TTS_MAX_BODY_BYTES if that is larger.
JOB_BODY_BYTES = 64 * 2**20
_FORM_NUMBERS = ("speed", "seed", "loudness", "true_peak")
_ERRORS = {s: {"description": d} for s, d in (
    (400, "Bad input"), (401, "Missing or wrong key"), (404, "No such job"),
    (409, "Not done yet"), (413, "Too large, or not enough disk"))}

router = APIRouter(dependencies=GUARDED)


def owner_of(request: Request, ctx: ApiContext) -> str | None:
    """Whose jobs these are: a digest of the key sent (checked already), None with no key."""
    if ctx.settings.api_key is None:
        return None
    return owner_for_key(request.headers.get("authorization", "").partition(" ")[2].strip())


def _manager(ctx: ApiContext) -> JobManager:
    return jobs_for(ctx.pipeline)


async def _body(request: Request, ctx: ApiContext) -> bytes:
    limit = max(JOB_BODY_BYTES, ctx.settings.max_body_bytes)
    return await read_body(request, limit, too_large(limit))


async def _fields(request: Request, ctx: ApiContext) -> tuple[dict[str, Any], bytes | str, str | None]:
    """(the speech fields, the input, its file name) from a JSON or multipart body."""
    body = await _body(request, ctx)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _form(request, body)
    data = parse_json(body)  # the speech routes' own rules: depth, numbers, an object
    return data, data.get("input"), None


async def _form(request: Request, body: bytes):
    async def stream():
        yield body

    try:
        form = await MultiPartParser(request.headers, stream(), max_part_size=len(body) + 1).parse()
    except MultiPartException as e:
        raise ApiError(400, f"The multipart body could not be read: {e.message}",
                       code="invalid_form") from e
    fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    upload = form.get("file")
    if upload is not None and not isinstance(upload, str):
        data, name = await upload.read(), upload.filename
    elif "input" in fields:
        data, name = fields["input"], None
    else:
        raise ApiError(400, "Send the text as 'input', or a file as 'file'.", param="file",
                       code="missing_field")
    for key in _FORM_NUMBERS:  # form fields are text
        if key in fields:
            try:
                fields[key] = float(fields[key]) if "." in fields[key] else int(fields[key])
            except ValueError:
                raise ApiError(422, f"'{key}' must be a number; got {fields[key]!r}.", param=key,
                               code="invalid_type") from None
    if "timings" in fields:
        fields["timings"] = fields["timings"].lower() in ("1", "true", "yes", "on")
    fields["input"] = data if isinstance(data, str) else ""
    return fields, data, name


@router.post(JOBS_ROUTE, status_code=202, responses=_ERRORS)
async def create_job(request: Request, ctx: ApiContext = Depends(api_context)):
    """Start a job: the speech fields, with `input` (text or Markdown by `input_format`) or a
    multipart `file` (.txt, .md or .epub). 202 with the job's id and status."""
    fields, data, filename = await _fields(request, ctx)
    input_format = fields.get("input_format") or ""
    if not isinstance(input_format, str):
        raise ApiError(422, "'input_format' must be a string.", param="input_format",
                       code="invalid_type")
    call = dataclasses.replace(speech_request(parse_speech(fields), JOBS_ROUTE, ctx),
                               timings=fields.get("timings") is True)
    owner = owner_of(request, ctx)

    def submit():
        chapters = read_input(data, input_format, filename)
        return _manager(ctx).submit(chapters, call, owner, input_format or "text")

    try:
        job = await anyio.to_thread.run_sync(submit)
    except InputError as e:
        if e.param == "disk":
            raise ApiError(413, str(e), code="insufficient_storage") from e
        raise from_tts_error(e) from e
    except TTSError as e:
        raise from_tts_error(e) from e
    return JSONResponse(job, status_code=202)


def _not_found(e: JobNotFound) -> ApiError:
    return ApiError(404, str(e), param="id", code="job_not_found")


@router.get(JOBS_ROUTE, responses=_ERRORS)
async def list_jobs(request: Request, ctx: ApiContext = Depends(api_context)):
    """Every job this key may see, oldest first."""
    return {"object": "list", "data": _manager(ctx).list_jobs(owner_of(request, ctx))}


@router.get(JOBS_ROUTE + "/{job_id}", responses=_ERRORS)
async def get_job(job_id: str, request: Request, ctx: ApiContext = Depends(api_context)):
    """A job's status: queued, running, done, failed or cancelled, with its progress (0 to 1),
    sentences done, seconds of audio made and an estimated finish (unix time)."""
    try:
        return _manager(ctx).get(job_id, owner_of(request, ctx))
    except JobNotFound as e:
        raise _not_found(e) from e


@router.delete(JOBS_ROUTE + "/{job_id}", responses=_ERRORS)
async def delete_job(job_id: str, request: Request, ctx: ApiContext = Depends(api_context)):
    """Cancel a queued or running job; remove one that has ended (its files too)."""
    try:
        return await anyio.to_thread.run_sync(
            lambda: _manager(ctx).delete(job_id, owner_of(request, ctx)))
    except JobNotFound as e:
        raise _not_found(e) from e


@router.get(JOBS_ROUTE + "/{job_id}/audio", responses=_ERRORS)
async def job_audio(job_id: str, request: Request, ctx: ApiContext = Depends(api_context)):
    """A done job's audio file (409 while it renders)."""
    return await _file(job_id, "audio", request, ctx)


@router.get(JOBS_ROUTE + "/{job_id}/audio.{kind}", responses=_ERRORS)
async def job_subtitles(job_id: str, kind: str, request: Request,
                        ctx: ApiContext = Depends(api_context)):
    """A done job's subtitles, `srt` or `vtt` (jobs made with timings), or `zip`: one
    file per chapter."""
    if kind not in ("srt", "vtt", "zip"):
        raise ApiError(404, f"There is no audio.{kind[:20]}; ask for audio, audio.srt, "
                            "audio.vtt or audio.zip.", code="not_found")
    return await _file(job_id, kind, request, ctx)


async def _file(job_id: str, kind: str, request: Request, ctx: ApiContext) -> FileResponse:
    manager, owner = _manager(ctx), owner_of(request, ctx)
    try:  # a zip is made when first asked for: off the event loop
        path = await anyio.to_thread.run_sync(lambda: manager.file(job_id, owner, kind))
    except JobNotFound as e:
        raise _not_found(e) from e
    except InputError as e:
        raise ApiError(409, str(e), param="id", code="job_not_done") from e
    media = {"audio": MEDIA_TYPES[manager.get(job_id, owner)["format"]],
             "zip": "application/zip"}.get(kind, "text/plain; charset=utf-8")
    return FileResponse(path, media_type=media, filename=f"{job_id}.{path.suffix.lstrip('.')}"
                        if kind == "audio" else f"{job_id}.{kind}")
