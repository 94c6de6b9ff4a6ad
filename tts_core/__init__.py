"""tts_core: the warm text-to-speech engine behind the studio; it never imports gradio.

    from tts_core import Pipeline, Settings, SpeechRequest
    pipeline = Pipeline.from_settings(Settings.from_env())   # loads and warms every model
    result = pipeline.synthesize(SpeechRequest("Hello there."))  # result.data is a WAV file
"""

from . import selfcheck
from .config import ModelSpec, Settings
from .errors import (ConfigError, GateBusyError, GateTimeoutError, InputError, ModelLoadError,
                     SynthesisError, TTSError, UnknownModelError, UnknownVoiceError)
from .metrics import RECORD_KEYS, LatencyRecord
from .pipeline import AudioChunk, Pipeline, Synthesis, SynthesisResult
from .request import SpeechRequest

__all__ = [
    "AudioChunk", "ConfigError", "GateBusyError", "GateTimeoutError", "InputError",
    "LatencyRecord", "ModelLoadError", "ModelSpec", "Pipeline", "RECORD_KEYS", "Settings",
    "SpeechRequest", "Synthesis", "SynthesisError", "SynthesisResult", "TTSError", "UnknownModelError",
    "UnknownVoiceError", "selfcheck",
]
