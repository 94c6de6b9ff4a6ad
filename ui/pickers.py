"""The language, model and voice pickers: their choices, the model's note and examples, and
what changes on the page when the model or the language changes."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from tts_core import Pipeline, TTSError
from ui.events import LOUDNESS_OFF, RANDOM_SEED

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"  # <language>.txt, one text a line
ALL_LANGUAGES = ""  # the language filter's "show every model"


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


# The page's loudness targets (request.py names their norms), in LUFS.
LOUDNESS_PRESETS = ((-23, "broadcast, EBU R128"), (-16, "podcast"), (-14, "streaming services"))


class LoudnessPicker(gr.Radio):
    """The loudness control: Off or a target in LUFS. The page offers the presets; an API caller
    may send any number (or its text), which the pipeline bounds and refuses in its own words."""

    is_template = True  # drawn by Gradio's own Radio

    def preprocess(self, payload):
        return payload

    def api_info(self) -> dict:
        return {"type": "string", "description": "'off', or a loudness target in LUFS from -40 "
                                                 "to -9 such as '-16'"}


def loudness_choices(default_lufs: float | None) -> tuple[list[tuple[str, str]], str]:
    """(label, value) for the loudness control, and its first value: the server's TTS_LOUDNESS
    (so a caller that leaves it out gets what it got before there was a control), else Off."""
    choices = [("Off", LOUDNESS_OFF)] + [(f"{lufs} LUFS ({what})", str(lufs))
                                         for lufs, what in LOUDNESS_PRESETS]
    if default_lufs is None:
        return choices, LOUDNESS_OFF
    value = f"{default_lufs:g}"
    if value not in {v for _, v in choices}:
        choices.append((f"{value} LUFS (this server's default)", value))
    return choices, value


def load_examples(language: str | None) -> list[list[str]]:
    """Example texts for a language (ISO 639-1 'de', else the model's own tag), English if none."""
    path = EXAMPLES / f"{language}.txt"
    if not path.is_file():
        path = EXAMPLES / "en.txt"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return [[line.strip()] for line in lines if line.strip()]


def language_choices(pipeline: Pipeline) -> list:
    """The language filter: every language a warm model speaks, after "All languages"."""
    names = sorted({w.card.spoken_language for w in pipeline.registry.warm})
    return [("All languages", ALL_LANGUAGES)] + names


def model_choices(pipeline: Pipeline, language: str = ALL_LANGUAGES) -> list[tuple[str, str]]:
    """(label, name) for the model picker: 'mms-tts-deu (vits)', filtered by language (the
    language is in the filter and the note; in the label it ran under the arrow)."""
    return [(f"{warm.name} ({warm.card.family})", warm.name) for warm in pipeline.registry.warm
            if language == ALL_LANGUAGES or warm.card.spoken_language == language]


def model_note(pipeline: Pipeline, model: str | None) -> str:
    """The note beside the picker: the model's card and its warm-up RTF."""
    warm = pipeline.registry.warm_model(model)
    card, voices = warm.card, len(warm.card.voices)
    line = (f"**{card.name}**: {card.family}, {card.spoken_language}, {card.sample_rate} Hz, "
            f"{voices} voice{'s' if voices != 1 else ''}, {card.dtype} on {card.device}, "
            f"{card.memory_mb} MB; warm-up ran at RTF {warm.warmup_rtf:.2f}.")
    return f"{line}\n\n{card.note}" if card.note else line


def voice_choices(pipeline: Pipeline, model: str | None) -> list[tuple[str, str]]:
    """The model's voices, its default first as "" ('joe (default)'; a lone voice called
    'default' is just 'default')."""
    card = pipeline.registry.card(model)
    default = card.default_voice
    first = default if default == "default" else f"{default} (default)"
    return [(first, "")] + [(v, v) for v in card.voices if v != default]


def dialogue_markdown(card) -> str:
    """The dialogue helper for a model whose text names speakers (its card's `dialogue`: Dia):
    the convention, the sounds it takes and what it does with text that names no speaker."""
    script = card.dialogue
    if script is None:
        return ""
    speakers = " and ".join(f"`{tag}`" for tag in script.speakers)
    sounds = ", ".join(f"`{tag}`" for tag in script.nonverbal)
    return (f"**Dialogue for {card.name}**: start each speaker's turn with {speakers}, "
            f"beginning with `{script.speakers[0]}`. {script.untagged}\n\n"
            f"Sounds it takes in the text (sparingly: any may come out unexpected): {sounds}.")


def dialogue_example(pipeline: Pipeline, model: str):
    """The picked model's example dialogue, into the text box (one click)."""
    try:
        script = pipeline.registry.card(model or None).dialogue
    except TTSError as e:
        raise gr.Error(str(e)) from e
    return script.example if script is not None else gr.skip()


def captions_title(card) -> str:
    """The captions' title for the model picked: its words, or that it gives none."""
    if card.capabilities.timings:
        return f"Captions of what you heard ({card.name}: word timings, .srt)"
    return f"Captions: {card.name} gives no word timings"


def model_changed(pipeline: Pipeline, form, model: str) -> dict:
    """The voice list, the controls the model uses, its note and its language's examples
    (`form`: the page's ui.layout.Form)."""
    try:
        card = pipeline.registry.card(model or None)
    except TTSError as e:  # (the page only offers loaded models; a stale page may not)
        gr.Warning(f"{e} Back to {pipeline.registry.default.name}.")
        card = pipeline.registry.card(None)
    can = card.capabilities
    return {form.model: gr.update(value=card.name),
            form.voice: gr.update(choices=voice_choices(pipeline, card.name), value=""),
            form.speed: gr.update(value=1.0, interactive=can.speed,
                                  info=None if can.speed else "this model has no speed control"),
            form.temperature: gr.update(visible=can.temperature),
            # A model without a seed (Piper) gets none: a seed there would change nothing.
            form.seed: gr.update(visible=can.seed, value=RANDOM_SEED),
            form.captions_box: gr.update(label=captions_title(card)),
            form.xvector_box: gr.update(visible=can.speaker_embedding_dim is not None),
            form.xvector: gr.update(value=None),
            form.note: model_note(pipeline, card.name),
            # the dialogue helper: only for a model whose card has a convention (Dia)
            form.dialogue_box: gr.update(visible=card.dialogue is not None),
            form.dialogue_help: dialogue_markdown(card),
            form.examples: gr.update(samples=load_examples(card.language or card.language_tag))}


def language_changed(pipeline: Pipeline, language: str):
    """The model picker offers the language's models, the first picked."""
    choices = model_choices(pipeline, language or ALL_LANGUAGES)
    return gr.update(choices=choices, value=choices[0][1] if choices else None)


def refresh_pickers(pipeline: Pipeline, form) -> dict:
    """Models added or removed while serving: each page load (and each operator change) sees
    the warm ones."""
    return {form.language: gr.update(choices=language_choices(pipeline)),
            form.model: gr.update(choices=model_choices(pipeline))}
