"""Model families behind one interface: a family's engine class, imported when a model of it loads.

Each family's module is imported only when a model of that family is loaded, so a
Piper-only deployment never pays torch's import time. What a spec may say is in the
family's entry in `tts_core.families.FAMILIES`, readable without importing any engine;
everything else a family knows (where its weights come from, how it loads, what it can
do) is on its engine class.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING

from ..families import FAMILIES
from .base import CloneLimits, Engine, ModelCard, SynthesisParams, WarmModel, speak

if TYPE_CHECKING:  # annotations only: config reads tts_core.families, never this package
    from ..config import ModelSpec


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


def load_engine(spec: ModelSpec, device: str, cpu_threads: int | None = None) -> Engine:
    """`spec` loaded by its family's `load`: on its device, not yet warm."""
    return engine_class(spec).load(spec, device, cpu_threads)


__all__ = ["CloneLimits", "Engine", "ModelCard", "WarmModel", "SynthesisParams", "speak", "load_engine",
           "engine_class", "family_class"]
