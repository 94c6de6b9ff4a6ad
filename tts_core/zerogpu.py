"""Hugging Face ZeroGPU: only the model call runs under `@spaces.GPU`; off ZeroGPU, nothing changes.

ZeroGPU attaches a GPU to a process only inside functions decorated with `spaces.GPU`,
and wants models created at import (which the warm registry does). So exactly one
function is decorated: the one the gate runs for each inference.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, TypeVar

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable)

# Seconds a single inference may hold a ZeroGPU slice; the Space's quota is counted in these.
GPU_DURATION_S = int(os.environ.get("TTS_ZEROGPU_DURATION", "60"))


def on_zerogpu() -> bool:
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def device_call(fn: F) -> F:
    """`spaces.GPU(fn)` on ZeroGPU when the `spaces` package is importable, else `fn` itself."""
    if not on_zerogpu():
        return fn
    try:
        import spaces
    except ImportError:
        logger.warning("SPACES_ZERO_GPU is set but the spaces package is missing; running without it")
        return fn
    logger.info("ZeroGPU: model calls run under spaces.GPU (duration %d s)", GPU_DURATION_S)
    return spaces.GPU(duration=GPU_DURATION_S)(fn)
