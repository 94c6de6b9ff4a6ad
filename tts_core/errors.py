"""Typed errors: each says what went wrong and what to do about it."""

from __future__ import annotations


class TTSError(Exception):
    """Base of every error the engine raises on purpose."""


class ConfigError(TTSError):
    """An environment variable has a value the app cannot start with."""

    def __init__(self, variable: str, problem: str):
        self.variable = variable
        super().__init__(f"{variable}: {problem}")


class ModelLoadError(TTSError):
    """A configured model could not be loaded or warmed up; the app must not start."""


class InputError(TTSError, ValueError):
    """The request itself is wrong (text, model, voice, speed, seed); the person can fix it."""

    def __init__(self, message: str, param: str | None = None):
        self.param = param  # the SpeechRequest field at fault, by its name there (`text`, `format`)
        super().__init__(message)


class UnknownModelError(InputError):
    """The request names a model that is not loaded."""


class UnknownVoiceError(InputError):
    """The request names a voice the chosen model does not have."""


class GateBusyError(TTSError):
    """Too many requests are already waiting for the device; try again shortly."""

    def __init__(self, message: str, retry_after_s: float):
        self.retry_after_s = retry_after_s
        super().__init__(message)


class ClientBusyError(GateBusyError):
    """This client already holds its share of the gate's places (TTS_MAX_PER_CLIENT)."""


class ClientGoneError(TTSError):
    """The caller went away (a client hung up): the request was stopped and its place freed."""


class GateTimeoutError(TTSError):
    """A request waited longer than the gate's timeout for its turn on the device."""


class SynthesisError(TTSError):
    """The engine failed while making audio for an accepted request."""


class InferenceTimeoutError(SynthesisError):
    """One inference ran past TTS_INFER_TIMEOUT; its request was stopped and the gate moved on."""


class OutOfMemoryError(SynthesisError):
    """The device ran out of memory for this request; what could be freed was freed."""


class VoiceClipError(InputError):
    """A reference clip cannot make a voice (not audio, too short, all silence, too long to cut
    with its transcript); `code` says which, for the HTTP answer."""

    def __init__(self, message: str, code: str):
        self.code = code
        super().__init__(message, param="audio")


class VoiceExistsError(InputError):
    """A voice of that name is already saved, or a loaded model has a voice of that name."""

    def __init__(self, message: str):
        super().__init__(message, param="name")
