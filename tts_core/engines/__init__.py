"""Model families behind one interface; LOADERS maps a spec's family to its loader.

Each family's module is imported only when a model of that family is configured, so
a Piper-only deployment never pays torch's import time.
"""

from __future__ import annotations

import importlib

from ..config import ModelSpec
from .base import Engine, SynthesisParams, resolve_device

LOADERS = {
    "piper": ("tts_core.engines.piper", "PiperEngine"),
    "vits": ("tts_core.engines.vits", "VitsEngine"),
    "speecht5": ("tts_core.engines.speecht5", "SpeechT5Engine"),
    "bark": ("tts_core.engines.bark", "BarkEngine"),
    "transformers": ("tts_core.engines.generic", "TransformersEngine"),
}


def engine_class(spec: ModelSpec) -> type[Engine]:
    module, cls = LOADERS[spec.family]
    return getattr(importlib.import_module(module), cls)


def load_engine(spec: ModelSpec, device: str, cpu_threads: int | None = None) -> Engine:
    return engine_class(spec)(spec, device, cpu_threads)


__all__ = ["Engine", "SynthesisParams", "resolve_device", "load_engine", "engine_class", "LOADERS"]
