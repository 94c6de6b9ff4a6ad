"""Find the ffmpeg binary (AAC, the UI's streamed audio): one on PATH, else the one `imageio-ffmpeg` ships.

Finding it changes nothing: `find_ffmpeg()` returns a path, and what needs ffmpeg takes
that path (`audio.encode(..., ffmpeg=...)`, `audio.aac_available(ffmpeg)`). Only Gradio's
streamed audio output runs `ffmpeg` by name; `expose_to_gradio` gives it the binary found,
and nothing in this package reads PATH back.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def find_ffmpeg() -> str | None:
    """The path of an `ffmpeg`: PATH's, else imageio-ffmpeg's; None when neither exists
    (then aac is refused, and the Stream button's Gradio fallback plays whole files)."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as e:  # the package is optional; any failure means "no ffmpeg"
        logger.warning("No ffmpeg on PATH and imageio-ffmpeg has none (%s); streaming is off", e)
        return None
    logger.info("Using the ffmpeg that imageio-ffmpeg ships: %s", exe)
    return exe


def expose_to_gradio(ffmpeg: str) -> None:
    """Gradio's streaming audio output runs `ffmpeg` by name (it has no setting for a path):
    link `ffmpeg` as `ffmpeg` in a private folder put first on PATH, unless PATH's is it."""
    if shutil.which("ffmpeg") == ffmpeg:
        return
    folder = Path(tempfile.mkdtemp(prefix="tts-ffmpeg-"))
    link = folder / "ffmpeg"
    try:
        link.symlink_to(ffmpeg)
    except OSError:
        shutil.copy2(ffmpeg, link)
    os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
