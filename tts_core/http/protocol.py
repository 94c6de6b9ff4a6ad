"""The HTTP API's wire shapes as pydantic models: the speech body and the error body.

They document the API (`/api/docs`) and check each field's type; the values are the
pipeline's to judge (a 400 from `plan.make_plan`). A wrong type is a 422 naming the field,
in the words the API has always used.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, \
    ValidationError

from ..request import SpeechRequest
from .errors import ApiError

# OpenAI's default response_format, the speech body's own default; a `SpeechRequest` built
# without one gets `request.DEFAULT_FORMAT`.
OPENAI_DEFAULT_FORMAT = "mp3"
OPENAI_DEFAULT_MODEL = "tts-1"

Number = Union[StrictInt, StrictFloat]  # booleans are not numbers here


class SpeechBody(BaseModel):
    """OpenAI's `/v1/audio/speech` body, plus this server's own fields. Unknown fields (OpenAI
    clients send `instructions`, `user`, ...) are ignored; null means the default."""

    model_config = ConfigDict(extra="ignore")

    input: StrictStr = Field(description="The text to speak.")
    model: Optional[StrictStr] = Field(OPENAI_DEFAULT_MODEL, description=(
        "A loaded model's name, or an OpenAI name (tts-1, tts-1-hd, ...) that maps to one."))
    voice: Optional[StrictStr] = Field("", description=(
        "One of the model's voices, or an OpenAI voice name; empty: the model's default."))
    response_format: Optional[StrictStr] = Field(OPENAI_DEFAULT_FORMAT, description=(
        "mp3, opus, aac, flac, wav or pcm (24 kHz 16-bit mono)."))
    speed: Optional[Number] = Field(SpeechRequest.speed, description="Speaking rate.")
    stream: Optional[StrictBool] = Field(False, description=(
        "Send the audio as it is made (mp3, opus, aac, wav, pcm)."))
    loudness: Union[Number, Literal[False], None] = Field(None, description=(
        "Not OpenAI's: a loudness target in LUFS; null: the server's TTS_LOUDNESS; false: off."))
    true_peak: Optional[Number] = Field(None, description=(
        "Not OpenAI's: the loudness target's true-peak ceiling in dBTP; null: TTS_TRUE_PEAK."))
    seed: Optional[Number] = Field(None, description=(
        "Not OpenAI's: a whole number repeats a rendering on models that sample "
        "(see the model's supports_seed); null: a fresh one."))
    stream_format: Optional[Any] = Field("audio", description="Only 'audio' is supported.")
    instructions: Optional[Any] = Field(None, description=(
        "gpt-4o-mini-tts's style prompt: accepted and ignored (the models here take none)."))


# What a wrong type is told it must be, by field.
_EXPECTED = {"input": "a string", "model": "a string", "voice": "a string",
             "response_format": "a string", "speed": "a number", "stream": "true or false",
             "loudness": "a number", "true_peak": "a number", "seed": "a number"}


def parse_speech(body: dict[str, Any]) -> SpeechBody:
    """The body's fields typed, or the first wrong one as a 422 (ApiError)."""
    try:
        speech = SpeechBody.model_validate(body)
    except ValidationError as e:
        raise _type_error(e, body) from None
    if speech.stream_format != "audio":
        raise ApiError(400, "Only stream_format 'audio' is supported.", param="stream_format",
                       code="unsupported_value")
    return speech


def _type_error(e: ValidationError, body: dict[str, Any]) -> ApiError:
    # Errors come in field order; a union field (a number) reports once per member.
    name = str(e.errors()[0]["loc"][0])
    if name == "input" and "input" not in body:
        return ApiError(422, "'input' is required: the text to speak.", param="input",
                        code="missing_field")
    return ApiError(422, f"'{name}' must be {_EXPECTED[name]}; got "
                         f"{json.dumps(body.get(name))[:80]}.", param=name, code="invalid_type")


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, rate_limit_error, server_error, ...")
    param: Optional[str] = Field(None, description="The body field at fault, if one is.")
    code: Optional[str] = None


class ErrorResponse(BaseModel):
    """Every error, in OpenAI's shape."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict]:
    """`responses=` for a route: these statuses answer with an `ErrorResponse`."""
    return {status: {"model": ErrorResponse} for status in statuses}


class AddModelBody(BaseModel):
    """POST /v1/models: a model to load while serving."""

    model_config = ConfigDict(extra="ignore")

    spec: str = Field(description="A model spec as TTS_MODELS takes it, e.g. "
                                  "'piper:en_US-lessac-medium'.")


def documented_body(model: type[BaseModel]) -> dict:
    """`openapi_extra=` for a route that reads its body itself (bounded, by `read_json`):
    the OpenAPI page shows `model` as its JSON body."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}}}}
