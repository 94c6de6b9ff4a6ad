"""Any model transformers' `pipeline("text-to-audio")` runs (CSM, SeamlessM4T v2, MusicGen, ...).

One adapter: the pipeline's own preprocessing runs outside the gate, its forward pass
inside; the sample rate is the one the pipeline reads from the model. Architectures that
need an input this adapter cannot supply on its own are refused at load, saying which.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from transformers import AutoConfig, pipeline

from ..config import ModelSpec
from ..device import resolve_device
from ..errors import ModelLoadError
from .base import Engine, SynthesisParams
from .torch_util import dtype_name, load_errors, pick_dtype, seed_all, weights_bytes

logger = logging.getLogger(__name__)

# model_type -> what it needs that a plain text cannot give it.
NEEDS = {
    "speecht5": "a speaker embedding for every request: load it as speecht5:<model>, which reads "
                "x-vector voices from a folder",
    "fastspeech2_conformer": "a separate HiFi-GAN vocoder: load the combined checkpoint "
                             "espnet/fastspeech2_conformer_with_hifigan instead",
}
NEEDS_LANG = ("seamless_m4t", "seamless_m4t_v2")  # speak in which language: ?lang=eng
# Families with their own adapter, which exposes what is special about them.
BETTER_FAMILY = {"bark": "bark", "vits": "vits"}


class TransformersEngine(Engine):
    family = "transformers"
    supports_seed = True  # sampling models (CSM, MusicGen) are reproducible with a seed
    supports_speed = False

    def __init__(self, spec: ModelSpec, device: str, cpu_threads: int | None = None):
        super().__init__(spec, resolve_device(device, torch.cuda.is_available()), cpu_threads)
        device = self.device
        # The config first: what a model needs is known before its weights are fetched.
        with load_errors(f"Model {spec.raw!r} could not be loaded by transformers' text-to-audio "
                         "pipeline", "Give a hub id or a save_pretrained folder of a model that "
                         "AutoModelForTextToWaveform (or text-to-spectrogram) knows.",
                         errors=(OSError, ValueError, KeyError, ImportError)):
            config = AutoConfig.from_pretrained(spec.source)
            model_type = config.model_type
            # Unknown architectures keep float32 on CUDA unless their checkpoint is half precision.
            saved = dtype_name(getattr(config, "dtype", None) or torch.float32)
            dtype = pick_dtype(spec.dtype, device,
                               cuda_default=saved if saved in ("float16", "bfloat16") else "float32")
            if model_type in NEEDS:
                raise ModelLoadError(f"Model {spec.raw!r} ({model_type}) needs {NEEDS[model_type]}.")
            self.pipe = pipeline("text-to-audio", model=spec.source, device=device, dtype=dtype)
        self.forward_params: dict = {}
        if model_type in NEEDS_LANG:
            if not spec.lang:
                raise ModelLoadError(f"Model {spec.raw!r} ({model_type}) needs the language to "
                                     "speak: add ?lang=eng (or another of its target languages).")
            self.forward_params["tgt_lang"] = spec.lang
        elif spec.lang:
            raise ModelLoadError(f"Model {spec.raw!r} ({model_type}) takes no ?lang= option.")
        rate = self.pipe.sampling_rate
        if not rate:
            raise ModelLoadError(f"Model {spec.raw!r} ({model_type}) does not say its sample rate.")
        self.model_type = model_type
        self.sample_rate, self.voices, self.language_tag = int(rate), ("default",), spec.lang
        self.dtype, self.memory_bytes = dtype_name(dtype), weights_bytes(self.pipe.model)
        if self.pipe.vocoder is not None:
            self.memory_bytes += weights_bytes(self.pipe.vocoder)
        better = BETTER_FAMILY.get(model_type)
        self.note = (f"{model_type} through transformers' text-to-audio pipeline: one voice, no "
                     "speed control" + (f"; load it as {better}:... for its voices and options"
                                        if better else "") + ".")

    def prepare(self, text: str, params: SynthesisParams):
        return self.pipe.preprocess(text)

    def infer(self, prepared, params: SynthesisParams) -> np.ndarray:
        seed_all(params.seed)
        output = self.pipe.forward(prepared, forward_params=dict(self.forward_params),
                                   generate_kwargs={})
        audio = self.pipe.postprocess(output)["audio"]
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim > 1:  # (channels, samples): this app serves mono
            audio = audio.mean(axis=0) if audio.shape[0] < audio.shape[-1] else audio.mean(axis=-1)
        return np.clip(audio.reshape(-1), -1.0, 1.0)
