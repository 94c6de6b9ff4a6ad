"""The one small interface every model family implements, and device selection."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class SynthesisParams:
    """What a request asks of the engine, already validated; `voice` is one of `Engine.voices`."""

    voice: str
    speed: float = 1.0
    seed: int | None = None


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

    def __init__(self, name: str, sample_rate: int, voices: tuple[str, ...], device: str,
                 language: str | None = None):
        self.name = name
        self.sample_rate = sample_rate
        self.voices = voices
        self.device = device
        #: ISO 639-1 code when known; English text gets numbers and abbreviations spelled out.
        self.language = language

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
            "supports_seed": self.supports_seed,
            "supports_batching": self.supports_batching,
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
