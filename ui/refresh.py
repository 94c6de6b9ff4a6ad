"""Open pages follow the registry: a timer redraws the pickers only when its revision changed.

Every model added or removed and every card change (a voice saved or deleted) bumps
`Registry.revision`. Each page holds the revision it last drew its language, model and
voice pickers for; a cheap timer tick compares the two and skips (nothing sent back, nothing
redrawn) while they match. When they differ, the pickers get their new choices and keep the
user's selection wherever it is still offered.
"""

from __future__ import annotations

import gradio as gr

from ui.context import StudioContext, bind
from ui.pickers import ALL_LANGUAGES, language_choices, model_choices
from ui.voices import with_session_voice

REFRESH_S = 2.0  # how soon a saved voice or a hot-added model shows on an open page


def pickers_if_changed(ctx: StudioContext, drawn: int | None, language: str | None,
                       model: str | None, voice: str | None, session_voice: str | None = None):
    """(revision, language, model, voice pickers): their new choices if the registry changed
    since `drawn`, else skips."""
    revision = ctx.pipeline.registry.revision
    if revision == drawn:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    languages = language_choices(ctx.pipeline)
    if language not in {value for _, value in _pairs(languages)}:
        language = ALL_LANGUAGES
    models = model_choices(ctx.pipeline, language or ALL_LANGUAGES)
    names = [name for _, name in models]
    kept_model = model if model in names else (names[0] if names else None)
    return (revision, gr.update(choices=languages, value=language),
            gr.update(choices=models, value=kept_model),
            with_session_voice(ctx, kept_model, voice, session_voice))


def _pairs(choices: list) -> list[tuple[str, str]]:
    return [c if isinstance(c, tuple) else (c, c) for c in choices]


def add_picker_refresh(ctx: StudioContext, page, session_voice: gr.State | None = None) -> None:
    """The page's timer and the revision it last drew (inside the current Blocks)."""
    drawn = gr.State(ctx.pipeline.registry.revision)
    timer = gr.Timer(REFRESH_S)
    pickers = [page.language, page.model, page.voice]
    timer.tick(bind(pickers_if_changed, ctx),
               [drawn, *pickers] + ([session_voice] if session_voice is not None else []),
               [drawn, *pickers],
               show_progress="hidden", api_visibility="private", queue=False)
