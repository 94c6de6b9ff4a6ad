"""Word timings and subtitles: from the models' own durations, as typed, on every route."""

import base64
import io
import json
import threading
from dataclasses import replace

import httpx
import pytest
import soundfile as sf
import srt
import webvtt

from fakes import FakeEngine, fake_pipeline
from tts_core import InputError, SpeechRequest
from tts_core.text import expand
from tts_core.timings import (WORD_BREAK, WordTiming, source_words, to_srt, to_vtt, unit_owners)

DONE_WHEN = "Hello there. It is 9:30 now."
TEXT = "Hello there. I paid $20 for a ticket, and it starts at 3:30 PM on May 5th."
FRAME_S = 256 / 22050  # one frame of the joe voice


def typed_words(text):
    return text.split()


def assert_in_order(words, duration_s):
    assert words, "no words"
    for a, b in zip(words, words[1:]):
        assert a.start < a.end <= b.start + 1e-6, (a, b)
    assert words[0].start >= 0 and words[-1].end <= duration_s + 1e-6


# --- the pieces, exactly ---------------------------------------------------------------------


@pytest.mark.parametrize("typed, expected", [
    ("Hello there.", [("Hello", 0, 1), ("there.", 1, 2)]),
    ("I paid $20 now.", [("I", 0, 1), ("paid", 1, 2), ("$20", 2, 4), ("now.", 4, 5)]),
    ("It is 9:30 now.", [("It", 0, 1), ("is", 1, 2), ("9:30", 2, 4), ("now.", 4, 5)]),
    ("Room No. 5 now.", [("Room", 0, 1), ("No. 5", 1, 3), ("now.", 3, 4)]),  # said as one
    ("On May 5 we go.", [("On", 0, 1), ("May", 1, 2), ("5", 2, 3), ("we", 3, 4), ("go.", 4, 5)]),
    ("Dr. Smith & me", [("Dr.", 0, 1), ("Smith", 1, 2), ("&", 2, 3), ("me", 3, 4)]),
    ("Wait — what?", [("Wait", 0, 1), ("—", 1, 2), ("what?", 2, 3)]),
])
def test_typed_words_map_to_what_they_became(typed, expected):
    spoken = expand(typed)
    words = source_words(typed, spoken, expand)
    assert [(w.text, w.first, w.stop) for w in words] == expected
    assert words[-1].stop == len(spoken.split())


@pytest.mark.parametrize("case", ["joined", "split", "said differently"])
def test_units_land_on_their_words_when_the_phonemizer_joins_or_splits_them(case):
    B = WORD_BREAK
    if case == "joined":  # espeak says "of the" as one word
        words, spoken, expected = ["ʌv", "ðə", "kæt"], ["ʌvðɪ", B, "kæt"], "0011222"
    elif case == "split":  # and "example.com" as three
        words, spoken, expected = ["siː", "ɛɡzæmpəldɑtkɑm"], ["siː", B, "ɛɡzæmpəl", B, "dɑt", B, "kɑm"], \
            "000" + "1" * 14
    else:  # "a" alone is "ɐ", in "for a ticket" it is "ə"
        words, spoken, expected = ["fɔːɹ", "ɐ", "tɪkɪt"], ["fɔːɹ", B, "ə", B, "tɪkɪt"], "0000" + "1" + "22222"
    units = [None, ""] + [u for part in spoken for u in ([B] if part == B else [*part])] + [None]
    owners = unit_owners([list(w) for w in words], [units])[0]
    said = [owner for unit, owner in zip(units, owners) if unit and unit != B]
    assert "".join(map(str, said)) == expected
    assert owners[:2] == [None, None]  # the start mark and its pad belong to no word


def test_subtitles_parse_and_keep_the_times():
    words = [WordTiming("Hello", 0.05, 0.4), WordTiming("there.", 0.45, 0.9),
             WordTiming("It", 1.2, 1.3), WordTiming("is", 1.35, 1.5), WordTiming("9:30", 1.55, 2.2),
             WordTiming("now.", 2.25, 2.6)]
    cues = list(srt.parse(to_srt(words)))
    assert [c.content for c in cues] == ["Hello there.", "It is 9:30 now."]
    assert cues[0].start.total_seconds() == 0.05 and cues[1].end.total_seconds() == 2.6
    vtt = webvtt.from_buffer(io.StringIO(to_vtt(words)))
    assert [c.text for c in vtt] == ["Hello there.", "It is 9:30 now."]
    assert vtt[1].start == "00:00:01.200" and vtt[1].end == "00:00:02.600"


# --- in process, on the real voices ----------------------------------------------------------


def test_timings_do_not_change_the_speech(quiet_pipeline):
    for fmt in ("wav", "mp3"):
        plain = quiet_pipeline.synthesize(SpeechRequest(TEXT, format=fmt))
        timed = quiet_pipeline.synthesize(SpeechRequest(TEXT, format=fmt, timings=True))
        assert timed.data == plain.data
    plain = [c.data for c in quiet_pipeline.stream(SpeechRequest(TEXT), continuous=True)]
    timed = [c.data for c in quiet_pipeline.stream(SpeechRequest(TEXT, timings=True),
                                                   continuous=True)]
    assert timed == plain


def test_piper_words_are_the_typed_words_in_order_across_the_audio(quiet_pipeline):
    result = quiet_pipeline.synthesize(SpeechRequest(TEXT, timings=True))
    assert [w.word for w in result.words] == typed_words(TEXT)
    assert_in_order(result.words, result.duration_s)
    by_word = {w.word: w for w in result.words}
    # "$20" is "twenty dollars": longer than "for" after it, and it starts where "paid" ends.
    assert by_word["$20"].end - by_word["$20"].start > 2 * (by_word["for"].end - by_word["for"].start)
    # The second sentence starts after the first one's audio (a whole chunk later).
    assert by_word["I"].start > by_word["there."].end + 0.1


def test_timings_follow_the_speed(quiet_pipeline):
    normal = quiet_pipeline.synthesize(SpeechRequest(DONE_WHEN, timings=True))
    fast = quiet_pipeline.synthesize(SpeechRequest(DONE_WHEN, speed=2.0, timings=True))
    assert [w.word for w in fast.words] == [w.word for w in normal.words]
    assert_in_order(fast.words, fast.duration_s)
    ratio = fast.words[-1].end / normal.words[-1].end
    assert abs(ratio - fast.duration_s / normal.duration_s) < 0.05 and ratio < 0.65


def test_streamed_words_come_with_their_pieces_and_match_the_whole_file(quiet_pipeline):
    whole = quiet_pipeline.synthesize(SpeechRequest(TEXT, timings=True))
    pieces = list(quiet_pipeline.stream(SpeechRequest(TEXT, timings=True)))
    streamed = [w for p in pieces for w in p.words]
    assert [w.word for w in streamed] == [w.word for w in whole.words]
    for a, b in zip(streamed, whole.words):
        assert abs(a.start - b.start) <= FRAME_S and abs(a.end - b.end) <= FRAME_S
    at = 0.0
    for piece in pieces:
        end = at + piece.audio.shape[0] / piece.sample_rate
        # A piece carries the words that start in it (a sentence's words are known at its
        # first stage, before its first window leaves).
        assert all(at - 1e-6 <= w.start < end for w in piece.words), (at, end, piece.words)
        at = end
    assert len(pieces) > len({p.sentence for p in pieces})  # windows, not whole sentences


def test_a_batched_item_keeps_its_own_words():
    from tts_core import Pipeline, Settings

    batching = Pipeline.from_settings(Settings.from_env({
        "TTS_MODELS": "joe?noise_scale=0&noise_w=0", "TTS_MAX_BATCH": "4", "TTS_BATCH_WAIT_MS": "50",
        "TTS_CPU_SLOTS": "1"}))  # one device slot: the waiting requests batch
    engine = batching.registry.default
    sizes = []
    timed = engine.infer_batch_timed
    engine.infer_batch_timed = lambda items, params: sizes.append(len(items)) or timed(items, params)
    texts = ["Close the front door.", "I paid $20 for it.", "It is 9:30 now, isn't it?",
             "She opened the window and let the cold air in."]
    alone = {t: batching.synthesize(SpeechRequest(t, timings=True)).words for t in texts}
    sizes.clear()
    together, threads = {}, []
    for t in texts:
        threads.append(threading.Thread(
            target=lambda t=t: together.__setitem__(
                t, batching.synthesize(SpeechRequest(t, timings=True)).words)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(sizes) > 1, sizes  # some of them did share a device call
    for t in texts:
        assert [w.word for w in together[t]] == typed_words(t)
        for a, b in zip(together[t], alone[t]):
            assert abs(a.start - b.start) < 3 * FRAME_S and abs(a.end - b.end) < 3 * FRAME_S


@pytest.mark.parametrize("model", ["tiny-vits", "tiny-vctk"])
def test_transformers_vits_words_from_its_duration_predictor(pipeline, model):
    request = SpeechRequest("I paid $20 for a ticket.", model=model, timings=True)
    result = pipeline.synthesize(request)
    assert [w.word for w in result.words] == ["I", "paid", "$20", "for", "a", "ticket."]
    assert_in_order(result.words, result.duration_s)
    streamed = [w for p in pipeline.stream(replace(request, seed=3)) for w in p.words]
    assert [w.word for w in streamed] == [w.word for w in result.words]


def test_families_without_durations_say_so_and_get_none():
    fake = fake_pipeline(FakeEngine())
    with pytest.raises(InputError, match="no phoneme durations, so it has no word timings"):
        fake.synthesize(SpeechRequest("hello", timings=True))
    assert fake.synthesize(SpeechRequest("hello")).words is None
    assert fake.models()[0]["word_timings"] is False


# --- the routes ------------------------------------------------------------------------------


def test_http_captioned_matches_the_done_when_curl(studio):
    r = httpx.post(f"{studio.url}/v1/audio/captioned", json={"input": DONE_WHEN}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"audio", "format", "sample_rate", "words", "srt", "vtt", "latency"}
    assert body["format"] == "mp3" and body["sample_rate"] == 22050
    audio, rate = sf.read(io.BytesIO(base64.b64decode(body["audio"])), dtype="float32")
    words = [WordTiming(**w) for w in body["words"]]
    assert [w.word for w in words] == typed_words(DONE_WHEN)
    assert_in_order(words, audio.shape[0] / rate)
    assert words[-1].end > 0.8 * body["latency"]["audio_seconds"]  # they span the audio
    cues = list(srt.parse(body["srt"]))
    assert " ".join(c.content for c in cues) == DONE_WHEN
    assert [c.text for c in webvtt.from_buffer(io.StringIO(body["vtt"]))] == [c.content for c in cues]


def test_http_captioned_stream_is_ndjson_with_live_captions(studio):
    text = "The first sentence is long enough to be sent in several windows of audio. Then a second."
    with httpx.stream("POST", f"{studio.url}/v1/audio/captioned", timeout=60,
                      json={"input": text, "stream": True, "response_format": "wav"}) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in r.iter_lines() if line]
    *pieces, last = lines
    assert len(pieces) > 2 and last["done"] is True and last["latency"]["audio_seconds"] > 0
    at, words = 0.0, []
    for piece in pieces:
        audio, rate = sf.read(io.BytesIO(base64.b64decode(piece["audio"])), dtype="float32")
        end = at + audio.shape[0] / rate
        assert all(at - 1e-3 <= w["start"] < end for w in piece["words"])  # times in the whole audio
        words += piece["words"]
        at = end
    assert [w["word"] for w in words] == typed_words(text) and last["words"] == words
    assert len(list(srt.parse(last["srt"]))) >= 2


def test_http_captioned_errors_are_clear(studio):
    r = httpx.post(f"{studio.url}/v1/audio/captioned", json={"input": "hi", "loudness": "loud"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "loudness"
    r = httpx.post(f"{studio.url}/v1/audio/captioned", json={"input": ""})
    assert r.status_code == 400 and "empty" in r.json()["error"]["message"]


def test_gradio_captioned_returns_audio_words_and_an_srt_file(client):
    wav_path, words, srt_path = client.predict(DONE_WHEN, api_name="/captioned")
    audio, rate = sf.read(wav_path, dtype="float32")
    timed = [WordTiming(**w) for w in words]
    assert [w.word for w in timed] == typed_words(DONE_WHEN)
    assert_in_order(timed, audio.shape[0] / rate)
    assert srt_path.endswith(".srt")
    with open(srt_path, encoding="utf-8") as f:
        assert " ".join(c.content for c in srt.parse(f.read())) == DONE_WHEN
    path, record = client.predict(DONE_WHEN, api_name="/synthesize")  # unchanged: two outputs
    assert path.endswith(".wav") and "total_ms" in record


def test_runpod_timings_add_words_srt_and_vtt(quiet_pipeline):
    from tts_core.runpod_worker import make_handlers

    handle, handle_stream = make_handlers(quiet_pipeline)
    out = handle({"input": {"text": DONE_WHEN, "timings": True}})
    assert [w["word"] for w in out["words"]] == typed_words(DONE_WHEN)
    assert list(srt.parse(out["srt"])) and out["vtt"].startswith("WEBVTT")
    assert "words" not in handle({"input": {"text": DONE_WHEN}})
    parts = list(handle_stream({"input": {"text": DONE_WHEN, "timings": True, "stream": True}}))
    assert [w["word"] for p in parts[:-1] for w in p["words"]] == typed_words(DONE_WHEN)
    assert parts[-1]["words"] == out["words"] and parts[-1]["srt"] == out["srt"]
    assert "must be true or false" in handle({"input": {"text": "hi", "timings": "yes"}})["error"]
