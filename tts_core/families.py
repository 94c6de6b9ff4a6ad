"""FAMILIES: what each model family's spec may say, known without importing its engine (or torch).

Each family's module is imported only when a model of that family is loaded, so a
Piper-only deployment never pays torch's import time, and reading a spec (TTS_MODELS,
or a model added while serving) never does: what a spec may say is in the family's
`Family` entry here. Everything else a family knows (where its weights come from, how it
loads, what it can do) is on its engine class (`engines.family_class`).
"""

from __future__ import annotations

from dataclasses import dataclass


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
    # Codec language models that clone a voice from a reference clip (engines/codec_lm.py).
    "csm": Family("tts_core.engines.csm", "CsmEngine", "torch", ("dtype",)),
    "dia": Family("tts_core.engines.dia", "DiaEngine", "torch", ("dtype",)),
    "pocket": Family("tts_core.engines.pocket", "PocketEngine", "torch", ("dtype",)),
    "transformers": Family("tts_core.engines.generic", "TransformersEngine", "torch",
                           ("dtype", "lang")),
}


def needs_torch(spec) -> bool:
    """Whether `spec` (a `config.ModelSpec`) runs on torch, so that loading it imports torch."""
    return FAMILIES[spec.family].runtime == "torch"
