"""Proven under load, soak, faults and bad input: every request is served or cleanly refused.

The slow ones are marked `slow` (deselect locally with `-m "not slow"`); CI runs them all.
"""

import io
import json
import os
import re
import socket
import statistics
import threading
import time
import unicodedata
from dataclasses import dataclass

import httpx
import pytest
import soundfile as sf
from gradio_client import Client
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError
from hypothesis import HealthCheck, example, given, settings as hsettings, strategies as st

from fakes import FakeEngine, fake_pipeline
from waiting import wait_until
from tts_core import InputError, Pipeline, Settings, SpeechRequest
from tts_core.http.streaming import STREAM_AHEAD_CHUNKS
from tts_core.text import chunk, clean

DETERMINISTIC = "joe?noise_scale=0&noise_w=0"  # noise off: one text, one exact length


@pytest.fixture(scope="module")
def steady():
    """The embedded voice with sampling noise off, behind a 16-place gate. The clients these
    tests simulate all come from the loopback address, so one address may hold every place
    (the per-client bound has its own tests in test_http_hardening.py)."""
    return Pipeline.from_settings(Settings.from_env({"TTS_MODELS": DETERMINISTIC,
                                                     "TTS_MAX_PER_CLIENT": "16"}))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- load ---------------------------------------------------------------------------------

# The messages a full gate gives (GateBusyError), or one client's full share of it
# (ClientBusyError, TTS_MAX_PER_CLIENT); through the Gradio API they are all there is.
GATE_BUSY = re.compile(r"(The server is busy: \d+ requests are already waiting for the device\. "
                       r"|Too many requests at once from one client: \d+ requests of yours are "
                       r"already waiting for the device \(at most \d+\)\. )"
                       r"Try again in about \d+ s\.")
# The API's contract for "come back later": the status, the OpenAI error type and code.
HTTP_REFUSALS = {429: ("rate_limit_error", ("server_busy", "client_busy")),
                 503: ("server_error", ("gate_timeout",))}


def http_refusal(r: httpx.Response) -> bool:
    """A clean refusal over HTTP: 429 (full) or 503 (waited too long), typed, with Retry-After."""
    if r.status_code not in HTTP_REFUSALS:
        return False
    error = r.json()["error"]
    kind, codes = HTTP_REFUSALS[r.status_code]
    return (error["type"] == kind and error["code"] in codes
            and int(r.headers["retry-after"]) >= 1)


def gradio_refusal(e: Exception) -> bool:
    """A clean refusal through Gradio: its own full queue (QueueError), or the gate's busy error."""
    return isinstance(e, QueueError) or (isinstance(e, AppError)
                                         and GATE_BUSY.fullmatch(e.message) is not None)



@pytest.mark.slow
@pytest.mark.timeout(600)  # 45 s here (2 shared cores, load average 8); the rest is headroom
def test_64_concurrent_clients_across_gradio_and_http(steady, serve, figure):
    url = serve(steady)
    texts = [f"Client number {i} asks for {'a longer sentence, with more words in it' if i % 3 else 'this'}."
             for i in range(64)]
    expected = [steady.synthesize(SpeechRequest(t)).audio.shape[0] for t in texts]  # each text alone
    gradio_clients = [Client(url, verbose=False) for _ in range(32)]
    outcomes, latencies, lock = {}, [], threading.Lock()
    barrier = threading.Barrier(64)

    def run(i):
        barrier.wait()
        start = time.perf_counter()
        try:
            if i % 2 == 0:
                path, _ = gradio_clients[i // 2].predict(texts[i], api_name="/synthesize")
                audio, _ = sf.read(path)
                outcome = ("served", audio.shape[0])
            else:
                r = httpx.post(f"{url}/v1/audio/speech", timeout=120,
                               json={"input": texts[i], "response_format": "wav"})
                if r.status_code == 200:
                    outcome = ("served", sf.read(io.BytesIO(r.content))[0].shape[0])
                elif http_refusal(r):
                    outcome = ("refused", r.status_code)
                else:
                    outcome = ("broken", (r.status_code, r.text[:300]))
        except (QueueError, AppError) as e:  # a Gradio refusal arrives as an exception
            outcome = ("refused", type(e).__name__) if gradio_refusal(e) else ("broken", repr(e))
        except Exception as e:  # anything else is a failure, reported with the others
            outcome = ("broken", repr(e))
        with lock:
            outcomes[i] = outcome
            if outcome[0] == "served":
                latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    served = [i for i, o in outcomes.items() if o[0] == "served"]
    refused = [i for i, o in outcomes.items() if o[0] == "refused"]
    broken = {i: o for i, o in outcomes.items() if o[0] == "broken"}
    p95 = statistics.quantiles(latencies, n=20)[18] * 1000 if len(latencies) > 1 else float("nan")
    figure(f"load: 64 concurrent (32 Gradio, 32 HTTP): {len(served)} served, {len(refused)} "
           f"refused, {len(broken)} broken, served p95 {p95:.0f} ms")
    assert len(outcomes) == 64 and not broken, broken
    # The gate holds queue_size requests at once, and a held request is served, never dropped.
    assert len(served) >= steady.settings.queue_size, (len(served), len(refused))
    for i in served:  # nobody got somebody else's audio
        assert outcomes[i][1] == expected[i], (i, outcomes[i][1], expected[i])
    assert steady.gate.queue_depth == 0 and not steady.gate.busy
    after = httpx.post(f"{url}/v1/audio/speech", json={"input": texts[0], "response_format": "wav"},
                       timeout=30)
    assert after.status_code == 200 and sf.read(io.BytesIO(after.content))[0].shape[0] == expected[0]


# --- soak ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)  # 196 s here (2 shared cores, load average 8)
def test_500_sequential_requests_hold_memory_and_file_descriptors(steady, serve, figure):
    url = serve(steady)
    client = Client(url, verbose=False)
    with httpx.Client(base_url=url, timeout=60) as http:
        def one(i):
            text = f"Soak request {i}, short and plain."
            if i % 5 == 0:
                client.predict(text, api_name="/synthesize")
            else:
                assert http.post("/v1/audio/speech", json={"input": text, "response_format": "wav"}
                                 ).status_code == 200

        for i in range(30):  # warm every path and allocator pool before the baseline
            one(i)
        rss, fds = rss_mb(), open_fds()
        start = time.perf_counter()
        for i in range(500):
            one(i)
        elapsed = time.perf_counter() - start
        growth, fd_growth = rss_mb() - rss, open_fds() - fds
    figure(f"soak: 500 sequential requests in {elapsed:.0f} s: resident memory {growth:+.1f} MB, "
           f"file descriptors {fd_growth:+d}")
    assert growth < 50
    assert fd_growth <= 4  # a keep-alive connection or two may come and go; a leak grows by 500


@pytest.mark.slow
def test_gradio_cache_files_are_deleted_after_their_ttl(serve):
    pipeline = fake_pipeline(FakeEngine(infer_s=0), cache_ttl_s=2)
    url = serve(pipeline)
    client = Client(url, verbose=False, download_files=False)
    paths = []
    for i in range(5):
        out, _ = client.predict(f"cache file {i}", "fake", "", 1.0, -1, api_name="/synthesize")
        paths.append(out["path"])
    assert all(os.path.exists(p) for p in paths)
    deadline = time.time() + 15
    while time.time() < deadline and any(os.path.exists(p) for p in paths):
        time.sleep(0.5)
    assert not any(os.path.exists(p) for p in paths), "Gradio kept files past their TTL"


# --- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("trigger, words", [
    ("boom", "simulated device fault"),
    ("oom", "ran out of memory"),
])
def test_engine_faults_fail_one_request_and_the_next_is_normal(serve, trigger, words):
    engine = FakeEngine(infer_s=0.01, fail_on="boom", oom_on="oom")
    pipeline = fake_pipeline(engine)
    url = serve(pipeline)
    r = httpx.post(f"{url}/v1/audio/speech", json={"input": f"this will {trigger}"}, timeout=30)
    assert r.status_code == 500 and words in r.json()["error"]["message"]
    assert not pipeline.gate.busy and pipeline.gate.queue_depth == 0
    start = time.perf_counter()
    assert httpx.post(f"{url}/v1/audio/speech", json={"input": "fine"}, timeout=30).status_code == 200
    assert time.perf_counter() - start < 2


def test_a_hung_inference_is_given_up_on_and_the_gate_moves_on(serve):
    engine = FakeEngine(infer_s=0.01, hang_on="hang")
    pipeline = fake_pipeline(engine, infer_timeout_s=0.5)
    url = serve(pipeline)
    try:
        start = time.perf_counter()
        r = httpx.post(f"{url}/v1/audio/speech", json={"input": "this will hang"}, timeout=30)
        assert r.status_code == 500 and "TTS_INFER_TIMEOUT" in r.json()["error"]["message"]
        assert 0.5 <= time.perf_counter() - start < 5
        assert pipeline.gate.stuck_calls == 1 and not pipeline.gate.busy
        start = time.perf_counter()
        assert httpx.post(f"{url}/v1/audio/speech", json={"input": "fine"}, timeout=30).status_code == 200
        assert time.perf_counter() - start < 2
    finally:
        engine.unhang.set()


def test_a_client_that_never_reads_its_stream_loses_its_place(serve):
    # Chunks of several MB each fill the socket buffers long before the text ends.
    engine = FakeEngine(infer_s=0.01, samples_per_char=40_000)
    pipeline = fake_pipeline(engine, stream_stall_s=1.0, chunk_chars=40)
    url = serve(pipeline)
    host, port = url.removeprefix("http://").split(":")
    sentence = "A sentence that makes plenty of audio."
    text = " ".join([sentence] * 120)
    planned = pipeline.stream(SpeechRequest(text))
    total = len(planned.chunks)  # one sentence a chunk: what a reader would be sent
    planned.close()
    assert total == 120 and pipeline.gate.queue_depth == 0
    body = json.dumps({"input": text, "response_format": "wav", "stream": True}).encode()
    sock = socket.create_connection((host, int(port)))
    try:
        sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        wait_until(lambda: engine.calls >= 1, 20, "the stream started making audio")
        wait_until(lambda: pipeline.gate.queue_depth == 0, 20,
                   "a client that reads nothing gave up its place")
        made = engine.calls
        # What sits in the socket, the producer's lead, and the one in hand when it gave up.
        assert made <= STREAM_AHEAD_CHUNKS + 2, f"{made} of {total} chunks made for a client that reads nothing"
        r = httpx.post(f"{url}/v1/audio/speech", json={"input": "next"}, timeout=30)
        assert r.status_code == 200
        # It stopped for good: the only inference since is the next request's one chunk.
        assert engine.texts[made:] == ["next"]
    finally:
        sock.close()


# --- bad input ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Refused:
    """What a person must be told: the HTTP status, words of the message, the field it names."""

    status: int
    words: str
    param: str | None = "input"
    gradio_words: str | None = None  # where the Gradio API's message differs (no body limit there)


SERVED = None  # spoken: real audio comes back
EMPTY = Refused(400, "The text is empty. Type something to speak.")
NOTHING = Refused(400, "The text has nothing to speak: no letters or digits are left")
TOO_LONG_SPELLED = Refused(400, "Spelled out (numbers as words), the text is")

# name: (text, what happens to it on its own with the default voice)
TEXTS = {
    "empty": ("", EMPTY), "space": (" ", EMPTY), "whitespace": (" \n\t\r ", EMPTY),
    "newlines": ("\n\n\n", EMPTY),
    "megabyte": ("word " * 200_000, Refused(
        413, "The request body is larger than 1000000 bytes.", None,
        gradio_words="The text is 1000000 characters long; the limit is 5000.")),
    "just over the limit": ("x" * 5001, Refused(400, "The text is 5001 characters long; the limit is 5000.")),
    "control characters": ("bell\x07 null\x00 escape\x1b[31m red", SERVED),
    "only controls": ("\x00\x01\x02\x1f", EMPTY),
    "zero-width joiners": ("fam\u200dily\u200b of\u2060 words", SERVED),
    "only zero-width": ("\u200b\u200d\u2060\ufeff", EMPTY),
    "emoji": ("Hello 👋🏽 world 🌍 👨‍👩‍👧", SERVED), "only emoji": ("😀😀😀", NOTHING),
    "right-to-left": ("مرحبا بالعالم", Refused(
        400, "Model 'en_US-joe-medium' cannot pronounce any of this text: it speaks 'en'")),
    "mixed scripts": ("Hello مرحبا 你好 Привет שלום", SERVED),
    "combining marks": ("Z̷̢͈a̸͎l̶̰g̵̝o̴̩", SERVED), "lone surrogate": ("broken \ud800 text", SERVED),
    "ssml": ('<speak>Hello <break time="1s"/> <prosody rate="fast">there</prosody></speak>', SERVED),
    "html": ("<script>alert('x')</script><b>bold</b> &amp; text", SERVED),
    "shell": ("$(rm -rf /); `reboot` && echo | cat /etc/passwd > /dev/null", SERVED),
    "sql": ("'; DROP TABLE users; -- OR 1=1", SERVED),
    "thousands of digits": ("7" * 3000, TOO_LONG_SPELLED),
    "huge number with commas": (",".join(["999"] * 400), TOO_LONG_SPELLED),
    "punctuation only": ("?!.,;:—…", NOTHING), "unicode spaces": ("\u2003\u2002\u00a0\u3000", EMPTY),
    "format strings": ("%s %d {0} {text} ${HOME}", SERVED), "path": ("../../etc/passwd", SERVED),
    "nul in middle": ("hello\x00world", SERVED), "bidi override": ("\u202eevil\u202c text", SERVED),
    "very long word": ("a" * 400, SERVED),
    "read by name": ("Hello " + "中" * 600, Refused(400, "would be about 2 minutes of speech")), "normal": ("Hello there.", SERVED),
}
SPEED_RANGE = "Speed must be between 0.25 and 4.0; got"
UNKNOWN_MODEL = "Unknown model '{}'. Loaded models: en_US-joe-medium"
UNKNOWN_VOICE = "Unknown voice '{}' for model 'en_US-joe-medium'. Its voices: joe."
# name: (body fields, the refusal they cause whatever the text; None: the text decides, as a
# null means "the default")
PARAMS = {
    "speed zero": ({"speed": 0}, Refused(400, f"{SPEED_RANGE} 0.", "speed")),
    "speed negative": ({"speed": -1}, Refused(400, f"{SPEED_RANGE} -1.", "speed")),
    "speed nan": ({"speed": "NaN"}, Refused(400, f"{SPEED_RANGE} nan.", "speed")),
    "speed infinity": ({"speed": "Infinity"}, Refused(400, f"{SPEED_RANGE} inf.", "speed")),
    "speed string": ({"speed": "fast"}, Refused(422, "'speed' must be a number; got \"fast\".", "speed")),
    "speed null": ({"speed": None}, None),
    "speed list": ({"speed": [1]}, Refused(422, "'speed' must be a number; got [1].", "speed")),
    "speed huge": ({"speed": 1e308}, Refused(400, f"{SPEED_RANGE} 1e+308.", "speed")),
    "unknown model": ({"model": "no-such-model"},
                      Refused(404, UNKNOWN_MODEL.format("no-such-model"), "model")),
    "path model": ({"model": "../../etc/passwd"},
                   Refused(404, UNKNOWN_MODEL.format("../../etc/passwd"), "model")),
    "unknown voice": ({"voice": "nobody"}, Refused(400, UNKNOWN_VOICE.format("nobody"), "voice")),
    "path voice": ({"voice": "../../etc/passwd"},
                   Refused(400, UNKNOWN_VOICE.format("../../etc/passwd"), "voice")),
    "absolute path voice": ({"voice": "/etc/passwd"},
                            Refused(400, UNKNOWN_VOICE.format("/etc/passwd"), "voice")),
    "null voice": ({"voice": None}, None),
    "format path": ({"response_format": "../../etc/passwd"}, Refused(
        400, "Unknown audio format '../../etc/passwd'; choose one of mp3,", "response_format")),
    "format null": ({"response_format": None}, None),
    "stream string": ({"stream": "true"},
                      Refused(422, "'stream' must be true or false; got \"true\".", "stream")),
    "input list": ({"input": ["a", "b"]}, Refused(422, "'input' must be a string; got [\"a\", \"b\"].")),
    "input object": ({"input": {"text": "hi"}},
                     Refused(422, "'input' must be a string; got {\"text\": \"hi\"}.")),
    "input number": ({"input": 12}, Refused(422, "'input' must be a string; got 12.")),
}
CASES = [(name, {"input": text}, outcome) for name, (text, outcome) in TEXTS.items()] + [
    (f"{p} with {t}", {"input": TEXTS[t][0]} | params, refused or TEXTS[t][1])
    for p, (params, refused) in PARAMS.items() for t in ("normal", "emoji", "empty", "mixed scripts")]


def raw_json(body: dict) -> bytes:
    # NaN and Infinity go out as the bare tokens a hand-written client may send.
    return json.dumps(body).replace('"NaN"', "NaN").replace('"Infinity"', "Infinity").encode()


def test_refused_input_never_reaches_the_device_and_changes_nothing(steady, table_server):
    """Every refusal in the table is decided before a device turn, and leaves the server making
    exactly the same audio as before it."""
    def wav(text):
        r = httpx.post(f"{table_server}/v1/audio/speech", timeout=60,
                       json={"input": text, "response_format": "wav"})
        assert r.status_code == 200, r.text
        return r.content

    before = wav(TEXTS["normal"][0])
    turns = steady.gate.turns_served
    refused = [(body, outcome) for _, body, outcome in CASES if outcome is not SERVED]
    with httpx.Client(base_url=table_server, timeout=60) as http:
        for body, outcome in refused:
            r = http.post("/v1/audio/speech", content=raw_json(body),
                          headers={"Content-Type": "application/json"})
            assert r.status_code == outcome.status, (body, r.text[:300])
    assert len(refused) > 50 and steady.gate.turns_served == turns
    assert not steady.gate.busy and steady.gate.queue_depth == 0
    assert wav(TEXTS["normal"][0]) == before


@pytest.fixture(scope="module")
def table_server(steady, studio):
    """One server for the table, through the app's own wiring."""
    from conftest import free_port
    from tts_core.server import StudioServer
    from ui.studio import build_demo

    server = StudioServer("127.0.0.1", free_port()).start()
    server.attach(studio.build_server(steady, build_demo(steady, streaming=False),
                                      server.readiness))
    yield server.url
    server.stop()


@pytest.mark.parametrize("name, body, outcome", CASES, ids=[c[0] for c in CASES])
def test_bad_input_table_over_http(steady, table_server, name, body, outcome):
    r = httpx.post(f"{table_server}/v1/audio/speech", content=raw_json(body), timeout=60,
                   headers={"Content-Type": "application/json"})
    assert "root:x:0:0" not in r.text  # no file was read on the request's behalf
    if outcome is SERVED:
        assert r.status_code == 200, (r.status_code, r.text[:300])
        assert r.headers["content-type"] == "audio/mpeg"  # the default format
        assert sf.info(io.BytesIO(r.content)).duration > 0.1  # real audio
    else:
        assert r.status_code == outcome.status, (r.status_code, r.text[:300])
        error = r.json()["error"]
        assert outcome.words in error["message"], error
        assert error["param"] == outcome.param and error["type"] == "invalid_request_error"
    assert not steady.gate.busy and steady.gate.queue_depth == 0


# A lone surrogate cannot be encoded as UTF-8, so gradio_client cannot send one at all; the
# HTTP table sends it as the JSON escape \ud800, which is how it reaches a server.
GRADIO_TEXTS = [(n, t, o) for n, (t, o) in TEXTS.items() if n != "lone surrogate"]


@pytest.mark.parametrize("name, text, outcome", GRADIO_TEXTS, ids=[n for n, _, _ in GRADIO_TEXTS])
def test_bad_input_table_through_gradio(client, name, text, outcome):
    """The same texts through the Gradio API: the speakable ones spoken, the rest refused with
    the same words as over HTTP (a crash would be Gradio's generic "Error"); the app serves on."""
    if outcome is SERVED:
        path, record = client.predict(text, api_name="/synthesize")
        assert sf.info(path).duration > 0.1 and record["chars"] == len(text)
    else:
        with pytest.raises(AppError) as err:
            client.predict(text, api_name="/synthesize")
        assert (outcome.gradio_words or outcome.words) in str(err.value)
    path, _ = client.predict("Still serving.", api_name="/synthesize")
    assert sf.info(path).duration > 0.1


def test_a_multi_megabyte_json_body_is_refused(table_server):
    body = json.dumps({"input": "x" * 5_000_000}).encode()
    r = httpx.post(f"{table_server}/v1/audio/speech", content=body, timeout=60,
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 413


FUZZ_LIMIT = 200  # max_chars, low enough that fuzzed text reaches both length limits
FUZZ_ENGINE = FakeEngine(infer_s=0)
FUZZ_ENGINE.language_tag = "en"  # so the English path runs: expand, foreign letters, spelled-out limit
FUZZ = fake_pipeline(FUZZ_ENGINE, max_chars=FUZZ_LIMIT)
# Every refusal plain text may get, word for word (the plan's and the pipeline's messages).
TEXT_REFUSALS = [re.compile(p, re.S) for p in (
    r"The text is \d+ characters long; the limit is 200\. Shorten it or split it into several requests\.",
    r"The text is empty\. Type something to speak\.",
    r"The text has nothing to speak: no letters or digits are left after removing symbols and "
    r"control characters\.",
    r"Model 'fake' cannot pronounce any of this text: it speaks 'en', and none of the text is in "
    r"that alphabet \(.+\)\. Choose a model for the text's language\.",
    r"Spelled out \(numbers as words\), the text is \d+ characters long; the limit is 200\. "
    r"Shorten it\.",
)]


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400) | st.text(alphabet="0123456789 ,.$%abc", max_size=400))
@example("7" * 150)  # 150 characters typed, thousands spelled out
@example("Привет, мир.")  # no letter of it in the English alphabet
@example("$20 and 3 cats.")
@example("\u200b !!! \x00")
def test_fuzzed_text_is_spoken_or_refused_clearly(text):
    FUZZ_ENGINE.texts.clear()
    try:
        result = FUZZ.synthesize(SpeechRequest(text))
    except InputError as e:
        assert any(p.fullmatch(str(e)) for p in TEXT_REFUSALS), str(e)
    else:
        assert result.duration_s > 0
        # What the engine was given, spelled out, stays within the limit too.
        assert sum(map(len, FUZZ_ENGINE.texts)) <= FUZZ_LIMIT, FUZZ_ENGINE.texts
    assert not FUZZ.gate.busy and FUZZ.gate.queue_depth == 0


@hsettings(max_examples=300, deadline=None)
@given(st.text(max_size=2000), st.integers(min_value=20, max_value=400))
def test_fuzzed_cleaning_and_chunking_keep_every_word(text, limit):
    cleaned = clean(text)
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in cleaned)
    assert "  " not in cleaned and cleaned == cleaned.strip()
    chunks = chunk(cleaned, limit)
    assert all(0 < len(c) <= limit for c in chunks)
    assert "".join(chunks).replace(" ", "") == cleaned.replace(" ", "")
