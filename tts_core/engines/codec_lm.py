"""What the codec language-model families (CSM, Dia, Pocket TTS) share: cloned voices held warm,
generation paused between gate turns, and windowed codec decoding that joins the whole decode.

These models write a sentence frame by frame (codec codes, or latents for Pocket TTS) and a
codec turns frames into audio. A stream does not wait for the sentence: its generation runs
in a thread of its own that is let go only inside the request's gate turns (`advance`), one
window of frames per turn, so other requests' turns interleave as they do with the two-stage
engines. Each turn re-decodes the newest frames with `left_context` frames before them and
keeps the samples of frames that are final (`lookahead` frames are held back until the
frames after them exist); the warm-up checks that the pieces join into the whole decode.

A seeded stream is the same audio as the seeded whole file: both run the same generation
function; between a stream's turns the random generator's state is saved and restored, so
other requests in between do not change its draws.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from dataclasses import replace
from typing import Any, Callable

import numpy as np
import torch

from ..errors import InputError, SynthesisError, UnknownVoiceError
from ..device import resolve_device
from ..zerogpu import on_zerogpu
from .base import MIN_WINDOW_SNR_DB, CloneLimits, Engine, SynthesisParams, speak
from .torch_util import load_errors, pick_dtype, seed_all

logger = logging.getLogger(__name__)

# How long a chunk may talk: twice as slow as ordinary speech (15 characters a second) plus a
# second, so a short text cannot ramble on (Bark's lesson; Dia #148/#149 the other way round).
SLOW_CHARS_PER_S = 7.5
EXTRA_SPEECH_S = 1.0
WARMUP_SEED = 1234  # the warm-up's stream check compares a seeded stream with a seeded whole
MIN_CLIP_PEAK = 1e-3  # a clip quieter than this everywhere is silence


def max_frames(text: str, frame_rate: float, ceiling: int | None = None) -> int:
    """Frames a chunk of `text` may take (see SLOW_CHARS_PER_S), at most `ceiling`."""
    frames = math.ceil(frame_rate * (EXTRA_SPEECH_S + len(text) / SLOW_CHARS_PER_S))
    return min(frames, ceiling) if ceiling else frames


class _Stop(Exception):
    """Raised inside a paused generation to end it (its stream was closed)."""


class StepSource:
    """A generation run in a thread of its own that hands over one frame at a time: `next()`
    lets it run until its next frame and pauses it again, so it runs only while the caller
    (inside a gate turn) waits for it. `run(emit)` calls `emit(frame)` per frame."""

    def __init__(self, run: Callable[[Callable[[Any], None]], Any]):
        self._run = run
        self._frames: queue.SimpleQueue = queue.SimpleQueue()
        self._resume = threading.Semaphore(0)
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.finished = False

    def _emit(self, frame: Any) -> None:
        self._frames.put(("frame", frame))
        self._resume.acquire()
        if self._stopped:
            raise _Stop

    def _main(self) -> None:
        try:
            self._run(self._emit)
            self._frames.put(("end", None))
        except _Stop:
            self._frames.put(("end", None))
        except BaseException as e:  # handed to the caller of next()
            self._frames.put(("error", e))

    def next(self) -> Any | None:
        """The next frame, or None when the generation has ended."""
        if self.finished:
            return None
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="tts-generate", daemon=True)
            self._thread.start()
        else:
            self._resume.release()
        kind, value = self._frames.get()
        if kind == "frame":
            return value
        self.finished = True
        if kind == "error":
            raise value
        return None

    def close(self) -> None:
        """End a paused generation without running the model further (its stream went away)."""
        if self._thread is not None and not self.finished:
            self._stopped = True
            self.finished = True
            self._resume.release()


class Utterance:
    """One chunk being generated for a stream: `advance` (inside a gate turn) generates its
    next window of frames and returns their final audio; `done` after the last."""

    def __init__(self, engine: "CodecLMEngine", prepared: Any, params: SynthesisParams):
        self.engine, self.params = engine, params
        self.source = StepSource(lambda emit: engine.generate_frames([prepared], params, emit))
        self.frames: list[torch.Tensor] = []
        self.emitted = 0  # frames whose audio has left
        self.window = engine.first_window_frames
        self.done = False
        self._rng: tuple | None = None  # the seeded generator's state between turns

    def advance(self) -> np.ndarray:
        engine = self.engine
        self._restore_rng()
        try:
            target = self.emitted + self.window + engine.lookahead
            while not self.source.finished and len(self.frames) < target:
                frame = self.source.next()
                if frame is not None:
                    self.frames.append(frame)
        finally:
            self._save_rng()
        n = len(self.frames)
        upto = n if self.source.finished else max(self.emitted, n - engine.lookahead)
        lo = max(0, self.emitted - engine.left_context)
        hop = engine.samples_per_frame
        audio = (engine.decode_frames(torch.stack(self.frames[lo:n]))[(self.emitted - lo) * hop:
                                                                      (upto - lo) * hop]
                 if upto > self.emitted else np.zeros(0, np.float32))
        self.emitted, self.window = upto, min(engine.max_window_frames, self.window * 2)
        self.done = self.source.finished
        return audio

    def close(self) -> None:
        self.source.close()

    def _restore_rng(self) -> None:
        if self.params.seed is None:
            return
        if self._rng is None:
            seed_all(self.params.seed)
            return
        torch.set_rng_state(self._rng[0])
        if self._rng[1] is not None:
            torch.cuda.set_rng_state(self._rng[1])

    def _save_rng(self) -> None:
        if self.params.seed is not None:
            cuda = torch.cuda.get_rng_state() if self.engine.device == "cuda" else None
            self._rng = (torch.get_rng_state(), cuda)


class CodecLMEngine(Engine):
    """The shared half of CSM, Dia and Pocket TTS (see the module docstring).

    A family sets `builtin_voices`, the frame geometry, and implements `_prepare` (text and
    a voice's conditioning -> inputs), `generate_frames` (inputs -> frames, calling `emit`
    per frame of a one-item batch), `decode_frames` (frames -> audio), `_encode` (clip ->
    conditioning arrays) and `_voice_from` (arrays -> what `_prepare` takes).
    """

    supports_seed = True
    supports_speed = False
    supports_cloning = True
    supports_windows = True  # streams inside sentences: incrementally, while generating
    generates_incrementally = True
    builtin_voices: tuple[str, ...] = ("default",)
    frame_rate: float = 0.0
    first_window_frames = 4
    max_window_frames = 32
    lookahead = 1  # frames held back until the next exists (a codec's right context)
    left_context = 32  # frames re-decoded before a window (a codec's left context)
    clip_min_s, clip_max_s, clip_needs_transcript = 2.0, 10.0, True

    def __init__(self, spec, device: str, cpu_threads: int | None = None):
        super().__init__(spec, resolve_device(device, torch.cuda.is_available()), cpu_threads)
        self._voice_lock = threading.Lock()
        self._cloned: dict[str, Any] = {}
        self.voices = self.builtin_voices
        self.encoder_calls = 0
        self.window_snr_db: float | None = None
        if on_zerogpu():  # a paused generation cannot cross into ZeroGPU's forked process
            logger.info("%s: on ZeroGPU streams get whole sentences", spec.name)
            self.supports_windows = False

    def _load_pretrained(self, spec, processor_class, model_class, cuda_default: str,
                         what: str, hint: str) -> torch.dtype:
        """The family's processor and model from `spec.source` (a hub id or a save_pretrained
        folder) onto this engine's device, in the spec's dtype (else `cuda_default` on CUDA,
        float32 on a CPU); a failure says `what` could not be loaded and `hint`."""
        dtype = pick_dtype(spec.dtype, self.device, cuda_default=cuda_default)
        with load_errors(f"{what} model {spec.raw!r} could not be loaded from {spec.source!r}",
                         hint):
            self.processor = processor_class.from_pretrained(spec.source)
            self.model = model_class.from_pretrained(
                spec.source, dtype=dtype).to(self.device).eval()
        return dtype

    # --- family hooks ---------------------------------------------------------------------

    def _prepare(self, text: str, voice: Any | None) -> Any | None:
        raise NotImplementedError

    def generate_frames(self, prepared: list[Any], params: SynthesisParams,
                        emit: Callable[[torch.Tensor], None] | None = None) -> list[torch.Tensor]:
        """Inside the gate: each input's frames (frames, ...) to its end; `emit` (one-item
        batches only) gets each frame as soon as it is final."""
        raise NotImplementedError

    def decode_frames(self, frames: torch.Tensor) -> np.ndarray:
        """Frames (n, ...) as float32 audio, n * samples_per_frame samples in [-1, 1]."""
        raise NotImplementedError

    def _encode(self, audio: np.ndarray, transcript: str | None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _voice_from(self, conditioning: dict[str, np.ndarray]) -> Any:
        raise NotImplementedError

    # --- speaking -------------------------------------------------------------------------

    def prepare(self, text: str, params: SynthesisParams) -> Any | None:
        if not any(ch.isalnum() for ch in text):
            return None
        return self._prepare(text, self._conditioning(params.voice))

    def infer(self, prepared: Any, params: SynthesisParams) -> np.ndarray:
        return self.infer_batch([prepared], params)[0]

    def infer_batch(self, prepared: list[Any], params: SynthesisParams) -> list[np.ndarray]:
        with torch.inference_mode():
            seed_all(params.seed)
            frames = self.generate_frames(prepared, params)
            return [self.decode_frames(f) if len(f) else np.zeros(0, np.float32) for f in frames]

    def start_utterance(self, prepared: Any, params: SynthesisParams) -> Utterance:
        return Utterance(self, prepared, params)

    def advance(self, utterances: list[Utterance], params: SynthesisParams) -> list[np.ndarray]:
        with torch.inference_mode():
            return [u.advance() for u in utterances]

    # --- voices ---------------------------------------------------------------------------

    def clone_limits(self) -> CloneLimits:
        return CloneLimits(self.clip_min_s, self.clip_max_s, self.sample_rate,
                           self.clip_needs_transcript)

    def encode_voice(self, audio: np.ndarray, transcript: str | None) -> dict[str, np.ndarray]:
        self._check_clip(audio, transcript)
        with torch.inference_mode():
            self.encoder_calls += 1
            return self._encode(np.asarray(audio, np.float32), transcript)

    def add_voice(self, name: str, conditioning: dict[str, np.ndarray]) -> None:
        if name in self.builtin_voices:
            raise InputError(f"{name!r} is one of model {self.name!r}'s own voices; choose "
                             "another name.", param="name")
        try:
            voice = self._voice_from(conditioning)
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise InputError(f"The conditioning for voice {name!r} is not one that model "
                             f"{self.name!r} ({self.family}) made: {e}", param="name") from e
        with self._voice_lock:  # replaced, never changed in place: readers need no lock
            self._cloned = {**self._cloned, name: voice}
            self.voices = self.builtin_voices + tuple(self._cloned)

    def remove_voice(self, name: str) -> None:
        with self._voice_lock:
            if name not in self._cloned:
                raise UnknownVoiceError(f"Model {self.name!r} has no cloned voice {name!r}.",
                                        param="voice")
            self._cloned = {n: v for n, v in self._cloned.items() if n != name}
            self.voices = self.builtin_voices + tuple(self._cloned)

    def _conditioning(self, voice: str) -> Any | None:
        if voice in self.builtin_voices:
            return None
        cloned = self._cloned.get(voice)
        if cloned is None:
            raise UnknownVoiceError(f"Voice {voice!r} of model {self.name!r} was just removed.",
                                    param="voice")
        return cloned

    def _check_clip(self, audio: np.ndarray, transcript: str | None) -> None:
        limits = self.clone_limits()
        if not isinstance(audio, np.ndarray) or audio.ndim != 1 or not np.issubdtype(
                audio.dtype, np.floating):
            raise InputError("The reference clip must be mono float audio (one channel).",
                             param="audio")
        seconds = audio.shape[0] / limits.sample_rate
        if seconds < limits.min_s:
            raise InputError(f"The reference clip is {seconds:.1f} s long; model {self.name!r} "
                             f"needs at least {limits.min_s:g} s of speech.", param="audio")
        if seconds > limits.max_s + 0.5:
            raise InputError(f"The reference clip is {seconds:.1f} s long; model {self.name!r} "
                             f"uses at most {limits.max_s:g} s: cut it on a pause.", param="audio")
        if not np.isfinite(audio).all() or float(np.abs(audio).max()) < MIN_CLIP_PEAK:
            raise InputError("The reference clip is silent (or not audio): record the voice "
                             "speaking.", param="audio")
        if limits.needs_transcript and not (transcript or "").strip():
            raise InputError(f"Model {self.name!r} ({self.family}) needs the clip's transcript: "
                             "the words spoken in it.", param="transcript")

    # --- warm-up --------------------------------------------------------------------------

    def warm_up(self, text: str) -> float:
        """Speak `text`; then clone the warm-up's own audio as a voice and speak with it, and
        check that a seeded stream in that voice joins the seeded whole file (else streams
        get whole sentences); then speak each cloned voice already added once."""
        audio = speak(self, text, SynthesisParams(voice=self.default_voice), what="warm-up text")
        clip = self._warmup_clip(audio)
        with torch.inference_mode():
            voice = self._voice_from(self._encode(clip, text))
        params = SynthesisParams(voice=self.default_voice, seed=WARMUP_SEED)
        prepared = self._prepare(text, voice)
        if self.infer(prepared, params).size == 0:
            raise SynthesisError(f"the warm-up text {text!r} in a cloned voice produced no audio")
        self.window_snr_db = self.check_windows(prepared, params)
        for name in tuple(self._cloned):
            speak(self, text, SynthesisParams(voice=name), what=f"warm-up text in voice {name!r}")
        self.stream_lufs = self.measure_stream_level(text, audio)
        return audio.shape[0] / self.sample_rate

    def _warmup_clip(self, audio: np.ndarray) -> np.ndarray:
        """The warm-up's audio as a clip of a usable length (repeated when it is shorter)."""
        need = int(self.clip_min_s * self.sample_rate) + 1
        reps = max(1, -(-need // max(1, audio.shape[0])))
        return np.tile(audio, reps)[:max(need, min(audio.shape[0],
                                                   int(self.clip_max_s * self.sample_rate)))]

    def measure_stream_level(self, text: str, audio: np.ndarray) -> float:
        """Streams are the decoder's audio as the whole file is: the warm-up's own level."""
        windows, self.supports_windows = self.supports_windows, False
        try:
            return super().measure_stream_level(text, audio)
        finally:
            self.supports_windows = windows

    def check_windows(self, prepared: Any, params: SynthesisParams,
                      first_frames: int | None = None) -> float | None:
        """A seeded stream of `prepared` against the seeded whole file: their SNR in dB; below
        MIN_WINDOW_SNR_DB this model streams whole sentences (and the log says why)."""
        if not self.supports_windows:
            return None
        params = replace(params, seed=WARMUP_SEED if params.seed is None else params.seed)
        whole = self.infer(prepared, params)
        utterance = self.start_utterance(prepared, params)
        pieces = []
        try:
            while not utterance.done:
                pieces.append(self.advance([utterance], params)[0])
        finally:
            utterance.close()
        joined = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        error = float(np.sum((joined - whole) ** 2)) if joined.shape == whole.shape else float("inf")
        snr = 10 * np.log10(float(np.sum(whole ** 2)) / error) if error > 0 else float("inf")
        logger.info("%s: a stream in %d pieces joins the whole decode at %.1f dB SNR",
                    self.name, len(pieces), snr)
        if snr < MIN_WINDOW_SNR_DB:
            logger.warning("%s: a stream joined the whole file at %.1f dB SNR (below %.0f dB; "
                           "%s samples against %s); streaming whole sentences instead",
                           self.name, snr, MIN_WINDOW_SNR_DB, joined.shape[0], whole.shape[0])
            self.supports_windows = False
        return snr
