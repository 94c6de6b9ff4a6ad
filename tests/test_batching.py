"""Micro-batching in the gate, first audio fast, seamless joins."""

import threading

import numpy as np
import pytest

from fakes import BatchingFakeEngine, fake_pipeline
from tts_core import Pipeline, Settings, SpeechRequest, SynthesisError
from tts_core.gate import DeviceGate
from tts_core.windows import FIRST_WINDOW_FRAMES
from waiting import wait_until

TEXTS = [
    "A short one.",
    "This one is a good deal longer, so the batch must pad it.",  # one sentence each
    "Medium length words here.",
    "And the last of the four requests in this batch.",
]


def concurrently(fn, args):
    results, errors = {}, {}
    barrier = threading.Barrier(len(args))

    def worker(i, a):
        barrier.wait()
        try:
            results[i] = fn(a)
        except Exception as e:  # collected for the assertions
            errors[i] = e

    threads = [threading.Thread(target=worker, args=(i, a)) for i, a in enumerate(args)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors


def blocked_gate_batch(pipeline: Pipeline, texts: list[str], **kwargs):
    """Hold the device (every slot) while `texts` line up, so they all wait and are taken as
    one batch."""
    release = threading.Event()
    holders = [threading.Thread(target=lambda: pipeline.gate.run(release.wait))
               for _ in range(pipeline.gate.slots)]
    for holder in holders:
        holder.start()
    wait_until(lambda: pipeline.gate.slots_in_use == pipeline.gate.slots, what="every slot held")
    out = {}

    def run_all():
        out["results"], out["errors"] = concurrently(
            lambda t: pipeline.synthesize(SpeechRequest(t, **kwargs)), texts)

    runner = threading.Thread(target=run_all)
    runner.start()
    wait_until(lambda: len(pipeline.gate._turns) == len(texts), what="every text in line")
    release.set()
    for t in (*holders, runner):
        t.join(60)
    return out["results"], out["errors"]


@pytest.fixture(scope="module")
def noiseless(tiny_vits_dir):
    """The embedded voice and a tiny VITS with sampling noise off: deterministic outputs."""
    return Pipeline.from_settings(Settings.from_env({
        "TTS_MODELS": f"joe?noise_scale=0&noise_w=0,vits:{tiny_vits_dir}?name=tiny&noise_scale=0&noise_w=0",
        "TTS_MAX_BATCH": "8", "TTS_BATCH_WAIT_MS": "5"}))


@pytest.mark.parametrize("model", ["en_US-joe-medium", "tiny"])
def test_batched_audio_equals_each_request_alone(noiseless, model):
    texts = [t.lower() if model == "tiny" else t for t in TEXTS]
    alone = [noiseless.synthesize(SpeechRequest(t, model=model)).audio for t in texts]
    gate = noiseless.gate
    turns, items = gate.turns_served, gate.items_served
    results, errors = blocked_gate_batch(noiseless, texts, model=model)
    # The holders' turns (one a slot) plus one turn for all four: they ran as one batch.
    assert not errors and (gate.turns_served - turns, gate.items_served - items) == (
        gate.slots + 1, gate.slots + 4)
    engine = noiseless.registry.get(model)
    # VITS' vocoder reads a little past an item's end, into the padding, so its last two
    # frames may differ from a lone run; everything before them is the same.
    tail = 2 * int(np.prod(engine.model.config.upsample_rates)) if model == "tiny" else 0
    for i, reference in enumerate(alone):
        batched = results[i].audio
        assert batched.shape == reference.shape
        n = reference.shape[0] - tail
        np.testing.assert_allclose(batched[:n], reference[:n], atol=1e-3)


def test_a_bad_item_fails_only_its_own_request():
    engine = BatchingFakeEngine(infer_s=0.05, fail_on="boom")
    pipeline = fake_pipeline(engine, max_batch=8)
    texts = ["fine one", "this will boom", "fine two", "fine three"]
    results, errors = blocked_gate_batch(pipeline, texts)
    assert max(engine.batch_sizes) == 4  # they did share a batch, which failed
    assert set(errors) == {1} and isinstance(errors[1], SynthesisError)
    assert sorted(results) == [0, 2, 3]
    for i in results:
        assert results[i].audio.shape[0] == len(texts[i]) * 100
    assert not pipeline.gate.busy and pipeline.gate.queue_depth == 0


def test_seeded_requests_are_never_batched():
    engine = BatchingFakeEngine(infer_s=0.02)
    pipeline = fake_pipeline(engine, max_batch=8)
    results, errors = blocked_gate_batch(pipeline, ["one", "two", "three"], seed=5)
    assert not errors and set(engine.batch_sizes) == {1}


def test_batch_size_is_bounded():
    gate = DeviceGate(max_requests=32, max_batch=3)
    sizes = []
    release = threading.Event()
    holder = threading.Thread(target=lambda: gate.run(release.wait))
    holder.start()
    wait_until(lambda: gate.busy, what="the holder took the device")
    threads = [threading.Thread(target=gate.run_item, args=("k", i, lambda items: (
        sizes.append(len(items)), items)[1])) for i in range(7)]
    for t in threads:
        t.start()
    wait_until(lambda: len(gate._turns) == 7, what="seven items in line")
    release.set()
    for t in [holder, *threads]:
        t.join(10)
    assert sorted(sizes) == [1, 3, 3] and sum(sizes) == 7


def test_first_streamed_piece_is_one_small_window_of_a_whole_sentence(pipeline):
    sentence = "This sentence of a long text goes on for a while, with a pause."
    chunks = list(pipeline.stream(SpeechRequest(" ".join([sentence] * 25))))
    engine = pipeline.registry.default
    assert chunks[0].text == sentence  # the sentence is whole: only its decoding is windowed
    assert chunks[0].audio.shape[0] == FIRST_WINDOW_FRAMES * engine.samples_per_frame
    assert sorted({c.sentence for c in chunks}) == list(range(25))
    assert {c.text for c in chunks} == {sentence}


def test_chunk_joins_have_no_discontinuity(pipeline):
    chunks = list(pipeline.stream(SpeechRequest(
        "Hello there, friend. This is the second part. And a third one.")))
    for left, right in zip(chunks, chunks[1:]):
        if left.sentence != right.sentence:
            # What a listener hears between sentences: the step from one's last sample to the
            # next's first. (Inside a sentence, windows join into the whole decode: test_faithful.)
            assert abs(float(left.audio[-1]) - float(right.audio[0])) < 1e-3
    # Every join, a window's inside a sentence too, steps no more than the voice itself ever
    # steps from one sample to the next inside a piece, away from its edges (about 0.34 here):
    # a click at a join does more.
    own_largest_step = max(float(np.max(np.abs(np.diff(c.audio[1:-1])))) for c in chunks)
    joins = [abs(float(left.audio[-1]) - float(right.audio[0]))
             for left, right in zip(chunks, chunks[1:])]
    assert max(joins) <= own_largest_step, (joins, own_largest_step)
