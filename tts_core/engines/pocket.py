"""Kyutai Pocket TTS (about 100M parameters): text (and a voice's latents) -> continuous latents
through a flow head -> its audio tokenizer's decoder, 24 kHz, 12.5 latents a second.

A cloned voice is the clip's latents from the audio tokenizer's encoder (no transcript
needed), computed once by `encode_voice` and given to every request as
`audio_prompt_latents`. `generate` ignores a streamer, so a stream reads each latent as the
next step's forward receives it (a forward pre-hook, per thread), and the last from the output.
The built-in voice "default" has no voice prompt.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import numpy as np
import torch
from transformers import PocketTTSForConditionalGeneration, PocketTTSProcessor

from ..config import ModelSpec
from .base import SynthesisParams
from .codec_lm import CodecLMEngine, max_frames
from .torch_util import dtype_name, weights_bytes

logger = logging.getLogger(__name__)


class PocketEngine(CodecLMEngine):
    family = "pocket"
    supports_batching = True  # left-padded prompts in one generate; rows cut at their own end
    max_chunk_chars = 300
    # Its audio tokenizer's decoder is causal (the processor says so); one latent is held back
    # for the up-sampling overlap. Checked at warm-up.
    lookahead = 1
    first_window_frames = 3  # 240 ms of audio before the first piece leaves
    clip_min_s, clip_max_s, clip_needs_transcript = 2.0, 10.0, False

    def __init__(self, spec: ModelSpec, device: str, cpu_threads: int | None = None):
        super().__init__(spec, device, cpu_threads)
        # float32 on CUDA too: 100M parameters gain little from half precision, and the flow
        # head integrates a velocity field where float16's rounding adds up frame after frame;
        # not measured on a GPU here (no GPU on the build machine).
        dtype = self._load_pretrained(
            spec, PocketTTSProcessor, PocketTTSForConditionalGeneration, "float32", "Pocket TTS",
            "Give a hub id or a folder made by save_pretrained (model and "
            "PocketTTSProcessor, whose audio tokenizer it names).")
        self.codec = self.processor.audio_tokenizer.to(self.device).eval()
        codec = self.codec.config
        self.sample_rate = int(codec.sampling_rate)
        self.samples_per_frame = int(codec.frame_size)
        self.frame_rate = self.sample_rate / self.samples_per_frame
        self.left_context = int(getattr(codec, "sliding_window", 0) or 250)
        # Each step's forward receives the latent made by the step before: a stream's frames.
        self._sink = threading.local()
        self.model.register_forward_pre_hook(self._on_forward, with_kwargs=True)
        self.language_tag = "en"
        self.dtype = dtype_name(dtype)
        self.memory_bytes = weights_bytes(self.model, self.codec)
        self.note = ("Pocket TTS clones a voice from a 2-10 s clip, no transcript needed; "
                     "'default' speaks without a voice prompt. No speed control; a seed repeats "
                     "the audio exactly.")

    def _prepare(self, text: str, voice: torch.Tensor | None) -> dict:
        content = ([{"type": "audio", "path": ""}] if voice is not None else []) + [
            {"type": "text", "text": text}]
        prompt = self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                    tokenize=False)
        return {"prompt": prompt, "voice": voice,
                "max_frames": max_frames(text, self.frame_rate)}

    def generate_frames(self, prepared: list[dict], params: SynthesisParams,
                        emit: Callable[[torch.Tensor], None] | None = None) -> list[torch.Tensor]:
        voices = [p["voice"] for p in prepared]
        inputs = self.processor(text=[p["prompt"] for p in prepared], return_tensors="pt",
                                padding=True,
                                audio_prompt_latents=None if voices[0] is None else voices)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        for key in ("audio_prompt_latents",):
            if key in inputs:
                inputs[key] = inputs[key].to(self.model.dtype)
        sent = []
        self._sink.emit = None if emit is None else (lambda f: (sent.append(f), emit(f)))
        try:
            with torch.inference_mode():
                out = self.model.generate(**inputs, return_dict_in_generate=True,
                                          max_new_tokens=max(p["max_frames"] for p in prepared))
        finally:
            self._sink.emit = None
        lengths = out.audio_latents_mask.sum(-1).tolist()
        frames = [row[:n] for row, n in zip(out.audio_latents, lengths)]
        if emit is not None:  # the frames no later forward received (the last)
            for frame in frames[0][len(sent):]:
                emit(frame)
        return frames

    def _on_forward(self, module, args, kwargs):
        emit = getattr(self._sink, "emit", None)
        latent = kwargs.get("audio_latents")
        if emit is not None and latent is not None and latent.ndim == 3 and latent.shape[1] == 1:
            emit(self.model.denormalize_latents(latent[0, 0]).clone())
        return None

    def decode_frames(self, frames: torch.Tensor) -> np.ndarray:
        if frames.shape[0] == 0:
            return np.zeros(0, np.float32)
        with torch.inference_mode():
            audio = self.codec.decode(frames[None].to(self.device, self.codec.dtype)).audio_values
        return np.clip(audio.float().cpu().numpy().reshape(-1), -1.0, 1.0)

    def codec_encoder(self) -> torch.nn.Module:
        """The module whose `encode` turns a clip into conditioning (only `encode_voice` calls it)."""
        return self.codec

    def _encode(self, audio: np.ndarray, transcript: str | None) -> dict[str, np.ndarray]:
        """The clip's latents (frames, latent_dim); a transcript is not used."""
        values = torch.from_numpy(audio)[None, None].to(self.device, self.codec.dtype)
        latents = self.codec.encode(values).latents[0]
        return {"latents": latents.float().cpu().numpy()}

    def _voice_from(self, conditioning: dict[str, np.ndarray]) -> torch.Tensor:
        latents = np.asarray(conditioning["latents"], dtype=np.float32)
        dim = self.model.config.latent_dim
        if latents.ndim != 2 or latents.shape[1] != dim or latents.shape[0] == 0:
            raise ValueError(f"latents of shape {latents.shape}, not (frames, {dim})")
        return torch.from_numpy(latents)
