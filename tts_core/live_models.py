"""Models added and removed while serving: loaded off the request path, served only once warm.

An added model is loaded on its own thread; its warm-up inference takes one turn at the
gate like any request, so a listener waits at most one such turn, never for a load. It
joins the registry (and so /v1/models, /models, /ready and the UI's pickers) only when
warm. A removed model leaves the registry at once (new requests get 'unknown model'),
its admitted requests finish, then its memory is freed. Requests never start a load.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import asdict, dataclass, replace

from . import zerogpu
from .device import free_device_memory
from .errors import InputError, TTSError
from .pipeline import Pipeline
from .registry import load_one, warm_one
from .voices.library import library_for

logger = logging.getLogger(__name__)

LOADING, WARM, FAILED, REMOVING, REMOVED = "loading", "warm", "failed", "removing", "removed"


class ModelConflictError(InputError):
    """The model is already loaded, loading or being removed."""


@dataclass
class ModelState:
    """One model's life as the operator sees it: loading -> warm | failed; removing -> removed."""

    name: str
    spec: str
    status: str
    error: str | None = None
    load_s: float | None = None
    warmup_s: float | None = None
    since: float = 0.0  # time.time() of the last change
    started: float = 0.0  # perf_counter() when the add or removal began
    ready_after_s: float | None = None  # from the add to warm (or failed)

    def to_dict(self) -> dict:
        d = asdict(self)
        del d["started"]
        return d


class ModelManager:
    """Adds and removes models of a serving pipeline; remembers what became of each."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self._states: dict[str, ModelState] = {}
        self._lock = threading.Lock()

    def state(self, name: str) -> ModelState | None:
        """What is known of `name`: its add/removal, or 'warm' for a model loaded at start."""
        with self._lock:
            state = self._states.get(name)
        if state is None and name in self.pipeline.registry.engines:
            warm = next((w for w in self.pipeline.registry.warm if w.name == name), None)
            return ModelState(name, "", WARM, load_s=getattr(warm, "load_s", None),
                              warmup_s=getattr(warm, "warmup_s", None))
        return state

    def add(self, raw_spec: str) -> ModelState:
        """Start loading `raw_spec` (a TTS_MODELS entry) in the background; its state as it
        was accepted (a copy: a load that fails at once must not change what 202 said)."""
        spec = self.pipeline.settings.parse_spec(raw_spec)  # ConfigError names what is wrong
        with self._lock:
            current = self._states.get(spec.name)
            if spec.name in self.pipeline.registry.engines or (
                    current is not None and current.status in (LOADING, REMOVING)):
                status = current.status if current and current.status != WARM else "loaded"
                raise ModelConflictError(f"A model called {spec.name!r} is already {status}; "
                                         "remove it first or give this one another ?name=.",
                                         param="spec")
            state = ModelState(spec.name, spec.raw, LOADING, since=time.time(),
                               started=time.perf_counter())
            self._states[spec.name] = state
            accepted = replace(state)
        threading.Thread(target=self._load, args=(spec, state), name=f"load {spec.name}",
                         daemon=True).start()
        logger.info("Adding model %s (%s) in the background", spec.name, spec.raw)
        return accepted

    def _load(self, spec, state: ModelState) -> None:
        pipeline = self.pipeline
        engine = None
        try:
            spec, engine, load_s = load_one(spec, pipeline.settings)
            state.load_s = round(load_s, 3)
            if engine.device == "cuda":  # a GPU runs one inference at a time
                pipeline.gate.one_slot()

            def gate_turn(warm_up):  # the warm-up waits for its turn like any request
                seconds, _, _ = pipeline.gate.run(warm_up)
                return seconds

            warm = warm_one(spec, engine, load_s, pipeline.settings, run=gate_turn)
            zerogpu.register(engine)
            pipeline.registry.add(engine, warm)
            library_for(pipeline).model_added(engine)  # saved cloned voices, if it clones
            pipeline.prometheus.observe_load(warm)
            state.warmup_s, state.status = warm.warmup_s, WARM
        except Exception as e:
            zerogpu.forget(engine)
            engine = None
            gc.collect()
            free_device_memory()
            state.status = FAILED
            state.error = str(e) if isinstance(e, TTSError) else f"{type(e).__name__}: {e}"
            logger.warning("Adding model %s failed: %s", spec.name, state.error)
        finally:
            state.since = time.time()
            state.ready_after_s = round(time.perf_counter() - state.started, 3)

    def remove(self, name: str) -> ModelState:
        """Stop new requests to `name` now; free it once its admitted requests have finished.
        Its state as accepted (a copy)."""
        with self._lock:
            current = self._states.get(name)
            if current is not None and current.status == LOADING:
                raise ModelConflictError(f"Model {name!r} is still loading; remove it once it "
                                         "is warm (or has failed).", param="model")
            engine = self.pipeline.registry.withdraw(name)  # unknown or last: InputError
            state = ModelState(name, current.spec if current else "", REMOVING, since=time.time(),
                               started=time.perf_counter())
            self._states[name] = state
            accepted = replace(state)
        threading.Thread(target=self._free, args=([engine], state), name=f"remove {name}",
                         daemon=True).start()
        return accepted

    def _free(self, holder: list, state: ModelState) -> None:
        engine = holder.pop()  # the only reference left once the registry let it go
        self.pipeline.registry.wait_unused(engine.name)
        zerogpu.forget(engine)
        self.pipeline.prometheus.forget_load(engine.name)
        del engine  # the last reference: the model's memory goes with it
        gc.collect()
        free_device_memory()
        state.status, state.since = REMOVED, time.time()
        logger.info("Removed model %s", state.name)


def manager_for(pipeline: Pipeline) -> ModelManager:
    """The one manager of `pipeline`'s models (shared by the HTTP routes and the UI panel)."""
    manager = getattr(pipeline, "_model_manager", None)
    if manager is None:
        manager = pipeline._model_manager = ModelManager(pipeline)
    return manager
