"""transformers VITS: MMS-TTS (1,100+ languages) and multi-speaker VITS such as VCTK."""

from __future__ import annotations

import logging

import numpy as np
import torch
from transformers import AutoTokenizer, VitsModel

from ..config import ModelSpec
from ..errors import ModelLoadError
from .base import Engine, SynthesisParams, resolve_device
from .torch_util import dtype_name, load_errors, pick_dtype, seed_all, weights_bytes

logger = logging.getLogger(__name__)


class VitsEngine(Engine):
    family = "vits"
    supports_seed = True
    supports_batching = True  # padded inputs, trimmed back with the model's sequence_lengths

    def __init__(self, spec: ModelSpec, device: str, cpu_threads: int | None = None):
        device = resolve_device(device, torch.cuda.is_available())
        dtype = pick_dtype(spec.dtype, device)
        with load_errors(f"VITS model {spec.raw!r} could not be loaded from {spec.source!r}",
                         "Give a Hugging Face hub id (e.g. facebook/mms-tts-eng) or a folder made "
                         "by save_pretrained, with its tokenizer files."):
            self.tokenizer = AutoTokenizer.from_pretrained(spec.source)
            self.model = VitsModel.from_pretrained(spec.source, dtype=dtype).to(device).eval()
        if spec.noise_scale is not None:
            self.model.noise_scale = spec.noise_scale
        if spec.noise_w is not None:
            self.model.noise_scale_duration = spec.noise_w
        speakers = self.model.config.num_speakers
        voices = tuple(f"speaker_{i}" for i in range(speakers)) if speakers > 1 else ("default",)
        super().__init__(spec.name, self.model.config.sampling_rate, voices, device,
                         getattr(self.tokenizer, "language", None))
        self.dtype, self.memory_bytes = dtype_name(dtype), weights_bytes(self.model)
        # MMS checkpoints for non-Latin scripts are trained on romanized text (uroman). The
        # tokenizer would build a new Uroman (seconds) per call; one warm instance serves all.
        self.romanizer = _uroman() if getattr(self.tokenizer, "is_uroman", False) else None
        if self.romanizer is not None:
            # uroman leaves some punctuation (— “ ”) outside ASCII; the tokenizer would then
            # romanize again with a Uroman of its own, per call.
            self.tokenizer.is_uroman = False
            self.note = ("Text in other scripts is romanized with uroman before it is spoken, "
                         "as this model was trained.")

    def prepare(self, text: str, params: SynthesisParams) -> dict | None:
        if self.romanizer is not None:
            text = self.romanizer.romanize_string(text)
        inputs = self.tokenizer(text, return_tensors="pt")
        ids = inputs["input_ids"]
        pad = self.tokenizer.pad_token_id
        # With add_blank the tokenizer pads between characters; nothing but pads is nothing to say.
        if ids.numel() == 0 or bool((ids == pad).all()):
            return None
        return dict(inputs)

    def infer(self, prepared: dict, params: SynthesisParams) -> np.ndarray:
        return self.infer_batch([prepared], params)[0]

    def infer_batch(self, prepared: list[dict], params: SynthesisParams) -> list[np.ndarray]:
        lengths = [int(p["input_ids"].shape[-1]) for p in prepared]
        width = max(lengths)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(prepared), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prepared), width), dtype=torch.long)
        for row, (p, n) in enumerate(zip(prepared, lengths)):
            ids[row, :n] = p["input_ids"][0]
            mask[row, :n] = 1
        kwargs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device),
                  "speaking_rate": params.speed}
        if len(self.voices) > 1:
            kwargs["speaker_id"] = self.voices.index(params.voice)
        with torch.inference_mode():
            seed_all(params.seed)
            out = self.model(**kwargs)
        waveform = out.waveform.float().cpu().numpy()
        return [waveform[row, :int(n)].copy() for row, n in enumerate(out.sequence_lengths.cpu())]


def _uroman():
    try:
        import uroman
    except ImportError as e:
        raise ModelLoadError("This MMS model reads romanized text and needs the uroman package: "
                             "pip install uroman") from e
    return uroman.Uroman()
