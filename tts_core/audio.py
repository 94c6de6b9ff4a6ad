"""Audio at the edge: float32 in [-1, 1] inside the engine, int16 and containers on the way out."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

INT16_MAX = 32767

# response format -> (soundfile container, subtype); all written by libsndfile, no ffmpeg.
FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Clip float32 audio to [-1, 1] and scale to int16 (what gr.Audio plays without re-normalizing)."""
    return (np.clip(audio, -1.0, 1.0) * INT16_MAX).astype(np.int16)


def encode(audio: np.ndarray, sample_rate: int, fmt: str = "wav") -> bytes:
    """Encode mono float32 audio as a complete file in `fmt` (see FORMATS)."""
    if fmt == "pcm":
        return to_int16(audio).tobytes()
    try:
        container, subtype = FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown audio format {fmt!r}; formats: pcm, {', '.join(FORMATS)}") from None
    buf = io.BytesIO()
    sf.write(buf, to_int16(audio), sample_rate, format=container, subtype=subtype)
    return buf.getvalue()


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Read an encoded file back to float32 (for tests and the benchmark)."""
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    return audio, rate
