"""Find an ffmpeg binary for streamed audio, using the one `imageio-ffmpeg` ships if none is on PATH."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)


def ensure_ffmpeg() -> str | None:
    """Return the path of an `ffmpeg` on PATH, putting imageio-ffmpeg's there if needed.

    Gradio's streaming audio output runs `ffmpeg` by name, so the bundled binary is
    linked as `ffmpeg` in a private folder that is put first on PATH. Returns None
    when neither exists; the caller then disables streaming and says so.
    """
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        exe = Path(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception as e:  # the package is optional; any failure means "no ffmpeg"
        logger.warning("No ffmpeg on PATH and imageio-ffmpeg has none (%s); streaming is off", e)
        return None
    folder = Path(tempfile.mkdtemp(prefix="tts-ffmpeg-"))
    link = folder / "ffmpeg"
    try:
        link.symlink_to(exe)
    except OSError:
        shutil.copy2(exe, link)
    os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
    logger.info("Using the ffmpeg that imageio-ffmpeg ships: %s", exe)
    return shutil.which("ffmpeg")
