"""Start-up, the one sequence every entry point runs: settings -> logging -> warm load -> pipeline.

`python app.py` (which opens its port between the two steps, so probes see "starting"),
the RunPod worker and the self-check (`python app.py --check`, settings and logging only,
then its own per-model report) all start through here. A step that fails raises
`StartupError` with one line that says what to fix; each entry point prints it after its
own prefix ("TTS Studio cannot start: ...", "TTS worker cannot start: ...") and exits 1.
"""

from __future__ import annotations

import logging
from typing import Mapping

from . import selfcheck
from .config import Settings
from .errors import ConfigError, ModelLoadError, TTSError
from .pipeline import Pipeline
from .voices.library import library_for

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class StartupError(TTSError):
    """The process cannot serve; the message is the one line to print."""


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings (TTS_* variables) and set up logging at their level."""
    try:
        loaded = Settings.from_env(env)
    except ConfigError as e:
        raise StartupError(f"invalid setting {e}") from e
    logging.basicConfig(level=loaded.log_level, format=LOG_FORMAT)
    return loaded


def pipeline(loaded: Settings) -> Pipeline:
    """Log what this machine has (nothing loaded yet), then warm-load every model into a
    pipeline: every model loaded and run once, or StartupError naming the one that failed."""
    for check in selfcheck.environment(loaded, inspect_torch=False):
        logger.log(logging.INFO if check.ok else logging.WARNING, "check %s: %s", check.name,
                   check.value)
    try:
        built = Pipeline.from_settings(loaded)
        library_for(built)  # saved voices into every cloning model, warm (voices/library.py)
        return built
    except (ModelLoadError, ConfigError) as e:
        raise StartupError(str(e)) from e


def start(env: Mapping[str, str] | None = None) -> tuple[Settings, Pipeline]:
    """The whole sequence, for entry points with nothing to do in between (the worker)."""
    loaded = settings(env)
    return loaded, pipeline(loaded)
