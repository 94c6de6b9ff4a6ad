"""Piper voices by name: the rhasspy/piper-voices catalogue on the Hugging Face Hub, checksum-verified.

`voices.json` at the root of the repository lists every voice with its files, sizes and
MD5 digests. A voice named in a spec (`piper:en_US-lessac-medium`) is downloaded with
`huggingface_hub` into the standard Hugging Face cache (`HF_HOME`), at a pinned revision
(`TTS_PIPER_VOICES_REVISION`), and its files are checked against the catalogue's digests
on every load. With `HF_HUB_OFFLINE=1`, or when the hub cannot be reached, the cache
alone answers. `huggingface_hub` is imported only when a named voice is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import ModelLoadError, TTSError

logger = logging.getLogger(__name__)

PIPER_VOICES_REPO = "rhasspy/piper-voices"
# The revision voices are read at unless TTS_PIPER_VOICES_REVISION says otherwise: the
# repository's v1.0.0 tag, the one Piper's own voice links point at (a branch such as
# `main` follows new uploads; a commit hash pins one exactly).
DEFAULT_REVISION = "v1.0.0"
CATALOGUE_FILE = "voices.json"
# Voice keys as the catalogue writes them: language_REGION-name-quality.
VOICE_KEY = re.compile(r"^[a-z]{2,3}_[A-Z]{2}-[A-Za-z0-9_]+-(x_low|low|medium|high)$")
QUALITIES = ("x_low", "low", "medium", "high")  # the catalogue's quality levels, lowest first
SKIPPED_FILES = ("MODEL_CARD",)  # listed in the catalogue, not needed to speak
MD5_BLOCK = 1 << 20  # read files in 1 MiB blocks while hashing


class CatalogueError(TTSError):
    """The voice catalogue could not be read (offline with nothing cached, hub unreachable)."""


@dataclass(frozen=True)
class CatalogFile:
    path: str  # inside the repository, e.g. en/en_US/joe/medium/en_US-joe-medium.onnx
    size_bytes: int
    md5: str


@dataclass(frozen=True)
class CatalogVoice:
    """One voice of the catalogue, as `voices.json` describes it."""

    key: str  # en_US-joe-medium
    name: str  # joe
    language: str  # en_US
    language_name: str  # English (United States)
    quality: str  # one of QUALITIES
    speakers: tuple[str, ...]  # multi-speaker voices' names; empty for one speaker
    files: tuple[CatalogFile, ...]

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files if f.path.endswith(".onnx"))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["speakers"] = list(self.speakers)
        d["size_mb"] = round(self.size_bytes / 2**20, 1)
        del d["files"]
        return d


def loaded_keys(engines) -> dict[str, str]:
    """Catalogue key -> the loaded model speaking that voice (by key, or a Piper model so named:
    the embedded joe is the catalogue's en_US-joe-medium)."""
    keys = {e.name: e.name for e in engines if e.family == "piper"}
    keys |= {e.catalog_key: e.name for e in engines if getattr(e, "catalog_key", None)}
    return keys


def is_voice_key(source: str) -> bool:
    """True for a catalogue name such as en_US-lessac-medium (not a path, not an alias)."""
    return bool(VOICE_KEY.match(source))


def _hub_download(filename: str, revision: str) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(PIPER_VOICES_REPO, filename, revision=revision))


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _where(revision: str) -> str:
    return f"{PIPER_VOICES_REPO}@{revision}"


def _why_not_downloaded() -> str:
    from huggingface_hub import constants

    return "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else f"{_endpoint()} could not be reached"


def load_catalogue(revision: str = DEFAULT_REVISION) -> dict[str, CatalogVoice]:
    """Every voice in the catalogue at `revision`, by key (from the cache when offline)."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        path = _hub_download(CATALOGUE_FILE, revision)
    except LocalEntryNotFoundError as e:
        raise CatalogueError(
            f"The Piper voice catalogue ({CATALOGUE_FILE} of {_where(revision)}) is not in the "
            f"Hugging Face cache ({constants.HF_HUB_CACHE}) and {_why_not_downloaded()}. Run once with network "
            "access (or `python -m tts_core.prefetch` at build time) to cache it.") from e
    except (HfHubHTTPError, OSError) as e:
        raise CatalogueError(f"The Piper voice catalogue {_where(revision)} could not be read "
                             f"from {_endpoint()}: {e}. Check TTS_PIPER_VOICES_REVISION and "
                             "HF_ENDPOINT.") from e
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {key: _voice(key, entry) for key, entry in raw.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CatalogueError(f"{CATALOGUE_FILE} of {_where(revision)} is not a Piper voice "
                             f"catalogue ({type(e).__name__}: {e})") from e


def _voice(key: str, entry: dict) -> CatalogVoice:
    language = entry.get("language", {})
    country = language.get("country_english")
    english = language.get("name_english") or language.get("code", "")
    files = tuple(CatalogFile(path, int(info["size_bytes"]), str(info["md5_digest"]))
                  for path, info in entry["files"].items())
    speakers = tuple(entry.get("speaker_id_map") or {}) if entry.get("num_speakers", 1) > 1 else ()
    return CatalogVoice(key=key, name=entry.get("name", key), language=language.get("code", ""),
                        language_name=f"{english} ({country})" if country else english,
                        quality=entry.get("quality", ""), speakers=speakers, files=files)


def sorted_voices(catalogue: dict[str, CatalogVoice]) -> list[CatalogVoice]:
    """By language, then name, then quality from lowest to highest."""
    def order(v: CatalogVoice):
        rank = QUALITIES.index(v.quality) if v.quality in QUALITIES else len(QUALITIES)
        return v.language, v.name, rank
    return sorted(catalogue.values(), key=order)


def voice_files(key: str, revision: str = DEFAULT_REVISION) -> tuple[Path, Path]:
    """The verified `.onnx` and `.onnx.json` of catalogue voice `key`, downloaded if not cached.

    Raises ModelLoadError naming the voice: not in the catalogue (with close names), not
    cached while offline, or a file whose MD5 differs from the catalogue's (the bad copy is
    removed from the cache so that the next try downloads it again).
    """
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        catalogue = load_catalogue(revision)
    except CatalogueError as e:
        raise ModelLoadError(f"Piper voice {key!r}: {e}") from e
    voice = catalogue.get(key)
    if voice is None:
        raise ModelLoadError(f"Piper voice {key!r} is not in the catalogue of {_where(revision)}. "
                             f"{_close_names(key, catalogue)}")
    paths: dict[str, Path] = {}
    for file in voice.files:
        if file.path.rsplit("/", 1)[-1] in SKIPPED_FILES:
            continue
        try:
            path = _hub_download(file.path, revision)
        except LocalEntryNotFoundError as e:
            raise ModelLoadError(
                f"Piper voice {key!r}: {file.path} is not in the Hugging Face cache "
                f"({constants.HF_HUB_CACHE}) and {_why_not_downloaded()}. Download it once with network access "
                "(`TTS_MODELS=piper:" + key + " python -m tts_core.prefetch`).") from e
        except (HfHubHTTPError, OSError) as e:
            raise ModelLoadError(f"Piper voice {key!r}: downloading {file.path} from "
                                 f"{_endpoint()} failed: {e}") from e
        _verify(key, file, path)
        paths[file.path] = path
    logger.info("Piper voice %s (%s): %d files, MD5 verified, in %s", key, _where(revision),
                len(paths), next(iter(paths.values())).parent)
    onnx = [p for name, p in paths.items() if name.endswith(".onnx")]
    config = [p for name, p in paths.items() if name.endswith(".onnx.json")]
    if len(onnx) != 1 or len(config) != 1:
        raise ModelLoadError(f"Piper voice {key!r}: the catalogue lists {len(onnx)} .onnx and "
                             f"{len(config)} .onnx.json files; exactly one of each is needed.")
    return onnx[0], config[0]


def _verify(key: str, file: CatalogFile, path: Path) -> None:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(MD5_BLOCK):
            digest.update(block)
    if digest.hexdigest() == file.md5:
        return
    _remove_cached(path)
    raise ModelLoadError(
        f"Piper voice {key!r}: {file.path} failed its checksum (MD5 {digest.hexdigest()}, the "
        f"catalogue says {file.md5}); the bad copy was removed from the cache. Try again; if it "
        f"fails again, the server at {_endpoint()} (HF_ENDPOINT) serves a different file.")


def _remove_cached(path: Path) -> None:
    """Remove a cached file and the blob its snapshot link points at."""
    blob = path.resolve()
    for p in {path, blob}:
        try:
            os.remove(p)
        except OSError as e:
            logger.warning("could not remove %s: %s", p, e)


def _close_names(key: str, catalogue: dict[str, CatalogVoice]) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(catalogue), n=5, cutoff=0.6)
    language = key.split("-", 1)[0]
    same_language = [k for k in sorted(catalogue) if k.startswith(f"{language}-")][:8]
    names = close or same_language
    if names:
        return f"Close names: {', '.join(names)}. The list: GET /v1/audio/voices?available=true."
    return (f"The catalogue has {len(catalogue)} voices; list them with "
            "GET /v1/audio/voices?available=true.")
