"""The HTTP API on a public URL (issue 30): bounded labels and logs, hung-up requests freed,
per-client places, bad JSON as 400, the catalogue cached, key guesses slowed, names bounded.

Loopback only, bounded counts; the API is served alone (no Gradio) over a fake engine.
"""

import json
import logging
import os
import random
import socket
import string
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port
from fake_hub import FakeHub
from fakes import FakeEngine, fake_pipeline
from waiting import wait_until
from tts_core import Settings
from tts_core.errors import ConfigError
from tts_core.http import create_http_api
from tts_core.http.guard import KEY_FAILURES_ALLOWED
from tts_core.server import StudioServer

ROOT = Path(__file__).resolve().parent.parent
KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def api():
    """Serve the HTTP API alone over a pipeline; `start(pipeline)` returns its URL."""
    servers = []

    def start(pipeline) -> str:
        server = StudioServer("127.0.0.1", free_port()).start()
        server.attach(create_http_api(pipeline, server.readiness))
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


def from_ip(ip: str) -> httpx.Client:
    """A client whose connections come from `ip` (any 127.x.y.z reaches the loopback server)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=ip), timeout=30)


def series(url: str) -> list:
    text = httpx.get(f"{url}/metrics").text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def series_of(pipeline) -> list:
    text = pipeline.prometheus_text().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


# --- 1. metric labels and logs --------------------------------------------------------------


def test_refused_paths_do_not_grow_metrics_or_the_log(api, caplog):
    url = api(fake_pipeline(FakeEngine(infer_s=0.001), api_key=KEY))
    rng = random.Random(30)

    def junk(n=2000):
        return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))

    def refuse(i):
        name = junk() if i % 3 else junk(200) + "%0d%0aX-Evil: 1"
        method = ("GET", "DELETE", "POST")[i % 3]
        r = httpx.request(method, f"{url}/v1/models/{name}" if method != "POST"
                          else f"{url}/v1/audio/speech", json={"input": "hi"} if method == "POST" else None)
        assert r.status_code == 401, (r.status_code, r.text[:200])

    for i in range(3):  # every kind of refusal once: its series exists
        refuse(i)
    before_text = httpx.get(f"{url}/metrics").text
    before = series(url)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        for i in range(300):
            refuse(i)
    after_text = httpx.get(f"{url}/metrics").text
    after = series(url)
    assert len(after) == len(before), f"{len(after) - len(before)} new series from refused paths"
    assert len(after_text) - len(before_text) < 200, (len(before_text), len(after_text))
    routes = {s.labels["route"] for s in after if "route" in s.labels}
    assert routes <= {"/v1/models/{name}", "/v1/audio/speech", "refused", "unmatched"}, routes
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("tts_core")]
    assert lines and max(len(m) for m in lines) < 400, max(lines, key=len)[:300]
    assert not any("\r" in m or "\n" in m for m in lines)


# --- 2. a client that hangs up frees the device -------------------------------------------


class TimedFakeEngine(FakeEngine):
    """The fake engine with word timings: one frame (100 samples) per character."""

    supports_timings = True
    samples_per_frame = 100

    def word_units(self, text, prepared):
        owners = []
        for w, word in enumerate(prepared.split(" ")):
            owners += [w] * len(word) + [None]
        return [owners[:-1]]

    def infer_batch_timed(self, prepared, params):
        return [(audio, [np.ones(len(p), dtype=int)])
                for audio, p in zip(self.infer_batch(prepared, params), prepared)]


LONG_TEXT = " ".join(f"Sentence {i:03d} is here to keep the request going a while." for i in range(89))


def post_and_hang_up(url: str, path: str, text: str, go: threading.Event) -> None:
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"input": text, "response_format": "wav"}).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    time.sleep(0.05)
    go.wait(10)  # (all admitted: one process's threads share a GIL, so 50 ms may not be enough)
    sock.close()


@pytest.mark.parametrize("path", ["/v1/audio/speech", "/v1/audio/captioned"])
def test_sixteen_hung_up_whole_file_requests_free_the_gate_within_a_chunk(api, path):
    chunk_s = 0.3
    engine = TimedFakeEngine(infer_s=chunk_s)
    pipeline = fake_pipeline(engine, queue_size=16, max_per_client=16, cpu_slots=1)
    url = api(pipeline)
    assert 4900 <= len(LONG_TEXT) <= 5000
    go = threading.Event()
    threads = [threading.Thread(target=post_and_hang_up, args=(url, path, LONG_TEXT, go))
               for _ in range(16)]
    for t in threads:
        t.start()
    wait_until(lambda: pipeline.gate.queue_depth == 16, 10, "all 16 requests admitted")
    go.set()
    for t in threads:
        t.join()
    hung_up = time.monotonic()
    # One chunk may be on the device when the clients go; nothing after it.
    wait_until(lambda: pipeline.gate.queue_depth == 0 and not pipeline.gate.busy, chunk_s + 1.0,
               f"the gate freed after 16 hang-ups (admitted: {pipeline.gate.queue_depth})")
    freed_s = time.monotonic() - hung_up
    def cancelled():
        return sum(s.value for s in series_of(pipeline) if s.name == "tts_requests_total"
                   and s.labels["status"] == "cancelled")

    wait_until(lambda: cancelled() == 16, 1.0, "all 16 requests counted as cancelled")
    assert engine.calls <= 3, f"{engine.calls} chunks made for clients that were gone"
    r = httpx.post(f"{url}{path}", json={"input": "A normal request.", "response_format": "wav"},
                   timeout=30)
    assert r.status_code == 200, r.text[:300]
    print(f"16 hang-ups on {path}: gate free {freed_s:.2f} s after, {engine.calls} chunks made")


# --- 3. per-client places ----------------------------------------------------------------


def concurrent(calls) -> list[httpx.Response]:
    results = [None] * len(calls)

    def run(i):
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_one_client_holds_at_most_its_share_of_the_gate(api):
    # The engine holds every call until released, so the places stay taken however slow the
    # machine: what is refused is decided by the bound alone, not by timing.
    engine = FakeEngine(hang_on="One sentence")
    pipeline = fake_pipeline(engine, queue_size=8, max_per_client=2, cpu_slots=1)
    url = api(pipeline)
    body = {"input": "One sentence.", "response_format": "wav"}
    one, other = from_ip("127.0.0.1"), from_ip("127.0.0.2")
    results: list = [None] * 5

    def post(i, client):
        results[i] = client.post(f"{url}/v1/audio/speech", json=body)

    threads = [threading.Thread(target=post, args=(i, one)) for i in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: sum(r is not None and r.status_code == 429 for r in results) == 2
               and pipeline.gate.queue_depth == 2, 30, "two of one client's four refused")
    threads.append(threading.Thread(target=post, args=(4, other)))
    threads[-1].start()
    wait_until(lambda: pipeline.gate.queue_depth == 3, 30, "another client admitted beside them")
    engine.unhang.set()
    for t in threads:
        t.join()
    statuses = [r.status_code for r in results]
    assert statuses[:4].count(200) == 2 and statuses[:4].count(429) == 2, statuses
    assert statuses[4] == 200, "another client kept its own places"
    refused = next(r for r in results if r.status_code == 429)
    error = refused.json()["error"]
    assert int(refused.headers["retry-after"]) >= 1
    assert error["type"] == "rate_limit_error" and error["code"] == "client_busy"
    assert "2 requests" in error["message"]
    assert pipeline.gate.queue_depth == 0


def test_a_proxy_header_counts_only_from_a_trusted_proxy(api):
    body = {"input": "One sentence.", "response_format": "wav"}
    for trusted, expect_refused in ((None, 2), ("127.0.0.1", 0)):
        extra = {"trusted_proxies": Settings.from_env({"TTS_TRUSTED_PROXIES": trusted}).trusted_proxies} \
            if trusted else {}
        engine = FakeEngine(hang_on="One sentence")  # places stay taken until released
        pipeline = fake_pipeline(engine, queue_size=8, max_per_client=2, cpu_slots=1, **extra)
        url = api(pipeline)
        results: list = [None] * 4

        def post(i):
            results[i] = httpx.post(f"{url}/v1/audio/speech", json=body, timeout=30,
                                    headers={"X-Forwarded-For": f"203.0.113.{i}"})

        threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: pipeline.gate.queue_depth + sum(r is not None for r in results) == 4,
                   30, "every request admitted or answered")
        engine.unhang.set()
        for t in threads:
            t.join()
        statuses = [r.status_code for r in results]
        assert statuses.count(429) == expect_refused, (trusted, statuses)


def test_trusted_proxies_setting_is_parsed_and_checked():
    assert Settings.from_env({}).trusted_proxies == ()
    assert Settings.from_env({"TTS_TRUSTED_PROXIES": " 10.0.0.0/8, 127.0.0.1 "}).trusted_proxies \
        == ("10.0.0.0/8", "127.0.0.1")
    with pytest.raises(ConfigError, match="TTS_TRUSTED_PROXIES.*'proxy.example'"):
        Settings.from_env({"TTS_TRUSTED_PROXIES": "proxy.example"})
    assert Settings.from_env({"TTS_QUEUE_SIZE": "16"}).max_per_client == 8
    assert Settings.from_env({"TTS_MAX_PER_CLIENT": "3"}).max_per_client == 3


# --- 4. bad JSON --------------------------------------------------------------------------


DEEP = b"[" * 100_000 + b"]" * 100_000
HUGE = "9" * 400


@pytest.mark.parametrize("path", ["/v1/audio/speech", "/v1/audio/captioned", "/v1/models"])
@pytest.mark.parametrize("raw, why", [  # (a float past range reads as inf: the field says so)
    (DEEP, "nested"),
    (b'{"input": ' + DEEP + b'}', "nested"),
    (f'{{"input": "hi", "speed": {HUGE}}}'.encode(), "number"),
    (f'{{"input": "hi", "loudness": -{HUGE}}}'.encode(), "number"),
    (f'{{"input": "hi", "true_peak": {HUGE}}}'.encode(), "number"),
    (f'{{"input": "hi", "seed": {HUGE}}}'.encode(), "number"),
])
def test_bad_json_is_a_400_with_a_message_on_every_json_route(api, path, raw, why):
    url = api(fake_pipeline(FakeEngine(infer_s=0.001), api_key=KEY))
    r = httpx.post(f"{url}{path}", content=raw, headers={**AUTH, "Content-Type": "application/json"},
                   timeout=30)
    assert r.status_code == 400, (r.status_code, r.text[:300])
    error = r.json()["error"]
    assert error["code"] == "invalid_json" and why in error["message"], error


# --- 5. the voice catalogue is cached -----------------------------------------------------


CATALOGUE_CLIENT = """
import sys
sys.path[:0] = [{root!r}, {tests!r}]
from fastapi.testclient import TestClient
from fakes import FakeEngine, fake_pipeline
from tts_core.http import create_http_api
from tts_core.server import Readiness
client = TestClient(create_http_api(fake_pipeline(FakeEngine()), Readiness()))
for _ in range(20):
    r = client.get("/v1/audio/voices", params={{"available": "true"}})
    assert r.status_code == 200 and r.json()["available"]["count"] == 2, r.text[:300]
"""


def test_the_voice_catalogue_is_fetched_once_per_time_limit_not_per_call(tmp_path):
    hub = FakeHub(keys=("en_US-joe-medium", "en_US-joey-medium")).start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TTS_", "HF_"))}
        env |= {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path)}
        code = CATALOGUE_CLIENT.format(root=str(ROOT), tests=str(ROOT / "tests"))
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        catalogue = [r for r in hub.requests if r[1].endswith("voices.json")]
    finally:
        hub.stop()
    assert 1 <= len(catalogue) <= 2, f"20 listings made {len(catalogue)} hub requests: {catalogue}"


# --- 6. key guesses -----------------------------------------------------------------------


def test_failed_keys_back_off_per_client_and_a_right_key_elsewhere_is_served(api):
    url = api(fake_pipeline(FakeEngine(infer_s=0.001), api_key=KEY))
    guesser, user = from_ip("127.0.0.1"), from_ip("127.0.0.3")
    for i in range(KEY_FAILURES_ALLOWED):
        r = guesser.get(f"{url}/v1/models", headers={"Authorization": f"Bearer guess{i}"})
        assert r.status_code == 401
    slowed = guesser.get(f"{url}/v1/models", headers={"Authorization": "Bearer another"})
    assert slowed.status_code == 429, slowed.text
    assert int(slowed.headers["retry-after"]) >= 1
    assert slowed.json()["error"]["code"] == "too_many_key_failures"
    # Even the right key waits out the back-off from there: a guess cannot tell it is right.
    assert guesser.get(f"{url}/v1/models", headers=AUTH).status_code == 429
    assert user.get(f"{url}/v1/models", headers=AUTH).status_code == 200
    assert user.get(f"{url}/v1/models", headers={"Authorization": "Bearer x"}).status_code == 401


# --- 7. model names -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["evil\r\nX-Injected: 1", "../escape", "a" * 65, "sp ace", ".."])
def test_model_names_outside_the_safe_set_are_a_config_error(name):
    from urllib.parse import quote

    with pytest.raises(ConfigError, match=r"\[A-Za-z0-9._-\]"):
        Settings.from_env({"TTS_MODELS": f"vits:/models/x?name={quote(name)}"})


def test_model_names_are_checked_on_every_operator_route(api):
    pipeline = fake_pipeline(FakeEngine(infer_s=0.001), api_key=KEY)
    url = api(pipeline)
    r = httpx.post(f"{url}/v1/models", headers=AUTH,
                   json={"spec": "vits:/nowhere/tiny?name=evil%0d%0aX-Injected:%201"})
    assert r.status_code == 400 and "[A-Za-z0-9._-]" in r.json()["error"]["message"], r.text
    for method in ("GET", "DELETE"):
        r = httpx.request(method, f"{url}/v1/models/evil%0d%0aX", headers=AUTH)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_name", r.text
    # A speech body's model is only looked up: an unknown one, odd or not, is a 404 naming it.
    r = httpx.post(f"{url}/v1/audio/speech", headers=AUTH, json={"input": "hi", "model": "../x"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "model", r.text
    assert httpx.get(f"{url}/v1/models/fake", headers=AUTH).status_code == 200


def test_a_runpod_job_naming_a_bad_model_gets_a_clear_error():
    from tts_core.runpod_worker import JobError, parse_input

    with pytest.raises(JobError, match=r"\[A-Za-z0-9._-\]"):
        parse_input({"input": {"text": "hi", "model": "evil\r\nx"}})


# --- 8. what the key protects, said at start-up ------------------------------------------


def test_the_start_up_log_says_what_the_key_protects_and_what_it_does_not(caplog):
    from tts_core.server import Readiness

    with caplog.at_level(logging.INFO, logger="tts_core"):
        create_http_api(fake_pipeline(FakeEngine(), api_key=KEY), Readiness())
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "TTS_API_KEY protects" in said and "need no key" in said and "TTS_UI_AUTH" in said
    assert "MCP" in said and KEY not in said


def test_gradio_synthesis_shares_the_per_client_bound(serve):
    """The same gate admission bounds the Gradio API (and MCP, which calls it) by address."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    pipeline = fake_pipeline(FakeEngine(infer_s=0.4), queue_size=8, max_per_client=1, cpu_slots=1)
    client = Client(serve(pipeline), verbose=False)
    jobs = [client.submit(f"request {i}", "fake", "", 1.0, -1, api_name="/synthesize")
            for i in range(3)]
    outcomes = []
    for job in jobs:
        try:
            job.result(timeout=60)
            outcomes.append("served")
        except AppError as e:
            outcomes.append(e.message)
    refused = [o for o in outcomes if o != "served"]
    assert "served" in outcomes and refused, outcomes
    assert all(o.startswith("Too many requests at once from one client") for o in refused), refused
    assert pipeline.gate.queue_depth == 0
