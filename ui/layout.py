"""The studio page's layout: the form, the result column, examples and history, built in
order inside the current Blocks and returned as one namespace of named components."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from tts_core.request import MAX_SEED, MAX_SPEED, MAX_TEMPERATURE, MIN_SPEED, MIN_TEMPERATURE
from ui.context import StudioContext
from ui.events import RANDOM_SEED
from ui.html import count_html, file_size, history_html, player_html, spoken_html, timing_html
from ui.named_audio import ResultAudio
from ui.pickers import (ALL_LANGUAGES, LoudnessPicker, Picker, captions_title, dialogue_markdown,
                        language_choices, load_examples, loudness_choices, model_choices,
                        model_note, voice_choices)

INTRO = ("# TTS Studio\nWarm-loaded text to speech: every model below was loaded and run once "
         "before this page was served. **Ctrl+Enter** in the text speaks. From code: the "
         "OpenAI-compatible HTTP API (`POST /v1/audio/speech`, [its docs](/docs)), or *Use via "
         "API* at the bottom of the page.")


@dataclass
class Page:
    """The page's components, by what they are (elem_id in the comment where it differs)."""

    # the form
    text: gr.Textbox
    count: gr.HTML  # char-count
    language: Picker
    model: Picker
    voice: Picker
    note: gr.Markdown  # model-note
    dialogue_box: gr.Column  # the dialogue helper: shown for a model whose text names speakers
    dialogue_help: gr.Markdown
    dialogue_example: gr.Button  # puts the card's example dialogue in the text box
    speed: gr.Slider
    seed: gr.Number
    temperature: gr.Slider
    loudness: LoudnessPicker  # Off or a target in LUFS, for whatever Speak plays
    xvector_box: gr.Accordion
    xvector: gr.File
    speak: gr.Button  # the one action: the page's Web Audio stream, or its fallback
    stop: gr.Button  # ends what Speak started, keeping what was heard
    generate: gr.Button  # hidden: the whole file (the /synthesize endpoint), Speak's last fallback
    stream_gradio: gr.Button  # Gradio's streaming player, clicked by the page when its own cannot
    # the result
    audio: gr.Audio
    stream_audio: gr.Audio
    player: gr.HTML  # the page's Web Audio player's configuration and status
    spoken: gr.HTML  # the spoken text, its words lit up as they play
    spoken_state: gr.State  # the current result's spoken text: {text, model, words}
    stream_handback: gr.Textbox  # played-back: the Web Audio player's whole stream, handed back
    timing: gr.HTML
    latency: gr.JSON
    captions_box: gr.Accordion  # its title names the model picked
    captions: gr.Button  # hidden: the /captioned endpoint (a rendering of its own)
    words: gr.JSON  # the words of the result heard
    srt_file: gr.File  # srt
    # below
    examples: gr.Dataset
    history: gr.State
    history_html: gr.HTML  # history


def _pickers(ctx: StudioContext) -> dict:
    pipeline = ctx.pipeline
    with gr.Row():
        language = Picker(language_choices(pipeline), value=ALL_LANGUAGES, label="Language",
                          elem_id="language", scale=1, min_width=170, allow_custom_value=False)
        model = Picker(model_choices(pipeline), value=pipeline.registry.card(None).name,
                       label="Model", elem_id="model", scale=2, min_width=200,
                       allow_custom_value=False)
        # As wide as the model: Bark's "v2/en_speaker_6 (default)" was cut at scale 1.
        voice = Picker(voice_choices(pipeline, None), value="", label="Voice", elem_id="voice",
                       scale=2, min_width=200, allow_custom_value=False)
    note = gr.Markdown(model_note(pipeline, None), elem_id="model-note")
    first = pipeline.registry.card(None)
    with gr.Column(visible=first.dialogue is not None, elem_id="dialogue-box") as dialogue_box:
        dialogue_help = gr.Markdown(dialogue_markdown(first), elem_id="dialogue-help")
        dialogue_example = gr.Button("Insert dialogue example", size="sm",
                                     elem_id="dialogue-example")
    return dict(language=language, model=model, voice=voice, note=note,
                dialogue_box=dialogue_box, dialogue_help=dialogue_help,
                dialogue_example=dialogue_example)


def _controls(ctx: StudioContext) -> dict:
    can = ctx.pipeline.registry.card(None).capabilities  # the first model: what the page opens on
    with gr.Row():
        speed = gr.Slider(MIN_SPEED, MAX_SPEED, value=1.0, step=0.05, label="Speed",
                          elem_id="speed", interactive=can.speed, min_width=140)
        seed = gr.Number(RANDOM_SEED, label="Seed", elem_id="seed", visible=can.seed,
                         info=f"{RANDOM_SEED}: random; 0 to {MAX_SEED}: the same rendering again",
                         minimum=RANDOM_SEED, maximum=MAX_SEED, precision=0, min_width=140)
        temperature = gr.Slider(MIN_TEMPERATURE, MAX_TEMPERATURE, value=0.7, step=0.05,
                                label="Temperature", elem_id="temperature",
                                info="sampling models (Bark)", min_width=140,
                                visible=can.temperature)
    choices, value = loudness_choices(ctx.settings.loudness_lufs)
    loudness = LoudnessPicker(choices, value=value, label="Loudness", elem_id="loudness",
                              info="Integrated loudness of what is played (LUFS), peaks kept "
                                   f"under {ctx.settings.true_peak_db:g} dBTP; Off: the voice's "
                                   "own level")
    with gr.Accordion("Your own speaker embedding (SpeechT5)", open=False, elem_id="xvector-box",
                      visible=can.speaker_embedding_dim is not None) as xvector_box:
        limit = file_size(ctx.settings.max_upload_bytes)  # TTS_MAX_UPLOAD_BYTES
        xvector = gr.File(label=f".npy x-vector (at most {limit})", file_types=[".npy"],
                          type="filepath", elem_id="xvector", height=120)
    return dict(speed=speed, seed=seed, temperature=temperature, loudness=loudness,
                xvector_box=xvector_box, xvector=xvector)


def _form(ctx: StudioContext) -> dict:
    with gr.Column(scale=3, elem_id="input-column"):
        text = gr.Textbox(label="Text", lines=6, elem_id="text",
                          placeholder="Type or paste what should be spoken.",
                          info='Plain text, or SSML starting with <speak>: <break time="500ms"/>, '
                               '<sub alias="...">, <say-as interpret-as="characters">, '
                               '<prosody rate="slow">, <phoneme ph="..."> (Piper voices). '
                               'See docs/ssml.md.')
        count = gr.HTML(count_html(0, ctx.settings.max_chars), elem_id="char-count",
                        padding=False)
        parts = dict(text=text, count=count, **_pickers(ctx), **_controls(ctx))
        with gr.Row():
            parts["speak"] = gr.Button("Speak", variant="primary", elem_id="speak", scale=3)
            parts["stop"] = gr.Button("Stop", variant="stop", elem_id="stop", scale=1)
            parts["generate"] = gr.Button("Generate", elem_id="generate", visible="hidden")
            parts["stream_gradio"] = gr.Button(
                "Stream" if ctx.streaming else "Stream (needs ffmpeg)", elem_id="stream-gradio",
                visible="hidden")
    return parts


def _result(ctx: StudioContext) -> dict:
    with gr.Column(scale=2, elem_id="result-column"):
        audio = ResultAudio(label="Result (the whole file)", interactive=False, type="filepath",
                            autoplay=True, elem_id="audio")
        stream_audio = gr.Audio(label="Streamed (plays as it arrives)", interactive=False,
                                autoplay=True, streaming=ctx.streaming, elem_id="stream-audio")
        # Stream's own player: the app's HTTP API, its PCM played by Web Audio (studio.js).
        player = gr.HTML(player_html(ctx.pipeline), elem_id="player", padding=False)
        spoken = gr.HTML(spoken_html(None), elem_id="spoken", label="Spoken text")
        spoken_state = gr.State(None)
        # The page's own value for the server, set by studio.js ("hidden" Textboxes do not
        # pass their changes on in Gradio 6.31; it is hidden by CSS).
        stream_handback = gr.Textbox(elem_id="played-back", elem_classes=["studio-hidden"])
        timing = gr.HTML(timing_html(None), elem_id="timing", label="Where the time went")
        with gr.Accordion("Latency record (JSON)", open=False, elem_id="latency-box"):
            latency = gr.JSON(label="This request's latency", elem_id="latency")
        with gr.Accordion(captions_title(ctx.pipeline.registry.card(None)), open=False,
                          elem_id="captions-box") as captions_box:
            captions = gr.Button("Generate with captions", elem_id="captions", visible="hidden")
            words = gr.JSON(label="Words of what you heard (seconds)", elem_id="words")
            srt_file = gr.File(label="Subtitles of what you heard (.srt)", elem_id="srt")
    return dict(audio=audio, stream_audio=stream_audio, player=player, spoken=spoken,
                spoken_state=spoken_state, stream_handback=stream_handback,
                timing=timing, latency=latency,
                captions_box=captions_box, captions=captions, words=words, srt_file=srt_file)


def build_page(ctx: StudioContext) -> Page:
    """The page, inside the current Blocks: intro, form beside result, examples, history."""
    gr.Markdown(INTRO, elem_id="intro")
    with gr.Row(equal_height=False):
        parts = dict(**_form(ctx), **_result(ctx))
    first = ctx.pipeline.registry.card(None)
    examples = gr.Dataset(components=[parts["text"]], label="Examples", elem_id="examples",
                          samples=load_examples(first.language or first.language_tag))
    history = gr.State([])
    history_html_ = gr.HTML(history_html([]), elem_id="history")
    return Page(**parts, examples=examples, history=history, history_html=history_html_)
