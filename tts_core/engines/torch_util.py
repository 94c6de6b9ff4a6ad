"""What the torch-based families share: choosing a dtype, measuring weights, seeding."""

from __future__ import annotations

import logging
from contextlib import contextmanager

import torch

from ..errors import ConfigError, ModelLoadError

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def pick_dtype(requested: str, device: str, cuda_default: str = "float32") -> torch.dtype:
    """`auto` is float32 on CPU (half precision is slow there) and `cuda_default` on CUDA.

    Each family's `cuda_default` is the half precision its output was measured to survive
    (tests/test_families.py::test_half_precision_where_it_is_the_cuda_default).
    """
    # Older GPUs (T4, V100) only emulate bfloat16, slowly: they count as without it.
    bf16_ok = device != "cuda" or torch.cuda.is_bf16_supported(including_emulation=False)
    if requested == "auto":
        name = cuda_default if device == "cuda" else "float32"
        return DTYPES["float32" if name == "bfloat16" and not bf16_ok else name]
    if requested == "bfloat16" and not bf16_ok:
        raise ConfigError("TTS_MODELS", "bfloat16 is not supported by this GPU; use dtype=float16")
    if device == "cpu" and requested != "float32":
        logger.warning("dtype=%s on the CPU: half precision saves memory there but is usually "
                       "slower than float32", requested)
    return DTYPES[requested]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def weights_bytes(*modules: torch.nn.Module) -> int:
    """Bytes held by the parameters and buffers of `modules` (what they occupy on their device)."""
    return sum(t.numel() * t.element_size()
               for m in modules for t in list(m.parameters()) + list(m.buffers()))


def seed_all(seed: int | None) -> None:
    """Seed torch's CPU and CUDA generators, so that a seed gives the same audio every time."""
    if seed is not None:
        torch.manual_seed(seed)  # seeds every CUDA device too


@contextmanager
def load_errors(failure: str, hint: str, errors: tuple[type[Exception], ...] = (OSError, ValueError)):
    """`from_pretrained` failures as one ModelLoadError: `failure`, the cause, then `hint`."""
    try:
        yield
    except errors as e:
        raise ModelLoadError(f"{failure}: {e}. {hint}") from e
