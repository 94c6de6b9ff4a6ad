"""The HTTP API with real clients: the official openai SDK, httpx, Prometheus' own parser."""

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from conftest import drain, free_port
from fakes import FakeEngine, fake_pipeline
from waiting import wait_until
from tts_core import Settings, SpeechRequest
from tts_core.audio import PCM_RATE
from tts_core.config import DEFAULT_CPU_SLOTS
from tts_core.http.streaming import STREAM_AHEAD_CHUNKS

ROOT = Path(__file__).resolve().parent.parent
TEXT = "Hello there. This came through the OpenAI route."
TEN_SENTENCES = " ".join(f"This is sentence number {i} of a longer text to stream." for i in range(10))


def decode(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    if fmt == "pcm":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32767, PCM_RATE
    if fmt == "aac":  # libsndfile cannot read AAC: decode with the ffmpeg the app uses
        import imageio_ffmpeg
        out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", "pipe:0",
                              "-f", "wav", "pipe:1"], input=data, capture_output=True, check=True)
        data = out.stdout
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    return audio, rate


# With the voice's noise off one text always makes the same samples (`samples` below), so
# every format's length is exact: WAV and FLAC carry the samples, pcm and Opus carry them
# resampled to 24 kHz (soxr keeps the length: round(n * 24000 / 22050)). MP3 and AAC only
# pad (encoder priming, the last partial frame; ADTS cannot say how much to trim): never
# shorter, and at most a few frames longer.
VOICE_RATE = 22050
PADDING_SAMPLES = {"mp3": 3 * 576, "aac": 4 * 1024}  # at 22050 Hz: MPEG-2 and AAC frames


@pytest.fixture(scope="module")
def quiet_sdk(quiet_url):
    return OpenAI(base_url=f"{quiet_url}/v1", api_key="not-needed", max_retries=0)


@pytest.fixture(scope="module")
def samples(quiet_pipeline) -> int:
    """How many samples TEXT makes in the noise-off voice, in process."""
    return quiet_pipeline.synthesize(SpeechRequest(TEXT)).audio.shape[0]


def assert_exact_speech(audio: np.ndarray, rate: int, expected_rate: int, samples: int,
                        fmt: str, pieces: int = 1):
    """Right rate; exactly the samples the voice made (lossy codecs: never fewer, padding at
    most a few frames a separately encoded piece); speech, not silence."""
    assert rate == expected_rate
    expected = round(samples * rate / VOICE_RATE)
    if fmt in PADDING_SAMPLES:
        assert 0 <= audio.shape[0] - expected <= pieces * PADDING_SAMPLES[fmt], (audio.shape[0], expected)
    else:
        assert audio.shape[0] == expected
    assert np.sqrt(np.mean(audio ** 2)) > 0.02


@pytest.mark.parametrize("fmt, rate", [
    ("mp3", 22050), ("opus", 24000), ("aac", 22050), ("flac", 22050), ("wav", 22050),
    ("pcm", PCM_RATE),
])
def test_sdk_every_response_format(quiet_sdk, samples, fmt, rate):
    response = quiet_sdk.audio.speech.create(model="tts-1", voice="alloy", input=TEXT,
                                             response_format=fmt)
    assert_exact_speech(*decode(response.content, fmt), rate, samples, fmt)
    assert float(response.response.headers["x-audio-seconds"]) == pytest.approx(samples / VOICE_RATE,
                                                                                abs=0.001)
    assert response.response.headers["x-model"] == "en_US-joe-medium"
    assert float(response.response.headers["x-rtf"]) > 0


@pytest.mark.parametrize("fmt, rate", [("wav", 22050), ("pcm", PCM_RATE), ("mp3", 22050)])
def test_sdk_streaming_response(quiet_sdk, quiet_pipeline, samples, fmt, rate):
    with quiet_sdk.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=TEXT, response_format=fmt,
            extra_body={"stream": True}) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        data = b"".join(response.iter_bytes())
    if fmt == "wav":  # a streamed WAV's header cannot know its length: read the samples after it
        audio = np.frombuffer(data[44:], dtype="<i2").astype(np.float32) / 32767
        assert_exact_speech(audio, 22050, rate, samples, "wav")
    else:
        # each piece is encoded as it comes
        pieces = len(list(quiet_pipeline.stream(SpeechRequest(TEXT))))
        assert_exact_speech(*decode(data, fmt), rate, samples, fmt, pieces)


def test_streamed_first_bytes_arrive_long_before_the_whole_text(studio, figure):
    gate = studio.pipeline.gate
    assert gate.queue_depth == 0  # nothing else runs here: an admitted request is this one
    start = time.perf_counter()
    first = still_making = None
    with httpx.stream("POST", f"{studio.url}/v1/audio/speech", timeout=60, json={
            "input": TEN_SENTENCES, "response_format": "pcm", "stream": True}) as response:
        assert response.status_code == 200
        size = 0
        for part in response.iter_bytes():
            if first is None and part:
                first = time.perf_counter() - start
                still_making = gate.queue_depth  # the request holds its gate place until its text is made
            size += len(part)
    total = time.perf_counter() - start
    figure(f"stream: ten sentences: first audio bytes after {first * 1000:.0f} ms, whole response "
           f"{total * 1000:.0f} ms, {size / 2 / PCM_RATE:.1f} s of audio")
    # The first audio came while the rest of the text was still being made, not after it all.
    assert still_making == 1, "the first bytes came only after the whole text was made"


def test_curl_line_from_the_readme(studio, tmp_path):
    out = tmp_path / "out.mp3"
    subprocess.run(["curl", "-sf", f"{studio.url}/v1/audio/speech", "-H",
                    "Content-Type: application/json", "-d",
                    '{"model":"tts-1","input":"Hello there.","voice":"alloy","response_format":"mp3"}',
                    "-o", str(out)], check=True, timeout=60)
    info = sf.info(str(out))
    assert info.format == "MP3" and 0.4 < info.duration < 3


def test_models_and_voices(studio):
    models = httpx.get(f"{studio.url}/v1/models").json()
    ids = [m["id"] for m in models["data"]]
    assert models["object"] == "list"
    assert ids[:3] == ["en_US-joe-medium", "tiny-vits", "tiny-vctk"] and "tts-1" in ids
    voices = httpx.get(f"{studio.url}/v1/audio/voices").json()
    assert {"joe", "speaker_0", "speaker_2"} <= {v["id"] for v in voices["voices"]}
    assert voices["voices"][0] == {"id": "joe", "name": "joe (en_US-joe-medium, English (US))",
                                   "model": "en_US-joe-medium", "language": "English (US)"}
    joe = next(v for v in voices["data"] if v["id"] == "joe")
    assert "alloy" in joe["aliases"] and joe["model"] == "en_US-joe-medium"


def test_openai_voices_take_a_models_voices_in_turn(studio):
    def speak(voice):
        r = httpx.post(f"{studio.url}/v1/audio/speech", timeout=60, json={
            "model": "tiny-vctk", "input": "hello", "voice": voice, "response_format": "wav"})
        assert r.status_code == 200, r.text
        return r

    assert speak("alloy").content != speak("ash").content  # speaker_0 and speaker_1


BAD_BODIES = [  # the body, the status, the field named, and words the message must say
    ({"voice": "alloy"}, 422, "input", ("'input' is required", "the text to speak")),
    ({"input": ""}, 400, "input", ("The text is empty",)),
    ({"input": "x" * 5001}, 400, "input", ("5001 characters long", "the limit is 5000")),
    ({"input": "hi", "voice": "nobody"}, 400, "voice", ("Unknown voice 'nobody'", "Its voices: joe")),
    ({"input": "hi", "model": "nope"}, 404, "model", ("Unknown model 'nope'", "en_US-joe-medium")),
    ({"input": "hi", "response_format": "aiff"}, 400, "response_format",
     ("Unknown audio format 'aiff'", "mp3")),
    ({"input": "hi", "speed": 0}, 400, "speed", ("Speed must be between 0.25 and 4.0", "got 0")),
    ({"input": "hi", "speed": 10}, 400, "speed", ("Speed must be between 0.25 and 4.0", "got 10")),
    ({"input": "hi", "speed": "fast"}, 422, "speed", ("'speed' must be a number", '"fast"')),
    ({"input": "hi", "speed": True}, 422, "speed", ("'speed' must be a number", "true")),
    ({"input": 42}, 422, "input", ("'input' must be a string", "42")),
    ({"input": "hi", "stream": "yes"}, 422, "stream", ("'stream' must be true or false", '"yes"')),
    ({"input": "hi", "stream": True, "response_format": "flac"}, 400, "response_format",
     ("flac cannot be streamed", "pcm")),
    ({"input": "hi", "stream_format": "sse"}, 400, "stream_format",
     ("Only stream_format 'audio' is supported",)),
]


@pytest.mark.parametrize("body, status, param, words", BAD_BODIES)
def test_bad_bodies_get_openai_shaped_errors(studio, body, status, param, words):
    r = httpx.post(f"{studio.url}/v1/audio/speech", json=body, timeout=30)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert all(w in error["message"] for w in words), error["message"]


@pytest.mark.parametrize("raw, status", [
    (b'{"input": "hi", "speed": NaN}', 400),
    (b"{not json", 400),
    (b"[1, 2, 3]", 400),
    (b'{"input": "' + b"a" * (10 * 1024 * 1024) + b'"}', 413),
])
def test_malformed_and_huge_bodies(studio, raw, status):
    r = httpx.post(f"{studio.url}/v1/audio/speech", content=raw, timeout=60,
                   headers={"Content-Type": "application/json"})
    assert r.status_code == status and "message" in r.json()["error"]
    assert httpx.post(f"{studio.url}/v1/audio/speech", json={"input": "ok"}, timeout=30).status_code == 200


def test_waiting_room_of_two_with_ten_at_once(serve, figure):
    """Every request is served or told to come back (429 + Retry-After); none is a 5xx."""
    # One client (the loopback) may hold both places: the room's bound, not the per-client one.
    small = fake_pipeline(FakeEngine(infer_s=0.3), queue_size=2, max_per_client=2)
    url = serve(small)
    results = []
    lock = threading.Lock()

    def call(i):
        r = httpx.post(f"{url}/v1/audio/speech", timeout=60,
                       json={"input": f"request {i}", "response_format": "wav"})
        with lock:
            results.append(r)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results)
    figure(f"back-pressure: 10 at once, waiting room 2: {statuses.count(200)} served, "
           f"{statuses.count(429)} refused with 429")
    assert set(statuses) <= {200, 429} and 200 in statuses and 429 in statuses
    for r in results:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1 and r.json()["error"]["code"] == "server_busy"
    assert httpx.post(f"{url}/v1/audio/speech", json={"input": "after"}, timeout=30).status_code == 200


def test_api_key_guards_v1_and_leaves_probes_open(serve):
    guarded = fake_pipeline(FakeEngine(infer_s=0.001), api_key="s3cret")
    url = serve(guarded)
    body = {"input": "hello", "response_format": "wav"}
    assert httpx.post(f"{url}/v1/audio/speech", json=body).status_code == 401
    wrong = httpx.post(f"{url}/v1/audio/speech", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{url}/v1/models").status_code == 401
    ok = OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0).audio.speech.create(
        model="fake", voice="a", input="hello", response_format="wav")
    assert sf.info(io.BytesIO(ok.content)).duration > 0
    for probe in ("/health", "/ready", "/metrics"):
        assert httpx.get(f"{url}{probe}").status_code == 200
    assert httpx.get(url).status_code == 200  # the UI stays open unless TTS_UI_AUTH is set


def test_metrics_parse_and_move(studio):
    def sample(name, **labels):
        """The sum over every series of `name` whose labels include `labels`."""
        text = httpx.get(f"{studio.url}/metrics").text
        return sum(s.value for family in text_string_to_metric_families(text)
                   for s in family.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    ok = dict(route="/v1/audio/speech", model="en_US-joe-medium", status="ok")
    before = sample("tts_requests_total", **ok)
    seconds = sample("tts_audio_seconds_total", model="en_US-joe-medium")
    calls, items = sample("tts_device_calls"), sample("tts_device_items")
    bad = sample("tts_requests_total", route="/v1/audio/speech", status="bad_request")
    assert httpx.post(f"{studio.url}/v1/audio/speech", json={"input": TEXT}, timeout=30).status_code == 200
    assert httpx.post(f"{studio.url}/v1/audio/speech", json={"input": ""}, timeout=30).status_code == 400
    assert sample("tts_requests_total", **ok) == before + 1
    assert sample("tts_audio_seconds_total", model="en_US-joe-medium") > seconds
    assert sample("tts_requests_total", route="/v1/audio/speech", status="bad_request") > bad
    assert sample("tts_first_audio_ms_count", model="en_US-joe-medium") >= 1
    assert sample("tts_model_load_seconds", model="en_US-joe-medium", phase="load") > 0
    assert sample("tts_queue_depth") == 0
    # On this CPU-only server: the default slot count, none in use between requests.
    assert sample("tts_device_slots") == DEFAULT_CPU_SLOTS and sample("tts_device_slots_in_use") == 0
    assert sample("tts_device_busy_seconds") > 0
    # The good request's chunk ran on the device (the bad one never reached it); nothing hung.
    assert sample("tts_device_calls") > calls and sample("tts_device_items") > items
    assert sample("tts_device_stuck_calls") == 0


def test_a_client_that_disconnects_mid_stream_stops_synthesis_and_frees_the_gate(serve):
    """A listener who hangs up after the first bytes: synthesis stops within a chunk or two of
    the text's hundred, and the gate is free. (The app's own route, over a counting engine.)"""
    engine = FakeEngine(infer_s=0.02)
    pipeline = fake_pipeline(engine, chunk_chars=60)
    url = serve(pipeline)
    long_text = " ".join(f"Sentence {i:03d} is here to keep the stream going a while." for i in range(80))
    planned = pipeline.stream(SpeechRequest(long_text))
    total = len(planned.chunks)  # one sentence a chunk; finishing would take `total` inferences
    planned.close()
    assert total == 80 and pipeline.gate.queue_depth == 0
    with httpx.stream("POST", f"{url}/v1/audio/speech", timeout=60,
                      json={"input": long_text, "response_format": "pcm", "stream": True}) as r:
        assert r.status_code == 200
        next(r.iter_bytes())
    wait_until(lambda: pipeline.gate.queue_depth == 0 and not pipeline.gate.busy, 10,
               "the gate freed after the disconnect")
    made = engine.calls
    # The one read, the producer's lead over the network, and the one in hand when it saw the
    # client gone (+1 for a chunk in flight across that check); not the rest of the text.
    assert 1 <= made <= STREAM_AHEAD_CHUNKS + 2, f"{made} of {total} chunks made after a disconnect"
    assert httpx.post(f"{url}/v1/audio/speech", json={"input": "next"}, timeout=30).status_code == 200
    assert engine.texts[made:] == ["next"]  # nothing more of the long text since


def test_ready_is_503_until_warm_and_health_is_200_throughout(tmp_path):
    """A slow warm-up (a long warm-up text) keeps /ready at 503 while /health answers 200."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTS_")} | {
        "GRADIO_SERVER_PORT": str(port),
        "TTS_WARMUP_TEXT": " ".join(["This long sentence keeps the voice busy warming up."] * 12),
    }
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    drain("app.py", proc)  # read as it comes (a failure's report shows it)
    url = f"http://127.0.0.1:{port}"
    try:
        seen = []
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                health = httpx.get(f"{url}/health", timeout=2).status_code
                ready = httpx.get(f"{url}/ready", timeout=2)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            seen.append((health, ready.status_code))
            if ready.status_code == 200:
                break
            time.sleep(0.05)
        assert seen, "the server never answered"
        assert seen[0] == (200, 503), seen[:3]
        assert seen[-1] == (200, 200)
        assert all(h == 200 for h, _ in seen)
        assert [m["model"] for m in ready.json()["models"]] == ["en_US-joe-medium"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()


def test_ui_auth_setting_needs_an_api_key():
    from tts_core import ConfigError

    with pytest.raises(ConfigError, match="TTS_API_KEY"):
        Settings.from_env({"TTS_UI_AUTH": "true"})


def test_a_seed_repeats_a_sampling_models_audio_and_is_accepted_where_it_changes_nothing(studio):
    """`seed` in the body reaches the model: tiny-vits samples (its noise is on), so the same
    seed gives the same bytes, another seed and no seed other audio. A model whose card says
    supports_seed false (the embedded Piper voice) speaks the seeded request all the same."""
    engines = studio.pipeline.registry.engines
    assert engines["tiny-vits"].supports_seed and not engines["en_US-joe-medium"].supports_seed

    def speak(model, **extra):
        r = httpx.post(f"{studio.url}/v1/audio/speech", timeout=60, json={
            "model": model, "input": TEXT, "response_format": "wav", **extra})
        assert r.status_code == 200, r.text
        audio, rate = decode(r.content, "wav")
        assert audio.shape[0] > rate // 2 and np.sqrt(np.mean(audio ** 2)) > 1e-3  # sound
        return r.content

    first = speak("tiny-vits", seed=7)
    assert speak("tiny-vits", seed=7) == first
    assert speak("tiny-vits", seed=8) != first
    assert speak("tiny-vits") != speak("tiny-vits")  # unseeded, it samples afresh
    speak("en_US-joe-medium", seed=7)


def test_an_unknown_v1_path_lists_the_routes_served_and_the_docs_show_the_speech_body(studio):
    error = httpx.get(f"{studio.url}/v1/nowhere", timeout=30).json()["error"]
    assert error["code"] == "not_found"
    for route in ("POST /v1/audio/speech", "POST /v1/audio/captioned", "GET /v1/audio/voices",
                  "GET and POST /v1/models", "DELETE and GET /v1/models/{name}"):
        assert route in error["message"], error["message"]
    schema = httpx.get(f"{studio.url}/api/openapi.json", timeout=30).json()
    speech = schema["paths"]["/v1/audio/speech"]["post"]
    body = speech["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["input"] and {"seed", "speed", "response_format"} <= set(body["properties"])
    assert speech["responses"]["429"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")


@pytest.mark.parametrize("core, wire", [("text", "input"), ("format", "response_format"),
                                        ("speed", "speed"), ("seed", "seed")])
def test_core_field_names_reach_the_wire_as_openais(core, wire):
    """The core names a bad field as the SpeechRequest does; the HTTP error names OpenAI's."""
    from tts_core import InputError
    from tts_core.http.errors import from_tts_error

    error = from_tts_error(InputError("The text is empty.", param=core))
    assert (error.status, error.param, error.message) == (400, wire, "The text is empty.")
