"""The request path: text -> clean -> chunks -> gate -> engine -> encoded audio, with a latency record.

Every caller (Gradio UI, Gradio API, HTTP routes) goes through `Pipeline.stream` or
`Pipeline.synthesize`, and so through the one gate. Validation happens when the call
is made, before anything waits for the device; admission to the gate happens when
iteration starts, and is released however iteration ends (exhausted, error, close()).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import audio as audio_io
from . import loudness
from . import text as textproc
from . import zerogpu
from .config import MAX_SEED, MAX_SPEED, MAX_TEMPERATURE, MIN_SPEED, MIN_TEMPERATURE, Settings
from .device import free_device_memory, is_out_of_memory
from .engines import Engine, SynthesisParams
from .errors import (GateBusyError, GateTimeoutError, InputError, OutOfMemoryError, SynthesisError,
                     TTSError, UnknownVoiceError)
from .gate import GpuGate
from .metrics import LatencyRecord, PrometheusMetrics, RollingStats
from .registry import Registry, warm_load
from .timings import SourceWord, WordTiming, WordTracker, chunk_timings, source_words, word_frames
from .windows import FIRST_WINDOW_FRAMES, MAX_WINDOW_FRAMES, window_plan
from .voices import read_xvector

logger = logging.getLogger(__name__)
MS = 1000.0
# Batch size when TTS_MAX_BATCH is unset and a model runs on CUDA. On CPU batching is off:
# padded batches ran slower there than the same items one by one (see the benchmark).
DEFAULT_CUDA_BATCH = 8
FOREIGN_SHOWN = 12  # letters of another alphabet quoted back in the error


@dataclass(frozen=True)
class AudioChunk:
    """One piece of a request's audio, in order; `data` is set when chunks are encoded one by one.

    A whole-file request gets one piece per chunk of text (a sentence); a stream from a
    two-stage engine gets each sentence in several pieces (windows), which share its
    `sentence` number and `text`.
    """

    index: int  # the piece's place in the request's audio: 0, 1, 2, ...
    text: str  # the sentence this piece belongs to
    audio: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int
    data: bytes | None = None
    sentence: int = 0  # which chunk of text (0-based) the piece belongs to
    # Words that start in this piece, as typed, timed from the start of the whole audio
    # (requests made with timings=True; a sentence's words come with its first pieces).
    words: tuple[WordTiming, ...] = ()


@dataclass(frozen=True)
class SynthesisResult:
    """A whole request: the encoded file, the float audio it holds, and where the time went."""

    data: bytes
    audio: np.ndarray
    sample_rate: int
    format: str
    record: LatencyRecord
    words: list[WordTiming] | None = None  # with timings=True: every word, in order

    @property
    def duration_s(self) -> float:
        return self.audio.shape[0] / self.sample_rate


@dataclass
class _Plan:
    engine: Engine
    params: SynthesisParams
    chunks: list[str]
    chars: int
    fmt: str
    route: str
    started: float
    text_s: float
    windowed: bool = False  # decode inside sentences (streams from two-stage engines)
    # Word timings (timings=True): the typed words, and each chunk's first spoken word.
    words: list[SourceWord] | None = None
    chunk_words: list[int] | None = None
    tracker: WordTracker | None = None
    loudness: loudness.LoudnessTarget | None = None  # None: the voice's own level
    queue_s: float = 0.0
    infer_s: float = 0.0
    encode_s: float = 0.0
    samples: int = 0
    first_audio: float | None = None
    finished: float | None = None


class Synthesis:
    """An accepted request being synthesized: iterate for AudioChunks; `record` is set at the end."""

    def __init__(self, pipeline: "Pipeline", plan: _Plan, encoder: audio_io.ChunkEncoder | None):
        self.engine = plan.engine
        self.sample_rate = plan.engine.sample_rate
        self.chunks = plan.chunks
        self.format = plan.fmt
        self.record: LatencyRecord | None = None
        self._iter = pipeline._generate(plan, self, encoder)

    def __iter__(self) -> Iterator[AudioChunk]:
        return self._iter

    def close(self) -> None:
        """Stop early (a client went away): no more chunks are made, the gate place is freed."""
        self._iter.close()


class Pipeline:
    """Holds the warm registry, the gate and the stats; the only way to make audio."""

    def __init__(self, registry: Registry, gate: GpuGate, stats: RollingStats, settings: Settings):
        self.registry = registry
        self.gate = gate
        self.stats = stats
        self.settings = settings
        zerogpu.register(*registry.engines.values())
        self._device = zerogpu.device_call(zerogpu.on_device)  # spaces.GPU on ZeroGPU
        self._stream_gains: dict[tuple[str, loudness.LoudnessTarget], float] = {}
        self.prometheus = PrometheusMetrics()
        self.prometheus.queue_depth.set_function(lambda: gate.queue_depth)
        self.prometheus.slots.set_function(lambda: gate.slots)
        self.prometheus.slots_in_use.set_function(lambda: gate.slots_in_use)
        self.prometheus.busy_seconds.set_function(lambda: gate.busy_s)
        for warm in registry.warm:
            self.prometheus.observe_load(warm)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Pipeline":
        """Warm-load every configured model, then build the gate and the stats around them."""
        return cls.around(warm_load(settings), settings)

    @classmethod
    def around(cls, registry: Registry, settings: Settings) -> "Pipeline":
        """A pipeline over already-warm engines, with the gate and stats `settings` ask for."""
        max_batch = settings.max_batch or (
            DEFAULT_CUDA_BATCH if any(e.device == "cuda" for e in registry.engines.values()) else 1)
        on_gpu = any(e.device == "cuda" for e in registry.engines.values())
        if on_gpu and settings.cpu_slots > 1:
            logger.warning("TTS_CPU_SLOTS=%d ignored: a model runs on the GPU, which runs one "
                           "inference at a time", settings.cpu_slots)
        gate = GpuGate(settings.queue_size, settings.gate_timeout_s, max_batch=max_batch,
                       batch_wait_s=settings.batch_wait_ms / MS,
                       infer_timeout_s=settings.infer_timeout_s,
                       slots=1 if on_gpu else settings.cpu_slots)
        return cls(registry, gate, RollingStats(settings.stats_window), settings)

    # --- what callers use ---------------------------------------------------------------

    def stream(self, text: str, model: str | None = None, voice: str | None = None,
               speed: float = 1.0, seed: int | float | None = None, fmt: str = "wav",
               continuous: bool = False, route: str = "python",
               temperature: float | None = None,
               speaker_embedding: np.ndarray | bytes | str | Path | None = None,
               timings: bool = False, loudness: float | bool | None = None,
               true_peak: float | None = None) -> Synthesis:
        """Validate now; return the request's chunks with `data` encoded in `fmt`.

        `continuous=False`: every chunk is a complete file (what Gradio's streaming audio
        wants). `continuous=True`: the chunks' bytes concatenate into one stream (one WAV
        header, then samples; what an HTTP response body wants). `timings=True`: each chunk
        carries the words that start in it (a model without durations is refused).
        `loudness`: a target in LUFS (None: TTS_LOUDNESS; False: off) with a `true_peak`
        ceiling in dBTP (None: TTS_TRUE_PEAK); a stream gets one gain and a limiter.
        """
        plan = self._plan(text, model, voice, speed, seed, fmt, route, temperature,
                          speaker_embedding, timings, loudness, true_peak)
        plan.windowed = plan.engine.supports_windows
        if continuous and fmt not in audio_io.STREAMABLE:
            raise InputError(f"{fmt} cannot be streamed; stream one of "
                             f"{', '.join(sorted(audio_io.STREAMABLE))}, or ask for the whole file.",
                             param="response_format")
        return Synthesis(self, plan, audio_io.ChunkEncoder(fmt, plan.engine.sample_rate, continuous))

    def synthesize(self, text: str, model: str | None = None, voice: str | None = None,
                   speed: float = 1.0, seed: int | float | None = None,
                   fmt: str = "wav", route: str = "python", temperature: float | None = None,
                   speaker_embedding: np.ndarray | bytes | str | Path | None = None,
                   on_chunk: Callable[[int, int], None] | None = None,
                   timings: bool = False, loudness: float | bool | None = None,
                   true_peak: float | None = None) -> SynthesisResult:
        """The whole text as one encoded file: a thin wrapper over the chunk generator.

        `on_chunk(done, total)` is told after each chunk (the UI's progress bar).
        `timings=True`: the result's `words` (a model without durations is refused).
        `loudness`, `true_peak`: as in `stream`; the whole file is measured and normalized.
        """
        plan = self._plan(text, model, voice, speed, seed, fmt, route, temperature,
                          speaker_embedding, timings, loudness, true_peak)
        pieces, words = [], []
        synthesis = Synthesis(self, plan, encoder=None)
        try:
            for chunk in synthesis:
                pieces.append(chunk.audio)
                words.extend(chunk.words)
                if on_chunk is not None:
                    on_chunk(chunk.sentence + 1, len(plan.chunks))
        finally:
            synthesis.close()  # frees the gate place at once, whatever `on_chunk` did
        try:
            start = time.perf_counter()
            joined = np.concatenate(pieces)
            if plan.loudness is not None:
                joined, _ = loudness_normalize(joined, plan.engine.sample_rate, plan.loudness)
            data = audio_io.encode(joined, plan.engine.sample_rate, fmt)
            plan.encode_s += time.perf_counter() - start
        except Exception:
            self._failed(plan.engine.name, route, "error")
            raise
        plan.first_audio = plan.finished = time.perf_counter()  # the caller hears nothing sooner
        record = self._record(plan)
        self._served(record, route)
        return SynthesisResult(data, joined, plan.engine.sample_rate, fmt, record,
                               words if plan.words is not None else None)

    def snapshot(self) -> dict:
        """Rolling stats with the gate's current queue depth and slot use."""
        return dict(self.stats.snapshot(self.gate.queue_depth), slots=self.gate.slots,
                    slots_in_use=self.gate.slots_in_use)

    def models(self) -> list[dict]:
        """Each loaded model's card, with its warm-load timings (Gradio /models)."""
        return [dict(warm.card.to_dict(), load_s=warm.load_s, warmup_s=warm.warmup_s)
                for warm in self.registry.warm]

    # --- inside -------------------------------------------------------------------------

    def _plan(self, text, model, voice, speed, seed, fmt, route, temperature=None,
              speaker_embedding=None, timings=False, loudness=None, true_peak=None) -> _Plan:
        try:
            plan = self._validate(text, model, voice, speed, seed, fmt, route, temperature,
                                  speaker_embedding, timings)
            plan.loudness = self._loudness(loudness, true_peak)
            return plan
        except InputError:
            known = model if isinstance(model, str) and model in self.registry.engines else None
            self._failed(known or (self.registry.default.name if not model else "unknown"),
                         route, "bad_request")
            raise

    def _validate(self, text, model, voice, speed, seed, fmt, route, temperature,
                  speaker_embedding, timings=False) -> _Plan:
        started = time.perf_counter()
        engine = self.registry.get(model)
        params = SynthesisParams(voice=self._voice(engine, voice), speed=_speed(engine, speed),
                                 seed=_seed(seed), temperature=_temperature(engine, temperature),
                                 speaker_embedding=_embedding(engine, speaker_embedding))
        if fmt not in audio_io.ALL_FORMATS:
            raise InputError(f"Unknown audio format {fmt!r}; choose one of "
                             f"{', '.join(audio_io.ALL_FORMATS)}.", param="response_format")
        if fmt == "aac" and not audio_io.aac_available():
            raise InputError("aac needs ffmpeg, which is not installed on this server; "
                             "ask for mp3, opus, flac, wav or pcm.", param="response_format")
        if not isinstance(text, str):
            raise InputError("The text must be a string.", param="input")
        limit = self.settings.max_chars
        if len(text) > limit:
            raise InputError(f"The text is {len(text)} characters long; the limit is {limit}. "
                             "Shorten it or split it into several requests.", param="input")
        cleaned = textproc.clean(text)
        if not cleaned:
            raise InputError("The text is empty. Type something to speak.", param="input")
        if not textproc.has_speakable(cleaned):
            raise InputError("The text has nothing to speak: no letters or digits are left "
                             "after removing symbols and control characters.", param="input")
        foreign = textproc.foreign_letters(cleaned, engine.language)
        if foreign and not textproc.has_speakable(cleaned.translate(dict.fromkeys(map(ord, foreign)))):
            raise InputError(f"Model {engine.name!r} cannot pronounce any of this text: it speaks "
                             f"{engine.language!r}, and none of the text is in that alphabet "
                             f"({foreign[:FOREIGN_SHOWN]}"
                             f"{' ...' if len(foreign) > FOREIGN_SHOWN else ''}). Choose a model "
                             "for the text's language.", param="input")
        if timings and not engine.supports_timings:
            raise InputError(f"Model {engine.name!r} ({engine.family}) gives no phoneme durations, "
                             "so it has no word timings; ask a Piper or VITS model for them.",
                             param="model")
        typed = cleaned
        if engine.language == "en":
            # MMS-TTS has no digits in its alphabet, and espeak reads "$20" as "dollar twenty".
            cleaned = textproc.expand(cleaned)
            if len(cleaned) > limit:  # "7" * 3000 would otherwise be twenty minutes of "seven"
                raise InputError(f"Spelled out (numbers as words), the text is {len(cleaned)} "
                                 f"characters long; the limit is {limit}. Shorten it.",
                                 param="input")
        longest = min(self.settings.chunk_chars, engine.max_chunk_chars or self.settings.chunk_chars)
        chunks = textproc.chunk(cleaned, longest)
        plan = _Plan(engine, params, chunks, len(text), fmt, route, started, 0.0)
        if timings:
            plan.words, plan.chunk_words = _word_plan(typed, cleaned, chunks, engine.language == "en")
            plan.tracker = WordTracker(plan.words)
        plan.text_s = time.perf_counter() - started
        return plan

    def _stream_limiter(self, plan: _Plan, index: int, first: np.ndarray) -> loudness.Limiter:
        """A stream's limiter with its one gain, from its first sentence (`first`, chunk `index`)
        and the voice's level at warm-up, weighed by how much of the text each stands for:
        a stream that is one sentence gets that sentence's own gain; a long text whose
        first sentence is short ("Wait.") mostly the voice's."""
        engine = plan.engine
        weight = len(plan.chunks[index]) / max(1, sum(len(c) for c in plan.chunks[index:]))
        own = loudness.stream_gain_db(plan.loudness, first, engine.sample_rate)
        voice = (self._stream_gain_db(engine, plan.loudness) if engine.level_audio is not None
                 else own)
        gain_db = weight * own + (1 - weight) * voice
        logger.debug("stream gain %.2f dB (first sentence %.2f, voice %.2f, weight %.2f)",
                     gain_db, own, voice, weight)
        return loudness.Limiter(engine.sample_rate, plan.loudness.ceiling, 10 ** (gain_db / 20))

    def _stream_gain_db(self, engine: Engine, target: loudness.LoudnessTarget) -> float:
        """A stream's one gain for `engine` at `target`, worked out once (about 50 ms) and kept."""
        key = (engine.name, target)
        if key not in self._stream_gains:
            self._stream_gains[key] = loudness.stream_gain_db(target, engine.level_audio,
                                                              engine.sample_rate)
        return self._stream_gains[key]

    def _loudness(self, lufs, true_peak) -> loudness.LoudnessTarget | None:
        """A request's loudness target: its own, else the TTS_LOUDNESS setting; False: off."""
        if lufs is False:
            return None
        lufs = self.settings.loudness_lufs if lufs is None else lufs
        if lufs is None:
            return None
        peak = self.settings.true_peak_db if true_peak is None else true_peak
        return loudness.LoudnessTarget(
            _bounded(lufs, loudness.MIN_LUFS, loudness.MAX_LUFS, "Loudness", "LUFS", "loudness"),
            _bounded(peak, loudness.MIN_TRUE_PEAK_DB, loudness.MAX_TRUE_PEAK_DB, "The true-peak ceiling",
                     "dBTP", "true_peak"))

    @staticmethod
    def _voice(engine: Engine, voice: str | None) -> str:
        if voice is None or voice == "":
            return engine.default_voice
        if not isinstance(voice, str) or voice not in engine.voices:
            shown = ", ".join(engine.voices[:20]) + (" ..." if len(engine.voices) > 20 else "")
            raise UnknownVoiceError(f"Unknown voice {voice!r} for model {engine.name!r}. "
                                    f"Its voices: {shown}.", param="voice")
        return voice

    def _generate(self, plan: _Plan, synthesis: Synthesis,
                  encoder: audio_io.ChunkEncoder | None) -> Iterator[AudioChunk]:
        engine, params = plan.engine, plan.params
        status = "error"
        pieces_made = 0
        # A stream's loudness: one gain for the whole request, set before its first piece
        # leaves, and a limiter run across its pieces (whole files are normalized once
        # joined, in `synthesize`).
        levelled = plan.loudness is not None and encoder is not None
        limiter = None
        held: list[WordTiming] = []  # words of audio the limiter still holds
        try:
            with self.gate.admit(), self.registry.in_use(engine):
                for index, chunk_text in enumerate(plan.chunks):
                    start = time.perf_counter()
                    try:
                        prepared = engine.prepare(chunk_text, params)
                    except TTSError:
                        raise
                    except Exception as e:
                        raise SynthesisError(f"Model {engine.name!r} could not read chunk "
                                             f"{index + 1} of {len(plan.chunks)}: {e}") from e
                    plan.text_s += time.perf_counter() - start
                    if prepared is None:
                        self._chunk_words(plan, index, None, None)  # its words are not heard
                        continue  # nothing this model can pronounce in this chunk
                    # Requests for the same engine, voice and speed can share a device turn;
                    # seeded ones run alone, so that a seed gives the same audio every time.
                    key = ((id(engine), params.voice, params.speed, params.temperature)
                           if engine.supports_batching and params.seed is None
                           and params.speaker_embedding is None else None)
                    where = f"chunk {index + 1} of {len(plan.chunks)}"
                    if plan.windowed:
                        latents = self._turn(plan, key, prepared, "encode_batch", where)
                        durations = [lat.durations for lat in latents]
                        pieces = self._windows(plan, latents, where)
                        if levelled and limiter is None:  # its gain needs the first sentence whole
                            pieces = [(np.concatenate([
                                self._turn(plan, None, (lat, 0, lat.frames), "decode", where)
                                for lat in latents]), True, True)]
                    else:
                        if plan.words is None:
                            audio, durations = self._turn(plan, key, prepared, "infer_batch", where), None
                        else:  # the same audio, with the model's durations beside it
                            audio, durations = self._turn(plan, key, prepared, "infer_batch_timed",
                                                          where)
                        pieces = [(audio, True, True)]
                    words = self._chunk_words(plan, index, prepared, durations)
                    if levelled and limiter is None:
                        limiter = self._stream_limiter(plan, index, pieces[0][0])
                    for audio, head, tail in pieces:
                        audio = audio_io.fade_edges(audio, engine.sample_rate, head=head, tail=tail)
                        plan.samples += audio.shape[0]
                        heard = plan.samples / engine.sample_rate
                        held += [w for w in words if tail or w.start < heard]
                        words = [w for w in words if w not in held]
                        if limiter is not None:
                            audio = limiter.process(audio)
                            if audio.size == 0:
                                continue
                        yield self._piece(plan, encoder, pieces_made, chunk_text, audio, index, held)
                        pieces_made, held = pieces_made + 1, []
                if limiter is not None and plan.samples:
                    yield self._piece(plan, encoder, pieces_made, plan.chunks[-1], limiter.flush(),
                                      len(plan.chunks) - 1, held)
            if plan.samples == 0:
                raise InputError(f"Model {engine.name!r} cannot pronounce any of this text "
                                 "(no character of it is in the model's alphabet).", param="input")
            status = "ok"
        except GeneratorExit:
            status = "cancelled"  # the caller stopped early (a client went away)
            raise
        except InputError:
            status = "bad_request"
            raise
        except GateBusyError:
            status = "busy"
            raise
        except GateTimeoutError:
            status = "timeout"
            raise
        finally:
            if status != "ok":
                self._failed(engine.name, plan.route, status)
        if encoder is not None:
            plan.finished = time.perf_counter()
            synthesis.record = self._record(plan)
            self._served(synthesis.record, plan.route)

    def _piece(self, plan: _Plan, encoder: audio_io.ChunkEncoder | None, index: int, text: str,
               audio: np.ndarray, sentence: int, words: list[WordTiming]) -> AudioChunk:
        """A piece of audio as it leaves: encoded (streams), with the words that start in it."""
        data = None
        if encoder is not None:
            start = time.perf_counter()
            data = encoder.encode(audio)
            plan.encode_s += time.perf_counter() - start
        if plan.first_audio is None:
            plan.first_audio = time.perf_counter()
        return AudioChunk(index, text, audio, plan.engine.sample_rate, data, sentence=sentence,
                          words=tuple(words))

    def _chunk_words(self, plan: _Plan, index: int, prepared, durations) -> list[WordTiming]:
        """The typed words this chunk completes, timed from the start of the whole audio (the
        chunk starts after `plan.samples`); CPU work, outside the gate."""
        if plan.words is None:
            return []
        start = time.perf_counter()
        engine, first = plan.engine, plan.chunk_words[index]
        spans = {}
        if prepared is not None and durations is not None and all(d is not None for d in durations):
            frames = word_frames(engine.word_units(plan.chunks[index], prepared), durations)
            spans = chunk_timings(first, frames, engine.samples_per_frame / engine.sample_rate,
                                  plan.samples / engine.sample_rate)
        words = plan.tracker.add(spans, plan.chunk_words[index + 1])
        plan.text_s += time.perf_counter() - start
        return words

    def _windows(self, plan: _Plan, latents,
                 where: str) -> Iterator[tuple[np.ndarray, bool, bool]]:
        """A chunk in two stages: its latents from one turn (batched like any inference), then
        decoder windows, each a turn of its own. The request's first sentence starts with a
        small window, so its first audio needs only the first stage and one small decode;
        the sentences after it, heard while they are made, are decoded in the largest
        windows (fewer turns, less context re-read), which still let other requests'
        first windows in between.

        Yields (audio, is the chunk's first piece, is its last piece).
        """
        windows = [(latent, start, stop) for n, latent in enumerate(latents)
                   for start, stop in window_plan(
                       latent.frames, FIRST_WINDOW_FRAMES if n == 0 and plan.first_audio is None
                       else MAX_WINDOW_FRAMES)]
        for n, window in enumerate(windows):
            yield (self._turn(plan, None, window, "decode", where), n == 0,
                   n == len(windows) - 1)

    def _turn(self, plan: _Plan, key, item, method: str, where: str):
        """One device turn through the gate: `engine.<method>` on `item` (batched with the
        same-`key` items waiting beside it), its wait and hold added to the plan."""
        engine, params = plan.engine, plan.params
        if key is not None:  # only the same method's items can share a device call
            key = (method, key)
        try:
            result, waited, held, _ = self.gate.run_item(
                key, item, lambda items: self._device(id(engine), method, items, params),
                first=plan.first_audio is None)
        except TTSError:
            raise
        except Exception as e:
            if is_out_of_memory(e):
                free_device_memory()
                raise OutOfMemoryError(
                    f"Model {engine.name!r} ran out of memory on {where}; what could be freed "
                    "was freed. Try again, or with a shorter text.") from e
            raise SynthesisError(f"Model {engine.name!r} failed while speaking {where}: {e}") from e
        plan.queue_s += waited
        plan.infer_s += held
        return result

    def _served(self, record: LatencyRecord, route: str) -> None:
        self.stats.add(record)
        self.prometheus.observe(record, route)

    def _failed(self, model: str, route: str, status: str) -> None:
        if status not in ("bad_request", "cancelled"):
            self.stats.add_failure()
        self.prometheus.count(route, model, status)

    def _record(self, plan: _Plan) -> LatencyRecord:
        audio_s = plan.samples / plan.engine.sample_rate
        record = LatencyRecord(
            queue_ms=plan.queue_s * MS,
            text_ms=plan.text_s * MS,
            inference_ms=plan.infer_s * MS,
            encode_ms=plan.encode_s * MS,
            total_ms=(plan.finished - plan.started) * MS,
            first_audio_ms=(plan.first_audio - plan.started) * MS,
            audio_seconds=audio_s,
            rtf=plan.infer_s / audio_s if audio_s else 0.0,
            model=plan.engine.name,
            device=plan.engine.device,
            chars=plan.chars,
        )
        logger.info("served model=%s chars=%d audio=%.2fs total=%.0fms queue=%.0fms rtf=%.3f",
                    record.model, record.chars, audio_s, record.total_ms, record.queue_ms, record.rtf)
        return record



def _speed(engine: Engine, speed) -> float:
    if isinstance(speed, bool) or not isinstance(speed, (int, float)):
        raise InputError(f"Speed must be a number between {MIN_SPEED} and {MAX_SPEED}, "
                         f"not {speed!r}.", param="speed")
    if not math.isfinite(speed) or not MIN_SPEED <= speed <= MAX_SPEED:
        raise InputError(f"Speed must be between {MIN_SPEED} and {MAX_SPEED}; got {speed}.",
                         param="speed")
    if speed != 1.0 and not engine.supports_speed:
        raise InputError(f"Model {engine.name!r} ({engine.family}) has no speed control; "
                         "leave the speed at 1.0.", param="speed")
    return float(speed)


def _temperature(engine: Engine, temperature) -> float | None:
    if temperature is None:
        return None
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE):
        raise InputError(f"Temperature must be a number between {MIN_TEMPERATURE} and "
                         f"{MAX_TEMPERATURE}, not {temperature!r}.", param="temperature")
    # Models without sampling take no temperature: the UI sends its slider's value regardless.
    return float(temperature) if engine.supports_temperature else None


def _embedding(engine: Engine, embedding) -> np.ndarray | None:
    if embedding is None:
        return None
    if engine.embedding_dim is None:
        raise InputError(f"Model {engine.name!r} ({engine.family}) takes no speaker embedding; "
                         "only SpeechT5 models do.", param="speaker_embedding")
    return read_xvector(embedding, engine.embedding_dim)


def _seed(seed) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, float)) or (
            isinstance(seed, float) and not (math.isfinite(seed) and seed.is_integer())):
        raise InputError(f"Seed must be a whole number, not {seed!r}.", param="seed")
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f"Seed must be between 0 and {MAX_SEED}; got {int(seed)}.", param="seed")
    return int(seed)


def _word_plan(typed: str, spoken: str, chunks: list[str],
               expanded: bool) -> tuple[list[SourceWord], list[int]]:
    """The typed words with the spoken words each became, and where each chunk's words start
    among the spoken words (one more entry: the end). Chunks are the spoken text's words in
    order; where a word longer than a chunk was cut, the chunks' own words are shown."""
    bounds = [0]
    for chunk in chunks:
        bounds.append(bounds[-1] + len(chunk.split(" ")))
    spoken_words = [w for chunk in chunks for w in chunk.split(" ")]
    if spoken_words != spoken.split(" "):
        return source_words(" ".join(spoken_words), " ".join(spoken_words)), bounds
    return source_words(typed, spoken, textproc.expand if expanded else None), bounds


loudness_normalize = loudness.normalize


def _bounded(value, low: float, high: float, what: str, unit: str, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and low <= value <= high):
        raise InputError(f"{what} must be a number from {low:g} to {high:g} {unit} "
                         f"(for example -16 for loudness), not {value!r}.", param=param)
    return float(value)
