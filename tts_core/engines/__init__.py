"""Model families behind one interface; LOADERS maps a spec's family to its engine class.

Each family's module is imported only when a model of that family is configured, so
a Piper-only deployment never pays torch's import time. Everything else a family
knows (its options, where its weights come from, how it loads) is on its class.
"""

from __future__ import annotations

import importlib

from ..config import ModelSpec
from .base import Engine, ModelCard, SynthesisParams, WarmModel, speak

LOADERS = {
    "piper": ("tts_core.engines.piper", "PiperEngine"),
    "vits": ("tts_core.engines.vits", "VitsEngine"),
    "speecht5": ("tts_core.engines.speecht5", "SpeechT5Engine"),
    "bark": ("tts_core.engines.bark", "BarkEngine"),
    "transformers": ("tts_core.engines.generic", "TransformersEngine"),
}
# What each family's engine runs on, known without importing it (the start-up environment
# check reads torch's version without importing torch when no model needs it).
RUNTIMES = {"piper": "onnxruntime", "vits": "torch", "speecht5": "torch", "bark": "torch",
            "transformers": "torch"}


def family_class(family: str) -> type[Engine]:
    module, cls = LOADERS[family]
    return getattr(importlib.import_module(module), cls)


def engine_class(spec: ModelSpec) -> type[Engine]:
    return family_class(spec.family)


def needs_torch(spec: ModelSpec) -> bool:
    return RUNTIMES[spec.family] == "torch"


def load_engine(spec: ModelSpec, device: str, cpu_threads: int | None = None) -> Engine:
    """`spec` loaded by its family's `load`: on its device, not yet warm."""
    return engine_class(spec).load(spec, device, cpu_threads)


__all__ = ["Engine", "ModelCard", "WarmModel", "SynthesisParams", "speak", "load_engine",
           "engine_class", "family_class", "needs_torch", "LOADERS", "RUNTIMES"]
