"""The device a model runs on: choosing it, recognizing out-of-memory errors, freeing and measuring memory."""

from __future__ import annotations

import sys
from typing import Callable

from .errors import ConfigError


def resolve_device(requested: str, cuda_available: bool) -> str:
    """Map `auto`/`cpu`/`cuda` to the device a model is placed on."""
    if requested == "cuda" and not cuda_available:
        raise ConfigError(
            "TTS_DEVICE",
            "cuda was asked for but no CUDA device is usable here; set TTS_DEVICE=cpu or auto",
        )
    if requested == "auto":
        return "cuda" if cuda_available else "cpu"
    return requested


def is_out_of_memory(e: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, ONNX Runtime's allocation failures, or a plain MemoryError."""
    text = str(e).lower()
    return (isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"
            or "out of memory" in text or "failed to allocate memory" in text)


def raise_if_out_of_memory(e: BaseException, error: Callable[[], Exception]) -> None:
    """When `e` is an out-of-memory error: free what the device caches, then raise `error()`
    (made after freeing, so it can report the memory left) from `e`. Otherwise return, and
    the caller raises its own error for `e`."""
    if is_out_of_memory(e):
        free_device_memory()
        raise error() from e


def _cuda():
    torch = sys.modules.get("torch")  # never import torch for a Piper-only deployment
    return torch if torch is not None and torch.cuda.is_available() else None


def free_device_memory() -> None:
    """Return cached CUDA blocks to the device after an out-of-memory error."""
    torch = _cuda()
    if torch is not None:
        torch.cuda.empty_cache()


def cuda_allocated() -> int:
    """Bytes torch has allocated on the current CUDA device (0 without CUDA)."""
    torch = _cuda()
    return torch.cuda.memory_allocated() if torch is not None else 0


def cuda_free() -> tuple[int, int] | None:
    """(free, total) bytes on the current CUDA device, or None without CUDA."""
    torch = _cuda()
    return torch.cuda.mem_get_info() if torch is not None else None
