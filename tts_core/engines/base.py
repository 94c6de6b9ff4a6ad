"""The one small interface every model family implements, its model card, and `speak`."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..device import cuda_allocated
from ..errors import SynthesisError
from ..families import FAMILIES
from ..languages import language_code, language_name
from ..loudness import integrated_lufs
from ..windows import FIRST_WINDOW_FRAMES

if TYPE_CHECKING:
    from ..config import ModelSpec

logger = logging.getLogger(__name__)

# A windowed decode must join into the whole decode at least this cleanly, or the engine
# streams whole sentences instead (checked at warm-up, on the warm-up text).
MIN_WINDOW_SNR_DB = 40.0
MIB = 2**20


@dataclass(frozen=True)
class SynthesisParams:
    """What a request asks of the engine, already validated; `voice` is one of `Engine.voices`."""

    voice: str
    speed: float = 1.0
    seed: int | None = None
    temperature: float | None = None  # sampling temperature, for engines with supports_temperature
    # A request's own speaker (SpeechT5 x-vector, embedding_dim floats); overrides `voice`.
    speaker_embedding: np.ndarray | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Latent:
    """One sentence after a two-stage engine's first stage: what its decoder turns into audio.

    `frames` decoder frames make `frames * Engine.samples_per_frame` samples; `data` is
    the engine's own (the latent and whatever conditions the decoder).
    """

    frames: int
    data: Any = field(compare=False, repr=False)
    #: Frames per input unit (phoneme id, character), from the model's own duration
    #: predictor; None for engines that do not expose them.
    durations: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Capabilities:
    """What a loaded model can do with a request (see the flags of the same names on `Engine`)."""

    seed: bool
    speed: bool
    temperature: bool
    speaker_embedding_dim: int | None
    batching: bool
    windows: bool  # streams inside a sentence (two-stage decode, or while generating)
    timings: bool  # word timings from the model's own durations
    clones: bool = False  # speaks in a voice made from a reference clip (`Engine.encode_voice`)


@dataclass(frozen=True)
class CloneLimits:
    """What a cloning family wants of a reference clip (the voice library cuts clips to it)."""

    min_s: float  # shorter clips give too little of the voice: refused
    max_s: float  # longer clips are cut on a pause to at most this
    sample_rate: int  # the rate `encode_voice` takes its audio at
    needs_transcript: bool  # the clip's words go into the prompt (CSM, Dia)


@dataclass(frozen=True)
class DialogueScript:
    """How a family's text names its speakers and sounds (Dia): what the page's helper shows."""

    speakers: tuple[str, ...]  # the speaker tags, in turn order: ("[S1]", "[S2]")
    nonverbal: tuple[str, ...]  # the sounds it takes in the text: ("(laughs)", ...)
    example: str  # a short dialogue that follows the convention
    untagged: str  # what the engine does with text, or a sentence of it, that names no speaker


@dataclass(frozen=True)
class ModelCard:
    """The one description of a loaded, warm model: what the UI note, the warm-load table,
    /models, /v1/models, /ready, the self-check and the metrics all read.

    Built once, after the warm-up (which can turn windows off), by `Engine.card()`.
    """

    name: str
    family: str
    language: str | None  # ISO 639-1 when known ('en'); else the model's own tag's head
    language_tag: str | None  # the model's own tag ('eng', 'en-us', 'aze-script_cyrillic')
    language_name: str | None  # 'English (US)'; None when the model states none
    sample_rate: int
    voices: tuple[str, ...]
    device: str
    dtype: str
    memory_bytes: int  # weights on the device (on CUDA: what loading allocated)
    capabilities: Capabilities
    note: str = ""
    dialogue: DialogueScript | None = None  # a family whose text names speakers (Dia)

    @property
    def default_voice(self) -> str:
        return self.voices[0]

    @property
    def memory_mb(self) -> float:
        return round(self.memory_bytes / MIB, 1)

    @property
    def spoken_language(self) -> str:
        """What the UI and /v1/audio/models show: the language's name, else its code."""
        return self.language_name or self.language or "language not stated"

    def to_dict(self) -> dict:
        """The JSON shape of /models and /v1/audio/models' model entries."""
        c = self.capabilities
        return {
            "name": self.name,
            "family": self.family,
            "sample_rate": self.sample_rate,
            "voices": list(self.voices),
            "default_voice": self.default_voice,
            "device": self.device,
            "language": self.language,
            "language_name": self.language_name,
            "dtype": self.dtype,
            "memory_mb": self.memory_mb,
            "supports_seed": c.seed,
            "supports_speed": c.speed,
            "supports_temperature": c.temperature,
            "speaker_embedding_dim": c.speaker_embedding_dim,
            "supports_batching": c.batching,
            "streams_inside_sentences": c.windows,
            "word_timings": c.timings,
            "clones": c.clones,
            "note": self.note,
        }


@dataclass(frozen=True)
class WarmModel:
    """A model's card with what warm loading it cost: the warm-load table, /ready, metrics."""

    card: ModelCard
    load_s: float
    warmup_s: float
    warmup_rtf: float = 0.0  # warm-up compute seconds per second of audio

    @property
    def name(self) -> str:
        return self.card.name

    def to_dict(self) -> dict:
        """The JSON shape of /ready's `models` table."""
        card = self.card
        return {"model": card.name, "family": card.family, "device": card.device,
                "sample_rate": card.sample_rate, "load_s": self.load_s, "warmup_s": self.warmup_s,
                "dtype": card.dtype, "memory_mb": card.memory_mb, "warmup_rtf": self.warmup_rtf}


class Engine(ABC):
    """A loaded, warm model.

    Work is split in two so that only device work is serialized by the gate:
    `prepare` (text -> model inputs, CPU, outside the gate) and `infer`
    (inputs -> float32 mono audio in [-1, 1], inside the gate).

    A family is one subclass: it declares what it can do as class attributes (the spec
    options it takes are in `families.FAMILIES`, readable without importing it), loads
    with `load(spec, device, threads)`, and knows where its
    weights come from (`fetch`, `resolved_source`). Flags that depend on the loaded
    weights (a Piper graph that cannot be split) are changed in `__init__` after the
    base constructor, never before it.
    """

    family: str = ""
    #: True when `infer_batch` runs several inputs in one device call (not one by one).
    supports_batching: bool = False
    #: True when `SynthesisParams.seed` makes the output reproducible.
    supports_seed: bool = False
    #: False when the model has no speaking-rate control (a speed other than 1 is refused).
    supports_speed: bool = True
    #: True when `SynthesisParams.temperature` is used (sampling models such as Bark).
    supports_temperature: bool = False
    #: Length of the speaker embedding a request may bring (SpeechT5's x-vectors); None: none.
    embedding_dim: int | None = None
    #: The longest chunk this family speaks well; None: TTS_CHUNK_CHARS decides.
    max_chunk_chars: int | None = None
    #: What a person should know before using it (shown beside the model picker).
    note: str = ""
    #: A family whose text names speakers and sounds (Dia): its convention, for the page.
    dialogue: DialogueScript | None = None
    #: True when the engine makes audio in two stages (`encode_batch`, then `decode` on any
    #: window of the latent's frames), so a stream can start before a sentence is decoded.
    supports_windows: bool = False
    #: Audio samples per decoder frame (the decoder's hop), for windowed engines.
    samples_per_frame: int = 0
    #: Frames of latent the decoder reads on each side of a window so that windows join
    #: into the whole decode (its receptive field, rounded up); checked at warm-up.
    window_context: int = 0
    #: True when a stream's audio comes out while the model is still generating a sentence
    #: (`start_utterance`, then `advance` turns): autoregressive codec models (CSM, Dia, Pocket).
    generates_incrementally: bool = False
    #: True when the model speaks in voices made from reference clips (`encode_voice`,
    #: `add_voice`, `remove_voice`).
    supports_cloning: bool = False
    #: The phonemes (IPA symbols) the model takes as raw input, for SSML's <phoneme> (Piper's
    #: `[[ ... ]]` blocks); None: the model reads text only.
    phoneme_symbols: frozenset[str] | None = None
    #: True when the model's own per-unit durations come out with the audio
    #: (`infer_batch_timed`, `Latent.durations`) and `word_units` maps them to words.
    supports_timings: bool = False
    #: The warm-up sentences as a stream makes them (set at warm-up), and their integrated
    #: loudness (LUFS): what a stream's one loudness gain is chosen from.
    level_audio: np.ndarray | None = None
    stream_lufs: float | None = None
    #: Seconds of speech per unit of `spoken_units` at speed 1, for the plan's cost bound
    #: (`tts_core/cost.py`): English read by joe is 0.056 to 0.095 s a character of the
    #: spelled-out text (0.057 on a long sentence), so 0.065 is about one sentence's worth.
    seconds_per_unit: float = 0.065
    #: Weights' precision and their size in device memory (set by loaders that know it;
    #: on CUDA `load` replaces the size with what loading allocated).
    dtype: str = "float32"
    memory_bytes: int = 0
    #: Set by each family's constructor, after the base constructor.
    sample_rate: int = 0
    voices: tuple[str, ...] = ()
    #: The model's own language tag ('eng', 'en-us', 'aze-script_cyrillic'), when it has one.
    language_tag: str | None = None

    def __init__(self, spec: "ModelSpec", device: str, cpu_threads: int | None = None):
        """Every family's constructor calls this first, with its own arguments."""
        self.spec = spec
        self.name = spec.name
        self.device = device  # families replace "auto" with the device they chose
        self.cpu_threads = cpu_threads

    def use_threads(self, threads: int | None) -> None:
        """Run the calling thread's next model calls with `threads` CPU threads: the share of
        the cores the gate gave this turn (None: leave them). Torch families set torch's
        intra-op threads, which (OpenMP) hold for the calling thread only; Piper picks the
        session made for that count."""
        family = FAMILIES.get(self.family)
        if threads and self.device == "cpu" and family is not None and family.runtime == "torch":
            import torch

            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)

    @classmethod
    def load(cls, spec: "ModelSpec", device: str, cpu_threads: int | None = None) -> "Engine":
        """Load `spec` onto `device` (auto, cpu, cuda) with the family's own code, ready for
        its warm-up; on CUDA its memory is what loading allocated there."""
        before = cuda_allocated()
        engine = cls(spec, device, cpu_threads)
        if engine.device == "cuda":
            engine.memory_bytes = (cuda_allocated() - before) or engine.memory_bytes
        return engine

    @classmethod
    def fetch(cls, spec: "ModelSpec") -> str:
        """Make `spec` loadable offline (image build time, `python -m tts_core.prefetch`):
        `download` it into the local caches; returns what was done."""
        cls.download(spec)
        where = "local folder" if Path(spec.source).expanduser().is_dir() else "downloaded to the HF cache"
        return f"{where}: {spec.source}"

    @classmethod
    def download(cls, spec: "ModelSpec") -> None:
        """By default, load `spec` once on the CPU with the family's own code (weights,
        tokenizer, presets land in the Hugging Face cache)."""
        cls(spec, "cpu")

    @classmethod
    def resolved_source(cls, spec: "ModelSpec") -> str:
        """Where `spec`'s weights come from, without loading them (the self-check's report)."""
        if Path(spec.source).expanduser().is_dir():
            return f"folder {Path(spec.source).expanduser().resolve()}"
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(spec.source, "config.json")
        except Exception:  # an id the hub library rejects: loading will say why
            cached = None
        return f"hub {spec.source} ({'cached' if isinstance(cached, str) else 'not cached: will download'})"

    def chunk_texts(self, chunks: list[str]) -> list[str]:
        """The text each chunk is spoken from, the request's chunks in order: as they are. A
        family whose text carries state from one sentence to the next (Dia's speaker tags)
        gives each chunk what it needs on its own."""
        return chunks

    @property
    def language(self) -> str | None:
        """ISO 639-1 code when known; English text gets numbers and abbreviations spelled out."""
        return language_code(self.language_tag)

    def card(self) -> ModelCard:
        """This model as it is now (after its warm-up, which may turn windows off)."""
        return ModelCard(
            name=self.name, family=self.family, language=self.language,
            language_tag=self.language_tag, language_name=language_name(self.language_tag),
            sample_rate=self.sample_rate, voices=tuple(self.voices), device=self.device,
            dtype=self.dtype, memory_bytes=self.memory_bytes,
            capabilities=Capabilities(
                seed=self.supports_seed, speed=self.supports_speed,
                temperature=self.supports_temperature, speaker_embedding_dim=self.embedding_dim,
                batching=self.supports_batching, windows=self.supports_windows,
                timings=self.supports_timings, clones=self.supports_cloning),
            note=self.note, dialogue=self.dialogue)

    @property
    def default_voice(self) -> str:
        return self.voices[0]

    def spoken_units(self, text: str) -> int:
        """How much there is to say in `text`, cheaply, without the model: its characters
        here (the spelled-out text); engines that phonemize count phonemes."""
        return len(text)

    @abstractmethod
    def prepare(self, text: str, params: SynthesisParams) -> Any | None:
        """Text to model inputs; None when nothing in `text` is pronounceable by this model."""

    @abstractmethod
    def infer(self, prepared: Any, params: SynthesisParams) -> np.ndarray:
        """Model inputs to float32 mono audio; runs inside the gate."""

    def infer_batch(self, prepared: list[Any], params: SynthesisParams) -> list[np.ndarray]:
        """Several inputs sharing `params`, one audio each, in order; runs inside the gate.

        Engines that can pad inputs into one device call override this and set
        `supports_batching`; the rest run them one by one.
        """
        return [self.infer(p, params) for p in prepared]

    def infer_batch_timed(self, prepared: list[Any], params: SynthesisParams
                          ) -> list[tuple[np.ndarray, list[np.ndarray] | None]]:
        """`infer_batch`, each audio with its sentences' durations (frames per input unit, in
        order) where the model gives them, else None. The audio is `infer_batch`'s exactly."""
        return [(audio, None) for audio in self.infer_batch(prepared, params)]

    def word_units(self, text: str, prepared: Any) -> list[list[int | None]] | None:
        """CPU, outside the gate: for each sentence of `prepared` (made from `text`), the index
        of the word of `text.split(" ")` each input unit belongs to (None: a pause,
        punctuation, padding). None when this engine has no durations."""
        return None

    def encode_batch(self, prepared: list[Any], params: SynthesisParams) -> list[list[Latent]]:
        """First stage, inside the gate: each input's sentences as latents, in order."""
        raise NotImplementedError(f"{self.family} has no two-stage decode")

    def decode(self, latent: Latent, start: int, stop: int) -> np.ndarray:
        """Second stage, inside the gate: frames [start, stop) of `latent` as audio
        ((stop - start) * samples_per_frame samples), reading `window_context` frames of
        latent on each side so that consecutive windows join into the whole decode."""
        raise NotImplementedError(f"{self.family} has no two-stage decode")

    def decode_in_context(self, latent: Latent, start: int, stop: int,
                          run: Callable[[int, int], np.ndarray]) -> np.ndarray:
        """What `decode` does for every windowed family: `run(lo, hi)` decodes frames [lo, hi)
        (the window with up to `window_context` frames of the sentence on each side) to audio,
        and only the window's own (stop - start) * samples_per_frame samples are kept."""
        lo, hi = max(0, start - self.window_context), min(latent.frames, stop + self.window_context)
        hop = self.samples_per_frame
        return np.array(run(lo, hi).reshape(-1)[(start - lo) * hop:(stop - lo) * hop],
                        dtype=np.float32)

    def start_utterance(self, prepared: Any, params: SynthesisParams) -> Any:
        """CPU, outside the gate: a chunk to be generated in `advance` turns (incremental engines)."""
        raise NotImplementedError(f"{self.family} does not generate incrementally")

    def advance(self, utterances: list[Any], params: SynthesisParams) -> list[np.ndarray]:
        """Inside the gate: each utterance generates its next window of frames; their new audio.
        An utterance is finished when its `done` is true (its last audio came with it)."""
        raise NotImplementedError(f"{self.family} does not generate incrementally")

    # --- cloning (families with supports_cloning) ------------------------------------------

    def clone_limits(self) -> CloneLimits:
        """The clip this family clones from: useful length, sample rate, transcript or not."""
        raise NotImplementedError(f"{self.family} does not clone voices")

    def encode_voice(self, audio: np.ndarray, transcript: str | None) -> dict[str, np.ndarray]:
        """A prepared clip (float32 mono at `clone_limits().sample_rate`, trimmed and cut) as
        the family's conditioning: numpy arrays only (strings as 0-d unicode arrays), so it
        saves with np.savez and speaks after `add_voice` with no encoder call."""
        raise NotImplementedError(f"{self.family} does not clone voices")

    def add_voice(self, name: str, conditioning: dict[str, np.ndarray]) -> None:
        """Speak `name` with `conditioning` (from `encode_voice`) from now on; cheap, thread-safe.
        (The registry's card lists it after `Registry.refresh_card`.)"""
        raise NotImplementedError(f"{self.family} does not clone voices")

    def remove_voice(self, name: str) -> None:
        """Stop offering `name`; requests already prepared with it finish."""
        raise NotImplementedError(f"{self.family} does not clone voices")

    def warm_up(self, text: str) -> float:
        """Speak `text` once, at load (never per request); the seconds of audio it made.

        Windowed engines also check here that their windows join into the whole decode.
        """
        params = SynthesisParams(voice=self.default_voice)
        audio = speak(self, text, params, what="warm-up text")
        if self.supports_windows:
            self.check_windows(self.prepare(text, params), params)
        self.stream_lufs = self.measure_stream_level(text, audio)
        return audio.shape[0] / self.sample_rate

    def measure_stream_level(self, text: str, audio: np.ndarray) -> float:
        """Integrated loudness (LUFS) of the warm-up as a stream makes it: whole sentences
        (`audio`, already made) or, for windowed engines, the decoder's output, which a
        stream does not peak-normalize (one more decode of the warm-up sentence: a model
        added while serving warms up in one gate turn, which listeners wait for)."""
        params = SynthesisParams(voice=self.default_voice)
        if self.supports_windows:
            prepared = self.prepare(text, params)
            audio = np.concatenate([self.decode(latent, 0, latent.frames)
                                    for item in self.encode_batch([prepared], params)
                                    for latent in item])
        self.level_audio = audio.astype(np.float32)
        level = integrated_lufs(audio, self.sample_rate)
        logger.info("%s: streamed level %.1f LUFS", self.name, level)
        return level

    def check_windows(self, prepared: Any, params: SynthesisParams,
                      first_frames: int = FIRST_WINDOW_FRAMES) -> float | None:
        """Decode `prepared` whole and in windows; keep windows only if they join cleanly.

        Returns the join's SNR in dB (None when the engine has no windows). Run at
        warm-up: a graph or checkpoint whose decoder reads further than `window_context`
        frames streams whole sentences instead, and the log says so.
        """
        if not self.supports_windows:
            return None
        latent = max((lat for item in self.encode_batch([prepared], params) for lat in item),
                     key=lambda lat: lat.frames)
        whole = self.decode(latent, 0, latent.frames)
        step = max(1, min(first_frames, latent.frames // 3))
        pieces = [self.decode(latent, a, min(a + step, latent.frames))
                  for a in range(0, latent.frames, step)]
        joined = np.concatenate(pieces)
        error = float(np.sum((joined - whole) ** 2)) if joined.shape == whole.shape else float("inf")
        snr = 10 * np.log10(float(np.sum(whole ** 2)) / error) if error > 0 else float("inf")
        if snr < MIN_WINDOW_SNR_DB:
            logger.warning("%s: decoding in windows of %d frames joined at %.1f dB SNR against the "
                           "whole decode (below %.0f dB); streaming whole sentences instead",
                           self.name, step, snr, MIN_WINDOW_SNR_DB)
            self.supports_windows = False
        else:
            logger.info("%s: windows of %d frames join the whole decode at %.1f dB SNR (at least "
                        "%.0f dB needed); streams decode inside sentences", self.name, step, snr,
                        MIN_WINDOW_SNR_DB)
        return snr


def speak(engine: Engine, text: str, params: SynthesisParams | None = None,
          what: str = "text") -> np.ndarray:
    """Say `text` once, the way the pipeline does (prepare, then infer), outside any gate:
    the warm-up, the self-check and the tests all speak through this. `params` default
    to the engine's default voice; `what` names the text in errors ("warm-up text")."""
    params = params or SynthesisParams(voice=engine.default_voice)
    prepared = engine.prepare(text, params)
    if prepared is None:
        raise SynthesisError(f"the {what} {text!r} has nothing it can say")
    audio = engine.infer(prepared, params)
    if audio.size == 0:
        raise SynthesisError(f"the {what} {text!r} produced no audio")
    return audio
