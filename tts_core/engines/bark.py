"""Bark (suno/bark, suno/bark-small): text -> semantic -> coarse -> fine tokens -> EnCodec, 24 kHz.

Voices are Bark's history-prompt presets: the model's own speaker-embeddings file (read
eagerly at load, never per request) plus `.npz` presets in a folder; "random" speaks
without a prompt. Bark samples at every stage, so temperature and seed matter, and it is
slow: three autoregressive models run for every chunk.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from transformers import BarkModel, BarkProcessor

from ..config import ModelSpec
from ..device import resolve_device
from ..errors import ModelLoadError
from ..voices import load_bark_presets, voices_folder
from .base import Engine, SynthesisParams
from .torch_util import dtype_name, load_errors, pick_dtype, seed_all, weights_bytes

logger = logging.getLogger(__name__)

NO_PRESET = "random"
DEFAULT_TEMPERATURE = 0.7  # Bark's own default for its semantic and coarse stages
# How long Bark may talk per chunk, in semantic tokens (49.9 per second of audio): enough for
# slow speech of the chunk's characters, so that it cannot ramble on after a short text; never
# more than the checkpoint's own limit (768, about 15 s, for suno's).
SEMANTIC_TOKENS_PER_CHAR = 8
SEMANTIC_TOKENS_MIN = 60


class BarkEngine(Engine):
    family = "bark"
    supports_seed = True
    supports_speed = False
    supports_temperature = True
    max_chunk_chars = 180  # about 12 s of speech: within what Bark says well in one go

    def __init__(self, spec: ModelSpec, device: str, cpu_threads: int | None = None):
        super().__init__(spec, resolve_device(device, torch.cuda.is_available()), cpu_threads)
        device = self.device
        # bfloat16 on CUDA: a tiny Bark's output stays within 38 dB of float32's, where float16
        # drifted to 16 dB (its EnCodec decoder); float32 where the GPU has no bfloat16.
        dtype = pick_dtype(spec.dtype, device, cuda_default="bfloat16")
        with load_errors(f"Bark model {spec.raw!r} could not be loaded from {spec.source!r}",
                         "Give a hub id such as suno/bark-small or a folder made by save_pretrained "
                         "(model and BarkProcessor, with speaker_embeddings_path.json for its "
                         "presets)."):
            self.processor = BarkProcessor.from_pretrained(spec.source)
            self.model = BarkModel.from_pretrained(spec.source, dtype=dtype).to(device).eval()
        self.presets = self._own_presets(spec)
        folder = voices_folder(spec.voices, self.family)
        if spec.voices and not folder.is_dir():
            raise ModelLoadError(f"Bark model {spec.raw!r}: voices folder {folder} does not exist.")
        from_folder = load_bark_presets(folder)
        if NO_PRESET in from_folder:
            raise ModelLoadError(f"Bark model {spec.raw!r}: {folder}/{NO_PRESET}.npz takes the name "
                                 f"of the built-in '{NO_PRESET}' voice (no prompt); rename it.")
        self.presets.update(from_folder)
        # "mul" (ISO 639-3: multiple languages): Bark speaks the language of the text and preset.
        rate = (getattr(self.model.generation_config, "sample_rate", None)
                or self.model.config.codec_config.sampling_rate)
        self.sample_rate, self.voices = int(rate), tuple(self.presets) + (NO_PRESET,)
        self.language_tag = "mul"
        self.dtype, self.memory_bytes = dtype_name(dtype), weights_bytes(self.model)
        semantic = getattr(self.model.generation_config, "semantic_config", {})
        self.max_semantic_tokens = int(semantic.get("max_new_tokens", 768) if isinstance(semantic, dict)
                                       else getattr(semantic, "max_new_tokens", 768))
        self.note = ("Bark is slow: three models write each chunk token by token, so expect "
                     "seconds per sentence even on a GPU; progress is shown per chunk. It has no "
                     "speed control; temperature and seed shape the voice. A preset keeps one "
                     "speaker throughout; 'random' (no prompt) lets Bark invent a speaker for "
                     "every chunk. With a seed, the same text gives the same audio.")

    def _own_presets(self, spec: ModelSpec) -> dict[str, dict[str, np.ndarray]]:
        """Every preset the model's speaker-embeddings file lists, loaded now (warm)."""
        listed = [name for name in (self.processor.speaker_embeddings or {}) if name != "repo_or_path"]
        presets = {}
        for name in listed:
            try:
                presets[name] = {k: np.asarray(v) for k, v in
                                 self.processor._load_voice_preset(name).items()}
            except (OSError, ValueError) as e:
                raise ModelLoadError(f"Bark model {spec.raw!r}: its preset {name!r} could not be "
                                     f"read: {e}") from e
        return presets

    def prepare(self, text: str, params: SynthesisParams) -> dict | None:
        inputs = self.processor(text, voice_preset=self.presets.get(params.voice))
        ids = inputs["input_ids"]
        if not bool(inputs["attention_mask"].any()):
            return None
        special = set(self.processor.tokenizer.all_special_ids)
        if all(int(i) in special for i in ids[0][inputs["attention_mask"][0].bool()]):
            return None
        inputs["semantic_max_new_tokens"] = min(
            self.max_semantic_tokens, SEMANTIC_TOKENS_MIN + SEMANTIC_TOKENS_PER_CHAR * len(text))
        return inputs

    def infer(self, prepared: dict, params: SynthesisParams) -> np.ndarray:
        inputs = dict(prepared)
        tokens = inputs.pop("semantic_max_new_tokens")
        history = inputs.pop("history_prompt", None)
        if history is not None:  # Bark's generate does not move the prompt to the model's device
            history = {key: value.to(self.device) for key, value in history.items()}
        temperature = params.temperature if params.temperature is not None else DEFAULT_TEMPERATURE
        with torch.inference_mode():
            seed_all(params.seed)
            audio = self.model.generate(
                input_ids=inputs["input_ids"].to(self.device),
                attention_mask=inputs["attention_mask"].to(self.device),
                history_prompt=history, do_sample=True, semantic_max_new_tokens=tokens,
                semantic_temperature=temperature, coarse_temperature=temperature)
        return np.clip(audio.float().cpu().numpy().reshape(-1), -1.0, 1.0)
