"""The request path: a checked SpeechRequest -> chunks -> gate -> engine -> encoded audio, with a latency record.

Every caller (Gradio UI, Gradio API, HTTP routes, RunPod jobs) builds a `SpeechRequest`
and goes through `Pipeline.stream` or `Pipeline.synthesize`, and so through the one gate.
The request is checked when the call is made (`plan.make_plan`), before anything waits
for the device; admission to the gate happens when iteration starts, and is released
however iteration ends (exhausted, error, close()). One generator, `Pipeline._run`, runs
every request and counts its outcome; a whole file is a thin consumer of it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from . import audio as audio_io
from . import loudness
from . import zerogpu
from .config import Settings, half_queue
from .device import raise_if_out_of_memory
from .engines import Engine, SynthesisParams
from .errors import (ClientGoneError, GateBusyError, GateTimeoutError, InputError,
                     OutOfMemoryError, SynthesisError, TTSError)
from .gate import DeviceGate, last_turn_threads
from .metrics import LatencyRecord, PrometheusMetrics, RollingStats
from .plan import Plan, make_plan, model_label
from .record import RecordClock
from .registry import Registry, warm_load
from .request import SpeechRequest
from .timings import WordTiming, WordTracker, chunk_timings, word_frames
from .windows import FIRST_WINDOW_FRAMES, MAX_WINDOW_FRAMES, window_plan

logger = logging.getLogger(__name__)
MS = 1000.0
# Batch size when TTS_MAX_BATCH is unset and a model runs on CUDA. On CPU batching is off:
# padded batches ran slower there than the same items one by one (see the benchmark).
DEFAULT_CUDA_BATCH = 8
# Outcomes that are the caller's doing, not the server's: counted, but not as failures.
NOT_FAILURES = frozenset({"bad_request", "cancelled", "unauthorized"})


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


class _Streamed:
    """How a stream takes its audio: each piece encoded as it leaves (a file each, or one
    continuous stream of bytes), levelled by a limiter when the request has a loudness target."""

    streamed = True

    def __init__(self, plan: Plan, continuous: bool):
        self._encoder = audio_io.ChunkEncoder(plan.format, plan.engine.sample_rate, continuous)

    def piece(self, audio: np.ndarray) -> bytes:
        return self._encoder.encode(audio)

    def end(self) -> None:
        """Nothing is left to do: every piece has left encoded."""


class _WholeFile:
    """How a whole file takes its audio: the pieces kept, then joined, normalized to the
    request's loudness target and encoded once, after the last (`data`, `audio`)."""

    streamed = False

    def __init__(self, plan: Plan):
        self._plan = plan
        self._pieces: list[np.ndarray] = []
        self.data: bytes | None = None
        self.audio: np.ndarray | None = None

    def piece(self, audio: np.ndarray) -> None:
        self._pieces.append(audio)

    def end(self) -> None:
        plan = self._plan
        joined = np.concatenate(self._pieces)
        if plan.loudness is not None:
            joined, _ = loudness.normalize(joined, plan.engine.sample_rate, plan.loudness)
        self.data = audio_io.encode(joined, plan.engine.sample_rate, plan.format)
        self.audio = joined


@dataclass
class _Run:
    """One request as it runs: its plan, its clock, how its audio leaves, and at the end its record."""

    plan: Plan
    clock: RecordClock
    delivery: _Streamed | _WholeFile
    record: LatencyRecord | None = None
    client: str | None = None  # who asked (an address), for the gate's per-client bound


class Synthesis:
    """A checked request being made: iterate for AudioChunks; `record` is set after the last."""

    def __init__(self, run: Iterator, gate: DeviceGate | None = None):
        """`run`: `Pipeline._run`'s generator. Its first item (taken here, so a bad request
        raises now) is the request's _Run; AudioChunks follow."""
        self._iter = run
        self._gate = gate
        self._run: _Run = next(run)
        self.plan = self._run.plan
        self.engine = self.plan.engine
        self.sample_rate = self.engine.sample_rate
        self.chunks = list(self.plan.chunks)
        self.format = self.plan.format

    @property
    def record(self) -> LatencyRecord | None:
        return self._run.record

    def __iter__(self) -> Iterator[AudioChunk]:
        return self._iter

    def close(self) -> None:
        """Stop early (a client went away): no more chunks are made, the gate place is freed."""
        self._iter.close()

    def cancel(self) -> None:
        """From any thread, while another makes a chunk: stop before the next chunk, or now if
        the chunk in hand is still waiting for its turn (ClientGoneError where it is made)."""
        self._run.clock.cancel.set()
        if self._gate is not None:
            self._gate.wake()


class Pipeline:
    """Holds the warm registry, the gate and the stats; the only way to make audio."""

    def __init__(self, registry: Registry, gate: DeviceGate, stats: RollingStats, settings: Settings):
        self.registry = registry
        self.gate = gate
        self.stats = stats
        self.settings = settings
        zerogpu.register(*registry.engines.values())
        self._device = zerogpu.device_call(zerogpu.on_device,  # spaces.GPU on ZeroGPU
                                           settings.zerogpu_duration_s)
        self._stream_gains: dict[tuple[str, loudness.LoudnessTarget], float] = {}
        self.prometheus = PrometheusMetrics()
        self.prometheus.queue_depth.set_function(lambda: gate.queue_depth)
        self.prometheus.slots.set_function(lambda: gate.slots)
        self.prometheus.slots_in_use.set_function(lambda: gate.slots_in_use)
        self.prometheus.threads.set_function(lambda: gate.threads or 0)
        self.prometheus.threads_in_use.set_function(lambda: gate.threads_in_use)
        self.prometheus.busy_seconds.set_function(lambda: gate.busy_s)
        self.prometheus.device_calls.set_function(lambda: gate.turns_served)
        self.prometheus.device_items.set_function(lambda: gate.items_served)
        self.prometheus.stuck_calls.set_function(lambda: gate.stuck_calls)
        for warm in registry.warm:
            self.prometheus.observe_load(warm)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Pipeline":
        """Warm-load every configured model, then build the gate and the stats around them."""
        return cls.from_registry(warm_load(settings), settings)

    @classmethod
    def from_registry(cls, registry: Registry, settings: Settings) -> "Pipeline":
        """A pipeline over already-warm engines, with the gate and stats `settings` ask for."""
        max_batch = settings.max_batch or (
            DEFAULT_CUDA_BATCH if any(e.device == "cuda" for e in registry.engines.values()) else 1)
        on_gpu = any(e.device == "cuda" for e in registry.engines.values())
        if on_gpu and settings.cpu_slots > 1:
            logger.warning("TTS_CPU_SLOTS=%d ignored: a model runs on the GPU, which runs one "
                           "inference at a time", settings.cpu_slots)
        gate = DeviceGate(settings.queue_size, settings.gate_timeout_s, max_batch=max_batch,
                       batch_wait_s=settings.batch_wait_ms / MS,
                       infer_timeout_s=settings.infer_timeout_s,
                       slots=1 if on_gpu else settings.cpu_slots,
                       max_per_client=settings.max_per_client or half_queue(settings.queue_size),
                       threads=None if on_gpu else settings.device_threads())
        return cls(registry, gate, RollingStats(settings.stats_window), settings)

    # --- what callers use ---------------------------------------------------------------

    def stream(self, request: SpeechRequest, route: str = "python",
               continuous: bool = False, client: str | None = None) -> Synthesis:
        """Check `request` now; return its chunks with `data` encoded in `request.format`.

        `route` names the caller in the metrics. `continuous=False`: every chunk is a
        complete file (what Gradio's streaming audio wants). `continuous=True`: the chunks'
        bytes concatenate into one stream (one WAV header, then samples; what an HTTP
        response body wants). With `request.timings`, each chunk carries the words that
        start in it; with a loudness target, a stream gets one gain and a limiter. `client`
        (an address) holds at most `Settings.max_per_client` gate places at once.
        """
        return Synthesis(self._run(request, route, streamed=True, continuous=continuous,
                                   client=client), self.gate)

    def synthesize(self, request: SpeechRequest, route: str = "python",
                   on_chunk: Callable[[int, int], None] | None = None, client: str | None = None,
                   cancel: threading.Event | None = None,
                   background: bool = False) -> SynthesisResult:
        """The whole text as one encoded file: a thin consumer of the chunk generator.

        `on_chunk(done, total)` is told after each chunk (the UI's progress bar). With
        `request.timings`, the result's `words`; with a loudness target, the whole file is
        measured and normalized. `client` as for `stream`; `cancel`, set through
        `Pipeline.cancel` from another thread, stops the request (ClientGoneError).
        `background`: a long job's piece (`jobs`): it takes no admission place, its turns are
        the gate's lowest priority, and its record stays out of the rolling stats (Prometheus
        counts it under its route).
        """
        synthesis = Synthesis(self._run(request, route, streamed=False, client=client,
                                        cancel=cancel, background=background), self.gate)
        words = []
        try:
            for chunk in synthesis:
                words.extend(chunk.words)
                if on_chunk is not None:
                    on_chunk(chunk.sentence + 1, len(synthesis.chunks))
        finally:
            synthesis.close()  # frees the gate place at once, whatever `on_chunk` did
        whole: _WholeFile = synthesis._run.delivery  # joined and encoded after the last chunk
        return SynthesisResult(whole.data, whole.audio, synthesis.sample_rate, synthesis.format,
                               synthesis.record, words if synthesis.plan.words is not None else None)

    def cancel(self, event: threading.Event) -> None:
        """Set a `synthesize(cancel=...)` event: its request stops at its next chunk, or now if
        it is waiting for a turn at the gate."""
        event.set()
        self.gate.wake()

    def refused(self, route: str, status: str) -> None:
        """Count a request a route turned away before it became a SpeechRequest (an unreadable
        body: "bad_request"; a wrong key: "unauthorized")."""
        self._count(route, "unknown", status)

    def prometheus_text(self) -> bytes:
        """The metrics in Prometheus' text format (what GET /metrics serves)."""
        return self.prometheus.exposition()

    def snapshot(self) -> dict:
        """Rolling stats with the gate's current queue depth and slot use."""
        return dict(self.stats.snapshot(self.gate.queue_depth), slots=self.gate.slots,
                    slots_in_use=self.gate.slots_in_use, threads=self.gate.threads,
                    threads_in_use=self.gate.threads_in_use)

    def models(self) -> list[dict]:
        """Each loaded model's card, with its warm-load timings (Gradio /models)."""
        return [dict(warm.card.to_dict(), load_s=warm.load_s, warmup_s=warm.warmup_s)
                for warm in self.registry.warm]

    # --- inside -------------------------------------------------------------------------

    def _run(self, request: SpeechRequest, route: str, streamed: bool,
             continuous: bool = False, client: str | None = None,
             cancel: threading.Event | None = None, background: bool = False) -> Iterator:
        """The one place a request runs and its outcome is counted: checked, then (when
        iterated) admitted, made and recorded. Yields the request's _Run as soon as it is
        checked, then its AudioChunks; a whole file is encoded after the last of them."""
        model, status, run = model_label(request, self.registry), "error", None
        try:
            plan = make_plan(request, self.registry, self.settings, streamed, continuous)
            if background:
                plan = dataclasses.replace(plan, background=True)
            model = plan.engine.name
            run = _Run(plan, RecordClock(plan),
                       _Streamed(plan, continuous) if streamed else _WholeFile(plan), client=client)
            if cancel is not None:
                run.clock.cancel = cancel
            yield run
            yield from self._pieces(run)
            if run.clock.samples == 0:
                raise InputError(f"Model {model!r} cannot pronounce any of this text "
                                 "(no character of it is in the model's alphabet).", param="text")
            self._timed_encode(run.clock, run.delivery.end)
            run.record = run.clock.record(streamed)
            status = "ok"
        except (GeneratorExit, ClientGoneError):
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
            self._count(route, model, status, run.record if run is not None else None,
                        rolling=not background)

    def _count(self, route: str, model: str, status: str,
               record: LatencyRecord | None = None, rolling: bool = True) -> None:
        """The one place an outcome is counted: a served request with its record, or a failure."""
        if record is not None:
            if rolling:
                self.stats.add(record)
            self.prometheus.observe(record, route)
            return
        if rolling and status not in NOT_FAILURES:
            self.stats.add_failure()
        self.prometheus.count(route, model, status)

    def _pieces(self, run: _Run) -> Iterator[AudioChunk]:
        """The request's audio in pieces, inside its place at the gate: each chunk of text
        prepared (CPU), spoken in device turns, faded at its edges, levelled (streams with a
        loudness target: one gain and a limiter) and handed to the delivery."""
        plan, clock = run.plan, run.clock
        engine = plan.engine
        tracker = WordTracker(plan.words) if plan.words is not None else None
        levelled = plan.loudness is not None and run.delivery.streamed  # files: once joined
        limiter = None
        made = 0
        held: list[WordTiming] = []  # words of audio the limiter still holds
        admission = nullcontext() if plan.background else self.gate.admit(run.client)
        with admission, self.registry.in_use(engine):
            for index, chunk_text in enumerate(plan.chunks):
                if clock.cancel.is_set():
                    raise ClientGoneError("The client went away; the request was stopped.")
                silence = self._silence(run, made, index, held, limiter)  # SSML <break>
                if silence is not None:
                    yield silence
                    made, held = made + 1, []
                prepared = self._prepare(clock, index)
                if prepared is None:  # nothing this model can pronounce in this chunk
                    self._chunk_words(clock, tracker, index, None, None)  # its words are not heard
                    continue
                # Its first piece, whole, when the stream's one gain is still to be set from it.
                pieces, durations = self._speak(clock, index, prepared,
                                                whole=levelled and limiter is None)
                words = self._chunk_words(clock, tracker, index, prepared, durations)
                if levelled and limiter is None:
                    limiter = self._stream_limiter(plan, index, pieces[0][0])
                for audio, head, tail in pieces:
                    audio = audio_io.fade_edges(audio, engine.sample_rate, head=head, tail=tail)
                    clock.samples += audio.shape[0]
                    held += [w for w in words if tail or w.start < clock.audio_s]
                    words = [w for w in words if w not in held]
                    if limiter is not None:
                        audio = limiter.process(audio)
                        if audio.size == 0:
                            continue
                    yield self._piece(run, made, chunk_text, audio, index, held)
                    made, held = made + 1, []
            silence = self._silence(run, made, len(plan.chunks), held, limiter)
            if silence is not None:
                yield silence
                made, held = made + 1, []
            if limiter is not None and clock.samples:
                yield self._piece(run, made, plan.chunks[-1], limiter.flush(), len(plan.chunks) - 1,
                                  held)

    def _silence(self, run: _Run, made: int, index: int, held: list[WordTiming],
                 limiter: loudness.Limiter | None) -> AudioChunk | None:
        """The silence an SSML <break> puts before chunk `index` (`len(chunks)`: after the
        last), exact to the sample, as a piece of its own: a stream plays up to the break
        without waiting for the next sentence. None: no silence there (or the limiter holds it)."""
        samples = run.plan.silence_before(index)
        if not samples:
            return None
        audio = np.zeros(samples, dtype=np.float32)
        run.clock.samples += samples
        if limiter is not None:
            audio = limiter.process(audio)
            if audio.size == 0:
                return None
        return self._piece(run, made, "", audio, max(index - 1, 0), held)

    def _prepare(self, clock: RecordClock, index: int):
        """Chunk `index` as the model's inputs (CPU, outside the gate); None: nothing to say."""
        plan = clock.plan
        start = time.perf_counter()
        try:
            prepared = plan.engine.prepare(plan.chunks[index], plan.params_at(index))
        except TTSError:
            raise
        except Exception as e:
            raise SynthesisError(f"Model {plan.engine.name!r} could not read chunk "
                                 f"{index + 1} of {len(plan.chunks)}: {e}") from e
        clock.text_s += time.perf_counter() - start
        return prepared

    def _speak(self, clock: RecordClock, index: int, prepared, whole: bool):
        """A prepared chunk's audio through the gate: (pieces, the model's durations or None),
        each piece (audio, is the chunk's first piece, is its last). One piece, unless the plan
        is windowed and `whole` is False: then decoder windows, made as they are taken."""
        plan = clock.plan
        where = f"chunk {index + 1} of {len(plan.chunks)}"
        key, params = plan.batch_key_at(index), plan.params_at(index)
        incremental = plan.windowed and plan.engine.generates_incrementally
        if incremental and not whole:
            return self._generated(clock, prepared, where, params), None
        if plan.windowed and not incremental:
            latents = self._turn(clock, key, prepared, "encode_batch", where, params)
            durations = [lat.durations for lat in latents]
            if not whole:
                return self._windows(clock, latents, where), durations
            audio = np.concatenate([self._turn(clock, None, (lat, 0, lat.frames), "decode", where)
                                    for lat in latents])
            return [(audio, True, True)], durations
        if plan.words is None:
            audio, durations = self._turn(clock, key, prepared, "infer_batch", where, params), None
        else:  # the same audio, with the model's durations beside it
            audio, durations = self._turn(clock, key, prepared, "infer_batch_timed", where, params)
        return [(audio, True, True)], durations

    def _piece(self, run: _Run, index: int, text: str, audio: np.ndarray, sentence: int,
               words: list[WordTiming]) -> AudioChunk:
        """A piece of audio as it leaves: handed to the delivery (a stream encodes it), with
        the words that start in it."""
        data = self._timed_encode(run.clock, lambda: run.delivery.piece(audio))
        run.clock.piece_left()
        return AudioChunk(index, text, audio, run.plan.engine.sample_rate, data, sentence=sentence,
                          words=tuple(words))

    @staticmethod
    def _timed_encode(clock: RecordClock, encode: Callable[[], bytes | None]) -> bytes | None:
        start = time.perf_counter()
        data = encode()
        clock.encode_s += time.perf_counter() - start
        return data

    def _chunk_words(self, clock: RecordClock, tracker: WordTracker | None, index: int, prepared,
                     durations) -> list[WordTiming]:
        """The typed words this chunk completes, timed from the start of the whole audio (the
        chunk starts after `clock.samples`); CPU work, outside the gate."""
        if tracker is None:
            return []
        plan = clock.plan
        start = time.perf_counter()
        engine, first = plan.engine, plan.chunk_words[index]
        spans = {}
        if prepared is not None and durations is not None and all(d is not None for d in durations):
            frames = word_frames(engine.word_units(plan.chunks[index], prepared), durations)
            spans = chunk_timings(first, frames, engine.samples_per_frame / engine.sample_rate,
                                  clock.audio_s)
        words = tracker.add(spans, plan.chunk_words[index + 1])
        clock.text_s += time.perf_counter() - start
        return words

    def _windows(self, clock: RecordClock, latents,
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
                       latent.frames, FIRST_WINDOW_FRAMES if n == 0 and clock.first_piece is None
                       else MAX_WINDOW_FRAMES)]
        for n, window in enumerate(windows):
            yield (self._turn(clock, None, window, "decode", where), n == 0,
                   n == len(windows) - 1)

    def _generated(self, clock: RecordClock, prepared, where: str,
                   params: SynthesisParams) -> Iterator[tuple[np.ndarray, bool, bool]]:
        """A chunk heard while it is generated (CSM, Dia, Pocket TTS): each turn lets the
        generation run one window of frames further and yields their audio; the generation
        is ended however the stream ends. Yields (audio, is the first piece, is the last)."""
        utterance = clock.plan.engine.start_utterance(prepared, params)
        try:
            first = True
            while not utterance.done:
                audio = self._turn(clock, None, utterance, "advance", where, params)
                yield audio, first, utterance.done
                first = False
        finally:
            utterance.close()

    def _turn(self, clock: RecordClock, key, item, method: str, where: str, params=None):
        """One device turn through the gate: `engine.<method>` on `item` (batched with the
        same-`key` items waiting beside it) with `params` (default: the plan's), its wait and
        hold added to the clock."""
        engine, params = clock.plan.engine, params or clock.plan.params
        if key is not None:  # only the same method's items can share a device call
            key = (method, key)
        try:
            result, waited, held, _ = self.gate.run_item(
                key, item, lambda items: self._device(id(engine), method, items, params),
                first=clock.first_piece is None, cancel=clock.cancel,
                background=clock.plan.background)
        except TTSError:
            raise
        except Exception as e:
            raise_if_out_of_memory(e, lambda: OutOfMemoryError(
                f"Model {engine.name!r} ran out of memory on {where}; what could be freed "
                "was freed. Try again, or with a shorter text."))
            raise SynthesisError(f"Model {engine.name!r} failed while speaking {where}: {e}") from e
        clock.queue_s += waited
        clock.infer_s += held
        threads = last_turn_threads()
        if threads:  # the share of the CPU threads this turn got (None: undivided, a GPU)
            clock.turn_threads.append(threads)
            self.prometheus.turn_threads.observe(threads)
        return result

    def _stream_limiter(self, plan: Plan, index: int, first: np.ndarray) -> loudness.Limiter:
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
