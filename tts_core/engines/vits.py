"""transformers VITS: MMS-TTS (1,100+ languages) and multi-speaker VITS such as VCTK."""

from __future__ import annotations

import logging
import threading

import numpy as np
import torch
from transformers import AutoTokenizer, VitsModel

from ..config import ModelSpec
from ..device import resolve_device
from ..errors import ModelLoadError
from ..timings import JOINS_PREVIOUS, WORD_BREAK, unit_owners
from .base import Engine, Latent, SynthesisParams
from .torch_util import dtype_name, load_errors, pick_dtype, seed_all, weights_bytes

logger = logging.getLogger(__name__)

# Frames of latent a decoder window reads on each side (MMS-TTS's HiFi-GAN has the same
# kernels and dilations as Piper's); `check_windows` verifies it at warm-up.
_WINDOW_CONTEXT = 12


class VitsEngine(Engine):
    family = "vits"
    supports_seed = True
    supports_batching = True  # padded inputs, trimmed back with the model's sequence_lengths
    # supports_timings and supports_windows: set below when the checkpoint exposes them.

    def __init__(self, spec: ModelSpec, device: str, cpu_threads: int | None = None):
        super().__init__(spec, resolve_device(device, torch.cuda.is_available()), cpu_threads)
        device = self.device
        dtype = pick_dtype(spec.dtype, device)
        with load_errors(f"VITS model {spec.raw!r} could not be loaded from {spec.source!r}",
                         "Give a Hugging Face hub id (e.g. facebook/mms-tts-eng) or a folder made "
                         "by save_pretrained, with its tokenizer files."):
            self.tokenizer = AutoTokenizer.from_pretrained(spec.source)
            self.model = VitsModel.from_pretrained(spec.source, dtype=dtype).to(device).eval()
        self.decoder = _split_decoder(self.model)
        # The duration predictor's output, per thread: device calls may run side by side.
        self._durations_seen = threading.local()
        predictor = getattr(self.model, "duration_predictor", None)
        if isinstance(predictor, torch.nn.Module):
            predictor.register_forward_hook(self._keep_durations)
            self.supports_timings = True
        self.supports_windows = self.decoder is not None
        self.samples_per_frame = int(np.prod(self.model.config.upsample_rates))
        self.window_context = _WINDOW_CONTEXT
        if spec.noise_scale is not None:
            self.model.noise_scale = spec.noise_scale
        if spec.noise_w is not None:
            self.model.noise_scale_duration = spec.noise_w
        speakers = self.model.config.num_speakers
        voices = tuple(f"speaker_{i}" for i in range(speakers)) if speakers > 1 else ("default",)
        self.sample_rate, self.voices = self.model.config.sampling_rate, voices
        self.language_tag = getattr(self.tokenizer, "language", None)
        self.dtype = dtype_name(dtype)
        self.memory_bytes = weights_bytes(self.model) + (weights_bytes(self.decoder) if self.decoder else 0)
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
        text = self._romanized(text)
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
        return [audio for audio, _ in self.infer_batch_timed(prepared, params)]

    def infer_batch_timed(self, prepared: list[dict], params: SynthesisParams
                          ) -> list[tuple[np.ndarray, list[np.ndarray] | None]]:
        out, durations = self._forward(prepared, params)
        waveform = out.waveform
        if self.decoder is not None:
            # The batch's latents, padded with zeros, in one decoder call: as the model's own
            # forward decodes them.
            with torch.inference_mode():
                waveform = self.decoder(out.spectrogram, self._speaker(params))
        waveform = waveform.float().cpu().numpy().reshape(len(prepared), -1)
        return [(waveform[row, :int(n)].copy(), [durations[row]] if durations is not None else None)
                for row, n in enumerate(out.sequence_lengths.cpu())]

    def encode_batch(self, prepared: list[dict], params: SynthesisParams) -> list[list[Latent]]:
        """The model's forward up to its decoder: each input's latent (spectrogram) frames."""
        out, durations = self._forward(prepared, params)
        hop = self.samples_per_frame
        speaker = self._speaker(params)
        return [[Latent(int(n) // hop, (out.spectrogram[row:row + 1, :, :int(n) // hop], speaker),
                        durations[row] if durations is not None else None)]
                for row, n in enumerate(out.sequence_lengths.cpu())]

    def word_units(self, text: str, prepared: dict) -> list[list[int | None]] | None:
        """Each character id as its character (spaces break words; the blank after a
        character joins it), aligned with each word's characters."""
        if not self.supports_timings:
            return None
        pad = self.tokenizer.pad_token_id
        tokens = self.tokenizer.convert_ids_to_tokens(prepared["input_ids"][0].tolist())
        units = [JOINS_PREVIOUS if i == pad else (WORD_BREAK if not t.strip() else t)
                 for i, t in zip(prepared["input_ids"][0].tolist(), tokens)]
        words = [[t for t in self.tokenizer.tokenize(self._romanized(word)) if t.strip()
                  and t != self.tokenizer.pad_token] for word in text.split(" ")]
        return unit_owners(words, [units])

    def _romanized(self, text: str) -> str:
        return self.romanizer.romanize_string(text) if self.romanizer is not None else text

    def decode(self, latent: Latent, start: int, stop: int) -> np.ndarray:
        spectrogram, speaker = latent.data

        def run(lo: int, hi: int) -> np.ndarray:
            with torch.inference_mode():
                return self.decoder(spectrogram[:, :, lo:hi], speaker).float().cpu().numpy()
        return self.decode_in_context(latent, start, stop, run)

    def _speaker(self, params: SynthesisParams) -> torch.Tensor | None:
        if len(self.voices) == 1:
            return None
        with torch.inference_mode():
            sid = torch.full((1,), self.voices.index(params.voice), device=self.device)
            return self.model.embed_speaker(sid).unsqueeze(-1)

    def _forward(self, prepared: list[dict], params: SynthesisParams):
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
            self._durations_seen.log_duration = None
            out = self.model(**kwargs)
            log_duration = self._durations_seen.log_duration
            self._durations_seen.log_duration = None
            if log_duration is None:
                return out, None
            # The model's own durations, as its forward computes them from the predictor.
            padding = mask.to(self.device).unsqueeze(1).to(log_duration.dtype)
            length_scale = 1.0 / params.speed  # the same float product the forward takes the ceiling of
            frames = torch.ceil(torch.exp(log_duration) * padding * length_scale)
            frames = frames[:, 0, :].long().cpu().numpy()
        return out, [frames[row, :n].copy() for row, n in enumerate(lengths)]

    def _keep_durations(self, module, args, output) -> None:
        """Forward hook on the duration predictor: its log-durations, read after the forward."""
        self._durations_seen.log_duration = output


class _SkipDecoder(torch.nn.Module):
    """Stands in for VitsModel's HiFi-GAN so that its forward stops at the latent (which it
    returns as `spectrogram`); the engine runs the real decoder itself, whole or in windows."""

    def forward(self, spectrogram: torch.Tensor, global_conditioning=None) -> torch.Tensor:
        return spectrogram[:, :1, :1]


def _split_decoder(model: VitsModel) -> torch.nn.Module | None:
    """Take the decoder out of `model`'s forward; None (the model runs whole) for a model
    whose forward is not the one this was written against."""
    decoder = getattr(model, "decoder", None)
    if not isinstance(decoder, torch.nn.Module) or not hasattr(model.config, "upsample_rates"):
        logger.warning("%s has no HiFi-GAN decoder to split off; it streams whole sentences",
                       type(model).__name__)
        return None
    model.decoder = _SkipDecoder()
    return decoder


def _uroman():
    try:
        import uroman
    except ImportError as e:
        raise ModelLoadError("This MMS model reads romanized text and needs the uroman package: "
                             "pip install uroman") from e
    return uroman.Uroman()
