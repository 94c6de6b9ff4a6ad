"""SpeechRequest: the one frozen description of what a caller asked to hear.

Every entry point builds one from its own input (the UI and Gradio API in `app.py`, the
HTTP body in `http/speech.py`, a RunPod job in `runpod_worker.py`) and hands it to
`Pipeline.stream` or `Pipeline.synthesize`. The fields' defaults live here and nowhere
else; their values are the pipeline's to judge (`plan.make_plan` checks them once), so a
request holds what the caller sent, not what was accepted. How the caller delivers the
audio (its route, one stream or a file per chunk) is not part of the request: it is an
argument of the call.

A new field (say `pitch`) goes here with its bounds, in the check in `plan.py` (errors
name the field as it is named here; each entry point maps names to its own) and the
engine step that uses it, and in each entry point's mapping of its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

# A speaker embedding as sent: the vector itself, .npy bytes, or a path or URL to a .npy file.
Embedding = Union[np.ndarray, bytes, str, Path]
DEFAULT_FORMAT = "wav"  # what the pipeline encodes when a caller names no format

# The fields' bounds (`plan.make_plan` checks them; the UI's sliders and the settings that
# give a field its default, TTS_LOUDNESS and TTS_TRUE_PEAK, read them from here).
MIN_SPEED = 0.25
MAX_SPEED = 4.0
MIN_TEMPERATURE = 0.05  # Bark's sampling temperature; near 0 is nearly greedy
MAX_TEMPERATURE = 2.0
MAX_SEED = 2**32 - 1  # torch.manual_seed and numpy both accept 32-bit seeds everywhere
# Loudness: from quiet narration to louder than any broadcast norm (EBU R128 -23, podcasts
# and loudness-tts -16, streaming services -14), in LUFS; its true-peak ceiling in dBTP.
MIN_LUFS = -40.0
MAX_LUFS = -9.0
MIN_TRUE_PEAK_DB = -9.0
MAX_TRUE_PEAK_DB = 0.0


@dataclass(frozen=True, eq=False)  # eq=False: an ndarray field has no single truth value
class SpeechRequest:
    """What to say and how: every field but `text` optional, None meaning the default."""

    text: str
    model: str | None = None  # a loaded model's name; None: the first configured one
    voice: str | None = None  # one of the model's voices; None: its default voice
    speed: float = 1.0  # speaking rate, MIN_SPEED to MAX_SPEED
    seed: int | None = None  # 0 to MAX_SEED repeats a rendering; None: a fresh one
    temperature: float | None = None  # Bark, MIN_ to MAX_TEMPERATURE; None: the model's own
    speaker_embedding: Embedding | None = None  # SpeechT5 only: an x-vector
    format: str = DEFAULT_FORMAT  # one of audio.ALL_FORMATS
    timings: bool = False  # word timings beside the audio (models with phoneme durations)
    loudness: float | bool | None = None  # MIN_ to MAX_LUFS; None: TTS_LOUDNESS; False: off
    true_peak: float | None = None  # ceiling, MIN_ to MAX_TRUE_PEAK_DB; None: TTS_TRUE_PEAK
