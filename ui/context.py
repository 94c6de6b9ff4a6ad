"""The studio context: the pipeline, the flags its settings and models decide, and the
per-session hand-overs that the page's events share."""

from __future__ import annotations

import functools
import inspect
import itertools
import tempfile
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from tts_core import Pipeline

LIVE_SAMPLES = 150  # points kept for the live charts: five minutes at one per live refresh
SPOKEN_KEPT = 256  # browser sessions whose last Generate's words wait for the page to take them
DEVICE_CONCURRENCY_ID = "device"  # Gradio's concurrency group of every event that runs a model


class ResultFiles:
    """Each result's downloads under one name, speech-<n>: its audio (speech-<n>.wav, a
    ui.named_audio.NamedAudio) and its subtitles (speech-<n>.srt, written here for Gradio to
    serve: it copies them into its cache, keeping the name); each is deleted after
    TTS_CACHE_TTL, as Gradio deletes its copies."""

    def __init__(self, ttl_s: int):
        self.folder = Path(tempfile.mkdtemp(prefix="tts-results-"))
        self.ttl_s = ttl_s
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def new_name(self) -> str:
        """A new result's name (this server's results are numbered from 1)."""
        with self._lock:
            return f"speech-{next(self._numbers)}"

    def write(self, name: str, ext: str, text: str) -> str:
        """`text` as `name`.`ext` (a name from new_name, or a result's file stem); its path."""
        now = time.time()
        for old in self.folder.glob("*/*"):
            if now - old.stat().st_mtime > self.ttl_s:
                old.unlink(missing_ok=True)
                if not any(old.parent.iterdir()):
                    old.parent.rmdir()
        folder = self.folder / uuid.uuid4().hex[:12]  # a name may come back (a server restart)
        folder.mkdir()
        path = folder / f"{name}.{ext}"
        path.write_text(text, encoding="utf-8")
        return str(path)


class PendingSpoken:
    """Generate's spoken text (text, model, timed words), by browser session, until the page's
    next event collects it: the `synthesize` endpoint returns only the file and the record
    ("Use via API" and MCP; a gr.State output there breaks Gradio 6.31's MCP tools, which drop
    it twice). The oldest sessions are forgotten past SPOKEN_KEPT."""

    def __init__(self, kept: int = SPOKEN_KEPT):
        self._by_session: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()
        self._kept = kept

    def hold(self, call: gr.Request | None, spoken: dict) -> None:
        if call is None or not call.session_hash:
            return
        with self._lock:
            self._by_session[call.session_hash] = spoken
            self._by_session.move_to_end(call.session_hash)
            while len(self._by_session) > self._kept:
                self._by_session.popitem(last=False)

    def collect(self, call: gr.Request | None) -> dict | None:
        """This session's held spoken text, removed; None if there is none."""
        with self._lock:
            return self._by_session.pop(call.session_hash, None) if call is not None else None


@dataclass
class StudioContext:
    """What every event of one page works over; `streaming` is False when no ffmpeg was found."""

    pipeline: Pipeline
    streaming: bool
    files: ResultFiles = field(init=False)
    pending_spoken: PendingSpoken = field(default_factory=PendingSpoken)
    live_samples: deque = field(default_factory=lambda: deque(maxlen=LIVE_SAMPLES))

    def __post_init__(self):
        self.files = ResultFiles(self.settings.cache_ttl_s)

    @property
    def settings(self):
        return self.pipeline.settings

    @property
    def any_temperature(self) -> bool:
        """Whether a loaded model samples: only then is the temperature offered (in the page
        and in "Use via API")."""
        return any(w.card.capabilities.temperature for w in self.pipeline.registry.warm)

    @property
    def any_embedding(self) -> bool:
        """Whether a loaded model takes a speaker embedding file (SpeechT5)."""
        return any(w.card.capabilities.speaker_embedding_dim is not None
                   for w in self.pipeline.registry.warm)

    def device_queue(self) -> dict:
        """The keyword arguments of every event that runs a model: one shared concurrency limit,
        one more than the gate admits, so that waiting happens at the gate (where it is measured
        and bounded) and the overflow gets the gate's busy message."""
        return {"concurrency_id": DEVICE_CONCURRENCY_ID,
                "concurrency_limit": self.settings.queue_size + 1}


def bind(fn, *leading):
    """`fn` with its first arguments fixed to `leading`, as Gradio sees an event: `fn`'s own
    name, docstring (the MCP tool's description), parameters after those and return type,
    and a generator if `fn` is one (Gradio streams those)."""
    if inspect.isgeneratorfunction(fn):
        def event(*args, **kwargs):
            yield from fn(*leading, *args, **kwargs)
    else:
        def event(*args, **kwargs):
            return fn(*leading, *args, **kwargs)
    functools.update_wrapper(event, fn)
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())
    event.__signature__ = signature.replace(parameters=params[len(leading):])
    event.__annotations__ = {k: v for k, v in fn.__annotations__.items()
                             if k not in {p.name for p in params[:len(leading)]}}
    return event
