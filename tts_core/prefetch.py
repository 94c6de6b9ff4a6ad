"""`python -m tts_core.prefetch`: download exactly the models TTS_MODELS names, and nothing else.

Run at image build time (the Dockerfile does) so a pod or serverless worker never
downloads on start. Hub models go into the Hugging Face cache (`HF_HOME`) through the
same loading code the app runs (on the CPU, without the warm-up); each family's engine
says what fetching means for it (`Engine.fetch`: Piper downloads and verifies catalogue
voices, and only checks local files and the embedded voice). Exits 1 with the failing
model named.
"""

from __future__ import annotations

import logging
import sys

from .config import ModelSpec, Settings
from .errors import ConfigError

logger = logging.getLogger(__name__)


def prefetch(spec: ModelSpec) -> str:
    """Make `spec` loadable offline with its family's own `fetch`; return what was done."""
    from .engines import engine_class

    return engine_class(spec).fetch(spec)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    try:
        settings = Settings.from_env()
    except ConfigError as e:
        print(f"prefetch: invalid setting {e}", file=sys.stderr)
        return 1
    for spec in settings.models:
        try:
            print(f"prefetch {spec.name}: {prefetch(spec)}")
        except Exception as e:
            print(f"prefetch: model {spec.raw!r} failed: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
