"""A reference clip made ready for cloning: decoded, mono, edges trimmed, cut on a pause, level set.

A clip arrives as the bytes of any common audio file. It is decoded (soundfile, else the
ffmpeg that `tts_core.ffmpeg` finds, for MP3/M4A/WebM), mixed to mono, trimmed of the
silence at its edges, and cut to the family's useful length at a pause, never inside a
word. When a transcript goes with the clip, the transcript is cut to match: that needs
to know when each word is spoken (Whisper's word times); without them a clip too long
is refused with what to do. Its level is then set to one loudness, so every voice
conditions its model alike. Resampling to each model's rate is `for_model`'s.
"""

from __future__ import annotations

import difflib
import io
import logging
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import soundfile as sf

from .. import audio as audio_io
from .. import loudness
from ..errors import VoiceClipError
from ..ffmpeg import find_ffmpeg

logger = logging.getLogger(__name__)

MIN_CLIP_S = 1.0  # no family makes a voice from less sound than this
MAX_CLIP_S = 300.0  # a decoded upload longer than five minutes is refused, not cut
FRAME_S = 0.02  # the silence and pause detector's frame: 20 ms of RMS
SILENT_DBFS = -60.0  # a clip whose loudest frame is quieter than this is all silence
SILENCE_BELOW_PEAK_DB = 40.0  # an edge frame this far below the loudest frame is silence
EDGE_MARGIN_S = 0.1  # sound kept before the first and after the last loud frame
PAUSE_S = 0.15  # the quiet stretch a cut is placed in the middle of
CLIP_LOUDNESS = loudness.LoudnessTarget(lufs=-20.0, true_peak_db=-1.0)  # every clip's level
FFMPEG_RATE = 48000  # what ffmpeg decodes to (float32 mono) when soundfile cannot read a file
FFMPEG_TIMEOUT_S = 60
_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True)
class Word:
    """One word as heard in the clip, with when it is spoken (seconds from the clip's start)."""

    text: str
    start: float
    end: float


class Transcriber(Protocol):
    """What hears a clip: its words in order, timed (`voices.transcribe.WhisperTranscriber`)."""

    def words(self, audio: np.ndarray, rate: int) -> list[Word]: ...


@dataclass(frozen=True)
class PreparedClip:
    """A clip ready to condition a model, and what was done to it (what a person is told)."""

    audio: np.ndarray  # float32 mono, level set
    sample_rate: int
    transcript: str | None
    original_s: float  # the upload as decoded
    cut: bool  # shortened to the family's useful length
    transcribed: bool  # the transcript is Whisper's, not the uploader's

    @property
    def seconds(self) -> float:
        return self.audio.shape[0] / self.sample_rate

    def for_model(self, rate: int) -> np.ndarray:
        """The clip at a model's own rate (soxr)."""
        return audio_io.resample(self.audio, self.sample_rate, rate).astype(np.float32)


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """Any common audio file -> (float32 mono, rate); VoiceClipError('not_audio') otherwise."""
    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, ValueError, TypeError) as e:
        logger.debug("soundfile cannot read the clip (%s); trying ffmpeg", e)
        audio, rate = _ffmpeg_decode(data)[:, None], FFMPEG_RATE
    mono = audio.mean(axis=1).astype(np.float32)
    if mono.size == 0 or not np.isfinite(mono).all():
        raise VoiceClipError("The uploaded file holds no audio samples.", code="not_audio")
    if mono.shape[0] / rate > MAX_CLIP_S:
        raise VoiceClipError(f"The clip is {mono.shape[0] / rate:.0f} s long; send at most "
                             f"{MAX_CLIP_S:.0f} s (a voice needs only a few seconds).",
                             code="clip_too_long")
    return mono, int(rate)


def _ffmpeg_decode(data: bytes) -> np.ndarray:
    """Decode with ffmpeg from a file (M4A's index may sit at its end, which a pipe cannot seek)."""
    ffmpeg = find_ffmpeg()
    not_audio = ("The upload is not an audio file this server can read (WAV, FLAC, OGG, MP3, "
                 "M4A, WebM and the like)")
    if ffmpeg is None:
        raise VoiceClipError(f"{not_audio}: soundfile cannot read it and no ffmpeg is installed "
                             "for other formats; send WAV, FLAC or OGG.", code="not_audio")
    with tempfile.TemporaryDirectory(prefix="tts-clip-") as folder:
        source = Path(folder) / "upload"
        source.write_bytes(data)
        try:
            proc = subprocess.run(
                [ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(source), "-vn", "-ac", "1",
                 "-ar", str(FFMPEG_RATE), "-f", "f32le", "pipe:1"],
                capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as e:
            raise VoiceClipError(f"{not_audio}: decoding it took over {FFMPEG_TIMEOUT_S} s.",
                                 code="not_audio") from e
    if proc.returncode != 0 or not proc.stdout:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no audio"]
        raise VoiceClipError(f"{not_audio}: {reason[0][:200]}.", code="not_audio")
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)


def frame_db(audio: np.ndarray, rate: int) -> np.ndarray:
    """Each FRAME_S frame's RMS level in dBFS."""
    size = max(1, int(FRAME_S * rate))
    frames = audio[: audio.shape[0] // size * size].reshape(-1, size)
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)


def trim_edges(audio: np.ndarray, rate: int) -> np.ndarray:
    """`audio` without the silence at its start and end (a little margin kept)."""
    levels = frame_db(audio, rate)
    if levels.size == 0 or levels.max() < SILENT_DBFS:
        raise VoiceClipError("The clip is all silence (or too quiet to hear): record someone "
                             "speaking, close to the microphone.", code="clip_silent")
    loud = np.flatnonzero(levels > levels.max() - SILENCE_BELOW_PEAK_DB)
    size, margin = int(FRAME_S * rate), int(EDGE_MARGIN_S * rate)
    start = max(0, loud[0] * size - margin)
    stop = min(audio.shape[0], (loud[-1] + 1) * size + margin)
    return audio[start:stop]


def quietest(audio: np.ndarray, rate: int, lo_s: float, hi_s: float) -> float:
    """The middle of the quietest PAUSE_S stretch between `lo_s` and `hi_s` (seconds): where
    a cut falls between words. Of stretches within 1 dB of the quietest, the latest."""
    levels = frame_db(audio, rate)
    width = max(1, round(PAUSE_S / FRAME_S))
    smooth = np.convolve(levels, np.ones(width) / width, mode="valid")  # [i]: frames i..i+width
    first = max(0, int(np.ceil(lo_s / FRAME_S)))
    last = min(smooth.shape[0] - 1, int(hi_s / FRAME_S) - width)
    if last < first:
        return hi_s
    window = smooth[first:last + 1]
    pick = first + int(np.flatnonzero(window <= window.min() + 1.0)[-1])
    return (pick + width / 2) * FRAME_S


def prepare(data: bytes, *, min_s: float, max_s: float, transcript: str | None,
            needs_transcript: bool, transcriber: Transcriber | None) -> PreparedClip:
    """An upload made ready for families that want `min_s` to `max_s` seconds of it.

    The transcript is the uploader's (cut to match when the clip is cut) or, where
    `needs_transcript` and none was given, Whisper's. Raises VoiceClipError naming the
    problem: not audio, all silence, too short, too long to cut with its transcript.
    """
    audio, rate = decode(data)
    original_s = audio.shape[0] / rate
    audio = trim_edges(audio, rate)
    need = max(MIN_CLIP_S, min_s)
    _long_enough(audio, rate, need, original_s)
    transcript = (transcript or "").strip() or None
    wants_words = transcript is not None or needs_transcript
    cut = audio.shape[0] / rate > max_s
    transcribed = False
    if cut and wants_words:
        audio, transcript, transcribed = _cut_with_words(audio, rate, min_s, max_s, transcript,
                                                         transcriber)
    elif cut:
        audio = audio[: int(quietest(audio, rate, max(need, max_s / 2), max_s) * rate)]
    elif transcript is None and needs_transcript:
        transcript, transcribed = _heard(audio, rate, transcriber), True
    if cut:
        audio = trim_edges(audio, rate)
        _long_enough(audio, rate, need, original_s)
    audio, _ = loudness.normalize(audio, rate, CLIP_LOUDNESS)
    return PreparedClip(audio.astype(np.float32), rate, transcript, round(original_s, 3), cut,
                        transcribed)


def _long_enough(audio: np.ndarray, rate: int, need: float, original_s: float) -> None:
    if audio.shape[0] / rate < need:
        raise VoiceClipError(f"The clip has {audio.shape[0] / rate:.1f} s of sound (of "
                             f"{original_s:.1f} s, silence trimmed); a voice needs at least "
                             f"{need:.0f} s of someone speaking.", code="clip_too_short")


def _heard(audio: np.ndarray, rate: int, transcriber: Transcriber | None) -> str:
    words = _words(audio, rate, transcriber, None)
    if not words:
        raise VoiceClipError("Whisper hears no words in the clip: record someone speaking, or "
                             "send its transcript.", code="no_speech")
    return " ".join(w.text for w in words)


def _words(audio: np.ndarray, rate: int, transcriber: Transcriber | None,
           max_s: float | None) -> list[Word]:
    if transcriber is None:
        seconds = audio.shape[0] / rate
        if max_s is not None:
            raise VoiceClipError(
                f"The clip is {seconds:.1f} s of sound; keep it under {max_s:.0f} s or trim it "
                "yourself: its transcript cannot be cut to match without word times (no Whisper "
                "model is loaded).", code="clip_too_long")
        raise VoiceClipError("This voice's models need the clip's transcript and no Whisper "
                             "model is loaded to hear it: send 'transcript', the words spoken "
                             "in the clip.", code="transcript_required")
    return transcriber.words(audio, rate)


def _cut_with_words(audio: np.ndarray, rate: int, min_s: float, max_s: float,
                    transcript: str | None, transcriber: Transcriber | None
                    ) -> tuple[np.ndarray, str, bool]:
    """Cut at a pause between two words before `max_s`; the transcript cut after the same
    word (the uploader's, matched to what Whisper hears; else Whisper's own)."""
    words = _words(audio, rate, transcriber, max_s)
    seconds = audio.shape[0] / rate
    for i in _cut_candidates(words, max(MIN_CLIP_S, min_s), max_s, seconds):
        kept = transcript_before(transcript, words, i) if transcript else " ".join(
            w.text for w in words[: i + 1])
        if kept is None:
            continue
        after = words[i + 1].start if i + 1 < len(words) else seconds
        at = quietest(audio, rate, words[i].end, min(after, max_s))
        return audio[: int(at * rate)], kept, transcript is None
    what = ("its transcript does not match the words Whisper hears at any pause"
            if transcript and words else "Whisper finds no pause between words")
    raise VoiceClipError(f"The clip is {seconds:.1f} s of sound and must be cut to under "
                         f"{max_s:.0f} s, but {what} before {max_s:.0f} s. Trim it to under "
                         f"{max_s:.0f} s yourself and send the transcript of what is left.",
                         code="clip_too_long")


def _cut_candidates(words: Sequence[Word], min_s: float, max_s: float,
                    seconds: float) -> list[int]:
    """Indices of words a cut may follow (ending between `min_s` and `max_s`), best first:
    the longest pause after them, a sentence's end counting as a long one."""
    scored = []
    for i, word in enumerate(words):
        after = words[i + 1].start if i + 1 < len(words) else seconds
        if min_s <= word.end <= max_s and after > word.end:
            bonus = 0.3 if word.text.rstrip().endswith((".", "!", "?")) else 0.0
            scored.append((min(after, max_s) - word.end + bonus, word.end, i))
    return [i for *_, i in sorted(scored, reverse=True)]


def _norm(words: Sequence[str]) -> list[str]:
    return ["".join(_WORD.findall(w.lower())) for w in words]


def transcript_before(transcript: str, words: Sequence[Word], i: int) -> str | None:
    """The uploader's transcript up to the word heard as `words[i]`: None unless that word and
    the next are both matched to neighbouring words of the transcript (so the cut between
    them is unambiguous) and most of the words kept match."""
    tokens = transcript.split()
    heard = _norm([w.text for w in words])
    matcher = difflib.SequenceMatcher(None, _norm(tokens), heard, autojunk=False)
    heard_to_typed = {b + k: a + k for a, b, n in matcher.get_matching_blocks() for k in range(n)}
    j = heard_to_typed.get(i)
    if j is None or (i + 1 < len(words) and heard_to_typed.get(i + 1) != j + 1):
        return None
    matched = sum(1 for k in range(i + 1) if k in heard_to_typed)
    if matched < 0.5 * (i + 1):
        return None
    return " ".join(tokens[: j + 1])
