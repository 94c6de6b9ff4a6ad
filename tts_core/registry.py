"""Warm registry: every configured model loaded, placed on its device and run once before serving;
with each, its model card and what warm loading it cost (`WarmModel`)."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from typing import Callable, Iterator

from .config import ModelSpec, Settings
from .device import cuda_free, raise_if_out_of_memory
from .engines import Engine, ModelCard, WarmModel, load_engine
from .families import FAMILIES, needs_torch
from .errors import InputError, ModelLoadError, TTSError, UnknownModelError
from .model_cache import use_baked_cache

logger = logging.getLogger(__name__)

# A voice whose name holds this mark is one session's or one request's own (a one-off cloned
# voice): spoken by name, never listed in a card. No saved voice's name can hold it.
TRANSIENT_MARK = "~"


def listed_voices(engine: Engine) -> tuple[str, ...]:
    """`engine`'s voices as anyone may be shown them: without one-off voices."""
    return tuple(v for v in engine.voices if TRANSIENT_MARK not in v)


class Registry:
    """A plain dict of warm engines by name, in TTS_MODELS order (the first is the default).

    Models can be added and removed while serving: `engines` and `warm` are replaced,
    never changed in place, so a reader always sees a whole version of them.
    """

    def __init__(self, engines: dict[str, Engine], warm: list[WarmModel]):
        if not engines:
            raise ModelLoadError("No model is loaded; TTS_MODELS must name at least one")
        self.engines = engines
        self.warm = warm  # each model's card and warm-load timings, in the same order
        self._lock = threading.Condition()
        self._in_use: dict[str, int] = {}  # model name -> requests admitted with it
        # Bumped whenever a model comes or goes or a card changes: open pages compare it to
        # the one they last drew their pickers for (ui/refresh.py).
        self.revision = 0

    def add(self, engine: Engine, warm: WarmModel) -> None:
        """Serve a warm engine from now on (last in the lists)."""
        with self._lock:
            if engine.name in self.engines:
                raise ModelLoadError(f"A model called {engine.name!r} is already loaded")
            # Its card first: whoever sees the engine finds its card too.
            self.warm = [*self.warm, warm]
            self.engines = {**self.engines, engine.name: engine}
            self.revision += 1

    def withdraw(self, name: str) -> Engine:
        """Take `name` out: new requests get 'unknown model' from now on; those already
        admitted finish (see wait_unused)."""
        with self._lock:
            engine = self.get(name)
            if len(self.engines) == 1:
                raise InputError(f"{name!r} is the only model loaded; add another first.",
                                 param="model")
            self.engines = {n: e for n, e in self.engines.items() if n != name}
            self.warm = [w for w in self.warm if w.name != name]
            self.revision += 1
            return engine

    def refresh_card(self, name: str) -> ModelCard:
        """`name`'s card made again from its engine (after `add_voice`/`remove_voice` changed
        its voices), so every list that reads cards shows the change; the new card. One-off
        voices (TRANSIENT_MARK in their name) are left out of it."""
        with self._lock:
            engine = self.get(name)
            card = replace(engine.card(), voices=listed_voices(engine))
            self.warm = [replace(w, card=card) if w.name == engine.name else w for w in self.warm]
            self.revision += 1
            return self.warm_model(name).card

    def wait_unused(self, name: str, timeout_s: float | None = None) -> bool:
        """Wait until no admitted request uses model `name`; False if `timeout_s` passed first."""
        with self._lock:
            return self._lock.wait_for(lambda: self._in_use.get(name, 0) == 0, timeout=timeout_s)

    @contextmanager
    def in_use(self, engine: Engine) -> Iterator[None]:
        """Held by each admitted request, so that a model being removed waits for it."""
        with self._lock:
            if self.engines.get(engine.name) is not engine:
                raise UnknownModelError(f"Model {engine.name!r} was just removed. Loaded models: "
                                        f"{', '.join(self.engines)}.", param="model")
            self._in_use[engine.name] = self._in_use.get(engine.name, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._in_use[engine.name] -= 1
                self._lock.notify_all()

    @property
    def default(self) -> Engine:
        return next(iter(self.engines.values()))

    def available_models(self) -> list[str]:
        return list(self.engines)

    def warm_model(self, name: str | None) -> WarmModel:
        """The card and warm-load timings of `name` (None or "" for the default)."""
        engine = self.get(name)
        found = next((w for w in self.warm if w.name == engine.name), None)
        if found is None:  # withdrawn between the two looks
            return self.warm_model(name)  # the same question again: now it says "unknown model"
        return found

    def card(self, name: str | None) -> ModelCard:
        """The model card of `name` (None or "" for the default); unknown names list the valid ones."""
        return self.warm_model(name).card

    def get(self, name: str | None) -> Engine:
        """The engine called `name` (None or "" for the default); unknown names list the valid ones."""
        if not name:
            return self.default
        try:
            return self.engines[name]
        except KeyError:
            raise UnknownModelError(
                f"Unknown model {name!r}. Loaded models: {', '.join(self.engines)}.", param="model"
            ) from None


def warm_load(settings: Settings) -> Registry:
    """Load every model in `settings.models`, then synthesize the warm-up text once with each.

    The warm-ups run with every model already resident, so a model that does not fit on
    the device beside the others is refused here, at startup, not at its first request.
    Any failure raises ModelLoadError naming the model: the app never serves half-loaded.
    """
    _set_torch_threads(settings)
    use_baked_cache(settings.baked_hf_cache)
    loaded = [load_one(spec, settings) for spec in settings.models]
    engines: dict[str, Engine] = {}
    warm: list[WarmModel] = []
    for spec, engine, load_s in loaded:
        engines[engine.name] = engine
        warm.append(warm_one(spec, engine, load_s, settings))
    return Registry(engines, warm)


def load_one(spec: ModelSpec, settings: Settings) -> tuple[ModelSpec, Engine, float]:
    """Load one model (not yet warm) with its family's `load`: (spec, engine, seconds)."""
    start = time.perf_counter()
    try:
        engine = load_engine(spec, spec.device or settings.device, settings.device_threads())
    except TTSError:
        raise
    except Exception as e:
        raise_if_out_of_memory(e, lambda: ModelLoadError(_does_not_fit(spec, "load", e)))
        raise ModelLoadError(f"Model {spec.raw!r} ({spec.family}) failed to load: {e}") from e
    return spec, engine, time.perf_counter() - start


def warm_one(spec: ModelSpec, engine: Engine, load_s: float, settings: Settings,
             run: Callable[[Callable[[], float]], float] | None = None) -> WarmModel:
    """Run a loaded model's warm-up (through `run`, e.g. a gate turn, if given); its card
    (made now: the warm-up can turn windows off) with what loading and warming cost."""
    start = time.perf_counter()
    audio_s = _warm_up(spec, engine, settings.warmup_text, run)
    warm_s = time.perf_counter() - start
    card = engine.card()
    logger.info("Warm: %s (%s, %s) on %s, %.1f MB, load %.2f s, warm-up %.2f s",
                card.name, card.family, card.dtype, card.device, card.memory_mb, load_s, warm_s)
    _warn_if_a_chunk_may_time_out(engine, warm_s / audio_s, settings)
    return WarmModel(card, round(load_s, 3), round(warm_s, 3), round(warm_s / audio_s, 3))


def _warm_up(spec: ModelSpec, engine: Engine, text: str,
             run: Callable[[Callable[[], float]], float] | None = None) -> float:
    """Speak `text` once (the inference through `run`, if given); the seconds of audio it made."""
    try:
        return engine.warm_up(text) if run is None else run(lambda: engine.warm_up(text))
    except Exception as e:
        raise_if_out_of_memory(e, lambda: ModelLoadError(_does_not_fit(spec, "warm-up", e)))
        raise ModelLoadError(f"Model {spec.raw!r} loaded but failed its warm-up: {e}") from e


SPOKEN_CHARS_PER_S = 15  # about how fast speech goes, to turn a chunk's length into seconds


def _warn_if_a_chunk_may_time_out(engine: Engine, rtf: float, settings: Settings) -> None:
    """A model this slow here (Bark on a CPU) can spend longer on one chunk than an inference
    may take; say so at startup rather than let the longest chunks fail."""
    longest = min(settings.chunk_chars, engine.max_chunk_chars or settings.chunk_chars)
    expected = rtf * longest / SPOKEN_CHARS_PER_S
    if expected > settings.infer_timeout_s:
        logger.warning("%s on %s ran its warm-up at RTF %.1f: a %d-character chunk may take about "
                       "%.0f s, past TTS_INFER_TIMEOUT=%.0f s. Raise TTS_INFER_TIMEOUT, lower "
                       "TTS_CHUNK_CHARS, or run it on a GPU.", engine.name, engine.device, rtf,
                       longest, expected, settings.infer_timeout_s)


def _does_not_fit(spec: ModelSpec, stage: str, e: Exception) -> str:
    free = cuda_free()
    room = f" ({free[0] / 2**30:.1f} of {free[1] / 2**30:.1f} GiB free)" if free else ""
    advice = "load fewer models, or put this one on the CPU with ?device=cpu."
    if not FAMILIES[spec.family].full_precision_only:
        advice = f"use dtype=float16 or bfloat16, {advice}"
    return (f"Model {spec.raw!r} does not fit in device memory beside the models before it "
            f"(out of memory during its {stage}{room}: {e}). {advice[0].upper()}{advice[1:]}")


def _set_torch_threads(settings: Settings) -> None:
    if any(needs_torch(spec) for spec in settings.models):
        import torch

        torch.set_num_threads(settings.device_threads())
