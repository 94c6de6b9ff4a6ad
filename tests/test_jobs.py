"""Long-form jobs: the gate's background priority, durable pieces, the jobs API, resume after kill -9."""

from __future__ import annotations

import threading

from fakes import FakeEngine, fake_pipeline
from tts_core import SpeechRequest
from tts_core.gate import DeviceGate
from waiting import wait_until


def lined_up(gate: DeviceGate, turns: list[tuple[str, dict]]) -> list[str]:
    """Hold the device, line `turns` up in order (name, run_item's keywords), release: the
    order they ran."""
    order, holding, release = [], threading.Event(), threading.Event()

    def hold(_):
        holding.set()
        release.wait(10)
        return [None]

    holder = threading.Thread(target=gate.run_item, args=(None, "holder", hold))
    holder.start()
    assert holding.wait(10)
    threads = []
    for name, kw in turns:
        t = threading.Thread(target=gate.run_item, kwargs=kw, args=(
            None, name, lambda items: (order.append(items[0]), [None])[1]))
        t.start()
        threads.append(t)
        wait_until(lambda: len(gate._turns) == len(threads), what=f"{name} in line")
    release.set()
    for t in [holder, *threads]:
        t.join(10)
    assert not gate.busy
    return order


JOB, HEARD, FIRST = {"background": True}, {}, {"first": True}


def test_a_job_turn_goes_after_every_interactive_turn_however_long_it_waited():
    order = lined_up(DeviceGate(max_requests=8), [
        ("job-1", JOB), ("job-2", JOB), ("heard", HEARD)]
        + [(f"new-{i}", FIRST) for i in range(4)])
    assert order == ["new-0", "new-1", "heard", "new-2", "new-3", "job-1", "job-2"]


def test_never_two_job_turns_at_once_even_with_free_slots():
    gate = DeviceGate(max_requests=8, slots=2)
    active, seen, lock = [0], [], threading.Lock()

    def work(items):
        with lock:
            active[0] += 1
            seen.append(active[0])
        threading.Event().wait(0.05)
        with lock:
            active[0] -= 1
        return [None]

    threads = [threading.Thread(target=gate.run_item, args=(None, i, work),
                                kwargs={"background": True}) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [1, 1, 1, 1]


def test_interactive_requests_are_served_between_job_turns_and_take_no_place():
    """A job of many sentences is rendering; an interactive request arrives: it gets the
    server's one admission place (the job holds none), and each of its sentences waits for
    at most the one job turn already on the device."""
    engine = FakeEngine(infer_s=0.02)
    pipeline = fake_pipeline(engine, cpu_slots=1, queue_size=1)
    job_text = " ".join(f"Job sentence {i}." for i in range(40))
    job = threading.Thread(target=lambda: pipeline.synthesize(
        SpeechRequest(job_text), route="job", background=True))
    job.start()
    wait_until(lambda: engine.calls >= 3, what="the job rendering")
    assert pipeline.gate.queue_depth == 0  # the job holds no admission place
    started = engine.calls  # the job turn on the device now is already counted
    result = pipeline.synthesize(SpeechRequest("Now one. Now two. Now three."))
    job.join(30)
    assert result.duration_s > 0
    texts = engine.texts
    mine = [i for i, t in enumerate(texts) if t.startswith("Now")]
    assert len(mine) == 3
    # between two of the request's turns, at most the one job turn that took the device
    # while its next sentence was being prepared (off the device)
    assert all(b - a <= 2 for a, b in zip(mine, mine[1:])), texts[mine[0] - 1:mine[-1] + 1]
    assert mine[0] - started <= 1  # at most one more job turn began before it (a race)
    assert sum(t.startswith("Job") for t in texts) == 40
    assert pipeline.stats.served == 1  # the job's record stays out of the rolling stats


# --- the jobs API, in process, on the noise-off voice -----------------------------------------

import io  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

from conftest import free_port  # noqa: E402
from tts_core import Pipeline, Settings  # noqa: E402
from tts_core.http import create_http_api  # noqa: E402
from tts_core.jobs import jobs_for  # noqa: E402
from tts_core.server import StudioServer  # noqa: E402

# A text with what the text path changes (numbers, money, times, abbreviations, initials),
# in paragraphs, long enough for several pieces of at most PIECE_CHARS.
BOOK_TEXT = """The station at Millbrook opened in 1987, and Dr. Ada Price ran it for twelve years.
Every morning at 6:30 a.m. she wrote the readings into a green notebook: wind, rain and the
temperature, which once fell to minus 12 degrees.

In March the river rose by 3.5 metres. J. R. Hale, who kept the mill, paid $5.20 for a boat
and rowed the children to school! Was it safe? Nobody asked twice.

The notebooks fill a shelf now, forty-one of them, and the last page of the last one says
only this: the sky was clear, the wind was calm, and the work was done."""
PIECE_CHARS = 200


def job_server(pipeline_like: Pipeline, tmp_path, **settings) -> tuple[StudioServer, Pipeline]:
    """The HTTP API alone over a pipeline of the same warm engines with these settings."""
    pipeline = Pipeline.from_registry(pipeline_like.registry, Settings(
        jobs_dir=str(tmp_path / "jobs"), job_piece_chars=PIECE_CHARS, **settings))
    server = StudioServer("127.0.0.1", free_port()).start()
    server.attach(create_http_api(pipeline, server.readiness))
    return server, pipeline


@pytest.fixture
def jobs_api(quiet_pipeline, tmp_path):
    server, pipeline = job_server(quiet_pipeline, tmp_path)
    yield server.url, pipeline
    jobs_for(pipeline).stop()
    server.stop()


def wait_done(url: str, job_id: str, timeout: float = 300, seen: list | None = None) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = httpx.get(f"{url}/v1/audio/jobs/{job_id}", timeout=10).json()
        if seen is not None:
            seen.append(job["progress"])
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not done in {timeout} s: {job}")


def test_a_job_speaks_what_the_speech_route_speaks_and_progress_only_grows(jobs_api):
    url, pipeline = jobs_api
    body = {"input": BOOK_TEXT, "response_format": "wav"}
    made = httpx.post(f"{url}/v1/audio/jobs", json=body, timeout=60)
    assert made.status_code == 202, made.text
    job_id = made.json()["id"]
    assert len(jobs_for(pipeline)._jobs[job_id].spec["pieces"]) >= 3
    seen: list[float] = []
    job = wait_done(url, job_id, seen=seen)
    assert job["status"] == "done" and job["progress"] == 1.0, job
    assert seen == sorted(seen) and seen[-1] == 1.0, seen
    assert job["sentences_done"] == job["sentences"] > 5
    ours, rate = sf.read(io.BytesIO(httpx.get(f"{url}/v1/audio/jobs/{job_id}/audio").content),
                         dtype="int16")
    speech = httpx.post(f"{url}/v1/audio/speech", json=body, timeout=120)
    theirs, their_rate = sf.read(io.BytesIO(speech.content), dtype="int16")
    assert rate == their_rate
    assert ours.shape == theirs.shape and np.array_equal(ours, theirs)
    assert job["audio_seconds"] == pytest.approx(len(theirs) / rate, abs=1e-3)
