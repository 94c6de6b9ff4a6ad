"""SpeechT5 (microsoft/speecht5_tts): text -> mel spectrogram -> HiFi-GAN, 16 kHz.

Its voices are speaker embeddings (512-value x-vectors) read from .npy files at load;
a request may bring its own. Without any embedding the model is refused at load.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from transformers import SpeechT5ForTextToSpeech, SpeechT5HifiGan, SpeechT5Processor

from ..config import ModelSpec
from ..device import resolve_device
from ..errors import ModelLoadError
from ..voices import XVECTOR_HOWTO, load_xvectors, voices_folder
from .base import Engine, SynthesisParams
from .torch_util import dtype_name, load_errors, pick_dtype, seed_all, weights_bytes

logger = logging.getLogger(__name__)

DEFAULT_VOCODER = "microsoft/speecht5_hifigan"


class SpeechT5Engine(Engine):
    family = "speecht5"
    supports_seed = True  # its decoder pre-net keeps dropout on when speaking: a seed fixes it
    supports_speed = False
    # SpeechT5 reads characters; past a few hundred it loses its place, so chunks stay short.
    max_chunk_chars = 200

    def __init__(self, spec: ModelSpec, device: str, cpu_threads: int | None = None):
        super().__init__(spec, resolve_device(device, torch.cuda.is_available()), cpu_threads)
        device = self.device
        # float16 on CUDA: a tiny SpeechT5's output stays within 58 dB of float32's.
        dtype = pick_dtype(spec.dtype, device, cuda_default="float16")
        folder = voices_folder(spec.voices, self.family)
        self.processor, self.model, self.vocoder = self._load(spec, dtype)
        self.model.to(device).eval()
        self.vocoder.to(device).eval()
        self.embedding_dim = int(self.model.config.speaker_embedding_dim)
        self.embeddings = load_xvectors(folder, self.embedding_dim)
        if not self.embeddings:
            raise ModelLoadError(
                f"SpeechT5 model {spec.raw!r} has no voice: no .npy speaker embedding in {folder}. "
                f"{XVECTOR_HOWTO} Put such files in {folder} (the file name is the voice name) or "
                "name another folder with ?voices=/path/to/folder.")
        self.torch_dtype = dtype
        self.sample_rate, self.voices = int(self.vocoder.config.sampling_rate), tuple(self.embeddings)
        self.language_tag = "en"
        self.dtype = dtype_name(dtype)
        self.memory_bytes = weights_bytes(self.model, self.vocoder)
        self.note = ("SpeechT5 speaks English only, has no speed control, and its voice is a "
                     "speaker embedding: pick one, or upload your own x-vector (.npy, "
                     f"{self.embedding_dim} numbers).")

    @staticmethod
    def _load(spec: ModelSpec, dtype: torch.dtype = torch.float32):
        local_vocoder = Path(spec.source) / "vocoder"
        vocoder = spec.vocoder or (str(local_vocoder) if local_vocoder.is_dir() else DEFAULT_VOCODER)
        with load_errors(f"SpeechT5 model {spec.raw!r} could not be loaded (model {spec.source!r}, "
                         f"vocoder {vocoder!r})",
                         "Give a hub id such as microsoft/speecht5_tts or a folder made by "
                         "save_pretrained with the processor files; the HiFi-GAN vocoder comes from "
                         "?vocoder=..., else a 'vocoder' folder inside the model's, else "
                         f"{DEFAULT_VOCODER}.", errors=(OSError, ValueError, ImportError)):
            return (SpeechT5Processor.from_pretrained(spec.source),
                    SpeechT5ForTextToSpeech.from_pretrained(spec.source, dtype=dtype),
                    SpeechT5HifiGan.from_pretrained(vocoder, dtype=dtype))

    @classmethod
    def download(cls, spec: ModelSpec) -> None:
        """Weights, processor and vocoder only: the x-vector voices may be mounted at run time."""
        cls._load(spec)

    def prepare(self, text: str, params: SynthesisParams) -> torch.Tensor | None:
        ids = self.processor(text=text, return_tensors="pt")["input_ids"]
        special = set(self.processor.tokenizer.all_special_ids)
        if not any(int(i) not in special for i in ids[0]):
            return None
        return ids

    def infer(self, prepared: torch.Tensor, params: SynthesisParams) -> np.ndarray:
        vector = (params.speaker_embedding if params.speaker_embedding is not None
                  else self.embeddings[params.voice])
        speaker = torch.from_numpy(vector).to(self.device, self.torch_dtype).unsqueeze(0)
        with torch.inference_mode():
            seed_all(params.seed)
            audio = self.model.generate_speech(prepared.to(self.device), speaker,
                                               vocoder=self.vocoder)
        return audio.float().cpu().numpy().reshape(-1)
