"""Two model caches: what the image baked (read at start, never hidden) and the run-time one on a volume.

A container image bakes its models into its own Hugging Face cache (`TTS_BAKED_HF_CACHE`,
`/opt/hf/hub` in the Dockerfile), a path no run-time volume is mounted over. The run-time
cache (`HF_HOME`, `/data/hf` on a pod's volume) is where models added while serving are
downloaded, so they survive restarts. At start the baked cache is made visible inside the
run-time one: its folders are created there and each of its files is linked (refs copied),
so every loader that reads the standard cache (transformers, huggingface_hub, the Piper
catalogue) finds the baked models without a download, while anything new is written to
the volume.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

LOCKS = ".locks"  # huggingface_hub's lock files: per process, never shared


def runtime_hub_cache() -> Path:
    """The Hugging Face hub cache this process downloads into (as huggingface_hub finds it)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache",
                                                      "huggingface")
    return Path(home) / "hub"


def merge_baked_cache(baked: Path, runtime: Path) -> int:
    """Make every file of the `baked` hub cache visible at the same place under `runtime`.

    Folders are created, blobs and snapshot files linked (a snapshot's own relative link
    then resolves to the linked blob), refs copied (they are small and huggingface_hub
    rewrites them). Nothing already in `runtime` is touched. Returns how many entries were
    added. A missing `baked` folder adds nothing (a machine that baked nothing).
    """
    if not baked.is_dir() or baked.resolve() == runtime.resolve():
        return 0
    added = 0
    for folder, dirs, files in os.walk(baked):
        dirs[:] = [d for d in dirs if d != LOCKS]  # huggingface_hub's own, made as it needs them
        source_dir = Path(folder)
        target_dir = runtime / source_dir.relative_to(baked)
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in files:
            source, target = source_dir / name, target_dir / name
            if target.exists() or target.is_symlink():
                continue
            if source_dir.name == "refs" or "refs" in source_dir.relative_to(baked).parts:
                shutil.copyfile(source, target)
            elif source.is_symlink():  # a snapshot entry: ../../blobs/<hash>, kept relative
                target.symlink_to(os.readlink(source))
            else:
                target.symlink_to(source.resolve())
            added += 1
    if added:
        logger.info("Baked model cache %s: %d entries made visible in %s", baked, added, runtime)
    return added


def use_baked_cache(baked: str | None) -> None:
    """At start: merge the image's baked cache (TTS_BAKED_HF_CACHE) into the run-time one."""
    if baked:
        try:
            merge_baked_cache(Path(baked), runtime_hub_cache())
        except OSError as e:  # a read-only or full volume: loading will download or say why
            logger.warning("Could not make the baked model cache %s visible in %s: %s",
                           baked, runtime_hub_cache(), e)
