"""The voice library through the real HTTP routes: add a cloned voice from real speech, list it,
speak with it, restart and find it (conditioning not recomputed), delete it; every bad upload's
4xx with nothing half-written."""

from __future__ import annotations

import base64
import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from fakes import CloningFakeEngine
from tts_core import Pipeline, Settings, SpeechRequest
from tts_core.engines import WarmModel
from tts_core.errors import ConfigError, ModelLoadError
from tts_core.http import create_http_api
from tts_core.registry import Registry, warm_load
from tts_core.runpod_worker import make_handlers
from tts_core.server import Readiness
from tts_core.voices import library as library_module

KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}
VOICES = "/v1/audio/voices"
SPOKEN = ("The quick brown fox jumps over the lazy dog. Then it runs far away into the green "
          "forest, and nobody sees it again.")
QUIET_JOE = "joe?noise_scale=0&noise_w=0"


@pytest.fixture(scope="module")
def joe() -> Registry:
    """The embedded voice, noise off: the real speech the clips are made of (loaded once)."""
    return warm_load(Settings.from_env({"TTS_MODELS": QUIET_JOE}))


def wav(audio: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def speech(joe) -> tuple[np.ndarray, int]:
    """About 7 s of joe saying SPOKEN, with half a second of silence at each end."""
    engine = joe.default
    pipeline = Pipeline.from_registry(joe, Settings())
    audio = pipeline.synthesize(SpeechRequest(SPOKEN, format="wav")).audio
    pad = np.zeros(engine.sample_rate // 2, np.float32)
    return np.concatenate([pad, audio, pad]), engine.sample_rate


def start_app(joe: Registry, folder: Path, cloner: CloningFakeEngine | None = None, **settings):
    """A fresh process's worth: a new cloning engine beside joe, a new pipeline over the same
    TTS_VOICES_DIR, the real HTTP routes (which start the library as bootstrap does)."""
    cloner = cloner or CloningFakeEngine()
    joe_engine = joe.default
    registry = Registry({joe_engine.name: joe_engine, cloner.name: cloner},
                        [joe.warm[0], WarmModel(cloner.card(), 0, 0)])
    pipeline = Pipeline.from_registry(registry, Settings(voices_dir=str(folder), api_key=KEY, **settings))
    return TestClient(create_http_api(pipeline, Readiness())), cloner, pipeline


def add(client, name: str, data: bytes, transcript: str | None = None, headers=AUTH,
        filename: str = "clip.wav"):
    fields = {"name": name} | ({"transcript": transcript} if transcript is not None else {})
    return client.post(VOICES, data=fields, files={"audio": (filename, data, "audio/wav")},
                       headers=headers)


def speak(client, voice: str | None, model: str = "cloner") -> bytes:
    body = {"model": model, "input": "Hello there. This is a cloned voice.",
            "response_format": "wav"} | ({"voice": voice} if voice else {})
    response = client.post("/v1/audio/speech", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.content


def listed(client) -> set[tuple[str, str]]:
    return {(d["model"], d["id"]) for d in client.get(VOICES).json()["data"]}


def test_add_list_speak_restart_and_delete_a_cloned_voice(joe, speech, tmp_path):
    client, cloner, _ = start_app(joe, tmp_path)
    response = add(client, "narrator", wav(*speech))
    assert response.status_code == 201, response.text
    entry = response.json()
    # No transcript sent: Whisper heard it; nothing cut (under the fake's 10 s).
    assert entry["id"] == "narrator" and entry["models"] == ["cloner"]
    assert entry["transcribed"] is True and entry["cut"] is False
    assert "quick brown fox" in entry["transcript"].lower()
    assert 6.0 < entry["seconds"] < entry["original_seconds"]  # the silent edges trimmed
    assert cloner.encodes == 1
    # Listed for the cloning model, not for joe, beside each model's own voices.
    assert ("cloner", "narrator") in listed(client)
    assert ("en_US-joe-medium", "narrator") not in listed(client)
    assert ("cloner", "a") in listed(client)
    assert client.get(f"{VOICES}/narrator", headers=AUTH).json() == entry

    cloned, default = speak(client, "narrator"), speak(client, None)
    a, rate = sf.read(io.BytesIO(cloned), dtype="float32")
    b, _ = sf.read(io.BytesIO(default), dtype="float32")
    assert rate == 8000 and a.shape == b.shape and np.sqrt(np.mean(a ** 2)) > 0.1
    assert not np.allclose(a, b)  # the cloned voice is heard
    assert speak(client, "narrator") == cloned

    # Restart: a new engine and pipeline over the same folder speak it the same, no encoding.
    client, cloner, _ = start_app(joe, tmp_path)
    assert cloner.texts == [Settings().warmup_text]  # warmed up speaking the saved voice
    assert ("cloner", "narrator") in listed(client)
    assert speak(client, "narrator") == cloned
    assert cloner.encodes == 0

    response = client.delete(f"{VOICES}/narrator", headers=AUTH)
    assert response.status_code == 200, response.text
    assert ("cloner", "narrator") not in listed(client)
    assert list(tmp_path.iterdir()) == []
    refused = client.post("/v1/audio/speech", headers=AUTH, json={
        "model": "cloner", "voice": "narrator", "input": "Hello."})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "voice_not_found"
    assert client.delete(f"{VOICES}/narrator", headers=AUTH).status_code == 404
    assert client.get(f"{VOICES}/narrator", headers=AUTH).status_code == 404


def assert_nothing_added(client, folder: Path, cloner, encodes: int = 0) -> None:
    assert (sorted(p.name for p in folder.iterdir()) if folder.exists() else []) == []
    assert cloner.voices == ("a", "b") and cloner.encodes == encodes
    assert {v for m, v in listed(client) if m == "cloner"} == {"a", "b"}


def silence(seconds: float, rate: int = 16000) -> bytes:
    return wav(np.zeros(int(seconds * rate), np.float32), rate)


@pytest.mark.parametrize("case, status, code, words", [
    ("not audio", 400, "not_audio", "not an audio file"),
    ("under 1 s", 400, "clip_too_short", "at least 1 s"),
    ("all silence", 400, "clip_silent", "all silence"),
    ("bad name", 400, "invalid_name", "1 to 64 letters"),
    ("over the body limit", 413, "body_too_large", "TTS_MAX_UPLOAD_BYTES"),
    ("no key", 401, "invalid_api_key", "API key"),
])
def test_each_bad_upload_gets_its_4xx_and_nothing_is_written(joe, speech, tmp_path, case, status,
                                                             code, words):
    client, cloner, _ = start_app(joe, tmp_path, max_upload_bytes=200_000)
    audio, rate = speech
    name, headers = "voice-1", AUTH
    data = wav(audio[: rate * 4], rate)  # 4 s of speech: about 180 kB, under the limit
    if case == "not audio":
        data = b"This is a text file renamed clip.wav, not audio at all." * 20
    elif case == "under 1 s":
        data = wav(audio[rate // 2: rate // 2 + int(0.6 * rate)], rate)
    elif case == "all silence":
        data = silence(3.0)
    elif case == "bad name":
        name = "my voice!"
    elif case == "over the body limit":
        data = wav(audio, rate)  # 8 s: about 350 kB
    elif case == "no key":
        headers = {}
    response = add(client, name, data, transcript="Some words.", headers=headers)
    answers = [response]
    if case == "over the body limit":  # also sent chunked, with no Content-Length to go by
        request = client.build_request("POST", VOICES, headers=AUTH, data={"name": name},
                                       files={"audio": ("clip.wav", data, "audio/wav")})
        body = request.read()
        chunked = {k: v for k, v in request.headers.items() if k != "content-length"}
        answers.append(client.post(VOICES, headers=chunked, content=iter(
            [body[at:at + 65536] for at in range(0, len(body), 65536)])))
        assert "content-length" not in answers[-1].request.headers
    for response in answers:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code and words in error["message"], error
    assert_nothing_added(client, tmp_path, cloner)


def test_a_taken_name_is_409_and_the_first_voice_stays(joe, speech, tmp_path):
    client, cloner, _ = start_app(joe, tmp_path)
    audio, rate = speech
    assert add(client, "v", wav(audio[: 5 * rate], rate), "The quick brown fox").status_code == 201
    again = add(client, "v", wav(audio, rate))
    assert again.status_code == 409 and again.json()["error"]["code"] == "voice_exists"
    own = add(client, "a", wav(audio, rate))  # the model's own voice "a"
    assert own.status_code == 409 and "already has a voice called 'a'" in own.json()["error"]["message"]
    assert cloner.encodes == 1 and [p.name for p in tmp_path.iterdir()] == ["v"]


def test_without_a_server_key_adding_and_deleting_are_closed(joe, speech, tmp_path):
    client, cloner, pipeline = start_app(joe, tmp_path)
    client = TestClient(create_http_api(Pipeline.from_registry(pipeline.registry, Settings(
        voices_dir=str(tmp_path))), Readiness()))
    response = add(client, "v", wav(*speech), headers={})
    assert response.status_code == 403 and "TTS_API_KEY" in response.json()["error"]["message"]
    assert client.delete(f"{VOICES}/v").status_code == 403
    assert cloner.encodes == 0 and list(tmp_path.iterdir()) == []


def test_a_crash_between_files_leaves_no_half_voice(joe, speech, tmp_path, monkeypatch):
    client, cloner, _ = start_app(joe, tmp_path)

    seen_mid_write = []

    def crash(*args, **kwargs):
        seen_mid_write.extend(p.name for p in tmp_path.iterdir())  # what a restart would find
        raise OSError("disk full (simulated, after clip.wav was written)")

    monkeypatch.setattr(library_module, "_write_npz", crash)
    with pytest.raises(OSError, match="simulated"):
        add(client, "half", wav(*speech))
    assert len(seen_mid_write) == 1 and seen_mid_write[0].startswith(".tmp-half-")
    assert list(tmp_path.iterdir()) == []
    assert "half" not in cloner.voices and ("cloner", "half") not in listed(client)
    monkeypatch.undo()
    # A process killed mid-write leaves its temporary folder: the next start removes it.
    (tmp_path / ".tmp-half-0123abcd" / "models").mkdir(parents=True)
    (tmp_path / ".tmp-half-0123abcd" / "clip.wav").write_bytes(wav(*speech))
    client, cloner, _ = start_app(joe, tmp_path)
    assert list(tmp_path.iterdir()) == [] and ("cloner", "half") not in listed(client)
    assert add(client, "half", wav(*speech)).status_code == 201


def test_a_long_clip_is_cut_on_a_pause_with_its_transcript(joe, speech, tmp_path):
    client, cloner, _ = start_app(joe, tmp_path, cloner=CloningFakeEngine(max_s=4.0))
    response = add(client, "short", wav(*speech), transcript=SPOKEN)
    assert response.status_code == 201, response.text
    entry = response.json()
    assert entry["cut"] is True and 1.0 < entry["seconds"] <= 4.0
    # Cut between two words, the transcript after the same word: the first sentence here.
    assert entry["transcript"] == "The quick brown fox jumps over the lazy dog."
    assert entry["transcribed"] is False
    kept, rate = sf.read(tmp_path / "short" / "clip.wav", dtype="float32")
    assert kept.shape[0] / rate == pytest.approx(entry["seconds"], abs=0.01)


def test_without_whisper_a_long_clip_with_a_transcript_is_refused(joe, speech, tmp_path,
                                                                  monkeypatch):
    client, cloner, pipeline = start_app(joe, tmp_path, cloner=CloningFakeEngine(max_s=4.0))
    monkeypatch.setattr(pipeline._voice_library, "transcriber", None)
    response = add(client, "short", wav(*speech), transcript=SPOKEN)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "keep it under 4 s or trim it yourself" in message and response.json()["error"][
        "code"] == "clip_too_long"
    assert_nothing_added(client, tmp_path, cloner)


def test_voices_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match="TTS_VOICES_DIR.*is a file"):
        Settings.from_env({"TTS_VOICES_DIR": str(tmp_path / "f")})
    assert Settings.from_env({"TTS_VOICES_DIR": str(tmp_path / "v")}).voices_dir == str(tmp_path / "v")


def test_a_runpod_job_speaks_a_one_off_clip_and_keeps_nothing(joe, speech, tmp_path):
    _, cloner, pipeline = start_app(joe, tmp_path)
    handle, handle_stream = make_handlers(pipeline)
    clip = base64.b64encode(wav(*speech)).decode()
    job = {"input": {"text": "Hello there.", "model": "cloner", "format": "wav",
                     "reference_audio": clip, "reference_text": SPOKEN}}
    cloned = handle(job)
    assert "error" not in cloned, cloned
    default = handle({"input": {"text": "Hello there.", "model": "cloner", "format": "wav"}})
    a, _ = sf.read(io.BytesIO(base64.b64decode(cloned["audio_base64"])), dtype="float32")
    b, _ = sf.read(io.BytesIO(base64.b64decode(default["audio_base64"])), dtype="float32")
    assert a.shape == b.shape and not np.allclose(a, b)
    streamed = list(handle_stream(dict(job, input=dict(job["input"], stream=True))))
    assert streamed[-1].get("done") and all("error" not in part for part in streamed)
    assert cloner.encodes == 2 and cloner.voices == ("a", "b") and list(tmp_path.iterdir()) == []
    for bad, words in [({"reference_audio": "not base64!"}, "not valid base64"),
                       ({"reference_audio": clip, "voice": "a"}, "not both"),
                       ({"reference_audio": base64.b64encode(b"text").decode()}, "not an audio file"),
                       ({"reference_audio": clip, "model": "en_US-joe-medium"}, "does not clone")]:
        answer = handle({"input": {"text": "Hi.", "model": "cloner"} | bad})
        assert words in answer.get("error", ""), answer
    assert cloner.voices == ("a", "b")


def test_a_cloning_model_added_later_gets_the_saved_voices_computed_once(joe, speech, tmp_path):
    client, _, _ = start_app(joe, tmp_path)
    assert add(client, "narrator", wav(*speech), SPOKEN).status_code == 201
    # Restart with only joe: nothing clones, nothing is read; then two cloning models are
    # added while serving: the one the voice was made for reads its conditioning, the new
    # one has it made once and kept, and a restart with it makes nothing.
    registry = Registry({joe.default.name: joe.default}, [joe.warm[0]])
    pipeline = Pipeline.from_registry(registry, Settings(voices_dir=str(tmp_path), api_key=KEY))
    client = TestClient(create_http_api(pipeline, Readiness()))
    assert {m for m, _ in listed(client)} == {"en_US-joe-medium"}
    same, other = CloningFakeEngine(), CloningFakeEngine(name="cloner-b")
    for engine in (same, other):
        registry.add(engine, WarmModel(engine.card(), 0, 0))
        library_module.library_for(pipeline).model_added(engine)
    assert {("cloner", "narrator"), ("cloner-b", "narrator")} <= listed(client)
    assert (same.encodes, other.encodes) == (0, 1)
    assert sorted(p.name for p in (tmp_path / "narrator" / "models").iterdir()) == [
        "cloner-b.npz", "cloner.npz"]
    client, cloner_b, _ = start_app(joe, tmp_path, cloner=CloningFakeEngine(name="cloner-b"))
    assert ("cloner-b", "narrator") in listed(client) and cloner_b.encodes == 0


@pytest.mark.parametrize("fmt", ["flac", "mp3", "ogg", "m4a", "webm"])
def test_a_clip_in_any_common_format_is_read(speech, fmt, tmp_path):
    """soundfile reads WAV/FLAC/MP3/OGG; M4A and WebM go through ffmpeg."""
    from tts_core.ffmpeg import find_ffmpeg
    from tts_core.voices.clip import prepare

    audio, rate = speech
    source = tmp_path / "clip.wav"
    source.write_bytes(wav(audio, rate))
    target = tmp_path / f"clip.{fmt}"
    subprocess.run([find_ffmpeg(), "-loglevel", "error", "-i", str(source), str(target)], check=True)
    clip = prepare(target.read_bytes(), min_s=1.0, max_s=30.0, transcript="Words.",
                   needs_transcript=True, transcriber=None)
    # The speech between the trimmed edges, within a codec's padding.
    assert clip.seconds == pytest.approx(audio.shape[0] / rate - 1.0, abs=0.15)
    assert clip.transcript == "Words." and not clip.cut


def test_a_saved_voice_that_fails_its_warm_up_stops_the_start_and_says_which(joe, speech, tmp_path):
    client, _, _ = start_app(joe, tmp_path)
    assert add(client, "narrator", wav(*speech), SPOKEN).status_code == 201
    broken = CloningFakeEngine()
    broken.fail_on = "Warming"
    with pytest.raises(ModelLoadError, match="warm-up in the saved voice 'narrator'.*Delete "):
        start_app(joe, tmp_path, cloner=broken)
