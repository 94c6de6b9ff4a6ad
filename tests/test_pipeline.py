"""The request path on real warm models: full-length audio, every latency key, clear errors."""

import math

import numpy as np
import pytest

from fakes import FakeEngine, fake_pipeline
from tts_core import (RECORD_KEYS, InputError, ModelLoadError, Settings, SpeechRequest,
                      SynthesisError, UnknownModelError, UnknownVoiceError)
from tts_core import registry as registry_module
from tts_core.errors import OutOfMemoryError
from tts_core.audio import decode


def test_whole_file_is_a_wav_with_every_latency_key(pipeline):
    result = pipeline.synthesize(SpeechRequest("Hello there. The studio is warm."))
    audio, rate = decode(result.data)
    assert rate == 22050 and result.format == "wav"
    assert abs(audio.shape[0] / rate - result.duration_s) < 0.01 and 1.0 < result.duration_s < 5
    record = result.record.to_dict()
    assert tuple(record) == RECORD_KEYS
    assert record["model"] == "en_US-joe-medium" and record["device"] == "cpu"
    assert record["chars"] == len("Hello there. The studio is warm.")
    assert record["inference_ms"] > 0 and record["total_ms"] >= record["inference_ms"]
    assert math.isclose(record["rtf"], record["inference_ms"] / 1000 / record["audio_seconds"],
                        rel_tol=0.01)
    # Nothing of a whole file is heard before the file is ready.
    assert result.record.first_audio_ms == result.record.total_ms


def test_long_text_is_spoken_in_full(quiet_pipeline):
    """With the voice's noise off a sentence always makes the same samples: 40 of them make
    exactly 40 times as many, so a lost or repeated chunk shows."""
    sentence = "Every sentence of this long text must be heard, none cut off."
    one = quiet_pipeline.synthesize(SpeechRequest(sentence)).audio.shape[0]
    many = quiet_pipeline.synthesize(SpeechRequest(" ".join([sentence] * 40)))  # about 2,500 characters
    assert len(" ".join([sentence] * 40)) > 2400
    assert many.audio.shape[0] == 40 * one


def test_stream_yields_each_sentence_in_playable_pieces(quiet_pipeline):
    text = "First sentence here, and it goes on for a while yet. Second one follows. And a third."
    synthesis = quiet_pipeline.stream(SpeechRequest(text))
    chunks = list(synthesis)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    sentences = ["First sentence here, and it goes on for a while yet.", "Second one follows.",
                 "And a third."]
    assert list(dict.fromkeys(c.text for c in chunks)) == sentences
    assert [c.sentence for c in chunks] == sorted(c.sentence for c in chunks)
    for c in chunks:
        audio, rate = decode(c.data)
        assert rate == 22050 and audio.shape[0] == c.audio.shape[0] > 0
    # The first sentence arrives in windows: its first piece is a fraction of it.
    first = [c for c in chunks if c.sentence == 0]
    assert len(first) > 1 and first[0].audio.shape[0] < sum(c.audio.shape[0] for c in first) / 3
    # Joined, the pieces are the whole-file request's samples, sentence for sentence.
    whole = quiet_pipeline.synthesize(SpeechRequest(text))
    assert sum(c.audio.shape[0] for c in chunks) == whole.audio.shape[0]
    record = synthesis.record
    assert record.first_audio_ms < record.total_ms
    assert math.isclose(record.audio_seconds, sum(c.audio.shape[0] for c in chunks) / 22050)


def test_vits_gets_numbers_spelled_out(pipeline):
    synthesis = pipeline.stream(SpeechRequest("Meet me at 3:30 PM on May 5th.", model="tiny-vits",
                                              seed=1))
    assert synthesis.chunks == ["Meet me at three thirty PM on May fifth."]
    assert sum(c.audio.shape[0] for c in synthesis) > 0


def test_vits_seed_reproducible_through_the_pipeline(pipeline):
    request = SpeechRequest("same words", model="tiny-vctk", voice="speaker_1", seed=11)
    a = pipeline.synthesize(request)
    b = pipeline.synthesize(request)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.sample_rate == 16000


@pytest.mark.parametrize("kwargs, error, words", [
    ({"text": ""}, InputError, "empty"),
    ({"text": "   \n\t "}, InputError, "empty"),
    ({"text": "\u200b\u200d\ufeff"}, InputError, "empty"),
    ({"text": "?!... —"}, InputError, "nothing to speak"),
    ({"text": "x" * 5001}, InputError, "5001 characters long; the limit is 5000"),
    ({"text": None}, InputError, "must be a string"),
    ({"text": "hi", "model": "nope"}, UnknownModelError, "Loaded models: en_US-joe-medium"),
    ({"text": "hi", "voice": "alloy"}, UnknownVoiceError, "Its voices: joe"),
    ({"text": "hi", "voice": "../../etc/passwd"}, UnknownVoiceError, "Unknown voice"),
    ({"text": "hi", "speed": 0}, InputError, "between 0.25 and 4.0"),
    ({"text": "hi", "speed": -1}, InputError, "between 0.25 and 4.0"),
    ({"text": "hi", "speed": 10}, InputError, "between 0.25 and 4.0"),
    ({"text": "hi", "speed": float("nan")}, InputError, "between 0.25 and 4.0"),
    ({"text": "hi", "speed": float("inf")}, InputError, "between 0.25 and 4.0"),
    ({"text": "hi", "speed": "fast"}, InputError, "must be a number"),
    ({"text": "hi", "speed": None}, InputError, "must be a number"),
    ({"text": "hi", "seed": 1.5}, InputError, "whole number"),
    ({"text": "hi", "seed": -2}, InputError, "between 0 and"),
    ({"text": "hi", "format": "aiff"}, InputError, "Unknown audio format"),
    ({"text": "日本語のテキスト", "model": "tiny-vits"}, InputError, "cannot pronounce"),
])
def test_bad_input_gets_a_clear_error_and_the_next_request_works(pipeline, kwargs, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(".", r"\.")):
        pipeline.synthesize(SpeechRequest(**kwargs))
    assert not pipeline.gate.busy and pipeline.gate.queue_depth == 0
    assert pipeline.synthesize(SpeechRequest("Still here.")).duration_s > 0


@pytest.mark.parametrize("kwargs, field", [
    ({"text": ""}, "text"), ({"text": None}, "text"), ({"text": "x" * 5001}, "text"),
    ({"text": "hi", "format": "aiff"}, "format"), ({"text": "hi", "speed": 9}, "speed"),
    ({"text": "hi", "seed": -2}, "seed"), ({"text": "hi", "voice": "alloy"}, "voice"),
    ({"text": "hi", "loudness": 3}, "loudness"),
])
def test_an_error_names_the_field_as_the_request_does(pipeline, kwargs, field):
    """The core speaks its own vocabulary (`text`, `format`); each entry point maps it to its
    own (the HTTP API to OpenAI's `input`, `response_format`)."""
    with pytest.raises(InputError) as raised:
        pipeline.synthesize(SpeechRequest(**kwargs))
    assert raised.value.param == field and hasattr(SpeechRequest("x"), field)


def test_rolling_stats_follow_requests():
    pipeline = fake_pipeline(FakeEngine(infer_s=0.001), stats_window=3)
    for i in range(5):
        pipeline.synthesize(SpeechRequest(f"request {i}"))
    s = pipeline.snapshot()
    assert (s["count"], s["served"], s["failed"], s["queue_depth"]) == (3, 5, 0, 0)
    assert s["p50_total_ms"] <= s["p95_total_ms"] and s["mean_rtf"] > 0


def test_each_outcome_is_counted_once_under_its_route():
    """Served, refused for bad input, stopped by its caller, failed in the model: one count
    each, under the route that asked, and only the model's failure is a server failure."""
    pipe = fake_pipeline(FakeEngine(infer_s=0.0, fail_on="boom"))

    def counts() -> dict:
        return {(s.labels["route"], s.labels["status"]): s.value
                for metric in pipe.prometheus.registry.collect() if metric.name == "tts_requests"
                for s in metric.samples if s.name == "tts_requests_total"}

    pipe.synthesize(SpeechRequest("Served whole."), route="a")
    list(pipe.stream(SpeechRequest("Served. As a stream."), route="b"))
    with pytest.raises(InputError):
        pipe.stream(SpeechRequest("Bad speed.", speed=99), route="c")
    stopped = pipe.stream(SpeechRequest("One. Two. Three."), route="d")
    next(iter(stopped))
    stopped.close()
    with pytest.raises(SynthesisError, match="simulated device fault"):
        pipe.synthesize(SpeechRequest("This will boom."), route="e")
    assert counts() == {("a", "ok"): 1, ("b", "ok"): 1, ("c", "bad_request"): 1,
                        ("d", "cancelled"): 1, ("e", "error"): 1}
    s = pipe.snapshot()
    assert (s["served"], s["failed"], s["queue_depth"]) == (2, 1, 0)


def test_a_progress_callback_that_fails_still_frees_the_gate():
    pipe = fake_pipeline(FakeEngine(infer_s=0.0), queue_size=1)

    def broken(done, total):
        raise RuntimeError("the browser tab went away")

    with pytest.raises(RuntimeError, match="went away"):
        pipe.synthesize(SpeechRequest("One sentence. Another sentence."), on_chunk=broken)
    assert pipe.gate.queue_depth == 0
    assert pipe.synthesize(SpeechRequest("The gate is free.")).audio.size > 0  # queue_size=1: it must be


def test_a_model_that_cannot_read_a_chunk_is_a_clear_error():
    class Unreadable(FakeEngine):
        def prepare(self, text, params):
            raise ValueError("a character outside the vocabulary")

    from tts_core.errors import SynthesisError

    pipe = fake_pipeline(Unreadable())
    with pytest.raises(SynthesisError, match="could not read chunk 1 of 1: a character outside"):
        pipe.synthesize(SpeechRequest("Hello."))
    assert pipe.gate.queue_depth == 0


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch as if on a CUDA machine (this one has none): `empty_cache` calls are recorded."""
    import torch

    emptied = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (2**30, 8 * 2**30))
    return emptied


def _cuda_oom(*args, **kwargs):
    import torch

    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_a_cuda_oom_in_a_request_empties_the_cache_and_frees_the_gate(monkeypatch, fake_cuda):
    engine = FakeEngine(infer_s=0)
    pipeline = fake_pipeline(engine)
    real = engine.infer
    monkeypatch.setattr(engine, "infer", _cuda_oom)
    with pytest.raises(OutOfMemoryError, match="'fake' ran out of memory on .*what could be freed "
                                               "was freed. Try again, or with a shorter text"):
        pipeline.synthesize(SpeechRequest("Too big for the device."))
    assert fake_cuda == [True]
    assert not pipeline.gate.busy and pipeline.gate.queue_depth == 0
    monkeypatch.setattr(engine, "infer", real)
    assert pipeline.synthesize(SpeechRequest("Fits now.")).duration_s > 0


@pytest.mark.parametrize("stage", ["load", "warm-up"])
def test_a_cuda_oom_while_loading_empties_the_cache(monkeypatch, fake_cuda, stage):
    def load(spec, device, threads):
        if stage == "load":
            _cuda_oom()
        engine = FakeEngine(infer_s=0)
        monkeypatch.setattr(engine, "warm_up", _cuda_oom)
        return engine

    monkeypatch.setattr(registry_module, "load_engine", load)
    with pytest.raises(ModelLoadError, match=f"does not fit in device memory beside the models "
                                             f"before it \\(out of memory during its {stage} "
                                             "\\(1.0 of 8.0 GiB free\\)"):
        registry_module.warm_load(Settings.from_env({"TTS_MODELS": "bark:suno/bark-small"}))
    assert fake_cuda == [True]
