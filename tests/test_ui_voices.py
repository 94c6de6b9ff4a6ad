"""The Voices tab's events over a real voice library (Whisper included) and a cloning fake:
the kept part and transcript of a clip, who may save, a bad clip's message, a one-off voice
that never reaches the disk and goes with its page, and open pages' pickers that follow."""

from __future__ import annotations

import io
import threading

import gradio as gr
import httpx
import numpy as np
import pytest
import soundfile as sf

from fakes import FAKE_RATE, CloningFakeEngine
from tts_core import Pipeline, Settings, SpeechRequest
from tts_core.config import OPENAI_VOICES
from tts_core.engines import WarmModel
from tts_core.errors import UnknownVoiceError
from tts_core.http.context import ApiContext
from tts_core.registry import Registry, warm_load
from ui import voices
from ui.context import StudioContext
from ui.refresh import pickers_if_changed
from waiting import wait_until

KEY = "s3cret"
SPOKEN = ("The quick brown fox jumps over the lazy dog. Then it runs far away into the green "
          "forest, and nobody sees it again.")


@pytest.fixture(scope="module")
def joe() -> Registry:
    return warm_load(Settings.from_env({"TTS_MODELS": "joe?noise_scale=0&noise_w=0"}))


@pytest.fixture(scope="module")
def speech_wav(joe, tmp_path_factory) -> str:
    """About 7 s of joe saying SPOKEN, half a second of silence at each end, as a WAV file."""
    audio = Pipeline.from_registry(joe, Settings()).synthesize(SpeechRequest(SPOKEN)).audio
    pad = np.zeros(joe.default.sample_rate // 2, np.float32)
    path = tmp_path_factory.mktemp("clips") / "speech.wav"
    sf.write(path, np.concatenate([pad, audio, pad]), joe.default.sample_rate)
    return str(path)


def studio(joe, folder, **settings) -> tuple[StudioContext, CloningFakeEngine]:
    """joe beside a cloning fake, the voice library over `folder`."""
    cloner = CloningFakeEngine()
    registry = Registry({joe.default.name: joe.default, cloner.name: cloner},
                        [joe.warm[0], WarmModel(cloner.card(), 0, 0)])
    pipeline = Pipeline.from_registry(registry, Settings(voices_dir=str(folder), **settings))
    return StudioContext(pipeline, streaming=False), cloner


def kept_clip(ctx, path) -> tuple[tuple, str, str, bytes]:
    return voices.clip_changed(ctx, path, "")


def test_a_clip_shows_its_kept_part_and_whispers_transcript(joe, speech_wav, tmp_path):
    ctx, _ = studio(joe, tmp_path)
    (rate, audio), note, transcript, kept = kept_clip(ctx, speech_wav)
    original = sf.info(speech_wav).duration
    assert rate == joe.default.sample_rate and audio.dtype == np.int16
    assert 6.0 < audio.shape[0] / rate < original - 0.5  # the silent edges trimmed
    assert note.startswith(f"Kept **{audio.shape[0] / rate:.1f} s** of {original:.1f} s")
    assert "quick brown fox" in transcript.lower()  # Whisper heard it
    assert sf.info(io.BytesIO(kept)).frames == audio.shape[0]  # what is saved is what is shown


def test_a_long_clip_is_cut_at_a_pause_and_says_so(joe, speech_wav, tmp_path):
    ctx, cloner = studio(joe, tmp_path)
    cloner.limits = type(cloner.limits)(1.0, 4.0, cloner.limits.sample_rate, True)
    (rate, audio), note, transcript, _ = kept_clip(ctx, speech_wav)
    assert audio.shape[0] / rate <= 4.0 and "(cut at a pause)" in note
    assert transcript.lower().startswith("the quick brown fox") and "forest" not in transcript


@pytest.mark.parametrize("content, words", [
    (b"this is not audio at all" * 100, "not an audio file"),
    (None, "all silence"),
])
def test_a_bad_clip_gets_its_message_on_the_page(joe, tmp_path, content, words):
    ctx, _ = studio(joe, tmp_path)
    path = tmp_path / "upload.wav"
    if content is None:
        sf.write(path, np.zeros(5 * FAKE_RATE, np.float32), FAKE_RATE)
    else:
        path.write_bytes(content)
    kept, note, _, state = voices.clip_changed(ctx, str(path), "")
    assert kept is None and state is None
    assert note.startswith("**This clip cannot make a voice:**") and words in note


def test_with_a_key_saving_needs_the_operators_login(joe, speech_wav, tmp_path):
    ctx, cloner = studio(joe, tmp_path / "voices", api_key=KEY)
    _, _, transcript, kept = kept_clip(ctx, speech_wav)
    with pytest.raises(gr.Error, match="for the operator: this server has an API key"):
        voices.save(ctx, "narrator", kept, transcript, call=gr.Request(username=None))
    assert "narrator" not in cloner.voices and not (tmp_path / "voices" / "narrator").exists()
    status, rows, _ = voices.save(ctx, "narrator", kept, transcript,
                                  call=gr.Request(username="operator"))
    assert status.startswith("Saved **narrator**") and rows[0][0].startswith("narrator (")
    with pytest.raises(gr.Error, match="for the operator"):
        voices.delete(ctx, "narrator", call=gr.Request(username=None))
    assert "narrator" in cloner.voices


def test_the_buttons_say_why_they_are_off_and_the_tab_is_there_only_with_a_cloning_model(
        joe, tmp_path):
    from ui.studio import build_demo

    ctx, _ = studio(joe, tmp_path, api_key=KEY)
    save_btn, delete_btn, why = voices.permissions(ctx, gr.Request(username=None))
    assert save_btn["interactive"] is False and delete_btn["interactive"] is False
    assert "for the operator: this server has an API key" in why
    save_btn, _, why = voices.permissions(ctx, gr.Request(username="operator"))
    assert save_btn["interactive"] is True and why == ""

    def tabs(pipeline) -> list[str]:
        demo = build_demo(pipeline, streaming=False)
        return [b.label for b in demo.blocks.values() if isinstance(b, gr.Tab)]

    assert tabs(ctx.pipeline) == ["Speak", "Voices"]
    assert tabs(Pipeline.from_registry(joe, Settings(voices_dir=str(tmp_path)))) == []


def test_without_a_key_anyone_saves_and_a_taken_or_bad_name_is_said(joe, speech_wav, tmp_path):
    ctx, cloner = studio(joe, tmp_path)
    _, _, transcript, kept = kept_clip(ctx, speech_wav)
    status, rows, _ = voices.save(ctx, "narrator", kept, transcript, call=gr.Request())
    assert status.startswith("Saved **narrator**") and (tmp_path / "narrator" / "clip.wav").is_file()
    seconds = sf.info(tmp_path / "narrator" / "clip.wav").duration
    assert rows == [[f"narrator ({seconds:.1f} s)", transcript, "cloner"]]
    assert "narrator" in ctx.pipeline.registry.card("cloner").voices
    status, _, _ = voices.save(ctx, "narrator", kept, transcript, call=gr.Request())
    assert status == ("**Not saved:** A voice called 'narrator' is already saved; delete it "
                      "first or choose another name.")
    status, _, _ = voices.save(ctx, "my voice!", kept, transcript, call=gr.Request())
    assert status.startswith("**Not saved:** A voice's name is 1 to 64 letters")
    status, rows, _ = voices.delete(ctx, "narrator", call=gr.Request())
    assert status == "Deleted **narrator**." and rows == [] and "narrator" not in cloner.voices


def test_the_preview_speaks_the_new_voice_and_keeps_nothing(joe, speech_wav, tmp_path):
    ctx, cloner = studio(joe, tmp_path)
    _, _, transcript, kept = kept_clip(ctx, speech_wav)
    data = voices.preview(ctx, kept, transcript, "cloner", "Hello there.")
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    plain = ctx.pipeline.synthesize(SpeechRequest("Hello there.", model="cloner")).audio
    assert rate == FAKE_RATE and audio.shape == plain.shape and not np.allclose(audio, plain)
    assert cloner.voices == ("a", "b") and list(tmp_path.iterdir()) == []


def test_a_one_off_voice_is_never_on_disk_and_goes_when_its_page_closes(joe, speech_wav,
                                                                       tmp_path):
    from ui.studio import build_demo

    ctx, cloner = studio(joe, tmp_path)
    demo = build_demo(ctx.pipeline, streaming=False)
    tab = next(fn for fn in demo.fns.values() if fn.name == "use_once")
    _, _, transcript, kept = kept_clip(ctx, speech_wav)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        call = gr.Request(session_hash="page-one")
        first, _, _ = tab.fn(kept, transcript, "cloner", "", call=call)
        name, note, picker = tab.fn(kept, transcript, "cloner", "", call=call)
        assert first not in cloner.voices  # one per session: the last one replaced
        assert name in cloner.voices and "~" in name and "Nothing is saved" in note
        assert picker["value"] == name and (voices.SESSION_LABEL, name) in picker["choices"]
        assert list(tmp_path.iterdir()) == []  # nothing on disk
        assert name not in ctx.pipeline.registry.refresh_card("cloner").voices  # nor listed
        spoken = ctx.pipeline.synthesize(SpeechRequest("Hi.", model="cloner", voice=name))
        assert spoken.duration_s > 0
        # No other caller is shown it or given it: not in an unknown voice's list, never
        # an OpenAI voice name's pick.
        with pytest.raises(UnknownVoiceError) as error:
            ctx.pipeline.synthesize(SpeechRequest("Hi.", model="cloner", voice="nobody"))
        assert str(error.value).endswith("Its voices: a, b.")
        api = ApiContext(ctx.pipeline, None, None)
        assert {api.voice_for(cloner, v) for v in OPENAI_VOICES} == {"a", "b"}
        # The page's heartbeat ends (its tab closed): Gradio's unload forgets the voice.
        closed = threading.Event()

        def page_open():
            with httpx.stream("GET", f"{url}gradio_api/heartbeat/page-one", timeout=10) as r:
                next(r.iter_lines())
            closed.set()

        threading.Thread(target=page_open, daemon=True).start()
        assert closed.wait(10)
        wait_until(lambda: name not in cloner.voices, timeout=10,
                   what="the one-off voice forgotten after its page closed")
    finally:
        demo.close()


def test_open_pages_pickers_follow_a_saved_voice_and_keep_their_selection(joe, speech_wav,
                                                                          tmp_path):
    ctx, _ = studio(joe, tmp_path)
    drawn = ctx.pipeline.registry.revision
    assert pickers_if_changed(ctx, drawn, "", "cloner", "b") == (gr.skip(),) * 4
    _, _, transcript, kept = kept_clip(ctx, speech_wav)
    voices.save(ctx, "narrator", kept, transcript, call=gr.Request())
    revision, _, model, voice = pickers_if_changed(ctx, drawn, "", "cloner", "b")
    assert revision != gr.skip(), "the pickers were not redrawn after a voice was saved"
    assert revision > drawn and model["value"] == "cloner"
    assert ("narrator", "narrator") in voice["choices"] and voice["value"] == "b"
    assert pickers_if_changed(ctx, revision, "", "cloner", "b") == (gr.skip(),) * 4


def test_open_pages_pickers_follow_a_hot_added_and_a_removed_model(joe, tmp_path):
    ctx, _ = studio(joe, tmp_path)
    registry, drawn = ctx.pipeline.registry, ctx.pipeline.registry.revision
    added = CloningFakeEngine("cloner-two")
    registry.add(added, WarmModel(added.card(), 0, 0))
    revision, _, model, _ = pickers_if_changed(ctx, drawn, "", "cloner", "")
    assert revision != gr.skip(), "the pickers were not redrawn after a model was added"
    assert revision > drawn and model["value"] == "cloner"
    assert ("cloner-two (fake)", "cloner-two") in model["choices"]
    registry.withdraw("cloner")  # the model picked goes: the first one left is picked
    later, _, model, voice = pickers_if_changed(ctx, revision, "", "cloner", "a")
    assert later != gr.skip(), "the pickers were not redrawn after a model was removed"
    assert later > revision and "cloner" not in [name for _, name in model["choices"]]
    assert model["value"] == joe.default.name and voice["value"] == ""
