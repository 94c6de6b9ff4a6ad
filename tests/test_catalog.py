"""Piper voices by name through the real huggingface_hub download path, against a local fake hub.

Each case runs the app's own entry points (`python -m tts_core.prefetch`, `python app.py`)
in a fresh process with `HF_ENDPOINT` pointing at tests/fake_hub.py and `HF_HOME` at an
empty folder, because huggingface_hub reads both when it is imported.
"""

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from conftest import free_port, start_app
from fake_hub import FakeHub, joe_files
from tts_core import ModelSpec, Settings
from tts_core.catalog import DEFAULT_REVISION

ROOT = Path(__file__).resolve().parent.parent
JOE = "en_US-joe-medium"
JOE_MD5 = hashlib.md5(joe_files()[0].read_bytes()).hexdigest()


def hub_env(hub_url: str, hf_home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TTS_", "GRADIO_", "HF_"))}
    return env | {"HF_ENDPOINT": hub_url, "HF_HOME": str(hf_home)} | extra


def prefetch(env: dict, models: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tts_core.prefetch"], cwd=ROOT,
                          env=env | {"TTS_MODELS": models}, capture_output=True, text=True,
                          timeout=120)


def cached_onnx(hf_home: Path) -> list[Path]:
    return sorted((hf_home / "hub").glob("models--rhasspy--piper-voices/snapshots/*/**/*.onnx"))


@pytest.fixture(scope="module")
def hub():
    hub = FakeHub(keys=(JOE, "en_US-joey-medium", "en_GB-joe-low")).start()
    yield hub
    hub.stop()


def test_spec_names_a_catalogue_voice_with_the_pinned_revision():
    s = Settings.from_env({"TTS_MODELS": "piper:en_US-lessac-medium,en_GB-alan-low?speaker=x"})
    assert [(m.family, m.source, m.name, m.revision, m.speaker, m.catalog_voice) for m in s.models] \
        == [("piper", "en_US-lessac-medium", "en_US-lessac-medium", DEFAULT_REVISION, None, True),
            ("piper", "en_GB-alan-low", "en_GB-alan-low", DEFAULT_REVISION, "x", True)]
    s = Settings.from_env({"TTS_MODELS": "piper:en_US-lessac-medium?revision=main,joe",
                           "TTS_PIPER_VOICES_REVISION": "abc123"})
    assert [m.revision for m in s.models] == ["main", None]
    assert s.parse_spec("piper:en_US-amy-low").revision == "abc123"


def test_a_piper_source_that_is_neither_a_name_nor_a_file_is_refused():
    from tts_core import ConfigError

    with pytest.raises(ConfigError, match="neither a Piper voice name"):
        ModelSpec.parse("piper:lessac")


def test_prefetch_downloads_verifies_and_then_works_offline(hub, tmp_path):
    env = hub_env(hub.url, tmp_path)
    before = hub.downloads()
    proc = prefetch(env, f"piper:{JOE}")
    assert proc.returncode == 0, proc.stderr
    assert "checksums verified" in proc.stdout and hub.downloads() == before + 1
    [onnx] = cached_onnx(tmp_path)
    assert onnx.name == f"{JOE}.onnx" and "en/en_US/joe/medium" in str(onnx)
    assert hashlib.md5(onnx.read_bytes()).hexdigest() == JOE_MD5

    served = len(hub.requests)
    proc = prefetch(env | {"HF_HUB_OFFLINE": "1"}, f"piper:{JOE}")
    assert proc.returncode == 0, proc.stderr
    assert len(hub.requests) == served  # nothing asked of the hub


def test_offline_without_the_cache_names_the_voice(hub, tmp_path):
    proc = prefetch(hub_env(hub.url, tmp_path, HF_HUB_OFFLINE="1"), f"piper:{JOE}")
    assert proc.returncode == 1
    assert f"Piper voice '{JOE}'" in proc.stderr and "HF_HUB_OFFLINE is set" in proc.stderr


def test_an_unreachable_hub_without_the_cache_names_the_voice(tmp_path):
    proc = prefetch(hub_env(f"http://127.0.0.1:{free_port()}", tmp_path), f"piper:{JOE}")
    assert proc.returncode == 1
    assert f"Piper voice '{JOE}'" in proc.stderr and "could not be reached" in proc.stderr


def test_a_checksum_mismatch_fails_and_leaves_no_bad_copy(tmp_path):
    hub = FakeHub(bad_checksum=(JOE,)).start()
    try:
        proc = prefetch(hub_env(hub.url, tmp_path), f"piper:{JOE}")
    finally:
        hub.stop()
    assert proc.returncode == 1
    assert "failed its checksum" in proc.stderr and JOE in proc.stderr
    assert cached_onnx(tmp_path) == []


def test_a_voice_missing_from_the_catalogue_gets_close_names(hub, tmp_path):
    proc = prefetch(hub_env(hub.url, tmp_path), "piper:en_US-jo-medium")
    assert proc.returncode == 1
    assert "'en_US-jo-medium' is not in the catalogue of rhasspy/piper-voices@v1.0.0" in proc.stderr
    assert "Close names: en_US-joe-medium" in proc.stderr


def test_a_revision_the_hub_does_not_have_is_named(hub, tmp_path):
    proc = prefetch(hub_env(hub.url, tmp_path, TTS_PIPER_VOICES_REVISION="v9"), f"piper:{JOE}")
    assert proc.returncode == 1 and "rhasspy/piper-voices@v9" in proc.stderr


def test_the_app_downloads_warms_and_serves_a_named_voice_then_serves_it_offline(tmp_path):
    """The issue's done-when: download + verify + warm + serve, then a second start offline."""
    hub = FakeHub(keys=(JOE, "en_US-joey-medium")).start()
    env = hub_env(hub.url, tmp_path, TTS_MODELS=f"piper:{JOE}?noise_scale=0&noise_w=0")
    try:
        for attempt, extra in (("online", {}), ("offline", {"HF_HUB_OFFLINE": "1"})):
            if extra:
                hub.stop()  # the second start has no hub at all
            proc, url = start_app(env | extra | {"GRADIO_SERVER_PORT": str(free_port())},
                                  timeout=120)
            try:
                ready = httpx.get(f"{url}/ready", timeout=5).json()
                assert [m["model"] for m in ready["models"]] == [JOE]
                speech = httpx.post(f"{url}/v1/audio/speech", timeout=30, json={
                    "input": "A voice by name.", "model": JOE, "response_format": "wav"})
                assert speech.status_code == 200, speech.text
                assert sf.info(io.BytesIO(speech.content)).duration > 0.5
                listing = httpx.get(f"{url}/v1/audio/voices", params={"available": "true"},
                                    timeout=10).json()
                assert {"object", "data", "voices"} <= set(listing)
                catalogue = {v["key"]: v for v in listing["available"]["voices"]}
                assert set(catalogue) == {JOE, "en_US-joey-medium"}
                assert catalogue[JOE]["loaded"] and not catalogue["en_US-joey-medium"]["loaded"]
                assert catalogue[JOE]["language"] == "en_US" and catalogue[JOE]["quality"] == "medium"
                assert catalogue[JOE]["spec"] == f"piper:{JOE}"
            finally:
                proc.terminate()
                assert proc.wait(timeout=30) == 0, attempt
        assert hub.downloads() == 1  # one download, the offline start read the cache
    finally:
        if not extra:
            hub.stop()


def test_speaker_option_sets_the_default_voice_or_lists_the_speakers():
    from tts_core.engines import load_engine
    from tts_core.errors import ModelLoadError

    onnx = joe_files()[0]
    engine = load_engine(ModelSpec.parse(f"piper:{onnx}?speaker=joe"), "cpu")
    assert engine.default_voice == "joe"
    with pytest.raises(ModelLoadError, match="has no speaker 'nobody'; its speakers: joe"):
        load_engine(ModelSpec.parse(f"piper:{onnx}?speaker=nobody"), "cpu")
