"""HTTP errors in OpenAI's shape, and the one place pipeline errors become HTTP statuses.

`{"error": {"message", "type", "param", "code"}}`. The core names a bad field by the
`SpeechRequest`'s own name (`text`, `format`); the wire names it as OpenAI does.
"""

from __future__ import annotations

import math

from fastapi.responses import JSONResponse

from ..errors import (ClientBusyError, GateBusyError, GateTimeoutError, InputError, SynthesisError,
                      TTSError, UnknownModelError, UnknownVoiceError)

# SpeechRequest field -> OpenAI's body field, where they differ.
WIRE_PARAMS = {"text": "input", "format": "response_format"}


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


def wire_param(param: str | None) -> str | None:
    """A core field name as OpenAI's body names it (`text` -> `input`)."""
    return WIRE_PARAMS.get(param, param) if param else param


def from_tts_error(e: TTSError) -> ApiError:
    """The one place pipeline errors become HTTP statuses."""
    if isinstance(e, UnknownModelError):
        return ApiError(404, str(e), param="model", code="model_not_found")
    if isinstance(e, UnknownVoiceError):
        return ApiError(400, str(e), param="voice", code="voice_not_found")
    if isinstance(e, InputError):
        return ApiError(400, str(e), param=wire_param(e.param), code="invalid_value")
    if isinstance(e, GateBusyError):
        code = "client_busy" if isinstance(e, ClientBusyError) else "server_busy"
        return ApiError(429, str(e), type_="rate_limit_error", code=code,
                        headers={"Retry-After": str(math.ceil(e.retry_after_s))})
    if isinstance(e, GateTimeoutError):
        return ApiError(503, str(e), type_="server_error", code="gate_timeout",
                        headers={"Retry-After": "5"})
    if isinstance(e, SynthesisError):
        return ApiError(500, str(e), type_="server_error", code="synthesis_failed")
    return ApiError(500, str(e), type_="server_error")
