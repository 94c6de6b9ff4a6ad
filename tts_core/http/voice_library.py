"""HTTP routes of the voice library: add a cloned voice from an uploaded clip, show one, delete one.

`POST /v1/audio/voices` (multipart: `name`, `audio` file, optional `transcript`) answers
201 with the voice's entry and what was kept of the clip; `DELETE /v1/audio/voices/{name}`
removes it. Both are open only when TTS_API_KEY is set and sent (as adding models is):
without a key they answer 403 and say how to open them. The list stays
`GET /v1/audio/voices`, where a saved voice shows once per model that speaks it.
"""

from __future__ import annotations

from typing import AsyncIterator

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ..errors import InputError, TTSError, UnknownVoiceError, VoiceClipError, VoiceExistsError
from ..voices.library import VoiceLibrary, library_for
from .context import GUARDED, ApiContext, api_context, operator_only, read_body
from .errors import ApiError, from_tts_error
from .protocol import error_responses

VOICES_ROUTE = "/v1/audio/voices"
FORM_FIELDS = ("name", "audio", "transcript")


def voice_library(ctx: ApiContext = Depends(api_context)) -> VoiceLibrary:
    return library_for(ctx.pipeline)


router = APIRouter()
OPERATOR = [Depends(operator_only("Adding and deleting voices", "voice_routes_closed")),
            *GUARDED]


@router.post(VOICES_ROUTE, dependencies=OPERATOR, status_code=201,
             responses=error_responses(400, 401, 403, 409, 413, 415, 422))
async def add_voice(request: Request, ctx: ApiContext = Depends(api_context),
                    library: VoiceLibrary = Depends(voice_library)):
    form = await _read_form(request, ctx.settings.max_upload_bytes, ApiError)
    name, audio, transcript = (form.get(key) for key in FORM_FIELDS)
    if not isinstance(name, str) or not name:
        raise ApiError(422, "'name' is required: the voice's name (letters, digits, - and _).",
                       param="name", code="missing_field")
    if not isinstance(audio, UploadFile):
        raise ApiError(422, "'audio' is required: the clip, sent as a file field.",
                       param="audio", code="missing_field")
    if transcript is not None and not isinstance(transcript, str):
        raise ApiError(422, "'transcript' must be text: the words spoken in the clip.",
                       param="transcript", code="invalid_type")
    data = await audio.read()
    try:
        entry = await anyio.to_thread.run_sync(lambda: library.add(name, data, transcript))
    except VoiceExistsError as e:
        raise ApiError(409, str(e), param="name", code="voice_exists") from e
    except VoiceClipError as e:
        raise ApiError(400, str(e), param="audio", code=e.code) from e
    except InputError as e:
        raise ApiError(400, str(e), param=e.param,
                       code="invalid_name" if e.param == "name" else "invalid_value") from e
    except TTSError as e:
        raise from_tts_error(e) from e
    return JSONResponse(entry, status_code=201)

@router.get(VOICES_ROUTE + "/{name}", dependencies=GUARDED, responses=error_responses(401, 404))
def voice(name: str, library: VoiceLibrary = Depends(voice_library)):
    if name not in library.saved:
        raise ApiError(404, _no_such_voice(name, library), param="name", code="voice_not_found")
    return library.entry(name)

@router.delete(VOICES_ROUTE + "/{name}", dependencies=OPERATOR,
               responses=error_responses(401, 403, 404))
def delete_voice(name: str, library: VoiceLibrary = Depends(voice_library)):
    try:
        library.delete(name)
    except UnknownVoiceError as e:
        raise ApiError(404, str(e), param="name", code="voice_not_found") from e
    return {"id": name, "object": "voice", "deleted": True}



def _no_such_voice(name: str, library) -> str:
    return (f"No saved voice is called {name!r}. Saved voices: "
            f"{', '.join(sorted(library.saved)) or 'none'}.")


async def _read_form(request: Request, limit: int, api_error) -> FormData:
    """A multipart body of at most `limit` bytes: refused (413) as soon as it is known to be
    larger (its Content-Length, else the bytes read so far), before the rest is read."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise api_error(415, "Send the voice as multipart/form-data: fields 'name', 'audio' (the "
                             "clip file) and optionally 'transcript'.", code="unsupported_media_type")
    body = await read_body(request, limit, api_error(
        413, f"The upload is larger than {limit} bytes (TTS_MAX_UPLOAD_BYTES); a voice needs only "
             "10 to 30 seconds of audio.", param="audio", code="body_too_large"))

    async def whole() -> AsyncIterator[bytes]:
        yield bytes(body)

    try:
        return await MultiPartParser(request.headers, whole(), max_files=1, max_fields=2,
                                     max_part_size=limit).parse()
    except MultiPartException as e:
        raise api_error(400, f"The multipart body cannot be read: {e.message}",
                        code="invalid_multipart") from e
