"""The Voices tab: a voice cloned from a clip, checked, previewed, saved or used once; saved ones.

Shown only when a loaded model clones voices. Everything goes through the pipeline's one
voice library (`library_for`): the clip is prepared as saving would keep it (trimmed, cut
at a pause, transcript cut to match or heard by Whisper), each encode and the preview take
their turns at the device gate, nothing is written until Save. Saving and deleting are
open to anyone when the server has no TTS_API_KEY, else only to the operator signed in
through TTS_UI_AUTH; a one-off voice ("Use once") is open to all, lives in memory for this
browser session only, one per session, and is forgotten when the page closes.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import gradio as gr
import numpy as np
import soundfile as sf

from tts_core import InputError, SpeechRequest, TTSError
from tts_core.errors import VoiceClipError
from tts_core.voices.clip import PreparedClip
from tts_core.voices.library import VoiceLibrary, library_for
from ui.context import StudioContext, bind
from ui.events import client_of

logger = logging.getLogger(__name__)

PREVIEW_TEXT = "Hello! This is my new voice, reading a sentence I never recorded."
LIST_HEADERS = ["voice", "transcript", "models"]  # three columns: none wraps letters on a phone
SESSION_LABEL = "your clip (this session)"  # the one-off voice in the Speak tab's Voice picker
PRIVATE = {"api_visibility": "private", "queue": False}
SESSIONS_KEPT = 64  # open pages with a one-off voice; past this the oldest one's is forgotten


class SessionVoices:
    """Each browser session's one-off voice (one each, SESSIONS_KEPT sessions at most), so
    that it is forgotten when its page closes (`demo.unload`) or when it is replaced."""

    def __init__(self, library: VoiceLibrary, kept: int = SESSIONS_KEPT):
        self.library, self.kept = library, kept
        self._by_session: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, session: str, name: str) -> None:
        """`name` is `session`'s one-off voice now; its last one, and the oldest session's
        past SESSIONS_KEPT, are forgotten."""
        with self._lock:
            gone = [self._by_session.pop(session)] if session in self._by_session else []
            self._by_session[session] = name
            while len(self._by_session) > self.kept:
                gone.append(self._by_session.popitem(last=False)[1])
        for old in gone:
            self.library.remove_transient(old)

    def end(self, session: str | None) -> None:
        """The session's page closed: its one-off voice is forgotten."""
        with self._lock:
            name = self._by_session.pop(session, None) if session else None
        if name:
            self.library.remove_transient(name)
            logger.info("One-off voice %s forgotten with its page", name)

    def __len__(self) -> int:
        return len(self._by_session)


@dataclass
class VoicesTab:
    """The tab's components that other parts of the page follow (the one-off voice)."""

    session_voice: gr.State  # this browser session's one-off voice's name, or None
    sessions: SessionVoices  # every session's one-off voice

    def follow(self, ctx: StudioContext, model_change, page) -> None:
        """After the Speak tab's model changes: its Voice picker offers the one-off voice too."""
        model_change.then(bind(with_session_voice, ctx), [page.model, page.voice,
                                                          self.session_voice], page.voice,
                          show_progress="hidden", **PRIVATE)


def cloning(ctx: StudioContext) -> bool:
    return any(w.card.capabilities.clones for w in ctx.pipeline.registry.warm)


@contextmanager
def tabs(ctx: StudioContext):
    """The page's tabs where a model clones voices (the page as "Speak", then "Voices");
    otherwise the page as it is, with no tab bar."""
    if not cloning(ctx):
        yield
        return
    with gr.Tabs(elem_id="tabs"):
        yield


def speak_tab(ctx: StudioContext):
    """The "Speak" tab around the existing page (nothing where no model clones)."""
    return gr.Tab("Speak", id="speak", elem_id="speak-tab") if cloning(ctx) else nullcontext()


def guidance(library: VoiceLibrary, max_upload_bytes: int) -> str:
    """What a clip should be, per loaded cloning model, said before the upload."""
    lines = ["### Make a voice from a clip",
             "Upload or record **one person speaking**, clearly, with little noise. Each model "
             "here wants:"]
    for engine in library.cloning_engines():
        limits = engine.clone_limits()
        words = "with its transcript" if limits.needs_transcript else "no transcript needed"
        lines.append(f"- **{engine.name}** ({engine.family}): {limits.min_s:g}–{limits.max_s:g} s "
                     f"of speech, {words}")
    wants = library.clip_wants()
    heard = ("Leave the transcript empty and Whisper writes it; correct it if it misheard."
             if library.transcriber is not None else
             "No Whisper model is loaded here: type the words spoken in the clip.")
    lines.append(f"\nSilence at the ends is trimmed; a longer clip is cut at a pause to at most "
                 f"{wants['max_s']:g} s, its transcript cut to match. {heard} Files up to "
                 f"{max_upload_bytes / 2**20:.1f} MB (WAV, FLAC, OGG, MP3 ...).")
    return "\n".join(lines)


def refusal(ctx: StudioContext, call: gr.Request | None) -> str | None:
    """Why this browser may not save or delete voices, or None when it may: anyone when the
    server has no API key (a local demo), else only the operator signed in."""
    settings = ctx.settings
    if not settings.api_key or (call is not None and getattr(call, "username", None)):
        return None
    how = ("sign in" if settings.ui_auth else "the page's sign-in is off (TTS_UI_AUTH); "
           "the HTTP API (POST /v1/audio/voices) takes the key")
    return (f"Saving and deleting voices is for the operator: this server has an API key, and "
            f"{how}. Use once (this session) works for everyone.")


def permissions(ctx: StudioContext, call: gr.Request = None) -> tuple:
    """At page load: Save and Delete on or off for this browser, and why they are off."""
    why = refusal(ctx, call)
    return (gr.update(interactive=why is None), gr.update(interactive=why is None),
            f"*{why}*" if why else "")


def wav_bytes(clip: PreparedClip) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, clip.audio, clip.sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def kept_note(clip: PreparedClip) -> str:
    """'Kept 9.8 s of 24.0 s (cut at a pause) ...': what was done to the clip."""
    how = "cut at a pause" if clip.cut else "silence at the ends trimmed"
    words = ("Transcript heard by Whisper: check it and correct it before saving."
             if clip.transcribed else "" if clip.transcript else "No transcript is needed.")
    return f"Kept **{clip.seconds:.1f} s** of {clip.original_s:.1f} s ({how}). {words}"


def _read_upload(path: str | None, limit: int) -> bytes:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise VoiceClipError(f"The clip is larger than {limit / 2**20:.1f} MB "
                             "(TTS_MAX_UPLOAD_BYTES); a voice needs only 10 to 30 s of audio.",
                             code="clip_too_large")
    return data


def clip_changed(ctx: StudioContext, path: str | None, transcript: str | None):
    """A new clip (upload or recording): the kept part, what was done, the transcript; or why
    it cannot make a voice. Outputs: kept audio, note, transcript, kept WAV (state)."""
    if not path:
        return None, "", "", None
    library = library_for(ctx.pipeline)
    try:
        clip = library.prepare_clip(_read_upload(path, ctx.settings.max_upload_bytes),
                                    transcript or None)
    except TTSError as e:
        return None, f"**This clip cannot make a voice:** {e}", gr.skip(), None
    audio = np.clip(clip.audio * 32767, -32768, 32767).astype(np.int16)
    return ((clip.sample_rate, audio), kept_note(clip), clip.transcript or "", wav_bytes(clip))


def _no_clip() -> gr.Error:
    return gr.Error("Upload or record a clip first: the voice is made from its kept part.")


def preview(ctx: StudioContext, kept: bytes | None, transcript: str, model: str, text: str,
            call: gr.Request = None):
    """The sentence spoken in the voice of the kept clip, not saved (a one-off voice for this
    one request, encoded and spoken in gate turns)."""
    if not kept:
        raise _no_clip()
    library = library_for(ctx.pipeline)
    try:
        with library.temporary(model or None, kept, transcript or None) as voice:
            result = ctx.pipeline.synthesize(
                SpeechRequest(text=text or PREVIEW_TEXT, model=model or None, voice=voice,
                              format="wav"), route="gradio", client=client_of(call))
    except TTSError as e:
        raise gr.Error(str(e), print_exception=not isinstance(e, InputError)) from e
    return result.data


def saved_rows(library: VoiceLibrary) -> list[list]:
    """Each saved voice: 'name (5.4 s)', its transcript, the models that speak it."""
    return [[f"{e['id']} ({e.get('seconds', 0):.1f} s)", e.get("transcript") or "",
             ", ".join(e["models"])] for e in library.entries()]


def _listed(library: VoiceLibrary, picked: str | None = None) -> tuple:
    names = sorted(library.saved)
    return (saved_rows(library),
            gr.update(choices=names, value=picked if picked in names else None))


def save(ctx: StudioContext, name: str, kept: bytes | None, transcript: str,
         call: gr.Request = None):
    """Save the kept clip under `name` for every cloning model: status, list, picker."""
    why = refusal(ctx, call)
    if why:
        raise gr.Error(why)
    if not kept:
        raise _no_clip()
    library = library_for(ctx.pipeline)
    try:
        entry = library.add((name or "").strip(), kept, transcript or None)
    except TTSError as e:
        return (f"**Not saved:** {e}", *_listed(library))
    return (f"Saved **{entry['id']}** ({entry['seconds']:.1f} s): in the Voice picker of "
            f"{', '.join(entry['models'])} on every open page.", *_listed(library, entry["id"]))


def delete(ctx: StudioContext, name: str | None, call: gr.Request = None):
    """Delete the saved voice picked: status, list, picker."""
    why = refusal(ctx, call)
    if why:
        raise gr.Error(why)
    library = library_for(ctx.pipeline)
    if not name:
        raise gr.Error("Pick a saved voice to delete.")
    try:
        library.delete(name)
    except TTSError as e:
        raise gr.Error(str(e), print_exception=False) from e
    return (f"Deleted **{name}**.", *_listed(library))


def play(ctx: StudioContext, name: str | None):
    """The saved voice's clip, as it was kept."""
    if not name:
        raise gr.Error("Pick a saved voice to play.")
    try:
        return str(library_for(ctx.pipeline).clip_file(name))
    except TTSError as e:
        raise gr.Error(str(e), print_exception=False) from e


def use_once(ctx: StudioContext, sessions: SessionVoices, kept: bytes | None, transcript: str,
             model: str | None, voice: str | None, call: gr.Request = None):
    """This session's one-off voice from the kept clip (its last one replaced): the session's
    voice, status, and the Speak tab's Voice picker (offering it where the model clones)."""
    if not kept:
        raise _no_clip()
    if call is None or not call.session_hash:
        raise gr.Error("A one-off voice needs the page's session; reload the page.")
    library = library_for(ctx.pipeline)
    try:
        name = library.add_transient(kept, transcript or None)
    except TTSError as e:
        raise gr.Error(str(e), print_exception=not isinstance(e, InputError)) from e
    sessions.put(call.session_hash, name)
    models = ", ".join(e.name for e in library.cloning_engines())
    note = (f"Your clip is a voice for this page only, until you close it: pick "
            f"**{SESSION_LABEL}** in the Speak tab's Voice picker with {models}. Nothing is saved.")
    engine_speaks = name in ctx.pipeline.registry.get(model or None).voices
    return name, note, with_session_voice(ctx, model, name if engine_speaks else voice, name)


def with_session_voice(ctx: StudioContext, model: str | None, voice: str | None,
                       session_voice: str | None):
    """The Voice picker of `model`: its voices, and this session's one-off voice where the
    model speaks it; `voice` kept where it is still offered."""
    from ui.pickers import voice_choices

    try:
        choices = voice_choices(ctx.pipeline, model or None)
        engine = ctx.pipeline.registry.get(model or None)
    except TTSError:
        return gr.skip()
    if session_voice and session_voice in engine.voices:
        choices = choices + [(SESSION_LABEL, session_voice)]
    values = {value for _, value in choices}
    return gr.update(choices=choices, value=voice if voice in values else "")


def _clip_column(library: VoiceLibrary) -> dict:
    with gr.Column(scale=1):
        clip = gr.Audio(sources=["upload", "microphone"], type="filepath",
                        label="Your clip (upload or record)", elem_id="voice-clip")
        note = gr.Markdown(elem_id="voice-kept-note")
        kept = gr.Audio(label="Kept part (the voice is made from this)", interactive=False,
                        type="filepath", elem_id="voice-kept")
        transcript = gr.Textbox(label="Transcript of the kept part", lines=3,
                                elem_id="voice-transcript",
                                placeholder="Whisper fills this in after the upload; edit it."
                                if library.transcriber is not None else
                                "The words spoken in the clip.")
    return dict(clip=clip, note=note, kept=kept, transcript=transcript)


def _keep_column(library: VoiceLibrary) -> dict:
    cloners = [e.name for e in library.cloning_engines()]
    with gr.Column(scale=1):
        model = gr.Dropdown(cloners, value=cloners[0], label="Preview with",
                            elem_id="voice-preview-model")
        text = gr.Textbox(PREVIEW_TEXT, label="Preview sentence", elem_id="voice-preview-text")
        preview_btn = gr.Button("Preview", elem_id="voice-preview")
        heard = gr.Audio(label="Preview (not saved)", interactive=False, autoplay=True,
                         type="filepath", elem_id="voice-preview-audio")
        name = gr.Textbox(label="Name", elem_id="voice-name",
                          info="1 to 64 letters, digits, - or _")
        with gr.Row():
            save_btn = gr.Button("Save voice", variant="primary", elem_id="voice-save")
            once_btn = gr.Button("Use once (this session)", elem_id="voice-once")
        status = gr.Markdown(elem_id="voice-status")
    return dict(model=model, text=text, preview=preview_btn, heard=heard, name=name,
                save=save_btn, once=once_btn, status=status)


def _saved_list(library: VoiceLibrary) -> dict:
    gr.Markdown("### Saved voices")
    table = gr.Dataframe(saved_rows(library), headers=LIST_HEADERS, interactive=False,
                         elem_id="voice-list", wrap=True)
    with gr.Row():
        pick = gr.Dropdown(sorted(library.saved), value=None, label="Saved voice",
                           elem_id="voice-pick")
        play_btn = gr.Button("Play", elem_id="voice-play")
        delete_btn = gr.Button("Delete", variant="stop", elem_id="voice-delete")
    played = gr.Audio(label="Saved clip", interactive=False, type="filepath",
                      elem_id="voice-played")
    return dict(table=table, pick=pick, play=play_btn, delete=delete_btn, played=played)


def add_voices_panel(ctx: StudioContext, demo: gr.Blocks, page) -> VoicesTab | None:
    """The Voices tab, inside the current gr.Tabs (`tabs`), wired; None where no model clones."""
    if not cloning(ctx):
        return None
    library = library_for(ctx.pipeline)
    with gr.Tab("Voices", id="voices", elem_id="voices-tab") as tab:
        gr.Markdown(guidance(library, ctx.settings.max_upload_bytes), elem_id="voice-guidance")
        with gr.Row(equal_height=False):
            c = _clip_column(library)
            k = _keep_column(library)
        s = _saved_list(library)
        permission = gr.Markdown(elem_id="voice-permission")
    kept_wav = gr.State(None)
    session_voice = gr.State(None)  # the name; SessionVoices forgets the voice itself
    sessions = SessionVoices(library)
    device = {"api_visibility": "private", **ctx.device_queue()}
    c["clip"].change(bind(clip_changed, ctx), [c["clip"], c["transcript"]],
                     [c["kept"], c["note"], c["transcript"], kept_wav], api_visibility="private",
                     concurrency_id="voice-clip", concurrency_limit=2)
    k["preview"].click(bind(preview, ctx), [kept_wav, c["transcript"], k["model"], k["text"]],
                       k["heard"], **device)
    listed = [k["status"], s["table"], s["pick"]]
    k["save"].click(bind(save, ctx), [k["name"], kept_wav, c["transcript"]], listed, **device)
    s["delete"].click(bind(delete, ctx), s["pick"], listed, api_visibility="private")
    s["play"].click(bind(play, ctx), s["pick"], s["played"], **PRIVATE)
    k["once"].click(bind(use_once, ctx, sessions), [kept_wav, c["transcript"], page.model,
                                                    page.voice],
                    [session_voice, k["status"], page.voice], **device)

    def page_closed(call: gr.Request):
        sessions.end(call.session_hash if call is not None else None)

    demo.unload(page_closed)
    tab.select(lambda: _listed(library), None, [s["table"], s["pick"]], **PRIVATE)

    demo.load(bind(permissions, ctx), None, [k["save"], s["delete"], permission], **PRIVATE)
    return VoicesTab(session_voice, sessions)
