"""transformers VITS: MMS-TTS (1,100+ languages) and multi-speaker VITS such as VCTK."""

from __future__ import annotations

import logging

import numpy as np
import torch
from transformers import AutoTokenizer, VitsModel

from ..config import ModelSpec
from ..errors import ModelLoadError
from .base import Engine, SynthesisParams, language_code, resolve_device

logger = logging.getLogger(__name__)


class VitsEngine(Engine):
    family = "vits"
    supports_seed = True

    def __init__(self, spec: ModelSpec, device: str, cpu_threads: int | None = None):
        device = resolve_device(device, torch.cuda.is_available())
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(spec.source)
            self.model = VitsModel.from_pretrained(spec.source).to(device).eval()
        except (OSError, ValueError) as e:
            raise ModelLoadError(
                f"VITS model {spec.raw!r} could not be loaded from {spec.source!r}: {e}. "
                "Give a Hugging Face hub id (e.g. facebook/mms-tts-eng) or a folder made by "
                "save_pretrained, with its tokenizer files."
            ) from e
        speakers = self.model.config.num_speakers
        voices = tuple(f"speaker_{i}" for i in range(speakers)) if speakers > 1 else ("default",)
        super().__init__(spec.name, self.model.config.sampling_rate, voices, device,
                         language_code(getattr(self.tokenizer, "language", None)))

    def prepare(self, text: str, params: SynthesisParams) -> dict | None:
        inputs = self.tokenizer(text, return_tensors="pt")
        ids = inputs["input_ids"]
        pad = self.tokenizer.pad_token_id
        # With add_blank the tokenizer pads between characters; nothing but pads is nothing to say.
        if ids.numel() == 0 or bool((ids == pad).all()):
            return None
        return dict(inputs)

    def infer(self, prepared: dict, params: SynthesisParams) -> np.ndarray:
        kwargs = {k: v.to(self.device) for k, v in prepared.items()}
        if len(self.voices) > 1:
            kwargs["speaker_id"] = self.voices.index(params.voice)
        with torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            waveform = self.model(**kwargs, speaking_rate=params.speed).waveform
        return waveform[0].float().cpu().numpy()
