"""The result column's own events: the spoken text handed over after Generate, the Web Audio
player's stream handed back (with the browser's click-to-sound), and this session's history."""

import base64
import binascii
import io
import json
import math
from pathlib import Path

import gradio as gr
import numpy as np
import soundfile as sf

from tts_core import InputError
from tts_core.metrics import RECORD_KEYS
from tts_core.timings import WordTiming, to_srt
from ui.context import StudioContext
from ui.events import gr_error, warn_foreign, with_loudness
from ui.html import history_html, spoken_html, timing_html
from ui.named_audio import NamedAudio

HISTORY_SIZE = 5  # this browser session's last generations, newest first
# The page's Web Audio player hands its stream's whole audio back (base64 int16) so that the
# Result player holds the file, as after Generate. No stream is longer than TTS_MAX_SPEECH_S
# (the plan refuses longer ones), so no real hand-back is longer than that at the rate of the
# fastest-sampling model loaded, with its words, record and text (at most this much more).
PLAYED_BACK_EXTRA_BYTES = 1_000_000


def played_back_limit(settings, rates) -> int:
    """The longest hand-back a real stream makes: TTS_MAX_SPEECH_S of int16 at the highest of
    `rates` (the loaded models' sample rates), in base64, with its words and record."""
    pcm = 2 * max(rates) * settings.max_speech_s
    return 4 * math.ceil(pcm / 3) + PLAYED_BACK_EXTRA_BYTES


def model_rates(pipeline) -> list[int]:
    return [engine.sample_rate for engine in pipeline.registry.engines.values()]


def collect_spoken(ctx: StudioContext, page, call: gr.Request):
    """The words of this session's Generate, for the spoken-text panel and the history."""
    spoken = ctx.pending_spoken.collect(call)
    return {page.spoken_state: spoken, page.spoken: spoken_html(spoken)}


def captions_spoken(ctx: StudioContext, page, text, model, words):
    """After "Generate with captions": its words light up in the spoken-text panel too."""
    spoken = {"text": text, "model": ctx.pipeline.registry.card(model or None).name,
              "words": words}
    return {page.spoken_state: spoken, page.spoken: spoken_html(spoken)}


def heard_captions(ctx: StudioContext, spoken, path):
    """The current result's words and subtitles (those of what was heard; none without words),
    the subtitles named as its audio file (`path`): speech-<n>.wav, speech-<n>.srt."""
    words = (spoken or {}).get("words")
    if not words or not path:
        return None, None
    timed = [WordTiming(w["word"], w["start"], w["end"]) for w in words]
    return words, ctx.files.write(Path(path).stem, "srt", to_srt(timed))


def add_to_history(page, history, path, record, text, voice, spoken):
    """The current result, first in this session's history (if there is a result)."""
    if not path or not record:
        return {page.history: history}
    entry = dict(path=path, name=Path(path).stem, text=text, model=record["model"], voice=voice or "default",
                 total_ms=record["total_ms"], first_audio_ms=record["first_audio_ms"],
                 audio_seconds=record["audio_seconds"], words=(spoken or {}).get("words"))
    history = ([entry] + history)[:HISTORY_SIZE]
    return {page.history: history, page.history_html: history_html(history)}


def _record(sent: dict | None) -> dict | None:
    """The latency record a stream carried, its numbers as numbers (None if it had none:
    /v1/audio/speech streams have no record in their body)."""
    if sent is None:
        return None
    record = {k: sent[k] for k in RECORD_KEYS}
    for k in RECORD_KEYS:
        if k not in ("model", "device", "note"):
            record[k] = float(record[k]) if k != "chars" else int(record[k])
    return record


def decode_played_back(payload: str, max_s: float,
                       ) -> tuple[bytes, dict | None, dict, float | None]:
    """The Web Audio player's stream, handed back: (the whole WAV, the server's latency record
    if the stream carried one, the spoken text (with the `loudness` the stream asked for), the
    browser's click-to-sound in ms).
    Raises InputError if malformed or longer than `max_s` seconds."""
    try:
        d = json.loads(payload)
        rate = int(d["rate"])
        pcm = base64.b64decode(d["pcm"], validate=True)
        record = _record(d.get("record"))
        words = d.get("words")
        words = None if words is None else [WordTiming(str(w["word"]), float(w["start"]),
                                                       float(w["end"])).to_dict() for w in words]
        heard_ms = d.get("heard_ms")
        heard_ms = None if heard_ms is None else float(heard_ms)
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise InputError(f"The page's player sent back a stream this server cannot read ({e}); "
                         "reload the page.") from e
    if not 8000 <= rate <= 192000 or len(pcm) > 2 * rate * max_s:
        raise InputError(f"The page's player sent back {len(pcm)} bytes at {rate} Hz; more than "
                         f"{max_s:g} seconds is not kept.")
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    spoken = {"text": str(d.get("text", "")), "model": str(d.get("model", "")), "words": words}
    if d.get("stopped"):  # Stop: what was heard, with no record of its own
        spoken["stopped"] = True
    loudness = d.get("loudness")
    spoken["loudness"] = loudness if loudness is False or isinstance(loudness, (int, float)) \
        else None
    return buffer.getvalue(), record, spoken, heard_ms


def stream_played_back(ctx: StudioContext, page, payload, text, model):
    """The page's Web Audio player finished a stream: its whole file becomes the Result (as
    after Generate), with the server's record, the words and what the listener heard."""
    settings = ctx.settings
    limit = played_back_limit(settings, model_rates(ctx.pipeline))
    try:
        if not isinstance(payload, str) or len(payload) > limit:  # refused before it is parsed
            raise InputError(f"The page's player sent back {len(payload or '')} characters; a "
                             f"stream of at most {settings.max_speech_s:g} seconds is at most "
                             f"{limit}. Nothing was kept.")
        wav, record, spoken, heard_ms = decode_played_back(payload, settings.max_speech_s)
    except InputError as e:
        raise gr_error(e) from e
    if record is None and not spoken.get("stopped"):
        # a /v1/audio/speech stream: its record is this server's newest like it
        ours = [r for r in ctx.pipeline.stats.records()
                if r.model == spoken["model"] and r.chars == len(spoken["text"])]
        record = ours[-1].to_dict() if ours else None
    warn_foreign(ctx, spoken["text"] or text, spoken["model"])
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    record = with_loudness(ctx, record, spoken.pop("loudness"), audio, rate)
    named = NamedAudio(f"{ctx.files.new_name()}.wav", wav)
    return {page.audio: gr.update(value=named, autoplay=False), page.latency: record,
            page.spoken_state: spoken, page.timing: timing_html(record, heard_ms),
            page.spoken: spoken_html(spoken)}
