"""HTML builders for the page: the timing bar, the spoken text, the history, the player's
configuration, subtitle links and the character count."""

from __future__ import annotations

import html
import json
import urllib.parse
from pathlib import Path

from tts_core import Pipeline
from tts_core.timings import WordTiming, to_srt, to_vtt

HISTORY_TEXT = 160  # characters of each history entry's text shown
TIMING_PARTS = ("queue", "text", "inference", "encode")  # the timing bar's segments, in order

# The character count, counted in the browser: over the limit it turns red and says so.
COUNT_JS = """(t) => { const n = [...(t || '')].length, limit = LIMIT;
  return n > limit ? `<span class='over'>${n} / ${limit} characters: ${n - limit} over the limit; shorten it</span>`
                   : `<span>${n} / ${limit} characters</span>`; }"""


def file_size(n: int) -> str:
    """A byte count as Gradio's too-large toast gives it (1024-based): '97.7 KB', '19.1 MB'."""
    return f"{n / 1024:.1f} KB" if n < 1024 ** 2 else f"{n / 1024 ** 2:.1f} MB"


def count_js(limit: int) -> str:
    """The browser-side character count for a text limit."""
    return COUNT_JS.replace("LIMIT", str(limit))


def count_html(n: int, limit: int) -> str:
    return f"<span>{n} / {limit} characters</span>"


def timing_html(record: dict | None, heard_ms: float | None = None, working=False) -> str:
    """This request as a bar: queue, text, inference and encode in proportion to its total,
    the rest (joining, the hand-over) grey, and a red mark where its first audio was ready;
    `heard_ms` is the browser's click-to-sound, where the page measured it; `working`: a
    request was just made (the last one's bar goes at the click)."""
    if working:
        return "<div class='empty working'>Speaking... the timing of this request shows here.</div>"
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
    heard_span = ("" if heard_ms is None else
             f"<span>heard in the browser <b data-part='heard'>{heard_ms:.0f} ms</b></span>")
    return (f"<div class='bar'>{segments}{mark}</div><div class='legend'>{legend}"
            f"<span><i class='first-key' style='background:#dc2626'></i>first audio "
            f"<b data-part='first_audio'>{first:.0f} ms</b></span>"
            f"<span>total <b data-part='total'>{record['total_ms']:.0f} ms</b></span>{heard_span}"
            f"<span>{record['audio_seconds']:.1f} s of audio from <b data-part='chars'>"
            f"{record['chars']}</b> characters, {html.escape(record['model'])}</span>"
            "</div>")


def spoken_html(spoken: dict | None) -> str:
    """The spoken text, each word a span with its start and end (seconds) for the page to light
    up while the audio plays; a model without durations gets its text plain, and says so.
    studio.js draws the same markup while a stream arrives."""
    if not spoken:
        return "<div class='empty'>The words light up here as they are spoken.</div>"
    if spoken.get("words") is None:
        return (f"<p class='note'>{html.escape(spoken['model'])} gives no word timings, so the "
                f"text is shown without highlighting.</p><p class='words plain'>"
                f"{html.escape(spoken['text'])}</p>")
    spans = " ".join(f"<span class='w' data-start='{w['start']:.3f}' data-end='{w['end']:.3f}'>"
                     f"{html.escape(w['word'])}</span>" for w in spoken["words"])
    return f"<p class='words'>{spans}</p>"


def history_html(entries: list[dict]) -> str:
    """This session's last generations, newest first, each playable and downloadable (the files
    are Gradio's cached copies, served at gradio_api/file= until TTS_CACHE_TTL removes them)."""
    if not entries:
        return "<p class='empty'>Your generations in this session will be listed here.</p>"
    items = []
    for n, e in enumerate(entries):
        url = "gradio_api/file=" + urllib.parse.quote(e["path"])
        name = html.escape(e.get("name") or f"speech-{n + 1}")  # its audio's and subtitles' name
        short = e["text"] if len(e["text"]) <= HISTORY_TEXT else e["text"][:HISTORY_TEXT] + "..."
        items.append(
            f"<li class='history-item' data-n='{n}'><audio controls preload='none' src='{url}'>"
            f"</audio><a href='{url}' download='{name}{Path(e['path']).suffix}'>download</a> "
            f"{subtitle_links(e.get('words'), name)} "
            # one element: in the row's flex layout a bare text node after the name would be a
            # flex item of its own, so its comma could start a line
            f"<span class='entry-info'><b>{html.escape(e['model'])}</b>, "
            f"{html.escape(e['voice'])}: {e['audio_seconds']:.1f} s of audio, first audio "
            f"{e['first_audio_ms']:.0f} ms, total {e['total_ms']:.0f} ms</span>"
            f"<div class='entry-text'>{html.escape(short)}</div></li>")
    return f"<h3>This session's last {len(entries)}</h3><ol>{''.join(items)}</ol>"


def subtitle_links(words: list[dict] | None, name: str) -> str:
    """Download links for an entry's subtitles, as data: URLs (nothing to serve or expire),
    named as its audio file: `name`.srt, `name`.vtt."""
    if not words:
        return ""
    timed = [WordTiming(w["word"], w["start"], w["end"]) for w in words]
    links = []
    for kind, text, mime in (("srt", to_srt(timed), "application/x-subrip"),
                             ("vtt", to_vtt(timed), "text/vtt")):
        url = f"data:{mime};charset=utf-8," + urllib.parse.quote(text)
        links.append(f"<a class='subtitles' href='{url}' download='{name}.{kind}'>{kind}</a>")
    return " ".join(links)


def player_html(pipeline: Pipeline) -> str:
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
