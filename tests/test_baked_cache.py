"""The pod image keeps what it baked: a volume at /data/hf no longer hides the baked models.

No Docker engine runs here, so the image is played out on this machine: the Dockerfile's
prefetch line bakes a named Piper voice (from the fake hub) into the image's own cache, then
the app starts with the Dockerfile's environment and an empty folder where the volume goes,
and must serve the baked voice without downloading it; a voice added while serving lands
on the volume, and both load on the next start.
"""

import io
import json
import re
import subprocess
import sys
import time

import httpx
import soundfile as sf

from conftest import free_port, start_app
from fake_hub import FakeHub
from test_deploy import DOCKERFILE, ROOT, clean_env, dockerfile_env
from tts_core.model_cache import merge_baked_cache
from tts_core.selfcheck import driver_check

KEY = "operator-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
JOE, JOEY = "en_US-joe-medium", "en_US-joey-medium"


def test_the_dockerfile_bakes_outside_the_volume():
    env = dockerfile_env()
    bake_home = re.search(r"^RUN HF_HOME=(\S+) python -m tts_core\.prefetch$", DOCKERFILE, re.M)
    assert bake_home, "prefetch must bake into a cache of its own"
    volumes = json.loads(re.search(r"^VOLUME (\[.*\])$", DOCKERFILE, re.M).group(1))
    # What a pod keeps across images: the hub cache, the saved voices, the long-form jobs.
    assert volumes == [env["HF_HOME"], env["TTS_VOICES_DIR"], env["TTS_JOBS_DIR"]]
    assert not any(bake_home.group(1).startswith(volume) for volume in volumes)
    assert env["TTS_BAKED_HF_CACHE"] == f"{bake_home.group(1)}/hub"


def test_the_image_serves_its_baked_voice_with_an_empty_volume_and_keeps_additions_on_it(tmp_path):
    env = dockerfile_env()
    image_root, volume = tmp_path / "image", tmp_path / "volume"
    volume.mkdir()  # the pod's volume, mounted empty over /data/hf

    def local(path: str) -> str:  # the image's absolute paths, under this test's folders
        return str(volume) if path == env["HF_HOME"] else str(image_root / path.lstrip("/"))

    bake_home = re.search(r"^RUN HF_HOME=(\S+) python -m", DOCKERFILE, re.M).group(1)
    hub = FakeHub(keys=(JOE, JOEY)).start()
    try:
        # docker build: the prefetch line, with the build's TTS_MODELS.
        bake = subprocess.run([sys.executable, "-m", "tts_core.prefetch"], cwd=ROOT, timeout=120,
                              env=clean_env(HF_HOME=local(bake_home), HF_ENDPOINT=hub.url,
                                            TTS_MODELS=f"piper:{JOE}"),
                              capture_output=True, text=True)
        assert bake.returncode == 0, bake.stderr
        assert hub.downloads() == 1

        # docker run: the Dockerfile's environment, the volume empty.
        run_env = clean_env(**env) | {
            "HF_HOME": str(volume), "TTS_BAKED_HF_CACHE": local(env["TTS_BAKED_HF_CACHE"]),
            "HF_ENDPOINT": hub.url, "TTS_MODELS": f"piper:{JOE}", "TTS_API_KEY": KEY,
            "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(free_port())}
        proc, url = start_app(run_env, timeout=120)
        try:
            assert hub.downloads() == 1  # served from what the image baked
            speech = httpx.post(f"{url}/v1/audio/speech", headers=AUTH, timeout=30,
                                json={"input": "Baked in.", "response_format": "wav"})
            assert speech.status_code == 200 and sf.info(io.BytesIO(speech.content)).duration > 0.3
            # A voice added while serving is downloaded onto the volume.
            assert httpx.post(f"{url}/v1/models", headers=AUTH, json={"spec": f"piper:{JOEY}"},
                              timeout=10).status_code == 202
            for _ in range(600):
                state = httpx.get(f"{url}/v1/models/{JOEY}", headers=AUTH, timeout=10).json()
                if state["status"] != "loading":
                    break
                time.sleep(0.1)
            assert state["status"] == "warm", state
        finally:
            proc.terminate()
            assert proc.wait(timeout=30) == 0
        assert hub.downloads() == 2
    finally:
        hub.stop()
    added = list(volume.glob("hub/models--rhasspy--piper-voices/blobs/*"))
    real = [p for p in added if not p.is_symlink()]
    assert len(real) == 1 and real[0].stat().st_size > 1e6  # joey's .onnx, on the volume
    baked_blobs = list((image_root / bake_home.lstrip("/")).glob("hub/**/blobs/*"))
    assert len(baked_blobs) == 3  # only what was baked: voices.json, joe's .onnx and .onnx.json

    # The next start, offline and with the hub gone: baked joe and joey from the volume.
    run_env |= {"TTS_MODELS": f"piper:{JOE},piper:{JOEY}", "HF_HUB_OFFLINE": "1",
                "GRADIO_SERVER_PORT": str(free_port())}
    proc, url = start_app(run_env, timeout=120)
    try:
        ready = httpx.get(f"{url}/ready", timeout=5).json()
        assert [m["model"] for m in ready["models"]] == [JOE, JOEY]
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_merging_never_overwrites_the_runtime_cache(tmp_path):
    baked, runtime = tmp_path / "baked", tmp_path / "runtime"
    (baked / "models--a--b" / "blobs").mkdir(parents=True)
    (baked / "models--a--b" / "blobs" / "h1").write_text("baked")
    (baked / "models--a--b" / "refs").mkdir()
    (baked / "models--a--b" / "refs" / "main").write_text("c1")
    (baked / "models--a--b" / "snapshots" / "c1").mkdir(parents=True)
    (baked / "models--a--b" / "snapshots" / "c1" / "config.json").symlink_to("../../blobs/h1")
    (runtime / "models--a--b" / "refs").mkdir(parents=True)
    (runtime / "models--a--b" / "refs" / "main").write_text("c2")
    assert merge_baked_cache(baked, runtime) == 2
    assert (runtime / "models--a--b" / "snapshots" / "c1" / "config.json").read_text() == "baked"
    assert (runtime / "models--a--b" / "refs" / "main").read_text() == "c2"
    assert not (runtime / "models--a--b" / "refs" / "main").is_symlink()
    assert merge_baked_cache(baked, runtime) == 0
    assert merge_baked_cache(tmp_path / "nothing", runtime) == 0


def test_the_self_check_names_a_driver_too_old_for_the_images_cuda_in_one_line():
    old = driver_check(12040, "12.8")
    assert not old.ok and "\n" not in old.value
    assert old.value.startswith("too old: the NVIDIA driver supports CUDA up to 12.4, this "
                                "image's torch needs CUDA 12.8")
    assert "Allowed CUDA Versions" in old.value
    assert driver_check(12040, "12.8", device="cpu").ok  # told to stay on the CPU: fine
    assert driver_check(12080, "12.8").ok and driver_check(13000, "12.8").ok
    assert driver_check(None, "12.8") is None and driver_check(12040, None) is None
