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
