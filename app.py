"""TTS Studio: the Gradio UI and API wiring; every synthesis goes through tts_core's pipeline and gate.

Importing this module warm-loads every model in TTS_MODELS (each run once), then builds
the UI, so the first request is as fast as the hundredth. `python app.py` opens the port
first, so /health and /ready answer (ready: 503) while the models warm, then serves the
UI at / and the HTTP API (/v1/audio/speech, /v1/models, /ready, /metrics ...) beside it.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import html
import io
import json
import logging
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import OrderedDict, deque
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import soundfile as sf
from fastapi import FastAPI

from tts_core import (InputError, Pipeline, Settings, SpeechRequest, TTSError, bootstrap,
                      selfcheck)
from tts_core import audio as audio_io
from tts_core.config import MAX_SEED, MAX_SPEED, MAX_TEMPERATURE, MIN_SPEED, MIN_TEMPERATURE
from tts_core.text import foreign_letters
from tts_core.ffmpeg import expose_to_gradio, find_ffmpeg
from tts_core.http import create_http_api
from tts_core.server import Readiness, StudioServer
from tts_core.metrics import RECORD_KEYS
from tts_core.timings import WordTiming, to_srt, to_vtt

logger = logging.getLogger("tts_studio")

LIVE_REFRESH_S = 2.0  # how often the live latency panel polls the rolling stats
RANDOM_SEED = -1  # the seed box's "no seed": a fresh random voice every time
EXAMPLES = Path(__file__).parent / "assets" / "examples"  # <language>.txt, one text a line
ALL_LANGUAGES = ""  # the language filter's "show every model"
UI_ASSETS = Path(__file__).parent / "assets" / "ui"  # the page's own CSS and script
LIVE_SAMPLES = 150  # points kept for the live charts: five minutes at one per LIVE_REFRESH_S
HISTORY_SIZE = 5  # this browser session's last generations, newest first
HISTORY_TEXT = 160  # characters of each one's text shown
LATENCY_COLOURS = {"total p50": "#2563eb", "total p95": "#93c5fd",  # the live chart's lines
                   "first audio p50": "#dc2626", "first audio p95": "#fca5a5"}
TIMING_PARTS = ("queue", "text", "inference", "encode")  # the timing bar's segments, in order
# The page's Web Audio player hands its stream's whole audio back (base64 int16, at most this
# many seconds at its rate) so that the Result player holds the file, as after Generate.
PLAYED_BACK_MAX_S = 15 * 60
SAID_KEPT = 256  # browser sessions whose last Generate's words wait for the page to take them


class Picker(gr.Dropdown):
    """A dropdown that offers only its choices in the browser (typed text that matches none is
    dropped on blur) but passes any value an API caller sends on to the pipeline, whose
    "Unknown model/voice" error lists the valid ones (the voice list depends on the model)."""

    is_template = True  # drawn by Gradio's own Dropdown (its props come from Dropdown's __init__)

    def preprocess(self, payload):
        return payload

    def api_info(self) -> dict:
        # No enum: the voices depend on the model, and models come and go while serving.
        return {"type": "string"}


def load_examples(language: str | None) -> list[list[str]]:
    """Example texts for a language (ISO 639-1 'de', else the model's own tag), English if none."""
    path = EXAMPLES / f"{language}.txt"
    if not path.is_file():
        path = EXAMPLES / "en.txt"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return [[line.strip()] for line in lines if line.strip()]


def _model_choices(pipeline: Pipeline, language: str = ALL_LANGUAGES) -> list[tuple[str, str]]:
    """(label, name) for the model picker: 'mms-tts-deu (vits)', filtered by language (the
    language is in the filter and the note; in the label it ran under the arrow)."""
    return [(f"{warm.name} ({warm.card.family})", warm.name) for warm in pipeline.registry.warm
            if language == ALL_LANGUAGES or warm.card.spoken_language == language]


def _model_note(pipeline: Pipeline, model: str | None) -> str:
    """The note beside the picker: the model's card and its warm-up RTF."""
    warm = pipeline.registry.warm_model(model)
    card, voices = warm.card, len(warm.card.voices)
    line = (f"**{card.name}**: {card.family}, {card.spoken_language}, {card.sample_rate} Hz, "
            f"{voices} voice{'s' if voices != 1 else ''}, {card.dtype} on {card.device}, "
            f"{card.memory_mb} MB; warm-up ran at RTF {warm.warmup_rtf:.2f}.")
    return f"{line}\n\n{card.note}" if card.note else line


def _fail(message: str) -> None:
    """Stop startup with one line that says what to fix (never serve half-loaded)."""
    print(f"TTS Studio cannot start: {message}", file=sys.stderr)
    raise SystemExit(1)


def _voice_choices(pipeline: Pipeline, model: str | None) -> list[tuple[str, str]]:
    """The model's voices, its default first as "" ('joe (default)'; a lone voice called
    'default' is just 'default')."""
    card = pipeline.registry.card(model)
    default = card.default_voice
    first = default if default == "default" else f"{default} (default)"
    return [(first, "")] + [(v, v) for v in card.voices if v != default]


def _live_markdown(pipeline: Pipeline) -> str:
    s = pipeline.snapshot()

    def ms(v):
        return "–" if v is None else f"{v:.0f} ms"

    rtf = "–" if s["mean_rtf"] is None else f"{s['mean_rtf']:.3f}"
    lines = [
        f"**Last {s['count']} requests** (served {s['served']}, failed {s['failed']}, "
        f"in the gate now: {s['queue_depth']}; device slots in use: {s['slots_in_use']} of "
        f"{s['slots']})",
        "",
        "| total p50 | total p95 | first audio p50 | first audio p95 | mean RTF |",
        "|---|---|---|---|---|",
        f"| {ms(s['p50_total_ms'])} | {ms(s['p95_total_ms'])} | {ms(s['p50_first_audio_ms'])} "
        f"| {ms(s['p95_first_audio_ms'])} | {rtf} |",
        "",
        "**Warm-loaded models**",
        "",
        "| model | family | device | dtype | memory | sample rate | load | warm-up | warm-up RTF |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {c.name} | {c.family} | {c.device} | {c.dtype} | {c.memory_mb:.1f} MB "
              f"| {c.sample_rate} Hz | {w.load_s:.2f} s | {w.warmup_s:.2f} s | {w.warmup_rtf:.2f} |"
              for w, c in ((w, w.card) for w in pipeline.registry.warm)]
    return "\n".join(lines)


def _ms(value) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def _per_model_markdown(pipeline: Pipeline) -> str:
    """Rolling p50/p95 per model: a Bark and a VITS request mixed into one p50 mean nothing."""
    models = sorted({r.model for r in pipeline.stats.records()})
    if not models:
        return "**Per model**: no requests yet."
    rows = ["**Per model** (the same window)", "",
            "| model | requests | total p50 | total p95 | first audio p50 | first audio p95 | mean RTF |",
            "|---|---|---|---|---|---|---|"]
    for name in models:
        s = pipeline.stats.snapshot(model=name)
        rows.append(f"| {name} | {s['count']} | {_ms(s['p50_total_ms'])} | {_ms(s['p95_total_ms'])} "
                    f"| {_ms(s['p50_first_audio_ms'])} | {_ms(s['p95_first_audio_ms'])} "
                    f"| {s['mean_rtf']:.3f} |")
    return "\n".join(rows)


def _timing_html(record: dict | None, heard_ms: float | None = None) -> str:
    """This request as a bar: queue, text, inference and encode in proportion to its total,
    the rest (joining, the hand-over) grey, and a red mark where its first audio was ready."""
    if not record:
        return "<div class='empty'>The timing of your next request shows here.</div>"
    total = max(record["total_ms"], 1e-6)
    parts = [(name, record[f"{name}_ms"]) for name in TIMING_PARTS]
    other = max(0.0, total - sum(ms for _, ms in parts))
    segments = "".join(
        f"<div class='seg {name}' style='width:{100 * ms / total:.2f}%' title='{name} {ms:.0f} ms'"
        f" data-ms='{ms:.1f}'>{ms:.0f}</div>" for name, ms in parts + [("other", other)])
    first = record["first_audio_ms"]
    mark = (f"<div class='first' style='left:calc({100 * min(first / total, 1):.2f}% - 2px)' "
            f"title='first audio {first:.0f} ms'></div>")
    legend = "".join(f"<span><i class='{name}'></i>{name} "
                     f"<b data-part='{name}'>{ms:.0f} ms</b></span>" for name, ms in parts)
    heard = ("" if heard_ms is None else
             f"<span>heard in the browser <b data-part='heard'>{heard_ms:.0f} ms</b></span>")
    return (f"<div class='bar'>{segments}{mark}</div><div class='legend'>{legend}"
            f"<span><i class='first-key' style='background:#dc2626'></i>first audio "
            f"<b data-part='first_audio'>{first:.0f} ms</b></span>"
            f"<span>total <b data-part='total'>{record['total_ms']:.0f} ms</b></span>{heard}"
            f"<span>{record['audio_seconds']:.1f} s of audio from <b data-part='chars'>"
            f"{record['chars']}</b> characters, {html.escape(record['model'])}</span>"
            "</div>")


def _seed(seed):
    """The UI's seed box holds RANDOM_SEED for "no seed"; the pipeline's word for that is None."""
    return None if seed is None or seed == RANDOM_SEED else seed


class SubtitleFiles:
    """.srt files for Gradio to serve (it copies them into its cache); each is deleted after
    TTS_CACHE_TTL, as Gradio deletes its copies."""

    def __init__(self, ttl_s: int):
        self.folder = Path(tempfile.mkdtemp(prefix="tts-subtitles-"))
        self.ttl_s = ttl_s

    def write(self, text: str) -> str:
        now = time.time()
        for old in self.folder.glob("*.srt"):
            if now - old.stat().st_mtime > self.ttl_s:
                old.unlink(missing_ok=True)
        path = self.folder / f"captions-{uuid.uuid4().hex[:12]}.srt"
        path.write_text(text, encoding="utf-8")
        return str(path)


def _gr_error(e: TTSError) -> gr.Error:
    # A person's own mistake is not a server fault: keep it out of the error log.
    return gr.Error(str(e), print_exception=not isinstance(e, InputError))


def build_demo(pipeline: Pipeline, streaming: bool) -> gr.Blocks:
    """The UI over a warm pipeline; `streaming` is False when no ffmpeg could be found."""
    settings = pipeline.settings
    default = pipeline.registry.card(None)  # the first model's card: what the page opens on
    # Enough Gradio workers that waiting happens at the gate, where it is measured and
    # bounded; one more than the gate admits, so the overflow gets the gate's busy message.
    gpu = {"concurrency_id": "gpu", "concurrency_limit": settings.queue_size + 1}
    # Inputs only some families use are offered (in the page and in "Use via API") where a
    # loaded model uses them.
    loaded = [w.card.capabilities for w in pipeline.registry.warm]
    any_temperature = any(c.temperature for c in loaded)
    any_embedding = any(c.speaker_embedding_dim is not None for c in loaded)
    subtitles = SubtitleFiles(settings.cache_ttl_s)

    def request(text, model, voice, speed, seed, temperature, xvector,
                timings=False) -> SpeechRequest:
        """The form's values as a request: an empty model or voice is the default, seed -1 none."""
        return SpeechRequest(text=text, model=model or None, voice=voice or None, speed=speed,
                             seed=_seed(seed), temperature=temperature,
                             speaker_embedding=xvector or None, timings=timings)

    def timed(model) -> bool:
        """Whether the page can light up this model's words (it gives phoneme durations)."""
        try:
            return pipeline.registry.card(model or None).capabilities.timings
        except TTSError:
            return False  # the pipeline's own error says it better

    def said(text, model_name, words) -> dict:
        """What the spoken-text panel shows: the text, the model, the words as timed (or None)."""
        return {"text": text, "model": model_name,
                "words": None if words is None else [w.to_dict() for w in words]}

    def captions_said(text, model, words):
        """After "Generate with captions": its words light up in the spoken-text panel too."""
        value = {"text": text, "model": pipeline.registry.card(model or None).name, "words": words}
        return value, _spoken_html(value)

    # Generate's words, by browser session, until the page's next event takes them: the
    # `synthesize` endpoint returns only the file and the record ("Use via API" and MCP; a
    # gr.State output there breaks Gradio 6.31's MCP tools, which drop it twice).
    said_by_session: OrderedDict[str, dict] = OrderedDict()
    said_lock = threading.Lock()

    def keep_said(call: gr.Request | None, value: dict) -> None:
        if call is None or not call.session_hash:
            return
        with said_lock:
            said_by_session[call.session_hash] = value
            said_by_session.move_to_end(call.session_hash)
            while len(said_by_session) > SAID_KEPT:
                said_by_session.popitem(last=False)

    def take_said(call: gr.Request | None) -> dict | None:
        with said_lock:
            return said_by_session.pop(call.session_hash, None) if call is not None else None

    def picked_up(call: gr.Request):
        """The words of this session's Generate, for the spoken-text panel and the history."""
        value = take_said(call)
        return value, _spoken_html(value)

    def warn_foreign(text, model) -> None:
        """Letters the model's alphabet lacks are spelled out as symbol names or dropped: say so."""
        try:
            card = pipeline.registry.card(model or None)
        except TTSError:
            return  # the pipeline's own error says it better
        foreign = foreign_letters(text or "", card.language)
        if foreign:
            gr.Warning(f"{card.name} speaks {card.spoken_language}; it cannot pronounce these "
                       f"letters, so they were not spoken as words: {foreign[:40]}")

    def synthesize(text, model, voice, speed, seed, temperature=None, xvector=None,
                   progress=gr.Progress(), call: gr.Request = None):
        """Speak a text aloud with one of the warm-loaded voices and return the audio file.

        Call the `models` tool first to see the model names, their voices and languages.

        Args:
            text: What to say, in the model's language: plain text, up to the server's limit (5,000 characters by default); long texts are spoken sentence by sentence and joined.
            model: A model name from the `models` tool, e.g. 'en_US-joe-medium'. Empty: the default model.
            voice: One of that model's voices (see `models`). Empty: the model's default voice.
            speed: Speaking rate, 0.25 to 4.0; 1.0 is normal. Models without speed control ignore it.
            seed: -1 for a fresh random rendering; a number >= 0 repeats the same rendering.
            temperature: Sampling temperature 0.05 to 2.0, only for sampling models such as Bark; leave it out otherwise.
            xvector: Only for SpeechT5: a URL of a .npy speaker embedding; leave it out otherwise.

        Returns:
            The WAV file as Gradio file data, whose 'url' is where to download it, and the request's latency record (milliseconds queued, in inference and in total, and the seconds of audio made).
        """
        def on_chunk(done, total):
            progress((done, total), desc=f"chunk {done} of {total}", unit="chunks")

        # Gradio's MCP server calls this event through its own client, which says so.
        route = "mcp" if call is not None and call.headers.get("x-gradio-user") == "mcp" else "gradio"
        # The page (x-gradio-user "app"; gradio_client sends "api", MCP "mcp") lights the words
        # up as they play: it asks for their timings.
        page = call is not None and call.headers.get("x-gradio-user") == "app"
        try:
            result = pipeline.synthesize(request(text, model, voice, speed, seed, temperature,
                                                 xvector, timings=page and timed(model)),
                                         route=route, on_chunk=on_chunk,
                                         client=call and call.client and call.client.host)
        except TTSError as e:
            raise _gr_error(e) from e
        warn_foreign(text, model)
        if page:
            keep_said(call, said(text, result.record.model, result.words))
        return result.data, result.record.to_dict()

    def captioned(text, model, voice, speed, seed, temperature=None, xvector=None,
                  progress=gr.Progress(), call: gr.Request = None):
        """Speak a text aloud and return the audio with each word's start and end time and SRT subtitles.

        Word timings come from the model's own phoneme durations (Piper and VITS models); other models refuse with a message. Call `models` first for the names.

        Args:
            text: What to say, as for `synthesize`; numbers, money and times come back as the words you typed ("$20" is one word).
            model: A model name from the `models` tool. Empty: the default model.
            voice: One of that model's voices. Empty: the model's default voice.
            speed: Speaking rate, 0.25 to 4.0; the timings follow it.
            seed: -1 for a fresh random rendering; a number >= 0 repeats the same rendering.
            temperature: Not used by models with timings; leave it out.
            xvector: Not used by models with timings; leave it out.

        Returns:
            The WAV file, the words as a list of {word, start, end} in seconds from the start of the audio, and an .srt subtitle file.
        """
        def on_chunk(done, total):
            progress((done, total), desc=f"chunk {done} of {total}", unit="chunks")

        route = "mcp" if call is not None and call.headers.get("x-gradio-user") == "mcp" else "gradio"
        try:
            result = pipeline.synthesize(request(text, model, voice, speed, seed, temperature,
                                                 xvector, timings=True), route=route,
                                         on_chunk=on_chunk)
        except TTSError as e:
            raise _gr_error(e) from e
        return result.data, [w.to_dict() for w in result.words], subtitles.write(to_srt(result.words))

    def stream(text, model, voice, speed, seed, temperature=None, xvector=None):
        """Gradio's own streaming player (HLS): where the page's Web Audio player cannot be used."""
        pieces, words = [], ([] if timed(model) else None)
        try:
            synthesis = pipeline.stream(request(text, model, voice, speed, seed, temperature,
                                                xvector, timings=words is not None), route="gradio")
            yield gr.skip(), None, gr.skip(), gr.skip()  # one current result: the last file goes
            try:
                for chunk in synthesis:
                    pieces.append(chunk.audio)
                    if words is not None:
                        words.extend(chunk.words)
                    yield chunk.data, gr.skip(), gr.skip(), gr.skip()
            finally:
                synthesis.close()
        except TTSError as e:
            raise _gr_error(e) from e
        warn_foreign(text, model)
        # The whole file as well: its player shows the true length (the streamed one grows);
        # it does not start playing over the stream.
        whole = audio_io.encode(np.concatenate(pieces), synthesis.sample_rate, "wav")
        yield (gr.skip(), gr.update(value=whole, autoplay=False), synthesis.record.to_dict(),
               said(text, synthesis.engine.name, words))

    def stream_fallback(text, model, voice, speed, seed, temperature=None, xvector=None,
                        progress=gr.Progress(), call: gr.Request = None):
        gr.Warning("Streaming needs ffmpeg, which is not installed here; "
                   "playing the whole file instead.")
        data, record = synthesize(text, model, voice, speed, seed, temperature, xvector, progress,
                                  call)
        return data, record, take_said(call)

    def models() -> list[dict]:
        """List the warm-loaded text-to-speech models: call this before `synthesize`.

        Returns:
            One entry per model: its name (the `model` argument of `synthesize`), language, voices (the `voice` argument) and default voice, sample rate, and whether it takes speed, seed and temperature.
        """
        return pipeline.models()

    models.__annotations__["return"] = list[dict]  # typed in "Use via API" (not the string)

    def model_changed(model: str):
        """The voice list, the controls the model uses, its note and its language's examples."""
        try:
            card = pipeline.registry.card(model or None)
        except TTSError as e:  # (the page only offers loaded models; a stale page may not)
            gr.Warning(f"{e} Back to {pipeline.registry.default.name}.")
            card = pipeline.registry.card(None)
        can = card.capabilities
        return (gr.update(value=card.name),
                gr.update(choices=_voice_choices(pipeline, card.name), value=""),
                gr.update(value=1.0, interactive=can.speed,
                          info=None if can.speed else "this model has no speed control"),
                gr.update(visible=can.temperature),
                gr.update(visible=can.speaker_embedding_dim is not None),
                gr.update(value=None),
                _model_note(pipeline, card.name),
                gr.update(samples=load_examples(card.language or card.language_tag)))

    def language_changed(language: str):
        choices = _model_choices(pipeline, language or ALL_LANGUAGES)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    samples: deque[dict] = deque(maxlen=LIVE_SAMPLES)  # the live charts' points, for every page

    def live():
        """The live panel, per-model table and charts; a point is added at most once a refresh."""
        now = time.time()
        if not samples or now - samples[-1]["t"] >= LIVE_REFRESH_S / 2:
            samples.append(dict(pipeline.snapshot(), t=now))
        return (_live_markdown(pipeline), _per_model_markdown(pipeline),
                _latency_frame(samples), _queue_frame(samples))

    def remember(history, path, record, text, voice, spoken):
        if not path or not record:
            return history, gr.skip()
        entry = dict(path=path, text=text, model=record["model"], voice=voice or "default",
                     total_ms=record["total_ms"], first_audio_ms=record["first_audio_ms"],
                     audio_seconds=record["audio_seconds"], words=(spoken or {}).get("words"))
        history = ([entry] + history)[:HISTORY_SIZE]
        return history, _history_html(history)

    def played_back(payload, text, model):
        """The page's Web Audio player finished a stream: its whole file becomes the Result (as
        after Generate), with the server's record, the words and what the listener heard."""
        try:
            wav, record, spoken, heard = _played_back(payload)
        except InputError as e:
            raise _gr_error(e) from e
        if record is None:  # a /v1/audio/speech stream: its record is this server's newest like it
            ours = [r for r in pipeline.stats.records()
                    if r.model == spoken["model"] and r.chars == len(spoken["text"])]
            record = ours[-1].to_dict() if ours else None
        warn_foreign(spoken["text"] or text, spoken["model"])
        return (gr.update(value=wav, autoplay=False), record, spoken, _timing_html(record, heard),
                _spoken_html(spoken))

    def heard(record, ms):
        """The browser's click-to-sound for the current result, beside the server's figures
        ("<ms> <click time>": a second request that sounds as fast is still a change)."""
        try:
            return _timing_html(record, float(ms.split()[0])) if record and ms else gr.skip()
        except ValueError:
            return gr.skip()

    # Gradio keeps each returned audio file in its cache; delete them after TTS_CACHE_TTL.
    ttl = settings.cache_ttl_s
    with gr.Blocks(title="TTS Studio", delete_cache=(max(1, ttl // 4), ttl)) as demo:
        gr.Markdown("# TTS Studio\nWarm-loaded text to speech: every model below was loaded "
                    "and run once before this page was served. **Ctrl+Enter** in the text "
                    "generates. From code: the OpenAI-compatible HTTP API "
                    "(`POST /v1/audio/speech`, [its docs](/docs)), or *Use via API* at the "
                    "bottom of the page.", elem_id="intro")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, elem_id="input-column"):
                text = gr.Textbox(label="Text", lines=6, elem_id="text",
                                  placeholder="Type or paste what should be spoken.")
                count = gr.HTML(_count_html(0, settings.max_chars), elem_id="char-count",
                                padding=False)
                languages = sorted({w.card.spoken_language for w in pipeline.registry.warm})
                with gr.Row():
                    language = Picker([("All languages", ALL_LANGUAGES)] + languages,
                                      value=ALL_LANGUAGES, label="Language", elem_id="language",
                                      scale=1, min_width=140, allow_custom_value=False)
                    model = Picker(_model_choices(pipeline), value=default.name, label="Model",
                                   elem_id="model", scale=2, min_width=200,
                                   allow_custom_value=False)
                    voice = Picker(_voice_choices(pipeline, None), value="", label="Voice",
                                   elem_id="voice", scale=1, min_width=140,
                                   allow_custom_value=False)
                note = gr.Markdown(_model_note(pipeline, None), elem_id="model-note")
                with gr.Row():
                    speed = gr.Slider(MIN_SPEED, MAX_SPEED, value=1.0, step=0.05, label="Speed",
                                      elem_id="speed", interactive=default.capabilities.speed,
                                      min_width=140)
                    seed = gr.Number(RANDOM_SEED, label="Seed", elem_id="seed",
                                     info=f"{RANDOM_SEED}: random; 0 to {MAX_SEED}: the same "
                                          "rendering again",
                                     minimum=RANDOM_SEED, maximum=MAX_SEED, precision=0,
                                     min_width=140)
                    temperature = gr.Slider(MIN_TEMPERATURE, MAX_TEMPERATURE, value=0.7, step=0.05,
                                            label="Temperature", elem_id="temperature",
                                            info="sampling models (Bark)", min_width=140,
                                            visible=default.capabilities.temperature)
                with gr.Accordion("Your own speaker embedding (SpeechT5)", open=False,
                                  elem_id="xvector-box", visible=default.capabilities
                                  .speaker_embedding_dim is not None) as xvector_box:
                    xvector = gr.File(label=".npy x-vector", file_types=[".npy"], type="filepath",
                                      elem_id="xvector", height=120)
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                    stream_btn = gr.Button("Stream", elem_id="stream")
                    # Gradio's streaming player, started by the page when its own cannot play.
                    stream_gradio = gr.Button("Stream" if streaming else "Stream (needs ffmpeg)",
                                              elem_id="stream-gradio", visible="hidden")
            with gr.Column(scale=2, elem_id="result-column"):
                audio = gr.Audio(label="Result (the whole file)", interactive=False,
                                 type="filepath", autoplay=True, elem_id="audio")
                stream_audio = gr.Audio(label="Streamed (plays as it arrives)", interactive=False,
                                        autoplay=True, streaming=streaming, elem_id="stream-audio")
                # Stream's own player: the app's HTTP API, its PCM played by Web Audio (studio.js).
                player = gr.HTML(_player_html(pipeline), elem_id="player", padding=False)
                spoken = gr.HTML(_spoken_html(None), elem_id="spoken", label="Spoken text")
                said_state = gr.State(None)
                # The page's own values for the server, set by studio.js ("hidden" Textboxes do
                # not pass their changes on in Gradio 6.31; these are hidden by CSS).
                played = gr.Textbox(elem_id="played-back", elem_classes=["studio-hidden"])  # a stream
                heard_ms = gr.Textbox(elem_id="heard-ms", elem_classes=["studio-hidden"])  # click-to-sound
                timing = gr.HTML(_timing_html(None), elem_id="timing", label="Where the time went")
                with gr.Accordion("Latency record (JSON)", open=False, elem_id="latency-box"):
                    latency = gr.JSON(label="This request's latency", elem_id="latency")
                with gr.Accordion("Captions (word timings, Piper and VITS models)", open=False,
                                  elem_id="captions-box"):
                    captions_btn = gr.Button("Generate with captions", elem_id="captions")
                    words = gr.JSON(label="Words (seconds)", elem_id="words")
                    srt_file = gr.File(label="Subtitles (.srt)", elem_id="srt")
        examples = gr.Dataset(components=[text], label="Examples", elem_id="examples",
                              samples=load_examples(default.language or default.language_tag))
        history = gr.State([])

        history_html = gr.HTML(_history_html([]), elem_id="history")

        with gr.Column(elem_id="live"):
            gr.Markdown("## Live: every request to this server")
            live_md = gr.Markdown(_live_markdown(pipeline), elem_id="live-stats")
            with gr.Row():
                latency_chart = gr.LinePlot(_latency_frame([]), x="seconds ago", y="ms", color="series",
                                            color_map=LATENCY_COLOURS,
                                            title="Latency over the last requests (p50, p95)",
                                            elem_id="latency-chart", height=260, min_width=300)
                queue_chart = gr.LinePlot(_queue_frame([]), x="seconds ago", y="requests",
                                          title="In the gate (waiting or running)",
                                          elem_id="queue-chart", height=260, min_width=300)
            per_model = gr.Markdown(_per_model_markdown(pipeline), elem_id="per-model")

        def pickers():  # models added or removed while serving: each page load sees the warm ones
            names = sorted({w.card.spoken_language for w in pipeline.registry.warm})
            return (gr.update(choices=[("All languages", ALL_LANGUAGES)] + names),
                    gr.update(choices=_model_choices(pipeline)))

        live_outputs = [live_md, per_model, latency_chart, queue_chart]
        demo.load(pickers, None, [language, model], api_visibility="private", queue=False)
        demo.load(live, None, live_outputs, api_visibility="private", queue=False)
        demo.load(lambda: _player_html(pipeline), None, player, api_visibility="private",
                  queue=False)
        if settings.ui_auth:  # the operator panel only behind the login
            from operator_panel import build_operator_panel

            build_operator_panel(pipeline, [language, model], pickers)

        inputs = ([text, model, voice, speed, seed] + ([temperature] if any_temperature else [])
                  + ([xvector] if any_embedding else []))
        if any_embedding and not any_temperature:  # xvector is the seventh argument
            inputs.insert(5, gr.State(None))
        after = dict(fn=lambda r: _timing_html(r), inputs=latency, outputs=timing,
                     api_visibility="private", queue=False)
        keep = dict(fn=remember, inputs=[history, audio, latency, text, voice, said_state],
                outputs=[history, history_html], api_visibility="private", queue=False)
        show_said = dict(fn=_spoken_html, inputs=said_state, outputs=spoken,
                         api_visibility="private", queue=False)
        generated = generate_btn.click(
            synthesize, inputs, [audio, latency], api_name="synthesize", **gpu)
        # One current result: the streamed clip goes, and the whole file plays when it comes.
        generate_btn.click(lambda: (None, gr.update(autoplay=True)), None, [stream_audio, audio],
                           api_visibility="private", queue=False)
        generated.success(**after)
        generated.success(picked_up, None, [said_state, spoken], api_visibility="private",
                          queue=False).then(**keep)
        # Stream: the page's Web Audio player (studio.js) fetches the HTTP API itself; where it
        # cannot (no Web Audio, an API key, a seed, a sampling model...) it clicks stream_gradio.
        stream_btn.click(None, [text, model, voice, speed, seed]
                         + ([xvector] if any_embedding else []), None,
                         js="(...args) => window.studio.stream(...args)", api_visibility="private")
        # One current result; the whole file that comes at the end must not play over the stream
        # (set now: Gradio's player reads autoplay before a value that comes with it).
        stream_btn.click(lambda: (None, gr.update(value=None, autoplay=False)), None,
                         [stream_audio, audio], api_visibility="private", queue=False)
        if streaming:
            streamed = stream_gradio.click(stream, inputs, [stream_audio, audio, latency, said_state],
                                           api_visibility="private", **gpu)
        else:
            streamed = stream_gradio.click(stream_fallback, inputs, [audio, latency, said_state],
                                           api_visibility="private", **gpu)
        streamed.success(**after)
        streamed.success(**show_said).then(**keep)
        played.change(played_back, [played, text, model],
                     [audio, latency, said_state, timing, spoken], api_visibility="private",
                     queue=False).success(**keep)
        heard_ms.change(heard, [latency, heard_ms], timing, api_visibility="private", queue=False)
        gr.api(models, api_name="models")
        captions_btn.click(lambda: (None, gr.update(autoplay=True)), None, [stream_audio, audio],
                           api_visibility="private", queue=False)  # as Generate: one result
        captions_btn.click(captioned, inputs, [audio, words, srt_file], api_name="captioned", **gpu
                           ).success(captions_said, [text, model, words], [said_state, spoken],
                                     api_visibility="private", queue=False)
        text.change(None, text, count, js=_COUNT_JS.replace("LIMIT", str(settings.max_chars)))
        model.change(model_changed, model,
                     [model, voice, speed, temperature, xvector_box, xvector, note, examples],
                     api_visibility="private", queue=False)
        language.change(language_changed, language, model, api_visibility="private", queue=False)
        examples.click(lambda sample: sample[0], examples, text, api_visibility="private",
                       queue=False)
        gr.Timer(LIVE_REFRESH_S).tick(live, None, live_outputs, api_visibility="private",
                                      queue=False)

    demo.queue(max_size=settings.queue_size, api_open=False)
    return demo


def _history_html(entries: list[dict]) -> str:
    """This session's last generations, newest first, each playable and downloadable (the files
    are Gradio's cached copies, served at gradio_api/file= until TTS_CACHE_TTL removes them)."""
    if not entries:
        return "<p class='empty'>Your generations in this session will be listed here.</p>"
    items = []
    for n, e in enumerate(entries):
        url = "gradio_api/file=" + urllib.parse.quote(e["path"])
        short = e["text"] if len(e["text"]) <= HISTORY_TEXT else e["text"][:HISTORY_TEXT] + "..."
        items.append(
            f"<li class='history-item' data-n='{n}'><audio controls preload='none' src='{url}'>"
            f"</audio><a href='{url}' download>download</a> {_subtitle_links(e.get('words'), n)} "
            f"<b>{html.escape(e['model'])}</b>, "
            f"{html.escape(e['voice'])}: {e['audio_seconds']:.1f} s of audio, first audio "
            f"{e['first_audio_ms']:.0f} ms, total {e['total_ms']:.0f} ms"
            f"<div class='said'>{html.escape(short)}</div></li>")
    return f"<h3>This session's last {len(entries)}</h3><ol>{''.join(items)}</ol>"


def _spoken_html(said: dict | None) -> str:
    """The spoken text, each word a span with its start and end (seconds) for the page to light
    up while the audio plays; a model without durations gets its text plain, and says so.
    studio.js draws the same markup while a stream arrives."""
    if not said:
        return "<div class='empty'>The words light up here as they are spoken.</div>"
    if said.get("words") is None:
        return (f"<p class='note'>{html.escape(said['model'])} gives no word timings, so the text "
                f"is shown without highlighting.</p><p class='words plain'>"
                f"{html.escape(said['text'])}</p>")
    spans = " ".join(f"<span class='w' data-start='{w['start']:.3f}' data-end='{w['end']:.3f}'>"
                     f"{html.escape(w['word'])}</span>" for w in said["words"])
    return f"<p class='words'>{spans}</p>"


def _player_html(pipeline: Pipeline) -> str:
    """What the page's Web Audio player needs to know: each model's word timings and sampling
    (the HTTP API takes no temperature, seed or speaker file), and whether the HTTP API asks
    for a key the page does not have (then Stream uses Gradio's player)."""
    models = {w.name: {"timings": w.card.capabilities.timings,
                       "temperature": w.card.capabilities.temperature}
              for w in pipeline.registry.warm}
    config = {"models": models, "default": pipeline.registry.default.name,
              "auth": pipeline.settings.api_key is not None}
    return (f"<div class='player-config' hidden data-config='{html.escape(json.dumps(config))}'>"
            "</div><div class='player-status'></div>")


def _played_back(payload: str) -> tuple[bytes, dict | None, dict, float | None]:
    """The Web Audio player's stream, handed back: (the whole WAV, the server's latency record
    if the stream carried one, the words as said, the browser's click-to-sound in ms).
    Raises InputError if malformed."""
    try:
        d = json.loads(payload)
        rate = int(d["rate"])
        pcm = base64.b64decode(d["pcm"], validate=True)
        record = None  # /v1/audio/speech streams have no record in their body
        if d.get("record") is not None:
            record = {k: d["record"][k] for k in RECORD_KEYS}
            for k in RECORD_KEYS:
                if k not in ("model", "device"):
                    record[k] = float(record[k]) if k != "chars" else int(record[k])
        words = d.get("words")
        words = None if words is None else [WordTiming(str(w["word"]), float(w["start"]),
                                                       float(w["end"])).to_dict() for w in words]
        heard = d.get("heard_ms")
        heard = None if heard is None else float(heard)
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise InputError(f"The page's player sent back a stream this server cannot read ({e}); "
                         "reload the page.") from e
    if not 8000 <= rate <= 192000 or len(pcm) > 2 * rate * PLAYED_BACK_MAX_S:
        raise InputError(f"The page's player sent back {len(pcm)} bytes at {rate} Hz; more than "
                         f"{PLAYED_BACK_MAX_S // 60} minutes is not kept.")
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    said = {"text": str(d.get("text", "")), "model": str(d.get("model", "")), "words": words}
    return buffer.getvalue(), record, said, heard


def _subtitle_links(words: list[dict] | None, n: int) -> str:
    """Download links for an entry's subtitles, as data: URLs (nothing to serve or expire)."""
    if not words:
        return ""
    timed = [WordTiming(w["word"], w["start"], w["end"]) for w in words]
    links = []
    for kind, text, mime in (("srt", to_srt(timed), "application/x-subrip"),
                             ("vtt", to_vtt(timed), "text/vtt")):
        url = f"data:{mime};charset=utf-8," + urllib.parse.quote(text)
        links.append(f"<a class='subtitles' href='{url}' download='speech-{n + 1}.{kind}'>{kind}</a>")
    return " ".join(links)


# The character count, counted in the browser: over the limit it turns red and says so.
_COUNT_JS = """(t) => { const n = [...(t || '')].length, limit = LIMIT;
  return n > limit ? `<span class='over'>${n} / ${limit} characters: ${n - limit} over the limit; shorten it</span>`
                   : `<span>${n} / ${limit} characters</span>`; }"""


def _count_html(n: int, limit: int) -> str:
    return f"<span>{n} / {limit} characters</span>"


def _latency_frame(samples) -> pd.DataFrame:
    """The rolling p50/p95 of total and first-audio time at each live refresh."""
    series = (("total p50", "p50_total_ms"), ("total p95", "p95_total_ms"),
              ("first audio p50", "p50_first_audio_ms"), ("first audio p95", "p95_first_audio_ms"))
    now = samples[-1]["t"] if samples else 0.0
    rows = [(round(s["t"] - now, 1), name, s[key]) for s in samples
            for name, key in series if s[key] is not None]
    # Never empty: a LinePlot whose first value has no rows draws no lines after it (Gradio
    # 6.31), so with no requests yet each line gets one blank (NaN) point.
    rows = rows or [(0.0, name, float("nan")) for name, _ in series]
    return pd.DataFrame(rows, columns=["seconds ago", "series", "ms"]).astype(
        {"seconds ago": float, "series": str, "ms": float})


def _queue_frame(samples) -> pd.DataFrame:
    now = samples[-1]["t"] if samples else 0.0
    return pd.DataFrame([(round(s["t"] - now, 1), s["queue_depth"]) for s in samples],
                        columns=["seconds ago", "requests"]).astype(
        {"seconds ago": float, "requests": float})


def build_server(pipeline: Pipeline, demo: gr.Blocks, readiness: Readiness) -> FastAPI:
    """The HTTP API routes first, then the UI mounted at / on the same app: one process, one gate."""
    settings = pipeline.settings
    api = create_http_api(pipeline, readiness)
    auth = None
    if settings.ui_auth:  # any user name, the API key as password
        def auth(user: str, password: str) -> bool:
            return hmac.compare_digest(password.encode(), settings.api_key.encode())
    app = gr.mount_gradio_app(api, demo, path="/", auth=auth, mcp_server=True,
                              auth_message="Sign in with any name and the studio's API key.",
                              css_paths=[UI_ASSETS / "studio.css"],
                              head=f"<script>{(UI_ASSETS / 'studio.js').read_text()}</script>")
    if demo.mcp_server:  # Gradio's own MCP server: the `synthesize` and `models` events as tools
        logger.info("MCP tools at /gradio_api/mcp/ (streamable HTTP)")
    else:
        logger.warning("No MCP endpoint: %s", getattr(demo, "mcp_error", None) or "see above")
    return app


def load_settings() -> Settings:
    """The start-up's first step (settings, logging), or one line and exit 1."""
    try:
        return bootstrap.settings()
    except bootstrap.StartupError as e:
        _fail(str(e))


def create_app(settings: Settings) -> tuple[Pipeline, gr.Blocks]:
    """The start-up's second step (environment summary, warm load), then the UI."""
    ffmpeg = find_ffmpeg()
    if ffmpeg is None:
        logger.warning("No ffmpeg found: no AAC, and where the page cannot stream through "
                       "Web Audio, Stream plays whole files instead")
    else:
        expose_to_gradio(ffmpeg)  # Gradio's streamed audio runs ffmpeg by name
    try:
        pipeline = bootstrap.pipeline(settings)
    except bootstrap.StartupError as e:
        _fail(str(e))
    return pipeline, build_demo(pipeline, ffmpeg is not None)


def self_check(settings: Settings) -> None:
    """`python app.py --check`: the report, each model loaded once, exit 0 or 1 with the problem."""
    checks, problem = selfcheck.run(settings)
    print(selfcheck.format_report(checks))
    if problem:
        _fail(problem)
    print("All checks passed.")
    raise SystemExit(0)


settings = load_settings()
if __name__ == "__main__":
    cli = argparse.ArgumentParser(description="TTS Studio: warm text-to-speech UI and HTTP API")
    cli.add_argument("--check", action="store_true",
                     help="check the environment and that every model loads, then exit 0 or 1")
    if cli.parse_args().check:
        self_check(settings)
    try:  # the port opens before the models load: probes see "starting", then "ready"
        server = StudioServer(settings.host, settings.port).start()
    except (OSError, TimeoutError) as e:
        _fail(str(e))
    logger.info("Listening on %s; warming up %d model(s)", server.url, len(settings.models))
pipeline, demo = create_app(settings)

if __name__ == "__main__":
    server.attach(build_server(pipeline, demo, server.readiness))
    server.serve_until_signal()
