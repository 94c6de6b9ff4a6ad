"""The page's small things (issue 25), checked without a browser: the wrong-script error's letters,
the history row's markup, the upload boxes' limit, the loudness control's values."""

import re
from html.parser import HTMLParser

import pytest

from fakes import FakeEngine, fake_pipeline
from tts_core import InputError, SpeechRequest
from ui.html import history_html


def english_fake():
    engine = FakeEngine(infer_s=0.001)
    engine.language_tag = "en"  # the English path: its alphabet is Latin
    return fake_pipeline(engine)


def test_the_wrong_script_error_lists_letters_as_letters_not_as_a_word():
    pipeline = english_fake()
    with pytest.raises(InputError) as e:
        pipeline.synthesize(SpeechRequest("Привет, как дела? Это тест.", model="fake"))
    message = str(e.value)
    # Each letter once, in order, separated: a person reads letters, not a fake word.
    assert "(letters П, р, и, в, е, т, к, а, д, л, Э, о ...)" in message, message
    assert "Привет" not in message and "ПриветкадлЭо" not in message


def test_ssml_wrong_script_error_lists_letters_too():
    pipeline = english_fake()
    with pytest.raises(InputError, match=r"\(letters 你, 好\)"):
        pipeline.synthesize(SpeechRequest("<speak>你好</speak>", model="fake"))


class _Row(HTMLParser):
    """The text nodes that sit directly in a history row (each is a flex item of its own)."""

    def __init__(self):
        super().__init__()
        self.depth, self.loose = 0, []

    def handle_starttag(self, tag, attrs):
        if ("class", "history-item") in attrs:
            self.depth = 1
        elif self.depth:
            self.depth += 1

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth == 1 and data.strip():
            self.loose.append(data.strip())


def test_a_history_row_keeps_its_comma_with_the_model_name():
    entry = dict(path="/tmp/a.wav", text="Hello.", model="en_US-joe-medium", voice="default",
                 total_ms=120.0, first_audio_ms=60.0, audio_seconds=1.2, words=None)
    row = _Row()
    row.feed(history_html([entry]))
    # A bare ", default: ..." after <b>model</b> is laid out as its own flex item: on a phone
    # it starts a line with the comma ("en_US-joe-medium , default:").
    assert row.loose == [], row.loose
    assert re.search(r"<b>en_US-joe-medium</b>, default: 1\.2 s of audio", history_html([entry]))


# ---- loudness on the page and in /synthesize, /captioned --------------------------------------

MAX_ERROR_LU = 1.0  # the tolerance the HTTP loudness tests use (test_loudness.py)
LOUD_TEXT = "Close the front door, and bring the letters in before the rain starts."


def lufs_of(path) -> float:
    import soundfile as sf
    from tts_core.loudness import integrated_lufs

    audio, rate = sf.read(path, dtype="float32")
    return integrated_lufs(audio, rate)


def test_gradio_client_calls_synthesize_and_captioned_with_old_arguments_and_with_loudness(
        quiet_url):
    from gradio_client import Client

    client = Client(quiet_url, verbose=False)
    # Old callers: five arguments, as before the control existed (the server's default: off).
    old, old_record = client.predict(LOUD_TEXT, "", "", 1.0, -1, api_name="/synthesize")
    loud, record = client.predict(LOUD_TEXT, "", "", 1.0, -1, "-16", api_name="/synthesize")
    quiet, quiet_record = client.predict(LOUD_TEXT, "", "", 1.0, -1, -23, api_name="/synthesize")
    assert old_record["loudness_target_lufs"] is None
    assert abs(lufs_of(loud) + 16) <= MAX_ERROR_LU and record["loudness_target_lufs"] == -16
    assert abs(record["loudness_lufs"] + 16) <= MAX_ERROR_LU
    assert abs(lufs_of(quiet) + 23) <= MAX_ERROR_LU and quiet_record["loudness_target_lufs"] == -23
    assert abs(lufs_of(old) - old_record["loudness_lufs"]) < 0.01
    assert abs(lufs_of(old) + 16) > 2, "the voice's own level happens to be -16: pick a target"
    old_wav, old_words, _ = client.predict(LOUD_TEXT, "", "", 1.0, -1, api_name="/captioned")
    wav, words, srt = client.predict(LOUD_TEXT, "", "", 1.0, -1, "-14", api_name="/captioned")
    assert [w["word"] for w in words] == [w["word"] for w in old_words]
    assert abs(lufs_of(wav) + 14) <= MAX_ERROR_LU and abs(lufs_of(old_wav) + 14) > 2
    with pytest.raises(Exception, match="Loudness must be a number from -40 to -9 LUFS"):
        client.predict(LOUD_TEXT, "", "", 1.0, -1, "-3", api_name="/synthesize")


def test_the_loudness_control_offers_off_and_the_three_norms_and_keeps_the_servers_default():
    from ui.pickers import loudness_choices

    choices, value = loudness_choices(None)
    assert [v for _, v in choices] == ["off", "-23", "-16", "-14"] and value == "off"
    assert [label for label, _ in choices][1:] == [
        "-23 LUFS (broadcast, EBU R128)", "-16 LUFS (podcast)", "-14 LUFS (streaming services)"]
    assert loudness_choices(-16.0)[1] == "-16"
    choices, value = loudness_choices(-20.0)
    assert value == "-20" and choices[-1] == ("-20 LUFS (this server's default)", "-20")


# ---- the Dia dialogue helper -----------------------------------------------------------------


@pytest.fixture(scope="module")
def dia_pipeline(tmp_path_factory):
    from tiny_models import make_tiny_dia
    from tts_core import Pipeline, Settings

    folder = make_tiny_dia(tmp_path_factory.mktemp("models") / "tiny-dia")
    return Pipeline.from_settings(Settings.from_env({"TTS_MODELS": f"joe,dia:{folder}?name=tiny-dia"}))


def test_dias_card_carries_its_dialogue_convention_and_others_none(dia_pipeline):
    from ui.pickers import dialogue_markdown

    card = dia_pipeline.registry.card("tiny-dia")
    assert card.dialogue.speakers == ("[S1]", "[S2]") and "(laughs)" in card.dialogue.nonverbal
    assert card.dialogue.example.startswith("[S1]") and "[S2]" in card.dialogue.example
    shown = dialogue_markdown(card)
    assert "`[S1]` and `[S2]`" in shown and "`(clears throat)`" in shown
    assert "Text without a tag is spoken by [S1]" in shown
    assert dia_pipeline.registry.card("en_US-joe-medium").dialogue is None
    assert dialogue_markdown(dia_pipeline.registry.card("en_US-joe-medium")) == ""


def test_dia_gets_the_speaker_tags_as_typed_and_a_turn_keeps_its_speaker(dia_pipeline):
    """The English number reading made "[S2]" into "[S two ]" before Dia read it; a sentence
    with no tag of its own is spoken by whoever spoke last, [S1] before any (what the helper
    says): Dia is given one sentence at a time, so a turn's second sentence was [S1]."""
    engine = dia_pipeline.registry.engines["tiny-dia"]
    seen, prepare = [], engine._prepare
    engine._prepare = lambda text, voice: seen.append(prepare(text, voice)["text"]) or prepare(text, voice)
    try:
        dia_pipeline.synthesize(SpeechRequest(engine.dialogue.example, model="tiny-dia", seed=1))
        assert seen == ["[S1] Did you finish the last chapter?",
                        "[S2] Almost, I stopped at the storm (sighs) because it kept me up.",
                        "[S1] It gets better, I promise (laughs).",
                        "[S2] You said that about the first one."], seen
        seen.clear()
        dia_pipeline.synthesize(SpeechRequest("No tag here. [S2] Then the second speaker.",
                                              model="tiny-dia", seed=1))
        assert seen == ["[S1] No tag here.", "[S2] Then the second speaker."], seen
        seen.clear()  # a turn of several sentences keeps its speaker, in markup too
        for text in ("[S2] Almost. I stopped at the storm. [S1] Go on.",
                     "<speak>[S2] Almost. I stopped at the storm. [S1] Go on.</speak>"):
            dia_pipeline.synthesize(SpeechRequest(text, model="tiny-dia", seed=1))
            assert seen == ["[S2] Almost.", "[S2] I stopped at the storm.", "[S1] Go on."], seen
            seen.clear()
    finally:
        engine._prepare = prepare
