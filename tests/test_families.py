"""The model families (SpeechT5, Bark, any transformers text-to-audio model, MMS with uroman).

Each family is a tiny random-weight checkpoint built offline from its Config (tests/tiny_models.py),
loaded by the app's own spec string, warm-loaded by the registry, and finally served by the
real app and called through gradio_client, as a person's code would call it.
"""

import math
import os

import httpx
import numpy as np
import pytest
import soundfile as sf
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from conftest import free_port, speak, start_app
from fakes import FakeEngine
from tiny_models import (TINY_BARK_PRESETS, TINY_BARK_RATE, TINY_BARK_SEMANTIC_TOKENS,
                         TINY_SPEECHT5_RATE, TINY_TEXT_TO_AUDIO_MAX_NEW_TOKENS,
                         TINY_TEXT_TO_AUDIO_SAMPLE_RATE, TINY_VITS_RATE, make_tiny_bark,
                         make_tiny_vits)
from tts_core import InputError, ModelLoadError, ModelSpec, Pipeline, Settings, SpeechRequest
from tts_core import registry as registry_module
from tts_core.engines import SynthesisParams, load_engine
from tts_core.errors import UnknownVoiceError

SPEECHT5_HOP = 256  # samples per mel frame of SpeechT5's HiFi-GAN
BARK_HOP = 320  # samples per EnCodec frame at 24 kHz
CSM_FRAME = 1920  # samples per Mimi frame at 24 kHz


@pytest.fixture(scope="module")
def families(family_specs) -> Pipeline:
    return Pipeline.from_settings(Settings.from_env({"TTS_MODELS": family_specs}))


# --- SpeechT5 -------------------------------------------------------------------------------


def test_speecht5_speaks_at_16k_with_its_xvector_voices(families):
    engine = families.registry.get("tiny-speecht5")
    assert (engine.sample_rate, engine.voices, engine.embedding_dim) == (
        TINY_SPEECHT5_RATE, ("alice", "bob"), 512)
    ids = engine.prepare("hello there", SynthesisParams(voice="alice"))
    audio = speak(engine, "hello there", seed=1)
    # generate_speech stops on its stop token or after maxlenratio (20) / reduction factor (2)
    # decoder steps per input id, two mel frames a step: the bound for any SpeechT5.
    assert 2 * SPEECHT5_HOP <= audio.shape[0] <= ids.shape[-1] * 10 * 2 * SPEECHT5_HOP
    assert audio.dtype == np.float32 and np.abs(audio).max() > 0.01


def test_speecht5_seed_and_voice_decide_the_audio(families):
    engine = families.registry.get("tiny-speecht5")
    a, b = speak(engine, "same seed", seed=5), speak(engine, "same seed", seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, speak(engine, "same seed", seed=6))
    assert not np.array_equal(a, speak(engine, "same seed", seed=5, voice="bob"))


def test_speecht5_without_any_embedding_is_refused_at_load_with_a_how_to(tiny_speecht5_dir,
                                                                          tmp_path):
    with pytest.raises(ModelLoadError) as err:
        load_engine(ModelSpec.parse(f"speecht5:{tiny_speecht5_dir}?voices={tmp_path}"), "cpu")
    message = str(err.value)
    assert "no voice" in message and str(tmp_path) in message
    assert "x-vector" in message and "?voices=" in message and "512" in message


def test_a_malformed_voice_file_stops_the_load(tiny_speecht5_dir, tmp_path):
    np.save(tmp_path / "short.npy", np.zeros(100, dtype=np.float32))
    with pytest.raises(ModelLoadError, match=r"short.npy.*shape \(100,\).*512 numbers"):
        load_engine(ModelSpec.parse(f"speecht5:{tiny_speecht5_dir}?voices={tmp_path}"), "cpu")


def test_an_uploaded_xvector_is_the_voice_for_that_request(families, tmp_path):
    own = tmp_path / "mine.npy"
    np.save(own, (np.random.default_rng(9).standard_normal(512) * 0.05).astype(np.float32))
    mine = families.synthesize(SpeechRequest("hello there", model="tiny-speecht5", seed=2,
                                             speaker_embedding=own))
    alice = families.synthesize(SpeechRequest("hello there", model="tiny-speecht5", seed=2))
    assert mine.sample_rate == TINY_SPEECHT5_RATE and not np.array_equal(mine.audio, alice.audio)


@pytest.mark.parametrize("content, words", [
    (np.zeros(10, dtype=np.float32), "shape (10,); this model needs 512 numbers"),
    (np.full(512, np.nan, dtype=np.float32), "NaN or infinite"),
    (b"not a numpy file", "not a readable .npy file"),
    (np.array([{"a": 1}], dtype=object), "holds Python objects"),
])
def test_a_bad_uploaded_xvector_is_a_clear_error(families, tmp_path, content, words):
    path = tmp_path / "upload.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content)
    with pytest.raises(InputError) as err:
        families.synthesize(SpeechRequest("hello", model="tiny-speecht5", speaker_embedding=path))
    assert words in str(err.value) and err.value.param == "speaker_embedding"
    assert "allow_pickle" not in str(err.value)  # numpy's advice is not ours to give


def test_only_speecht5_takes_an_xvector_and_it_has_no_speed(families):
    with pytest.raises(InputError, match="takes no speaker embedding"):
        families.synthesize(SpeechRequest("hello", model="tiny-vits",
                                          speaker_embedding=np.zeros(512)))
    with pytest.raises(InputError, match="has no speed control"):
        families.synthesize(SpeechRequest("hello", model="tiny-speecht5", speed=1.5))


# --- Bark -----------------------------------------------------------------------------------


def test_bark_speaks_at_24k_with_its_presets_as_voices(families):
    engine = families.registry.get("tiny-bark")
    assert engine.sample_rate == TINY_BARK_RATE
    assert engine.voices == TINY_BARK_PRESETS + ("random",)
    audio = speak(engine, "hello there", seed=1)
    # Bark writes at most the checkpoint's semantic-token limit per chunk (49.9 a second), then
    # 75 EnCodec frames a second of 320 samples: the longest a chunk can be.
    most = math.ceil(TINY_BARK_SEMANTIC_TOKENS * 75 / 49.9) * BARK_HOP
    assert BARK_HOP <= audio.shape[0] <= most and np.abs(audio).max() > 0.01


def test_bark_seed_temperature_and_preset_decide_the_audio(families):
    engine = families.registry.get("tiny-bark")
    a = speak(engine, "same seed", seed=5)
    np.testing.assert_array_equal(a, speak(engine, "same seed", seed=5))
    assert not np.array_equal(a, speak(engine, "same seed", seed=6))
    assert not np.array_equal(a, speak(engine, "same seed", seed=5, temperature=1.5))
    assert not np.array_equal(a, speak(engine, "same seed", seed=5, voice="v2/en_speaker_1"))
    assert speak(engine, "no preset", seed=5, voice="random").shape[0] > 0


def test_an_unknown_bark_preset_lists_the_presets(families):
    with pytest.raises(UnknownVoiceError) as err:
        families.synthesize(SpeechRequest("hello", model="tiny-bark", voice="v2/de_speaker_3"))
    assert "Unknown voice 'v2/de_speaker_3'" in str(err.value)
    assert "v2/en_speaker_0, v2/en_speaker_1, random" in str(err.value)


def test_bark_presets_from_a_folder_of_npz(tmp_path):
    model = make_tiny_bark(tmp_path / "bare-bark", presets=False)
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "narrator.npz", semantic_prompt=rng.integers(0, 10_000, 50),
             coarse_prompt=rng.integers(0, 1024, (2, 75)), fine_prompt=rng.integers(0, 1024, (8, 75)))
    with pytest.raises(ModelLoadError, match="voices folder .*nothing does not exist"):
        load_engine(ModelSpec.parse(f"bark:{model}?voices={tmp_path / 'nothing'}"), "cpu")
    engine = load_engine(ModelSpec.parse(f"bark:{model}?voices={tmp_path}"), "cpu")
    assert engine.voices == ("narrator", "random")
    assert speak(engine, "hello", seed=1, voice="narrator").shape[0] > 0
    np.savez(tmp_path / "broken.npz", semantic_prompt=np.zeros(3))
    with pytest.raises(ModelLoadError, match="broken.npz lacks coarse_prompt, fine_prompt"):
        load_engine(ModelSpec.parse(f"bark:{model}?voices={tmp_path}"), "cpu")


def test_temperature_is_checked(families):
    with pytest.raises(InputError, match="Temperature must be a number between 0.05 and 2.0"):
        families.synthesize(SpeechRequest("hello", model="tiny-bark", temperature=9))


# --- any transformers text-to-audio model -----------------------------------------------------


def test_a_generic_text_to_audio_model_speaks_at_the_rate_its_config_gives(families):
    engine = families.registry.get("tiny-csm")
    assert (engine.family, engine.model_type, engine.sample_rate, engine.voices) == (
        "transformers", "csm", TINY_TEXT_TO_AUDIO_SAMPLE_RATE, ("default",))
    audio = speak(engine, "hello there", seed=1)
    assert 0 < audio.shape[0] <= TINY_TEXT_TO_AUDIO_MAX_NEW_TOKENS * CSM_FRAME
    np.testing.assert_array_equal(speak(engine, "hello there", seed=1), audio)
    assert not np.array_equal(speak(engine, "hello there", seed=2), audio)


def test_a_model_needing_inputs_the_adapter_lacks_says_which_at_load(tiny_speecht5_dir):
    with pytest.raises(ModelLoadError) as err:
        load_engine(ModelSpec.parse(f"transformers:{tiny_speecht5_dir}"), "cpu")
    assert "needs a speaker embedding" in str(err.value) and "speecht5:" in str(err.value)


def test_a_folder_that_is_no_model_is_a_clear_load_error(tmp_path):
    for family in ("speecht5", "bark", "transformers"):
        with pytest.raises(ModelLoadError, match="could not be loaded"):
            load_engine(ModelSpec.parse(f"{family}:{tmp_path}"), "cpu")


# --- MMS in other scripts: uroman ---------------------------------------------------------------


@pytest.fixture(scope="module")
def uroman_vits(tmp_path_factory):
    return load_engine(ModelSpec.parse(
        f"vits:{make_tiny_vits(tmp_path_factory.mktemp('m') / 'mms-hin', uroman=True)}"), "cpu")


def test_mms_models_for_other_scripts_hear_romanized_text(uroman_vits, families, monkeypatch):
    import uroman

    assert uroman_vits.language_tag == "hin" and uroman_vits.card().language_name == "Hindi"
    # The one Uroman made at load serves every request: building one per call takes seconds.
    monkeypatch.setattr(uroman, "Uroman", lambda: pytest.fail("Uroman built per request"))
    assert uroman_vits.prepare("नमस्ते दुनिया", SynthesisParams(voice="default")) is not None
    assert speak(uroman_vits, "Привет — «мир»", seed=1).shape[0] > 0  # uroman keeps — « »
    # A Latin-alphabet model without uroman has nothing to say in Devanagari: a clear error.
    with pytest.raises(InputError, match="cannot pronounce any of this text"):
        families.synthesize(SpeechRequest("नमस्ते दुनिया", model="tiny-vits"))


# --- precision, memory, startup ------------------------------------------------------------------


@pytest.mark.parametrize("family, folder, dtype", [
    ("speecht5", "tiny_speecht5_dir", "float16"), ("bark", "tiny_bark_dir", "bfloat16")])
def test_half_precision_where_it_is_the_cuda_default(request, xvector_dir, family, folder, dtype):
    """The dtype a family gets on CUDA keeps its output: with no real weights here, a tiny
    model's waveform in that dtype against float32's, same text and seed (on CPU)."""
    spec = f"{family}:{request.getfixturevalue(folder)}?voices={xvector_dir}"
    if family == "bark":
        spec = spec.split("?")[0]
    full = load_engine(ModelSpec.parse(spec), "cpu")
    half = load_engine(ModelSpec.parse(f"{spec}{'&' if '?' in spec else '?'}dtype={dtype}"), "cpu")
    assert (full.dtype, half.dtype) == ("float32", dtype)
    assert half.memory_bytes < full.memory_bytes  # (integer buffers stay as they are)
    for text in ("hello there", "good day"):
        a, b = speak(full, text, seed=1), speak(half, text, seed=1)
        assert a.shape == b.shape
        snr_db = 10 * np.log10(np.sum(a ** 2) / np.sum((a - b) ** 2))
        assert snr_db > 30  # the difference is under a thousandth of the signal's power


def test_the_warm_load_table_has_memory_and_dtype(families):
    by_name = {w.name: w.to_dict() for w in families.registry.warm}
    assert set(by_name) == {"tiny-vits", "tiny-speecht5", "tiny-bark", "tiny-csm"}
    for name, info in by_name.items():
        engine = families.registry.get(name)
        assert info["memory_mb"] == round(engine.memory_bytes / 2**20, 1) and info["memory_mb"] > 0
        assert info["dtype"] == "float32" and info["warmup_rtf"] > 0
        # /models (and the UI's note) read the same card as the warm-load table.
        assert next(m for m in families.models() if m["name"] == name)["memory_mb"] == info["memory_mb"]
    assert by_name["tiny-bark"]["memory_mb"] > by_name["tiny-vits"]["memory_mb"]


def test_a_model_that_does_not_fit_is_refused_at_startup(monkeypatch):
    def load(spec, device, threads):
        engine = FakeEngine(oom_on="Warming")  # out of memory in its warm-up, like CUDA would be
        engine.name = spec.name
        return engine

    monkeypatch.setattr(registry_module, "load_engine", load)
    with pytest.raises(ModelLoadError) as err:
        registry_module.warm_load(Settings.from_env({"TTS_MODELS": "bark:suno/bark-small"}))
    assert "does not fit in device memory" in str(err.value)
    assert "dtype=float16" in str(err.value) and "device=cpu" in str(err.value)


def test_oom_in_one_request_fails_it_and_the_next_succeeds(families, serve, monkeypatch):
    """Inside the gate, each family's device call raises torch's CUDA out-of-memory error once."""
    url = serve(families)
    client = Client(url, verbose=False)
    for name in ("tiny-vits", "tiny-speecht5", "tiny-bark", "tiny-csm"):
        engine = families.registry.get(name)
        real = engine.infer_batch
        calls = []

        def once(prepared, params, real=real, calls=calls):
            calls.append(1)
            if len(calls) == 1:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return real(prepared, params)

        monkeypatch.setattr(engine, "infer_batch", once)
        with pytest.raises(AppError, match=f"Model '{name}' ran out of memory"):
            client.predict("hello there", name, api_name="/synthesize")
        path, record = client.predict("hello there", name, api_name="/synthesize")
        assert sf.info(path).samplerate == engine.sample_rate and record["model"] == name
    assert families.gate.queue_depth == 0


# --- the app with all four, served as `python app.py` serves it ----------------------------------


@pytest.fixture(scope="module")
def four_family_app(family_specs):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TTS_", "GRADIO_"))}
    env |= {"TTS_MODELS": family_specs, "GRADIO_SERVER_PORT": str(free_port()),
            "TTS_CPU_THREADS": "1"}
    proc, url = start_app(env)
    yield url, Client(url, verbose=False)
    proc.terminate()
    proc.wait(timeout=30)


def test_the_app_starts_with_all_four_families_warm(four_family_app):
    url, client = four_family_app
    ready = httpx.get(f"{url}/ready", timeout=5).json()
    assert [m["model"] for m in ready["models"]] == [
        "tiny-vits", "tiny-speecht5", "tiny-bark", "tiny-csm"]
    models = {m["name"]: m for m in client.predict(api_name="/models")}
    assert {n: (m["family"], m["sample_rate"]) for n, m in models.items()} == {
        "tiny-vits": ("vits", TINY_VITS_RATE), "tiny-speecht5": ("speecht5", TINY_SPEECHT5_RATE),
        "tiny-bark": ("bark", TINY_BARK_RATE), "tiny-csm": ("transformers", 24000)}
    assert all(m["warmup_s"] > 0 for m in models.values())


HELLO = "Hello there."
# The longest each family may answer HELLO with, in samples (see the engine tests above):
# SpeechT5 20 frames of 256 per input id (its characters, a word-start mark and </s>),
# Bark the checkpoint's semantic-token limit, CSM its generation limit of Mimi frames.
MOST_SAMPLES = {"tiny-speecht5": (len(HELLO) + 2) * 20 * SPEECHT5_HOP,
                "tiny-bark": math.ceil(TINY_BARK_SEMANTIC_TOKENS * 75 / 49.9) * BARK_HOP,
                "tiny-csm": TINY_TEXT_TO_AUDIO_MAX_NEW_TOKENS * CSM_FRAME}


@pytest.mark.parametrize("model, rate", [
    ("tiny-vits", TINY_VITS_RATE), ("tiny-speecht5", TINY_SPEECHT5_RATE),
    ("tiny-bark", TINY_BARK_RATE), ("tiny-csm", TINY_TEXT_TO_AUDIO_SAMPLE_RATE)])
def test_each_family_answers_synthesize_at_its_own_rate(four_family_app, model, rate):
    _, client = four_family_app
    path, record = client.predict(HELLO, model, "", 1.0, 7, api_name="/synthesize")
    audio, got = sf.read(path, dtype="float32")
    assert got == rate and audio.shape[0] > 0 and np.abs(audio).max() > 0.001
    if model in MOST_SAMPLES:  # (VITS's length is whatever its duration predictor says)
        assert audio.shape[0] <= MOST_SAMPLES[model]
    assert record["model"] == model and record["audio_seconds"] == pytest.approx(
        audio.shape[0] / rate, abs=0.01)
    again, _ = client.predict(HELLO, model, "", 1.0, 7, api_name="/synthesize")
    np.testing.assert_array_equal(sf.read(again, dtype="float32")[0], audio)  # same seed


def test_through_the_api_bark_temperature_and_speecht5_upload(four_family_app, xvector_dir):
    _, client = four_family_app
    warm, _ = client.predict("Hello there.", "tiny-bark", "v2/en_speaker_1", 1.0, 3, 0.3,
                             api_name="/synthesize")
    hot, _ = client.predict("Hello there.", "tiny-bark", "v2/en_speaker_1", 1.0, 3, 1.6,
                            api_name="/synthesize")
    assert not np.array_equal(sf.read(warm)[0], sf.read(hot)[0])
    uploaded, record = client.predict("Hello there.", "tiny-speecht5", "", 1.0, 3, 0.7,
                                      handle_file(str(xvector_dir / "bob.npy")),
                                      api_name="/synthesize")
    bob, _ = client.predict("Hello there.", "tiny-speecht5", "bob", 1.0, 3, api_name="/synthesize")
    np.testing.assert_array_equal(sf.read(uploaded)[0], sf.read(bob)[0])
    with pytest.raises(AppError, match="Unknown voice 'v2/fr_speaker_9' for model 'tiny-bark'"):
        client.predict("Hello.", "tiny-bark", "v2/fr_speaker_9", api_name="/synthesize")


class RunsACommand:
    """What a hostile pickle holds: loading it would run a shell command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_pickled_npy_upload_through_the_api_is_refused_and_never_loaded(four_family_app,
                                                                         tmp_path):
    _, client = four_family_app
    marker = tmp_path / "unpickled"
    hostile = np.empty(1, dtype=object)
    hostile[0] = RunsACommand(f"touch {marker}")
    np.save(tmp_path / "voice.npy", hostile, allow_pickle=True)
    with pytest.raises(AppError) as err:
        client.predict("Hello there.", "tiny-speecht5", "", 1.0, 3, 0.7,
                       handle_file(str(tmp_path / "voice.npy")), api_name="/synthesize")
    assert "holds Python objects" in str(err.value) and "allow_pickle" not in str(err.value)
    assert not marker.exists()  # the pickle was never run
    path, _ = client.predict("Hello there.", "tiny-speecht5", "bob", 1.0, 3, api_name="/synthesize")
    assert sf.info(path).duration > 0  # the app serves on


def test_the_language_picker_lists_models_by_language_and_examples_follow(families, uroman_vits):
    from ui.pickers import load_examples, model_choices

    assert model_choices(families, "English") == [
        ("tiny-vits (vits)", "tiny-vits"), ("tiny-speecht5 (speecht5)", "tiny-speecht5")]
    assert model_choices(families, "Multiple languages") == [
        ("tiny-bark (bark)", "tiny-bark")]
    assert len(model_choices(families)) == 4
    german = load_examples("de")
    assert german and german[0][0].startswith("Guten Tag")
    assert load_examples("hin") == load_examples("en")  # none for 'hin': English
    assert load_examples(uroman_vits.language)[0][0].startswith("नमस्ते")


def test_prefetch_of_speecht5_needs_no_voices_yet(tiny_speecht5_dir, tmp_path):
    """At image build the x-vectors may not be there yet (a volume at run time): prefetch
    fetches the weights, processor and vocoder, and the load itself still insists on a voice."""
    from tts_core.prefetch import prefetch

    spec = ModelSpec.parse(f"speecht5:{tiny_speecht5_dir}?voices={tmp_path / 'mounted-later'}")
    assert prefetch(spec).startswith("local folder")
    with pytest.raises(ModelLoadError, match="no voice"):
        load_engine(spec, "cpu")


@pytest.mark.parametrize("name, arrays, words", [
    ("flat", dict(semantic_prompt=np.zeros((2, 3), int), coarse_prompt=np.zeros((2, 3), int),
                  fine_prompt=np.zeros((8, 3), int)), "1-D and coarse_prompt and fine_prompt 2-D"),
    ("floats", dict(semantic_prompt=np.zeros(3), coarse_prompt=np.zeros((2, 3)),
                    fine_prompt=np.zeros((8, 3))), "2-D arrays of token ids"),
    ("random", dict(semantic_prompt=np.zeros(3, int), coarse_prompt=np.zeros((2, 3), int),
                    fine_prompt=np.zeros((8, 3), int)), "takes the name of the built-in 'random'"),
])
def test_a_bad_bark_preset_file_stops_the_load(tiny_bark_dir, tmp_path, name, arrays, words):
    np.savez(tmp_path / f"{name}.npz", **arrays)
    with pytest.raises(ModelLoadError, match=words):
        load_engine(ModelSpec.parse(f"bark:{tiny_bark_dir}?voices={tmp_path}"), "cpu")


def test_a_model_too_slow_for_the_inference_timeout_is_named_at_startup(monkeypatch, caplog):
    def load(spec, device, threads):
        return FakeEngine(infer_s=0.05)  # RTF about 0.1: a 300-character chunk takes about 2 s

    monkeypatch.setattr(registry_module, "load_engine", load)
    settings = Settings.from_env({"TTS_MODELS": "joe", "TTS_INFER_TIMEOUT": "0.5"})
    with caplog.at_level("WARNING"):
        registry_module.warm_load(settings)
    assert "past TTS_INFER_TIMEOUT" in caplog.text and "Raise TTS_INFER_TIMEOUT" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        registry_module.warm_load(Settings.from_env({"TTS_MODELS": "joe"}))  # 120 s: plenty
    assert "TTS_INFER_TIMEOUT" not in caplog.text
