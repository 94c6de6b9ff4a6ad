"""Warm registry: every configured model loaded, placed on its device and run once before serving."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from .config import Settings
from .engines import Engine, SynthesisParams, load_engine
from .errors import ModelLoadError, TTSError, UnknownModelError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadInfo:
    """What warm loading cost one model, kept for the UI's warm-load table and /ready."""

    model: str
    family: str
    device: str
    sample_rate: int
    load_s: float
    warmup_s: float

    def to_dict(self) -> dict:
        return asdict(self)


class Registry:
    """A plain dict of warm engines by name, in TTS_MODELS order (the first is the default)."""

    def __init__(self, engines: dict[str, Engine], load_info: list[LoadInfo]):
        if not engines:
            raise ModelLoadError("No model is loaded; TTS_MODELS must name at least one")
        self.engines = engines
        self.load_info = load_info

    @property
    def default(self) -> Engine:
        return next(iter(self.engines.values()))

    def available_models(self) -> list[str]:
        return list(self.engines)

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
    """Load every model in `settings.models` and synthesize the warm-up text once with each.

    Any failure raises ModelLoadError naming the model: the app never serves half-loaded.
    """
    if settings.cpu_threads:
        _set_torch_threads(settings)
    engines: dict[str, Engine] = {}
    info: list[LoadInfo] = []
    for spec in settings.models:
        start = time.perf_counter()
        try:
            engine = load_engine(spec, spec.device or settings.device, settings.cpu_threads)
        except TTSError:
            raise
        except Exception as e:
            raise ModelLoadError(f"Model {spec.raw!r} ({spec.family}) failed to load: {e}") from e
        loaded = time.perf_counter()
        try:
            params = SynthesisParams(voice=engine.default_voice)
            prepared = engine.prepare(settings.warmup_text, params)
            if prepared is None:
                raise ModelLoadError(f"the warm-up text {settings.warmup_text!r} has nothing it can say")
            audio = engine.infer(prepared, params)
            if audio.size == 0:
                raise ModelLoadError("the warm-up produced no audio")
        except Exception as e:
            raise ModelLoadError(f"Model {spec.raw!r} loaded but failed its warm-up: {e}") from e
        warm = time.perf_counter()
        engines[engine.name] = engine
        info.append(LoadInfo(engine.name, engine.family, engine.device, engine.sample_rate,
                             round(loaded - start, 3), round(warm - loaded, 3)))
        logger.info("Warm: %s (%s) on %s, load %.2f s, warm-up %.2f s",
                    engine.name, engine.family, engine.device, loaded - start, warm - loaded)
    return Registry(engines, info)


def _set_torch_threads(settings: Settings) -> None:
    if any(spec.family != "piper" for spec in settings.models):
        import torch

        torch.set_num_threads(settings.cpu_threads)
