"""Hugging Face ZeroGPU: only the model call runs under `@spaces.GPU`; off ZeroGPU, nothing changes.

ZeroGPU attaches a GPU to a process only inside functions decorated with `spaces.GPU`,
and wants models created at import (which the warm registry does). So exactly one
function is decorated: `on_device`, the one the gate runs for each inference.

ZeroGPU runs `spaces.GPU` functions in a process forked after import and pickles their
arguments, so the device call names its engine by a key (`id(engine)`), looked up in
`DEVICE_ENGINES`: the warm engines, registered by the pipeline and by live model loads
(`register`/`forget`), and nothing else.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Callable, TypeVar

from .gate import turn_threads

if TYPE_CHECKING:
    from .engines import Engine, SynthesisParams

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable)

def on_zerogpu() -> bool:
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def device_call(fn: F, duration_s: int) -> F:
    """`spaces.GPU(fn)` on ZeroGPU when the `spaces` package is importable, else `fn` itself.
    `duration_s` (TTS_ZEROGPU_DURATION): seconds one call may hold a ZeroGPU slice."""
    if not on_zerogpu():
        return fn
    try:
        import spaces
    except ImportError:
        logger.warning("SPACES_ZERO_GPU is set but the spaces package is missing; running without it")
        return fn
    logger.info("ZeroGPU: model calls run under spaces.GPU (duration %d s)", duration_s)
    return spaces.GPU(duration=duration_s)(fn)


# Warm engines by id(): what `on_device` may call. Registered and forgotten explicitly.
DEVICE_ENGINES: dict[int, "Engine"] = {}


def register(*engines: "Engine") -> None:
    """Let `on_device` run these engines (warm, serving from now on)."""
    DEVICE_ENGINES.update({id(engine): engine for engine in engines})


def forget(engine: "Engine | None") -> None:
    """`engine` is no longer served (removed, or its load failed)."""
    if engine is not None:
        DEVICE_ENGINES.pop(id(engine), None)


def on_device(engine_key: int, method: str, items: list, params: "SynthesisParams") -> list:
    """One device call for a batch of `items`: `infer_batch` or `encode_batch` on the batch
    (one result per item), or `decode` on each (latent, start, stop) window."""
    engine = DEVICE_ENGINES[engine_key]
    engine.use_threads(turn_threads())  # the turn's share of the CPU threads
    if method == "decode":
        return [engine.decode(*window) for window in items]
    return getattr(engine, method)(items, params)
