"""The UI's operator panel (shown behind TTS_UI_AUTH's login): browse voices, add and remove models.

Everything goes through the same ModelManager as POST/DELETE /v1/models: a model added
here loads in the background and joins the pickers only once warm, so nothing done from
the panel makes a listener wait for a load.
"""

from __future__ import annotations

import time

import gradio as gr

from tts_core import ConfigError, TTSError
from tts_core.catalog import CatalogueError, load_catalogue, loaded_keys, sorted_voices
from tts_core.live_models import LOADING, REMOVING, manager_for
from ui.context import StudioContext

PROGRESS_POLL_S = 0.5  # how often the panel looks at a model being added or removed
CATALOGUE_HEADERS = ["spec", "language", "quality", "speakers", "size (MB)", "loaded"]


def _panel(revision: str, loaded: list[str]) -> dict:
    """The panel's components, inside the current Blocks, by name."""
    with gr.Accordion("Operator: add and remove models", open=False, elem_id="operator"):
        gr.Markdown("Added models load in the background and are offered only once warm; "
                    "a removed model finishes the requests it has and is then freed. "
                    f"Piper voices by name come from rhasspy/piper-voices at `{revision}`.")
        with gr.Row():
            language = gr.Textbox(label="Language (en, en_US ...; empty: all)",
                                  elem_id="catalogue-language")
            browse = gr.Button("Browse the Piper catalogue", elem_id="catalogue-browse")
        table = gr.Dataframe(headers=CATALOGUE_HEADERS, interactive=False,
                             elem_id="catalogue", label="Piper voices (click one to pick it)")
        with gr.Row():
            spec = gr.Textbox(label="Model spec", placeholder="piper:en_US-lessac-medium",
                              elem_id="add-spec")
            add = gr.Button("Add", variant="primary", elem_id="add-model")
        with gr.Row():
            victim = gr.Dropdown(loaded, label="Loaded model", elem_id="remove-name")
            remove = gr.Button("Remove", variant="stop", elem_id="remove-model")
        status = gr.Markdown(elem_id="operator-status")
    return dict(language=language, browse=browse, table=table, spec=spec, add=add,
                victim=victim, remove=remove, status=status)


def add_operator_panel(ctx: StudioContext, pickers: list, refresh_pickers) -> None:
    """The panel, inside the current Blocks. `pickers` (the UI's language and model
    dropdowns) follow every add and removal: `refresh_pickers()` gives their updates as
    {component: update}."""
    pipeline, settings = ctx.pipeline, ctx.settings
    manager = manager_for(pipeline)

    def loaded_names():
        return list(pipeline.registry.engines)

    panel = _panel(settings.piper_voices_revision, loaded_names())
    table, victim, status = panel["table"], panel["victim"], panel["status"]
    language, spec = panel["language"], panel["spec"]

    def catalogue(lang: str):
        try:
            voices = sorted_voices(load_catalogue(settings.piper_voices_revision))
        except CatalogueError as e:
            raise gr.Error(str(e)) from e
        loaded = loaded_keys(pipeline.registry.engines.values())
        lang = (lang or "").strip()
        return [[f"piper:{v.key}", v.language_name, v.quality, len(v.speakers) or 1,
                 round(v.size_bytes / 2**20, 1), "yes" if v.key in loaded else ""]
                for v in voices if not lang or v.language == lang or v.language.split("_")[0] == lang]

    def spec_of_row(evt: gr.SelectData, rows):
        return rows.iloc[evt.index[0], 0] if hasattr(rows, "iloc") else rows[evt.index[0]][0]

    def settled(message: str) -> dict:
        """The panel and the pickers once an add or a removal has finished."""
        return {status: message, victim: gr.update(choices=loaded_names(), value=None),
                **refresh_pickers()}

    def add_model(raw: str):
        try:
            state = manager.add(raw or "")  # as accepted; then its live state
        except (ConfigError, TTSError) as e:
            raise gr.Error(str(e).removeprefix("TTS_MODELS: ")) from e
        while (state := manager.state(state.name) or state).status == LOADING:
            waited = time.perf_counter() - state.started
            yield {status: f"Loading **{state.name}** in the background ... {waited:.0f} s"}
            time.sleep(PROGRESS_POLL_S)
        if state.error:
            yield settled(f"**{state.name}** failed to load; nothing changed. {state.error}")
        else:
            yield settled(f"**{state.name}** is warm (load {state.load_s:.1f} s, warm-up "
                        f"{state.warmup_s:.1f} s) and offered in the pickers.")

    def remove_model(name: str):
        try:
            state = manager.remove(name or "")  # as accepted; then its live state
        except TTSError as e:
            raise gr.Error(str(e)) from e
        while (state := manager.state(state.name) or state).status == REMOVING:
            yield {status: f"Removing **{name}**: finishing its requests ..."}
            time.sleep(PROGRESS_POLL_S)
        yield settled(f"**{name}** removed.")

    operator = {"concurrency_id": "operator", "concurrency_limit": 4, "api_visibility": "private"}
    panel["browse"].click(catalogue, language, table, **operator)
    language.submit(catalogue, language, table, **operator)
    table.select(spec_of_row, table, spec, api_visibility="private", queue=False)
    outputs = [status, victim, *pickers]
    panel["add"].click(add_model, spec, outputs, **operator)
    panel["remove"].click(remove_model, victim, outputs, **operator)
