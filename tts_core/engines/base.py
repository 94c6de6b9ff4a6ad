"""The one small interface every model family implements, and device selection."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class SynthesisParams:
    """What a request asks of the engine, already validated; `voice` is one of `Engine.voices`."""

    voice: str
    speed: float = 1.0
    seed: int | None = None
    temperature: float | None = None  # sampling temperature, for engines with supports_temperature
    # A request's own speaker (SpeechT5 x-vector, embedding_dim floats); overrides `voice`.
    speaker_embedding: np.ndarray | None = field(default=None, compare=False)


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
