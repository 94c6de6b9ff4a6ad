"""Startup self-check: what this machine has, and whether every configured model loads.

For containers that die at start with nothing in the logs to say why. `python app.py
--check` prints the whole report and exits 0, or 1 naming the first problem; every
normal start logs the environment part before loading models.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .config import Settings
from .families import FAMILIES, needs_torch
from .ffmpeg import find_ffmpeg

logger = logging.getLogger(__name__)

# Below this much free space at the model cache, downloads of full-size models can fail.
MIN_FREE_DISK_GB = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    value: str
    ok: bool = True


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def model_cache_dir() -> Path:
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home)


def environment(settings: Settings, inspect_torch: bool = True) -> list[Check]:
    """Python, torch and CUDA, ONNX Runtime providers, ffmpeg, disk: nothing is loaded.

    `inspect_torch=False` reads torch's version without importing it (a Piper-only start
    need not pay for the import).
    """
    checks = [Check("python", f"{platform.python_version()} ({platform.machine()})")]
    torch_needed = any(needs_torch(spec) for spec in settings.models)
    torch_version = _version("torch")
    if torch_version is None:
        checks.append(Check("torch", "not installed", ok=not torch_needed))
    elif not (inspect_torch or torch_needed):
        checks.append(Check("torch", f"{torch_version} (not needed by the configured models)"))
    else:
        import torch

        cuda = torch.cuda.is_available()
        gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        checks.append(Check("torch", f"{torch_version}, CUDA {torch.version.cuda or 'none'}"))
        checks.append(Check("gpu", gpus if cuda else "none (CPU only)",
                            ok=cuda or settings.device != "cuda"))
    driver = driver_check(cuda_driver_version(), torch_built_cuda(), settings.device)
    if driver is not None:
        checks.append(driver)
    try:
        import onnxruntime

        checks.append(Check("onnxruntime", f"{onnxruntime.__version__}, providers: "
                                           f"{', '.join(onnxruntime.get_available_providers())}"))
    except ImportError:
        checks.append(Check("onnxruntime", "not installed",
                            ok=not any(FAMILIES[s.family].runtime == "onnxruntime" for s in settings.models)))
    ffmpeg = find_ffmpeg()
    if ffmpeg is not None and ffmpeg != shutil.which("ffmpeg"):
        ffmpeg = f"{ffmpeg} (from imageio-ffmpeg)"
    checks.append(Check("ffmpeg", ffmpeg or "none: streaming in the UI and aac are off"))
    cache = model_cache_dir()
    probe = cache if cache.exists() else next(p for p in cache.parents if p.exists())
    free_gb = shutil.disk_usage(probe).free / 1e9
    checks.append(Check("model cache", f"{cache}: {free_gb:.1f} GB free",
                        ok=free_gb >= MIN_FREE_DISK_GB))
    if settings.baked_hf_cache:
        baked = Path(settings.baked_hf_cache)
        repos = len(list(baked.glob("models--*"))) if baked.is_dir() else 0
        checks.append(Check("baked models", f"{baked}: {repos} repositories, read beside "
                                            f"{model_cache_dir()}"))
    checks.append(Check("device setting", settings.device))
    return checks


def cuda_driver_version() -> int | None:
    """The newest CUDA the installed NVIDIA driver supports (12040 for 12.4), None without one."""
    import ctypes

    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    version = ctypes.c_int(0)
    if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return None
    return version.value


def torch_built_cuda() -> str | None:
    """The CUDA version torch was built for ('12.8'), read from its version.py without the
    import; None for a CPU build or no torch."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return None
    try:
        text = (Path(spec.origin).parent / "version.py").read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(r"^cuda\s*(?::\s*[^=]+)?=\s*['\"]([\d.]+)['\"]", text, re.M)
    return found.group(1) if found else None


def driver_check(driver: int | None, built_for: str | None, device: str = "auto") -> Check | None:
    """One line naming a driver too old for the CUDA torch was built for; None when no driver
    or a CPU build of torch (nothing to compare). Fine when TTS_DEVICE=cpu."""
    if driver is None or not built_for:
        return None
    major, minor = driver // 1000, driver % 1000 // 10
    need = tuple(int(part) for part in built_for.split(".")[:2])
    if (major, minor) >= need:
        return Check("gpu driver", f"supports CUDA up to {major}.{minor} (torch needs {built_for})")
    return Check("gpu driver", f"too old: the NVIDIA driver supports CUDA up to {major}.{minor}, "
                               f"this image's torch needs CUDA {built_for}. Use a host with a newer "
                               f"driver (RunPod: set 'Allowed CUDA Versions' to {built_for} and up) "
                               "or TTS_DEVICE=cpu.", ok=device == "cpu")


def run(settings: Settings) -> tuple[list[Check], str | None]:
    """The whole report, each model loaded and warmed once; returns (checks, first problem)."""
    from .engines import engine_class
    from .model_cache import use_baked_cache
    from .registry import load_one, warm_one  # the start-up's own load and warm-up

    checks = environment(settings)
    use_baked_cache(settings.baked_hf_cache)
    for spec in settings.models:
        source = engine_class(spec).resolved_source(spec)
        start = time.perf_counter()
        try:
            _, engine, load_s = load_one(spec, settings)
            card = warm_one(spec, engine, load_s, settings).card
            checks.append(Check(f"model {spec.name}", f"{spec.family}, {source}: loads and speaks on "
                                                      f"{card.device} in {card.dtype}, "
                                                      f"{card.memory_bytes / 2**20:.1f} MB "
                                                      f"({time.perf_counter() - start:.1f} s)"))
        except Exception as e:
            checks.append(Check(f"model {spec.name}", f"{spec.family}, {source}: FAILS: {e}", ok=False))
    problem = next((f"{c.name}: {c.value}" for c in checks if not c.ok), None)
    return checks, problem


def format_report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    return "\n".join(f"{'ok ' if c.ok else 'BAD'} {c.name:<{width}}  {c.value}" for c in checks)
