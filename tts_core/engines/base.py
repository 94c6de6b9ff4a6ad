"""The one small interface every model family implements, and device selection."""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelLoadError
from ..loudness import integrated_lufs
from ..windows import FIRST_WINDOW_FRAMES

logger = logging.getLogger(__name__)

# A windowed decode must join into the whole decode at least this cleanly, or the engine
# streams whole sentences instead (checked at warm-up, on the warm-up text).
MIN_WINDOW_SNR_DB = 40.0


@dataclass(frozen=True)
class SynthesisParams:
    """What a request asks of the engine, already validated; `voice` is one of `Engine.voices`."""

    voice: str
    speed: float = 1.0
    seed: int | None = None
    temperature: float | None = None  # sampling temperature, for engines with supports_temperature
    # A request's own speaker (SpeechT5 x-vector, embedding_dim floats); overrides `voice`.
    speaker_embedding: np.ndarray | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Latent:
    """One sentence after a two-stage engine's first stage: what its decoder turns into audio.

    `frames` decoder frames make `frames * Engine.samples_per_frame` samples; `data` is
    the engine's own (the latent and whatever conditions the decoder).
    """

    frames: int
    data: Any = field(compare=False, repr=False)
    #: Frames per input unit (phoneme id, character), from the model's own duration
    #: predictor; None for engines that do not expose them.
    durations: np.ndarray | None = field(default=None, compare=False, repr=False)


class Engine(ABC):
    """A loaded, warm model.

    Work is split in two so that only device work is serialized by the gate:
    `prepare` (text -> model inputs, CPU, outside the gate) and `infer`
    (inputs -> float32 mono audio in [-1, 1], inside the gate).
    """

    family: str = ""
    #: True when `infer_batch` runs several inputs in one device call (not one by one).
    supports_batching: bool = False
    #: True when `SynthesisParams.seed` makes the output reproducible.
    supports_seed: bool = False
    #: False when the model has no speaking-rate control (a speed other than 1 is refused).
    supports_speed: bool = True
    #: True when `SynthesisParams.temperature` is used (sampling models such as Bark).
    supports_temperature: bool = False
    #: Length of the speaker embedding a request may bring (SpeechT5's x-vectors); None: none.
    embedding_dim: int | None = None
    #: The longest chunk this family speaks well; None: TTS_CHUNK_CHARS decides.
    max_chunk_chars: int | None = None
    #: What a person should know before using it (shown beside the model picker).
    note: str = ""
    #: True when the engine makes audio in two stages (`encode_batch`, then `decode` on any
    #: window of the latent's frames), so a stream can start before a sentence is decoded.
    supports_windows: bool = False
    #: Audio samples per decoder frame (the decoder's hop), for windowed engines.
    samples_per_frame: int = 0
    #: Frames of latent the decoder reads on each side of a window so that windows join
    #: into the whole decode (its receptive field, rounded up); checked at warm-up.
    window_context: int = 0
    #: True when the model's own per-unit durations come out with the audio
    #: (`infer_batch_timed`, `Latent.durations`) and `word_units` maps them to words.
    supports_timings: bool = False
    #: The warm-up sentences as a stream makes them (set at warm-up), and their integrated
    #: loudness (LUFS): what a stream's one loudness gain is chosen from.
    level_audio: np.ndarray | None = None
    stream_lufs: float | None = None
    #: Weights' precision and their size in device memory (set by loaders that know it).
    dtype: str = "float32"
    memory_bytes: int = 0

    def __init__(self, name: str, sample_rate: int, voices: tuple[str, ...], device: str,
                 language: str | None = None):
        self.name = name
        self.sample_rate = sample_rate
        self.voices = voices
        self.device = device
        #: The model's own language tag ('eng', 'en-us', 'aze-script_cyrillic'), when it has one.
        self.language_tag = language
        #: ISO 639-1 code when known; English text gets numbers and abbreviations spelled out.
        self.language = language_code(language)

    @classmethod
    def fetch(cls, spec) -> None:
        """Download what `spec` needs into the local caches (image build time): by default,
        load it once on the CPU with the family's own code."""
        cls(spec, "cpu")

    @property
    def default_voice(self) -> str:
        return self.voices[0]

    @abstractmethod
    def prepare(self, text: str, params: SynthesisParams) -> Any | None:
        """Text to model inputs; None when nothing in `text` is pronounceable by this model."""

    @abstractmethod
    def infer(self, prepared: Any, params: SynthesisParams) -> np.ndarray:
        """Model inputs to float32 mono audio; runs inside the gate."""

    def infer_batch(self, prepared: list[Any], params: SynthesisParams) -> list[np.ndarray]:
        """Several inputs sharing `params`, one audio each, in order; runs inside the gate.

        Engines that can pad inputs into one device call override this and set
        `supports_batching`; the rest run them one by one.
        """
        return [self.infer(p, params) for p in prepared]

    def infer_batch_timed(self, prepared: list[Any], params: SynthesisParams
                          ) -> list[tuple[np.ndarray, list[np.ndarray] | None]]:
        """`infer_batch`, each audio with its sentences' durations (frames per input unit, in
        order) where the model gives them, else None. The audio is `infer_batch`'s exactly."""
        return [(audio, None) for audio in self.infer_batch(prepared, params)]

    def word_units(self, text: str, prepared: Any) -> list[list[int | None]] | None:
        """CPU, outside the gate: for each sentence of `prepared` (made from `text`), the index
        of the word of `text.split(" ")` each input unit belongs to (None: a pause,
        punctuation, padding). None when this engine has no durations."""
        return None

    def encode_batch(self, prepared: list[Any], params: SynthesisParams) -> list[list[Latent]]:
        """First stage, inside the gate: each input's sentences as latents, in order."""
        raise NotImplementedError(f"{self.family} has no two-stage decode")

    def decode(self, latent: Latent, start: int, stop: int) -> np.ndarray:
        """Second stage, inside the gate: frames [start, stop) of `latent` as audio
        ((stop - start) * samples_per_frame samples), reading `window_context` frames of
        latent on each side so that consecutive windows join into the whole decode."""
        raise NotImplementedError(f"{self.family} has no two-stage decode")

    def warm_up(self, text: str) -> float:
        """Speak `text` once, at load (never per request); the seconds of audio it made.

        Windowed engines also check here that their windows join into the whole decode.
        """
        params = SynthesisParams(voice=self.default_voice)
        prepared = self.prepare(text, params)
        if prepared is None:
            raise ModelLoadError(f"the warm-up text {text!r} has nothing it can say")
        audio = self.infer(prepared, params)
        if audio.size == 0:
            raise ModelLoadError("the warm-up produced no audio")
        self.check_windows(prepared, params)
        self.stream_lufs = self.measure_stream_level(text, audio)
        return audio.shape[0] / self.sample_rate

    def measure_stream_level(self, text: str, audio: np.ndarray) -> float:
        """Integrated loudness (LUFS) of the warm-up as a stream makes it: whole sentences
        (`audio`, already made) or, for windowed engines, the decoder's output, which a
        stream does not peak-normalize (one more decode of the warm-up sentence: a model
        added while serving warms up in one gate turn, which listeners wait for)."""
        params = SynthesisParams(voice=self.default_voice)
        if self.supports_windows:
            prepared = self.prepare(text, params)
            audio = np.concatenate([self.decode(latent, 0, latent.frames)
                                    for item in self.encode_batch([prepared], params)
                                    for latent in item])
        self.level_audio = audio.astype(np.float32)
        level = integrated_lufs(audio, self.sample_rate)
        logger.info("%s: streamed level %.1f LUFS", self.name, level)
        return level

    def check_windows(self, prepared: Any, params: SynthesisParams,
                      first_frames: int = FIRST_WINDOW_FRAMES) -> float | None:
        """Decode `prepared` whole and in windows; keep windows only if they join cleanly.

        Returns the join's SNR in dB (None when the engine has no windows). Run at
        warm-up: a graph or checkpoint whose decoder reads further than `window_context`
        frames streams whole sentences instead, and the log says so.
        """
        if not self.supports_windows:
            return None
        latent = max((lat for item in self.encode_batch([prepared], params) for lat in item),
                     key=lambda lat: lat.frames)
        whole = self.decode(latent, 0, latent.frames)
        step = max(1, min(first_frames, latent.frames // 3))
        pieces = [self.decode(latent, a, min(a + step, latent.frames))
                  for a in range(0, latent.frames, step)]
        joined = np.concatenate(pieces)
        error = float(np.sum((joined - whole) ** 2)) if joined.shape == whole.shape else float("inf")
        snr = 10 * np.log10(float(np.sum(whole ** 2)) / error) if error > 0 else float("inf")
        if snr < MIN_WINDOW_SNR_DB:
            logger.warning("%s: decoding in windows of %d frames joined at %.1f dB SNR against the "
                           "whole decode (below %.0f dB); streaming whole sentences instead",
                           self.name, step, snr, MIN_WINDOW_SNR_DB)
            self.supports_windows = False
        return snr

    def describe(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "sample_rate": self.sample_rate,
            "voices": list(self.voices),
            "default_voice": self.default_voice,
            "device": self.device,
            "language": self.language,
            "language_name": language_name(self.language_tag),
            "dtype": self.dtype,
            "memory_mb": round(self.memory_bytes / 2**20, 1),
            "supports_seed": self.supports_seed,
            "supports_speed": self.supports_speed,
            "supports_temperature": self.supports_temperature,
            "speaker_embedding_dim": self.embedding_dim,
            "supports_batching": self.supports_batching,
            "streams_inside_sentences": self.supports_windows,
            "word_timings": self.supports_timings,
            "note": self.note,
        }


# MMS-TTS tokenizers name languages in ISO 639-3; the few this app treats specially, in 639-1.
ISO_639_3_TO_1 = {"eng": "en", "deu": "de", "fra": "fr", "spa": "es", "por": "pt", "ita": "it",
                  "nld": "nl", "rus": "ru", "hin": "hi", "cmn": "zh", "jpn": "ja", "kor": "ko"}


def language_code(tag: str | None) -> str | None:
    """'en-us', 'en_US', 'eng' -> 'en'; None stays None."""
    if not tag:
        return None
    head = tag.replace("_", "-").split("-", 1)[0].lower()
    return ISO_639_3_TO_1.get(head, head)


@lru_cache(maxsize=None)
def language_name(tag: str | None) -> str | None:
    """'eng' -> 'English', 'en-us' -> 'English (US)', 'aze-script_cyrillic' -> 'Azerbaijani
    (script cyrillic)'; an unknown code is shown as it is. ISO 639 names from pycountry."""
    if not tag:
        return None
    import pycountry

    head, rest = re.match(r"([A-Za-z]+)[-_]?(.*)", tag).groups() if tag[0].isalpha() else (tag, "")
    head = head.lower()
    found = None
    if len(head) in (2, 3):
        found = pycountry.languages.get(**{"alpha_2" if len(head) == 2 else "alpha_3": head})
    name = getattr(found, "name", None) or head
    rest = rest.replace("_", " ").strip()
    return f"{name} ({rest.upper() if len(rest) == 2 else rest})" if rest else name


def resolve_device(requested: str, cuda_available: bool) -> str:
    """Map `auto`/`cpu`/`cuda` to the device a model is placed on."""
    if requested == "cuda" and not cuda_available:
        raise ConfigError(
            "TTS_DEVICE",
            "cuda was asked for but no CUDA device is usable here; set TTS_DEVICE=cpu or auto",
        )
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    return requested
