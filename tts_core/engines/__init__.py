"""Model families behind one interface; FAMILIES says what each is, without importing it.

Each family's module is imported only when a model of that family is loaded, so a
Piper-only deployment never pays torch's import time, and reading a spec (TTS_MODELS,
or a model added while serving) never does: what a spec may say is in the family's
`Family` entry here. Everything else a family knows (where its weights come from, how it
loads, what it can do) is on its engine class.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass

from ..config import ModelSpec
from .base import Engine, ModelCard, SynthesisParams, WarmModel, speak


@dataclass(frozen=True)
class Family:
    """A model family as a spec sees it, known without importing its engine (or torch)."""

    module: str  # where its engine class lives
    engine: str  # the class's name
    runtime: str  # what it runs on: "torch" or "onnxruntime"
    options: tuple[str, ...]  # what a spec of this family may carry after "?" (besides name, device)
    full_precision_only: str = ""  # why it runs in float32 only; "": float16/bfloat16 allowed


FAMILIES = {
    "piper": Family("tts_core.engines.piper", "PiperEngine", "onnxruntime",
                    ("dtype", "noise_scale", "noise_w", "speaker", "revision"),
                    "Piper voices are float32 ONNX models"),
    "vits": Family("tts_core.engines.vits", "VitsEngine", "torch",
                   ("dtype", "noise_scale", "noise_w"),
                   "VITS's duration flow overflows to NaN in float16, and in bfloat16 its "
                   "phoneme durations shift (measured on a tiny model in tests/test_families.py)"),
    "speecht5": Family("tts_core.engines.speecht5", "SpeechT5Engine", "torch",
                       ("dtype", "voices", "vocoder")),
    "bark": Family("tts_core.engines.bark", "BarkEngine", "torch", ("dtype", "voices")),
    "transformers": Family("tts_core.engines.generic", "TransformersEngine", "torch",
                           ("dtype", "lang")),
}


# One family module imported at a time. Python's per-module import locks do not make two
# threads' first imports of torch and transformers safe: where their import graphs cross,
# the deadlock detection hands one thread a partially initialized module, and a model added
# while another loads failed with "cannot import name 'SpeechT5ForTextToSpeech'" (or
# 'AutoTokenizer'); tests/test_import_race.py imports families from threads to show it.
_IMPORT_LOCK = threading.RLock()


def family_class(family: str) -> type[Engine]:
    """The family's engine class (its module imported now: torch, for most)."""
    entry = FAMILIES[family]
    with _IMPORT_LOCK:
        return getattr(importlib.import_module(entry.module), entry.engine)


def engine_class(spec: ModelSpec) -> type[Engine]:
    return family_class(spec.family)


def needs_torch(spec: ModelSpec) -> bool:
    return FAMILIES[spec.family].runtime == "torch"


def load_engine(spec: ModelSpec, device: str, cpu_threads: int | None = None) -> Engine:
    """`spec` loaded by its family's `load`: on its device, not yet warm."""
    return engine_class(spec).load(spec, device, cpu_threads)


__all__ = ["Engine", "ModelCard", "WarmModel", "SynthesisParams", "speak", "load_engine",
           "engine_class", "family_class", "needs_torch", "Family", "FAMILIES"]
