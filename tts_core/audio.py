"""Audio at the edge: float32 in [-1, 1] inside the engine, int16 and containers on the way out."""

from __future__ import annotations

import io
import struct
import subprocess

import numpy as np
import soundfile as sf
import soxr

from .ffmpeg import find_ffmpeg

INT16_MAX = 32767

# format -> (soundfile container, subtype); written by libsndfile, no ffmpeg needed.
SOUNDFILE_FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
# "pcm" is raw signed 16-bit little-endian mono at PCM_RATE, as OpenAI's speech API sends it;
# "aac" is ADTS, encoded by ffmpeg where one is found (ffmpeg.find_ffmpeg).
ALL_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm", "ogg")
PCM_RATE = 24000
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)  # the only rates Opus encodes at
# Formats whose per-chunk encodings concatenate into one valid stream (wav: one header,
# then samples; Ogg Opus: a chained Ogg file; MP3 and ADTS: frames).
STREAMABLE = frozenset({"wav", "pcm", "mp3", "opus", "aac"})
# A WAV header's size fields when the length is not known yet (a stream): the largest value.
_UNKNOWN_SIZE = 0xFFFFFFFF

MEDIA_TYPES = {
    "mp3": "audio/mpeg", "opus": "audio/ogg; codecs=opus", "aac": "audio/aac",
    "flac": "audio/flac", "wav": "audio/wav", "pcm": "audio/pcm", "ogg": "audio/ogg",
}


# Raised-cosine ramps at each chunk's edges: a chunk that starts or stops off zero would
# click where chunks join. 5 ms is below what a listener hears as a fade.
FADE_MS = 5.0


def fade_edges(audio: np.ndarray, rate: int, ms: float = FADE_MS, head: bool = True,
               tail: bool = True) -> np.ndarray:
    """Ramp a sentence's outer edges (`head`: its start, `tail`: its end) from and to zero.

    Windows inside a sentence join seamlessly by themselves and are not faded there.
    """
    n = min(int(rate * ms / 1000), audio.shape[0] // 2)
    if n < 2 or not (head or tail):
        return audio
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))).astype(np.float32)
    out = audio.astype(np.float32, copy=True)
    if head:
        out[:n] *= ramp
    if tail:
        out[-n:] *= ramp[::-1]
    return out


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Clip float32 audio to [-1, 1] and scale to int16 (what gr.Audio plays without re-normalizing)."""
    return (np.clip(audio, -1.0, 1.0) * INT16_MAX).astype(np.int16)


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return audio
    return soxr.resample(audio, rate, target, quality="HQ").astype(np.float32)


def output_rate(fmt: str, rate: int) -> int:
    """The sample rate `fmt` is written at for audio made at `rate`."""
    if fmt == "pcm":
        return PCM_RATE
    if fmt == "opus":
        return next((r for r in OPUS_RATES if r >= rate), OPUS_RATES[-1])
    return rate


def aac_available(ffmpeg: str | None = None) -> bool:
    """True when `ffmpeg` (default: the one `find_ffmpeg` found) can encode aac."""
    return (ffmpeg or find_ffmpeg()) is not None


def encode(audio: np.ndarray, sample_rate: int, fmt: str = "wav", ffmpeg: str | None = None) -> bytes:
    """Encode mono float32 audio as a complete file (or raw PCM) in `fmt`; aac runs `ffmpeg`
    (default: the one `find_ffmpeg` found)."""
    rate = output_rate(fmt, sample_rate)
    audio = resample(audio, sample_rate, rate)
    if fmt == "pcm":
        return to_int16(audio).tobytes()
    if fmt == "aac":
        return _ffmpeg_aac(to_int16(audio), rate, ffmpeg or find_ffmpeg())
    if fmt == "mp3":
        return _encode_mp3(to_int16(audio), rate)
    try:
        container, subtype = SOUNDFILE_FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown audio format {fmt!r}; formats: {', '.join(ALL_FORMATS)}") from None
    buf = io.BytesIO()
    sf.write(buf, to_int16(audio), rate, format=container, subtype=subtype)
    return buf.getvalue()


def wav_stream_header(rate: int) -> bytes:
    """A 16-bit mono WAV header for a stream whose length is not known yet."""
    byte_rate = rate * 2
    return (b"RIFF" + struct.pack("<I", _UNKNOWN_SIZE) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, byte_rate, 2, 16)
            + b"data" + struct.pack("<I", _UNKNOWN_SIZE))


# MP3 is written at a constant bitrate, and with no Xing/Info frame (see `_encode_mp3`).
MP3_KBPS = 64  # mono speech; every MPEG version has this rate (MPEG-2.5 tops out at 64)
# libsndfile 1.2 maps its compression level linearly onto each MPEG version's bitrate range
# for constant-bitrate LAME: kbps = max - level * (max - min). MPEG-1 is 32-48 kHz,
# MPEG-2 16-24 kHz, MPEG-2.5 8-12 kHz.
_MP3_KBPS_RANGE = {1: (32, 320), 2: (8, 160), 25: (8, 64)}


def _mpeg_version(rate: int) -> int:
    return 1 if rate >= 32000 else 2 if rate >= 16000 else 25


def _encode_mp3(samples: np.ndarray, rate: int) -> bytes:
    """Whole-file MP3 that can be joined to another back to back and still play to the end.

    LAME (inside libsndfile 1.2) writes no ID3 tag, but starts every file with a Xing/Info
    frame that states the file's frame count and its encoder delay and padding. In a file
    made of several responses back to back (LibreChat and Home Assistant join them), that
    first count ends playback early: libsndfile/mpg123 stops after the first response, and
    every later Info frame plays as a frame of silence. So the Info frame is left out.
    Without it a player reads the duration from the size, which is only right at a
    constant bitrate: hence CBR. The cost: the encoder's priming (about 1,100 samples)
    and the last frame's padding are no longer trimmed, some 50-80 ms of silence at
    22 kHz, and the same in every decoder.
    """
    low, high = _MP3_KBPS_RANGE[_mpeg_version(rate)]
    level = (high - MP3_KBPS) / (high - low)
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="MP3", subtype="MPEG_LAYER_III",
             bitrate_mode="CONSTANT", compression_level=level)
    return strip_mp3_info_frame(buf.getvalue())


# MPEG audio Layer III tables, for finding the length of an MP3 frame from its header.
_MP3_KBPS = {1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
             2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
_MP3_RATES = {1: (44100, 48000, 32000), 2: (22050, 24000, 16000), 25: (11025, 12000, 8000)}


def strip_mp3_info_frame(data: bytes) -> bytes:
    """Drop the leading Xing/Info frame, whose frame count would end playback after one file.

    LAME starts every file with a frame that states the file's length; in a stream made
    of several files back to back, decoders stop at the first file's end. Without it the
    frames simply play on.
    """
    if len(data) < 4 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        return data
    header = int.from_bytes(data[:4], "big")
    version = {0b11: 1, 0b10: 2, 0b00: 25}.get((header >> 19) & 0b11)
    bitrate_index, rate_index = (header >> 12) & 0xF, (header >> 10) & 0b11
    if version is None or (header >> 17) & 0b11 != 0b01 or rate_index == 3 or bitrate_index in (0, 15):
        return data
    kbps = _MP3_KBPS[1 if version == 1 else 2][bitrate_index]
    rate = _MP3_RATES[version][rate_index]
    size = (144 if version == 1 else 72) * kbps * 1000 // rate + ((header >> 9) & 1)
    if b"Xing" in data[4:64] or b"Info" in data[4:64]:
        return data[size:]
    return data


class ChunkEncoder:
    """Encodes a request's chunks one by one: each a complete file, or one continuous stream."""

    def __init__(self, fmt: str, sample_rate: int, continuous: bool, ffmpeg: str | None = None):
        self.fmt = fmt
        self.sample_rate = sample_rate
        self.continuous = continuous
        self.ffmpeg = ffmpeg  # for aac; None: the one `find_ffmpeg` found
        self._started = False

    def encode(self, audio: np.ndarray) -> bytes:
        if self.continuous and self.fmt == "wav":
            body = to_int16(audio).tobytes()
            if not self._started:
                self._started = True
                return wav_stream_header(self.sample_rate) + body
            return body
        return encode(audio, self.sample_rate, self.fmt, self.ffmpeg)  # MP3 chunks: no Info frame


def _ffmpeg_aac(samples: np.ndarray, rate: int, ffmpeg: str | None) -> bytes:
    if ffmpeg is None:
        raise ValueError("aac needs ffmpeg, and none is installed here")
    proc = subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error", "-f", "s16le", "-ar", str(rate), "-ac", "1",
         "-i", "pipe:0", "-c:a", "aac", "-b:a", "96k", "-f", "adts", "pipe:1"],
        input=samples.tobytes(), capture_output=True, check=False, timeout=60,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not encode aac: {proc.stderr.decode(errors='replace')[:200]}")
    return proc.stdout


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Read an encoded file back to float32 (for tests and the benchmark)."""
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    return audio, rate
