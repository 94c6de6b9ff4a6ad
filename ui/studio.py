"""The studio page assembled: the layout, its events wired, and each panel added.

A panel is a module with an `add_..._panel(ctx, ...)` that builds its components inside the
current Blocks and wires its own events; adding one is that module and one line in
`build_demo`.
"""

from __future__ import annotations

import json

import gradio as gr

from tts_core import Pipeline
from ui import events, pickers, result, voices
from ui.context import StudioContext, bind
from ui.html import count_js, player_html, spoken_html, timing_html
from ui.layout import Page, build_page
from ui.jobs import add_jobs_panel
from ui.live import add_live_panel
from ui.refresh import add_picker_refresh

PRIVATE = {"api_visibility": "private", "queue": False}  # page-only events that skip the queue


def synthesis_inputs(ctx: StudioContext, page: Page) -> list:
    """The synthesis events' inputs, in their parameters' order. Temperature and x-vector are
    offered (in the page and in "Use via API") only where a loaded model uses them; where
    one is not, a None stands in for it, so that the loudness (the last parameter, added
    later: old callers leave it out) keeps its place."""
    return [page.text, page.model, page.voice, page.speed, page.seed,
            page.temperature if ctx.any_temperature else gr.State(None),
            page.xvector if ctx.any_embedding else gr.State(None), page.loudness]


def _show_timing(page: Page) -> dict:
    """After a result: the timing bar from its latency record."""
    return dict(fn=timing_html, inputs=page.latency, outputs=page.timing, **PRIVATE)


def _add_to_history(page: Page) -> dict:
    """After a result (and its spoken text): the history's new first entry."""
    return dict(fn=bind(result.add_to_history, page),
                inputs=[page.history, page.audio, page.latency, page.text, page.voice,
                        page.spoken_state],
                outputs=[page.history, page.history_html], **PRIVATE)


def _show_captions(ctx: StudioContext, page: Page) -> dict:
    """After a result's spoken text: the captions are its words (the rendering heard)."""
    return dict(fn=bind(result.heard_captions, ctx), inputs=[page.spoken_state, page.audio],
                outputs=[page.words, page.srt_file], **PRIVATE)


def _reset_js(autoplay: bool) -> str:
    """A new request's one current result, set in the page at the click (no round trip, so
    nothing of the server's can come after it): the streamed clip goes, the timing bar waits
    for this request, and the Result player: Generate's whole file plays when it comes
    (`autoplay`); Speak's last file goes and the whole file handed back at the end of its stream
    must not play over it (set now: Gradio's player reads autoplay before a value that comes
    with it). Outputs: stream_audio, audio, timing."""
    audio = {"__type__": "update", "autoplay": autoplay}
    if not autoplay:
        audio["value"] = None
    return f"() => [null, {json.dumps(audio)}, {json.dumps(timing_html(None, working=True))}]"


NEW_WHOLE_FILE_JS = _reset_js(autoplay=True)
NEW_STREAM_JS = _reset_js(autoplay=False)


def wire_generate(ctx: StudioContext, page: Page, inputs: list):
    """Generate (the public /synthesize) and Generate with captions (/captioned)."""
    # The reset first: Gradio 6.31's page runs an event's handlers in turn, each to its end.
    page.generate.click(None, None, [page.stream_audio, page.audio, page.timing],
                        js=NEW_WHOLE_FILE_JS, **PRIVATE)
    generated = page.generate.click(bind(events.synthesize, ctx), inputs,
                                    [page.audio, page.latency], api_name="synthesize",
                                    **ctx.device_queue())
    generated.success(**_show_timing(page))
    spoken = generated.success(bind(result.collect_spoken, ctx, page), None,
                               [page.spoken_state, page.spoken], **PRIVATE)
    spoken.then(**_add_to_history(page)).then(**_show_captions(ctx, page))
    page.captions.click(None, None, [page.stream_audio, page.audio, page.timing],
                        js=NEW_WHOLE_FILE_JS, **PRIVATE)  # one result
    page.captions.click(bind(events.captioned, ctx), inputs,
                        [page.audio, page.words, page.srt_file], api_name="captioned",
                        **ctx.device_queue()
                        ).success(bind(result.captions_spoken, ctx, page),
                                  [page.text, page.model, page.words],
                                  [page.spoken_state, page.spoken], **PRIVATE)
    return generated


def wire_speak(ctx: StudioContext, page: Page, inputs: list, generated) -> None:
    """Speak: the page's Web Audio player, or Gradio's where it cannot play; the stream handed
    back by the page; Stop."""
    # The page's Web Audio player (studio.js) fetches the HTTP API itself; where it cannot
    # (no Web Audio, an API key, a sampling model, a speaker file...) it clicks stream_gradio.
    page.speak.click(None, [page.text, page.model, page.voice, page.speed, page.seed,
                            page.loudness] + ([page.xvector] if ctx.any_embedding else []), None,
                     js="(...args) => window.studio.stream(...args)", api_visibility="private")
    page.speak.click(None, None, [page.stream_audio, page.audio, page.timing],
                     js=NEW_STREAM_JS, **PRIVATE)
    if ctx.streaming:
        streamed = page.stream_gradio.click(
            bind(events.stream, ctx, page), inputs,
            [page.stream_audio, page.audio, page.latency, page.spoken_state],
            api_visibility="private", **ctx.device_queue())
    else:
        streamed = page.stream_gradio.click(
            bind(events.stream_fallback, ctx, page), inputs,
            [page.audio, page.latency, page.spoken_state], api_visibility="private",
            **ctx.device_queue())
    streamed.success(**_show_timing(page))
    streamed.success(spoken_html, page.spoken_state, page.spoken, **PRIVATE
                     ).then(**_add_to_history(page)).then(**_show_captions(ctx, page))
    page.stream_handback.change(
        bind(result.stream_played_back, ctx, page), [page.stream_handback, page.text, page.model],
        [page.audio, page.latency, page.spoken_state, page.timing, page.spoken], **PRIVATE
    ).success(**_add_to_history(page)).then(**_show_captions(ctx, page))
    # Stop: the page's player keeps what was heard (studio.js); Gradio's events are cancelled.
    page.stop.click(None, None, None, js="() => window.studio.halt()",
                    cancels=[streamed, generated], api_visibility="private", queue=False)


def wire_form(ctx: StudioContext, page: Page, voices_tab=None) -> None:
    """The form's own events: the count, the pickers, the examples."""
    page.text.change(None, page.text, page.count, js=count_js(ctx.settings.max_chars))
    changed = page.model.change(bind(pickers.model_changed, ctx.pipeline, page), page.model,
                                [page.model, page.voice, page.speed, page.seed, page.temperature,
                                 page.xvector_box, page.xvector, page.note, page.examples,
                                 page.captions_box, page.dialogue_box, page.dialogue_help],
                                **PRIVATE)
    if voices_tab is not None:  # this session's one-off voice stays offered
        voices_tab.follow(ctx, changed, page)
    page.language.change(bind(pickers.language_changed, ctx.pipeline), page.language,
                         page.model, **PRIVATE)
    page.dialogue_example.click(bind(pickers.dialogue_example, ctx.pipeline), page.model,
                                page.text, **PRIVATE)
    page.examples.click(lambda sample: sample[0], page.examples, page.text, **PRIVATE)


def build_demo(pipeline: Pipeline, streaming: bool) -> gr.Blocks:
    """The UI over a warm pipeline; `streaming` is False when no ffmpeg could be found."""
    ctx = StudioContext(pipeline, streaming)
    ttl = ctx.settings.cache_ttl_s
    # Gradio keeps each returned audio file in its cache; delete them after TTS_CACHE_TTL.
    with gr.Blocks(title="TTS Studio", delete_cache=(max(1, ttl // 4), ttl)) as demo:
        with voices.tabs(ctx):  # "Speak" and "Voices" where a model clones; else no tabs
            with voices.speak_tab(ctx):
                page = build_page(ctx)
                refresh_pickers = bind(pickers.refresh_pickers, pipeline, page)
                demo.load(refresh_pickers, None, [page.language, page.model], **PRIVATE)
                demo.load(lambda: player_html(pipeline), None, page.player, **PRIVATE)
                add_live_panel(ctx, demo)
                add_jobs_panel(ctx, page.model, page.voice, page.speed)
                if ctx.settings.ui_auth:  # the operator panel only behind the login
                    from ui.operator import add_operator_panel

                    add_operator_panel(ctx, [page.language, page.model], refresh_pickers)
            voices_tab = voices.add_voices_panel(ctx, demo, page)
        add_picker_refresh(ctx, page, voices_tab and voices_tab.session_voice)
        inputs = synthesis_inputs(ctx, page)
        generated = wire_generate(ctx, page, inputs)
        wire_speak(ctx, page, inputs, generated)
        gr.api(bind(events.models, ctx), api_name="models")
        wire_form(ctx, page, voices_tab)
    demo.queue(max_size=ctx.settings.queue_size, api_open=False)
    return demo
