"""Models added and removed while serving: operator routes, never a cold request, nothing broken.

The stream test runs the real app (`python app.py`) with a key and the fake hub, keeps a
steady stream of requests on joe, adds a second Piper voice by name (joe's files under
another catalogue key), then removes it, and reports what the listeners saw.
"""

import statistics
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import free_port, start_app
from fake_hub import FakeHub, joe_files
from fakes import FakeEngine, fake_pipeline
from test_catalog import hub_env
from waiting import wait_until
from tts_core.http import create_http_api
from tts_core.server import Readiness

KEY = "operator-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
POLL_S = 0.05
FILE_DELAY_S = 5.0  # each file of the added voice (.onnx, .onnx.json) comes this slowly
LOAD_DELAY_S = 2 * FILE_DELAY_S  # so its load takes this and more: a listener who waited for it waits this


def api_for(pipeline) -> TestClient:
    return TestClient(create_http_api(pipeline, Readiness()))


def wait_for(client, name: str, statuses: tuple[str, ...], timeout: float = 60.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = client.get(f"/v1/models/{name}", headers=AUTH).json()
        if state.get("status") in statuses:
            return state
        time.sleep(POLL_S)
    raise AssertionError(f"{name} never reached {statuses}: {state}")


# --- the routes, in process, on a fake engine -------------------------------------------


def test_operator_routes_are_closed_without_a_key():
    client = api_for(fake_pipeline(FakeEngine()))
    r = client.post("/v1/models", json={"spec": "joe"})
    assert r.status_code == 403 and "TTS_API_KEY" in r.json()["error"]["message"]
    assert client.delete("/v1/models/fake").status_code == 403
    assert client.get("/v1/models").json()["data"][0]["id"] == "fake"


def test_operator_routes_need_the_key_and_a_valid_spec():
    client = api_for(fake_pipeline(FakeEngine(), api_key=KEY))
    assert client.post("/v1/models", json={"spec": "joe"}).status_code == 401
    r = client.post("/v1/models", json={"spec": "piper:lessac"}, headers=AUTH)
    assert r.status_code == 400 and "neither a Piper voice name" in r.json()["error"]["message"]
    r = client.post("/v1/models", json={}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["param"] == "spec"
    r = client.post("/v1/models", json={"spec": "joe?name=fake"}, headers=AUTH)
    assert r.status_code == 409 and "already loaded" in r.json()["error"]["message"]
    r = client.delete("/v1/models/fake", headers=AUTH)
    assert r.status_code == 409 and "only model" in r.json()["error"]["message"]
    r = client.delete("/v1/models/nobody", headers=AUTH)
    assert r.status_code == 404 and "fake" in r.json()["error"]["message"]


def test_a_failing_add_leaves_the_app_as_it_was():
    client = api_for(fake_pipeline(FakeEngine(), api_key=KEY))
    models, ready = client.get("/v1/models", headers=AUTH).json(), client.get("/ready").json()
    r = client.post("/v1/models", json={"spec": "piper:/missing/voice.onnx"}, headers=AUTH)
    assert r.status_code == 202 and r.json()["status"] == "loading"
    state = wait_for(client, "voice", ("failed", "warm"))
    assert state["status"] == "failed" and "/missing/voice.onnx does not exist" in state["error"]
    assert client.get("/v1/models", headers=AUTH).json() == models
    assert client.get("/ready").json() == ready
    r = client.post("/v1/audio/speech", json={"input": "Hi.", "model": "voice"}, headers=AUTH)
    assert r.status_code == 404 and "Loaded models: fake" in r.json()["error"]["message"]
    # The same name can be tried again once it has failed.
    assert client.post("/v1/models", json={"spec": "piper:/missing/voice.onnx"},
                       headers=AUTH).status_code == 202


def test_a_model_that_does_not_fit_fails_its_add_with_the_startup_advice(monkeypatch):
    from fakes import OutOfMemoryError
    from tts_core import registry

    def no_room(spec, device, cpu_threads=None):
        raise OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(registry, "load_engine", no_room)
    client = api_for(fake_pipeline(FakeEngine(), api_key=KEY))
    ready = client.get("/ready").json()
    assert client.post("/v1/models", json={"spec": "bark:suno/bark?name=big"},
                       headers=AUTH).status_code == 202
    state = wait_for(client, "big", ("failed", "warm"))
    assert state["status"] == "failed"
    assert "does not fit in device memory beside the models before it" in state["error"]
    assert "Use dtype=float16 or bfloat16, load fewer models" in state["error"]
    assert client.get("/ready").json() == ready
    r = client.post("/v1/audio/speech", json={"input": "Still here.", "response_format": "wav"},
                    headers=AUTH)
    assert r.status_code == 200


def test_a_removed_model_refuses_new_requests_and_finishes_admitted_ones():
    pipeline = fake_pipeline(FakeEngine(), api_key=KEY)
    slow = FakeEngine(infer_s=1.0)
    slow.name = "slow"
    from tts_core import zerogpu
    from tts_core.engines import WarmModel

    zerogpu.register(slow)
    pipeline.registry.add(slow, WarmModel(slow.card(), 0, 0))
    client = api_for(pipeline)
    answers = []
    admitted = threading.Thread(target=lambda: answers.append(client.post(
        "/v1/audio/speech", json={"input": "Still speaking.", "model": "slow",
                                  "response_format": "wav"}, headers=AUTH)))
    admitted.start()
    deadline = time.time() + 5
    while slow.active == 0 and time.time() < deadline:
        time.sleep(0.01)
    r = client.delete("/v1/models/slow", headers=AUTH)
    assert r.status_code == 202 and r.json()["status"] == "removing"
    late = client.post("/v1/audio/speech", json={"input": "Too late.", "model": "slow"},
                       headers=AUTH)
    assert late.status_code == 404 and "Loaded models: fake" in late.json()["error"]["message"]
    assert client.get("/v1/models/slow", headers=AUTH).json()["status"] == "removing"
    admitted.join(10)
    assert answers[0].status_code == 200  # the admitted request finished its audio
    assert wait_for(client, "slow", ("removed",))["status"] == "removed"
    assert id(slow) not in zerogpu.DEVICE_ENGINES
    assert [m["model"] for m in client.get("/ready").json()["models"]] == ["fake"]


# --- the real app, a steady stream, an add and a removal --------------------------------


def test_adding_and_removing_a_voice_while_serving_never_makes_a_listener_wait(tmp_path, figure):
    # A slow hub: the added voice takes seconds to load, far more than a listener's turn.
    hub = FakeHub(keys=("en_US-joe-medium", "en_US-joey-medium"), file_delay_s=FILE_DELAY_S).start()
    # One slot, as on a GPU: anything that takes a turn during the add is a wait a listener sees.
    env = hub_env(hub.url, tmp_path, TTS_API_KEY=KEY, GRADIO_SERVER_PORT=str(free_port()),
                  TTS_MODELS=f"joe?name=joe", TTS_CPU_SLOTS="1")
    proc, url = start_app(env, timeout=120)
    served: list[tuple[float, float, int]] = []  # (finished at, queue_ms, status)
    turns: list[tuple[float, float]] = []  # (finished at, inference_ms): its own turn's length
    ready_codes: list[int] = []
    stop = threading.Event()

    def listener():
        with httpx.Client(base_url=url, headers=AUTH, timeout=60) as c:
            while not stop.is_set():
                r = c.post("/v1/audio/speech", json={"input": "A steady stream of speech.",
                                                     "model": "joe", "response_format": "wav"})
                queue_ms = float(r.headers.get("x-queue-ms", "nan"))
                served.append((time.perf_counter(), queue_ms, r.status_code))
                turns.append((served[-1][0], float(r.headers.get("x-inference-ms", "nan"))))

    def prober():
        with httpx.Client(base_url=url, timeout=10) as c:
            while not stop.is_set():
                ready_codes.append(c.get("/ready").status_code)
                time.sleep(0.2)

    threads = [threading.Thread(target=listener) for _ in range(2)] + [threading.Thread(target=prober)]
    try:
        for t in threads:
            t.start()
        wait_until(lambda: len(served) >= 10, 60, "ten requests served before the add")  # the level before
        with httpx.Client(base_url=url, headers=AUTH, timeout=30) as op:
            posted = time.perf_counter()
            r = op.post("/v1/models", json={"spec": "piper:en_US-joey-medium"})
            assert r.status_code == 202 and r.json()["status"] == "loading", r.text
            seen = {"loading": False}

            def warm_yet() -> bool:
                names = [m["id"] for m in op.get("/v1/models").json()["data"]]  # read first:
                state = op.get("/v1/models/en_US-joey-medium").json()  # not warm now, not then
                if state["status"] == "warm":
                    return True
                seen["loading"] = True
                # Not warm yet: not listed, and a request for it is refused, never a load.
                assert "en_US-joey-medium" not in names
                early = op.post("/v1/audio/speech", json={"input": "Hi.",
                                                          "model": "en_US-joey-medium"})
                assert state["status"] == "loading", state
                if early.status_code != 404:  # it turned warm between the two calls
                    assert early.status_code == 200, early.text
                    assert op.get("/v1/models/en_US-joey-medium").json()["status"] == "warm"
                else:
                    assert "Loaded models: joe" in early.text
                return False

            wait_until(warm_yet, 120, "the added voice turned warm")
            warm_at = time.perf_counter()
            warm_up_ms = op.get("/v1/models/en_US-joey-medium").json()["warmup_s"] * 1000
            names = [m["id"] for m in op.get("/v1/models").json()["data"]]
            assert seen["loading"] and "en_US-joey-medium" in names
            assert "en_US-joey-medium" in [m["model"] for m in op.get("/ready").json()["models"]]
            speech = op.post("/v1/audio/speech", json={"input": "The new voice.",
                                                       "model": "en_US-joey-medium"})
            assert speech.status_code == 200
            n = len(served)
            wait_until(lambda: len(served) >= n + 4, 60, "four more served with the voice added")
            r = op.delete("/v1/models/en_US-joey-medium")
            assert r.status_code == 202
            removed = wait_for(op, "en_US-joey-medium", ("removed",))
            assert removed["status"] == "removed"
            assert "en_US-joey-medium" not in [m["id"] for m in op.get("/v1/models").json()["data"]]
            n = len(served)
            wait_until(lambda: len(served) >= n + 4, 60, "four more served with the voice removed")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        proc.terminate()
        proc.wait(30)
        hub.stop()

    assert served and all(code == 200 for _, _, code in served), [c for *_, c in served]
    assert ready_codes and set(ready_codes) == {200}
    before = [q for t, q, _ in served if t < posted]
    during = [q for t, q, _ in served if posted <= t <= warm_at]
    turn_ms = max(ms for t, ms in turns if posted <= t <= warm_at)  # a listener's turn meanwhile
    load_s = warm_at - posted
    figure(f"add while serving: {len(during)} requests served during the add "
           f"({len(served)} in all, none failed); largest queue_ms before {max(before):.0f} "
           f"(median {statistics.median(before):.0f}), during {max(during):.0f} "
           f"(median {statistics.median(during):.0f}); POST to warm {load_s:.2f} s; warm-up turn "
           f"{warm_up_ms:.0f} ms, longest listener's turn meanwhile {turn_ms:.0f} ms (the download "
           f"alone {LOAD_DELAY_S:.0f} s)")
    assert during, "no request was served while the voice loaded"
    # Nobody waited for the load (LOAD_DELAY_S and more): during the add a listener waited at
    # most what it waited before, plus the new voice's one warm-up turn (`warmup_s` includes
    # its own wait), plus one listener's turn as long as the longest made meanwhile.
    assert max(during) <= max(before) + warm_up_ms + turn_ms, (
        max(during), max(before), warm_up_ms, turn_ms)


@pytest.mark.slow
def test_the_operator_panel_browses_adds_and_removes_behind_the_login(tmp_path):
    from playwright.sync_api import sync_playwright

    hub = FakeHub(keys=("en_US-joe-medium", "en_US-joey-medium")).start()
    env = hub_env(hub.url, tmp_path, TTS_API_KEY=KEY, TTS_UI_AUTH="true", TTS_MODELS="joe",
                  GRADIO_SERVER_PORT=str(free_port()))
    proc, url = start_app(env, timeout=120)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(url)
            page.wait_for_selector("input[type=password]", timeout=30_000)
            page.locator("input").first.fill("operator")
            page.fill("input[type=password]", KEY)
            page.keyboard.press("Enter")
            page.wait_for_selector("#text textarea", timeout=30_000)
            page.click("#operator button")
            page.click("#catalogue-browse")
            cell = page.locator("#catalogue >> text=piper:en_US-joey-medium >> visible=true").first
            cell.wait_for(timeout=20_000)
            cell.click()
            page.wait_for_function(
                "() => document.querySelector('#add-spec textarea').value.includes('joey')")
            page.click("#add-model")
            page.wait_for_function("() => /is warm/.test(document.querySelector("
                                   "'#operator-status').innerText)", timeout=60_000)
            models = [m["id"] for m in httpx.get(f"{url}/v1/models", headers=AUTH).json()["data"]]
            assert "en_US-joey-medium" in models
            page.click("#model input")
            assert page.locator("ul[role=listbox] >> text=en_US-joey-medium").count() == 1
            page.keyboard.press("Escape")
            page.click("#remove-name input")
            page.locator("ul[role=listbox] >> text=en_US-joey-medium").first.click()
            page.click("#remove-model")
            page.wait_for_function("() => /removed/.test(document.querySelector("
                                   "'#operator-status').innerText)", timeout=60_000)
            browser.close()
        models = [m["id"] for m in httpx.get(f"{url}/v1/models", headers=AUTH).json()["data"]]
        assert "en_US-joey-medium" not in models
    finally:
        proc.terminate()
        proc.wait(30)
        hub.stop()


def test_an_add_answers_the_state_it_accepted_though_its_load_fails_at_once(monkeypatch):
    """POST /v1/models answered 'failed' with 202 when the load failed before the answer was
    written (the manager returned the state its loading thread changes)."""
    from tts_core import live_models
    from tts_core.errors import ModelLoadError

    def fails_at_once(spec, settings):
        raise ModelLoadError("no such voice")

    monkeypatch.setattr(live_models, "load_one", fails_at_once)
    manager = live_models.ModelManager(fake_pipeline(FakeEngine()))
    accepted = manager.add("piper:/missing/voice.onnx")
    wait_until(lambda: manager.state(accepted.name).status == "failed", 10, "the load failed")
    assert accepted.status == "loading" and manager.state(accepted.name).error
