"""Loudness: EBU R128 / ITU-R BS.1770-4 measurement (pyloudnorm), one gain, and a true-peak limiter.

A whole file is measured, given the gain that brings it to the target, and limited so
that no true peak (4x oversampled, as BS.1770-4 Annex 2 measures it) passes the
ceiling; the limiter takes back a little loudness, which a second measurement restores.

A stream cannot be measured before it is heard, and a gain that changed from chunk to
chunk would pump. So it gets one gain, chosen before its first chunk: the gain that
brings the voice's own warm-up sentences, as a stream makes them (`Engine.level_audio`),
to the target through the same limiter. The
same limiter, run continuously across the chunks (it holds back a few milliseconds to
look ahead), keeps the true peak under the ceiling without a gain step between chunks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pyloudnorm
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import resample_poly

logger = logging.getLogger(__name__)

# What a request may ask for (its bounds) is in `request.py`, next to the fields.
# The default ceiling: loudness-tts's -1.5 dBTP, which leaves lossy encoders room (EBU
# R128 asks for -1 dBTP).
DEFAULT_TRUE_PEAK_DB = -1.5
# BS.1770-4 Annex 2: true peak is read from the signal oversampled four times.
OVERSAMPLE = 4
# Polyphase filter context (samples each side) that the oversampling reads.
_FILTER_CONTEXT = 16
# The limiter's look-ahead: its gain falls over this long before a peak and rises over
# this long after it (attack = release = 5 ms, below what a listener hears as pumping).
LOOKAHEAD_MS = 5.0
# Integrated loudness needs at least one 400 ms gating block; shorter audio is measured
# with silence after it (silence is below the absolute gate, so it changes nothing).
_BLOCK_S = 0.4
# Whole files: measured again after limiting and corrected, at most this many times.
_PASSES = 6
_CLOSE_ENOUGH_LU = 0.05
# pyloudnorm's level for silence is -inf; below this there is nothing to normalize.
_SILENT_LUFS = -70.0


@dataclass(frozen=True)
class LoudnessTarget:
    """A request's loudness: integrated loudness in LUFS and the true-peak ceiling in dBTP."""

    lufs: float
    true_peak_db: float = DEFAULT_TRUE_PEAK_DB

    @property
    def ceiling(self) -> float:
        return float(10 ** (self.true_peak_db / 20))


def integrated_lufs(audio: np.ndarray, rate: int) -> float:
    """Integrated loudness of mono float audio, in LUFS (BS.1770-4, pyloudnorm)."""
    audio = np.asarray(audio, dtype=np.float64)
    need = int(np.ceil(_BLOCK_S * rate)) + 1
    if audio.shape[0] < need:
        audio = np.concatenate([audio, np.zeros(need - audio.shape[0])])
    return float(pyloudnorm.Meter(rate).integrated_loudness(audio))


def true_peak(audio: np.ndarray) -> float:
    """The largest absolute value of `audio` oversampled four times (linear; 1.0 is 0 dBTP)."""
    if audio.size == 0:
        return 0.0
    up = resample_poly(np.asarray(audio, dtype=np.float64), OVERSAMPLE, 1)
    return float(max(np.max(np.abs(up)), np.max(np.abs(audio))))


def _envelope(x: np.ndarray) -> np.ndarray:
    """Per sample, the largest true-peak value around it (4x oversampled)."""
    up = np.abs(resample_poly(x, OVERSAMPLE, 1))
    env = up[:x.shape[0] * OVERSAMPLE].reshape(-1, OVERSAMPLE).max(axis=1)
    # The peak between sample n and n+1 belongs to both.
    return np.maximum(np.maximum(env, np.abs(x)), np.concatenate([env[1:], env[-1:]]))


class Limiter:
    """A look-ahead true-peak limiter that runs across chunks: `process` each chunk in order,
    then `flush`. It holds back a few milliseconds, so its output lags its input; joined,
    the output is the input (times the gain) with its peaks brought under the ceiling.

    The gain it needs at each sample is min(1, ceiling / envelope); it takes the minimum
    of that over a window of 2L+1 samples, then the mean over another 2L+1: the mean of
    minimums of windows that each contain sample n is at most the gain sample n needs,
    so no sample passes the ceiling, and the gain moves smoothly.
    """

    def __init__(self, rate: int, ceiling: float, gain: float = 1.0):
        self.ceiling = ceiling * 10 ** (-0.1 / 20)  # 0.1 dB below: int16 rounding and the filter
        self.gain = gain
        self.lookahead = max(1, int(rate * LOOKAHEAD_MS / 1000))
        # Input kept from before the next output sample (the filters look back) and held
        # after it (they look ahead).
        self._back = 2 * self.lookahead + _FILTER_CONTEXT
        self._ahead = 2 * self.lookahead + _FILTER_CONTEXT
        self._buffer = np.zeros(0, dtype=np.float64)
        self._out_at = 0  # index in _buffer of the next sample to output

    def process(self, audio: np.ndarray) -> np.ndarray:
        self._buffer = np.concatenate([self._buffer, np.asarray(audio, dtype=np.float64) * self.gain])
        return self._emit(self._buffer.shape[0] - self._ahead)

    def flush(self) -> np.ndarray:
        return self._emit(self._buffer.shape[0])

    def _emit(self, stop: int) -> np.ndarray:
        if stop <= self._out_at:
            return np.zeros(0, dtype=np.float32)
        x = self._buffer
        needed = np.minimum(1.0, self.ceiling / np.maximum(_envelope(x), 1e-12))
        width = 2 * self.lookahead + 1
        smooth = uniform_filter1d(minimum_filter1d(needed, width, mode="nearest"), width,
                                  mode="nearest")
        gain = np.minimum(smooth, needed)  # the mean's rounding may not pass what is needed
        out = (x[self._out_at:stop] * gain[self._out_at:stop]).astype(np.float32)
        keep = max(0, stop - self._back)
        self._buffer = x[keep:]
        self._out_at = stop - keep
        return out


def limited(audio: np.ndarray, rate: int, ceiling: float, gain: float = 1.0) -> np.ndarray:
    """`audio` times `gain`, limited, in one piece (fed to the limiter a second at a time)."""
    limiter = Limiter(rate, ceiling, gain)
    parts = [limiter.process(audio[at:at + rate]) for at in range(0, audio.shape[0], rate)]
    return np.concatenate(parts + [limiter.flush()])


def normalize(audio: np.ndarray, rate: int, target: LoudnessTarget) -> tuple[np.ndarray, float]:
    """A whole file at `target`: (audio, gain in dB). Silence stays silent."""
    level = integrated_lufs(audio, rate)
    if not np.isfinite(level) or level < _SILENT_LUFS:
        return audio, 0.0
    gain_db = target.lufs - level
    out = audio
    for _ in range(_PASSES):
        out = limited(audio, rate, target.ceiling, 10 ** (gain_db / 20))
        error = target.lufs - integrated_lufs(out, rate)
        if abs(error) < _CLOSE_ENOUGH_LU:
            break
        gain_db += error
    return out, gain_db


def stream_gain_db(target: LoudnessTarget, voice_audio: np.ndarray | None, rate: int) -> float:
    """The one gain of a stream: the gain that brings the voice's warm-up sentences, as a
    stream makes them, to `target` through the limiter (so what the limiter takes from
    the peaks is given back). 0 when nothing was measured."""
    if voice_audio is None or voice_audio.size == 0:
        return 0.0
    return normalize(voice_audio, rate, target)[1]
