"""The app end to end: a real Gradio server, called with gradio_client like a user's code would."""

import json
import threading

import httpx
import numpy as np
import pytest
import soundfile as sf
from gradio_client.exceptions import AppError

from tts_core import RECORD_KEYS


def read_wav(path):
    audio, rate = sf.read(path, dtype="float32")
    return audio, rate, sf.info(path).format


def test_synthesize_returns_real_speech_and_every_latency_key(client):
    path, record = client.predict("Hello there.", api_name="/synthesize")
    audio, rate, fmt = read_wav(path)
    assert fmt == "WAV" and rate == 22050
    assert 0.4 < audio.shape[0] / rate < 3.0
    assert np.sqrt(np.mean(audio ** 2)) > 0.02  # speech, not silence
    # the record, then the loudness asked for (none here: the server's default, off) and measured
    assert tuple(record) == RECORD_KEYS + ("loudness_target_lufs", "loudness_lufs")
    assert record["loudness_target_lufs"] is None and record["loudness_lufs"] < -10
    assert record["model"] == "en_US-joe-medium" and record["chars"] == 12
    assert record["audio_seconds"] == pytest.approx(audio.shape[0] / rate, abs=0.01)


def test_synthesize_with_every_parameter(client):
    path, record = client.predict("hello there", "tiny-vctk", "speaker_2", 1.5, 42,
                                  api_name="/synthesize")
    audio, rate, _ = read_wav(path)
    assert rate == 16000 and audio.shape[0] > 0
    assert record["model"] == "tiny-vctk"
    again, _ = client.predict("hello there", "tiny-vctk", "speaker_2", 1.5, 42,
                              api_name="/synthesize")
    np.testing.assert_array_equal(sf.read(again)[0], sf.read(path)[0])


def test_models_lists_what_is_loaded(client):
    models = client.predict(api_name="/models")
    by_name = {m["name"]: m for m in models}
    assert list(by_name) == ["en_US-joe-medium", "tiny-vits", "tiny-vctk"]
    assert by_name["en_US-joe-medium"]["sample_rate"] == 22050
    assert by_name["tiny-vctk"]["voices"] == ["speaker_0", "speaker_1", "speaker_2"]
    assert all(m["device"] == "cpu" and m["load_s"] > 0 for m in models)


def test_only_the_documented_endpoints_are_public(client):
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {
        "/synthesize", "/models", "/captioned"}


@pytest.mark.parametrize("args, words", [
    (("",), "empty"),
    (("   ",), "empty"),
    (("x" * 5001,), "limit is 5000"),
    (("hi", "no-such-model"), "Unknown model 'no-such-model'"),
    (("hi", "en_US-joe-medium", "nobody"), "Unknown voice 'nobody'"),
    (("hi", "en_US-joe-medium", "", 0.1), "minimum"),
    (("hi", "en_US-joe-medium", "", 9), "maximum"),
])
def test_bad_input_is_a_clear_error_and_the_app_keeps_serving(client, args, words):
    with pytest.raises(AppError, match=words):
        client.predict(*args, api_name="/synthesize")
    path, _ = client.predict("Still serving.", api_name="/synthesize")
    assert sf.info(path).duration > 0.3


def test_nan_speed_sent_as_raw_json_is_refused(studio):
    """A browser cannot send NaN, but a hand-written client can: the pipeline still says no."""
    fn_index = next(i for i, fn in studio.demo.fns.items() if fn.api_name == "synthesize")
    # every input, as the raw queue protocol takes them (temperature and x-vector are None
    # stand-ins on this server; the loudness last)
    body = ('{"data": ["hi", "en_US-joe-medium", "", NaN, -1, null, null, "off"], "fn_index": %d, '
            '"session_hash": "nan-test", "event_data": null, "trigger_id": null}' % fn_index)
    join = httpx.post(f"{studio.url}/gradio_api/queue/join", content=body,
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert join.status_code == 200
    with httpx.stream("GET", f"{studio.url}/gradio_api/queue/data",
                      params={"session_hash": "nan-test"}, timeout=30) as events:
        for line in events.iter_lines():
            if line.startswith("data:") and '"process_completed"' in line:
                message = json.loads(line[5:])
                break
    assert message["success"] is False
    assert "between 0.25 and 4.0" in message["output"]["error"]


def test_four_clients_three_requests_each_share_one_gate(studio):
    """Twelve requests at once: all succeed, no more run on the device at once than it has
    slots (this CPU server's two; a GPU has one), waiting is measured."""
    from gradio_client import Client

    engine = studio.pipeline.registry.get(None)
    lock, active, peak = threading.Lock(), [0], [0]
    real_infer = engine.infer_batch  # the device call the gate makes

    def counting_infer(prepared, params):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return real_infer(prepared, params)
        finally:
            with lock:
                active[0] -= 1

    engine.infer_batch = counting_infer
    gate, per_client = studio.pipeline.gate, studio.pipeline.gate.max_per_client
    gate.max_per_client = None  # four clients on one loopback address: not one client's share
    try:
        clients = [Client(studio.url, verbose=False) for _ in range(4)]
        jobs = [c.submit(f"Client {i} sends request {j}. It has two sentences.",
                         api_name="/synthesize") for i, c in enumerate(clients) for j in range(3)]
        results = [job.result(timeout=120) for job in jobs]
    finally:
        engine.infer_batch = real_infer
        gate.max_per_client = per_client
    records = [record for _, record in results]
    assert len(records) == 12 and all(sf.info(path).duration > 1 for path, _ in results)
    slots = studio.pipeline.gate.slots
    assert peak[0] == slots, f"{peak[0]} inferences ran at once on a device with {slots} slots"
    waits = sorted(r["queue_ms"] for r in records)
    median_inference = float(np.median([r["inference_ms"] for r in records]))
    # The last to run waited for several whole inferences, and the gate measured it.
    assert waits[-1] >= 3 * median_inference, (waits, median_inference)


def test_a_full_waiting_room_tells_the_person_to_try_again(serve):
    """Gate places for one request: the overflow hears "busy", and the app serves afterwards."""
    from gradio_client import Client

    from fakes import FakeEngine, fake_pipeline

    small = fake_pipeline(FakeEngine(infer_s=0.4), queue_size=1)
    client = Client(serve(small), verbose=False)
    jobs = [client.submit(f"request {i}", "fake", "", 1.0, -1, api_name="/synthesize")
            for i in range(4)]
    outcomes = []
    for job in jobs:
        try:
            job.result(timeout=60)
            outcomes.append("served")
        except Exception as e:  # each refusal must say why
            assert "busy" in str(e).lower() or "queue is full" in str(e).lower(), e
            outcomes.append("refused")
    assert "served" in outcomes and "refused" in outcomes, outcomes
    assert small.gate.queue_depth == 0 and not small.gate.busy
    path, _ = client.predict("after the rush", "fake", "", 1.0, -1, api_name="/synthesize")
    assert sf.info(path).duration > 0
