"""Each engine through its real loading code: the embedded Piper voice and tiny VITS checkpoints."""

import numpy as np
import pytest

from conftest import speak
from tts_core import ModelLoadError, ModelSpec, Settings
from tts_core.device import resolve_device
from tts_core.engines import SynthesisParams, load_engine
from tts_core.engines.base import MIN_WINDOW_SNR_DB
from tts_core.errors import ConfigError
from tts_core.registry import warm_load


def test_embedded_piper_voice_speaks_offline():
    engine = load_engine(ModelSpec.parse("joe"), "cpu")
    assert (engine.name, engine.sample_rate, engine.voices) == ("en_US-joe-medium", 22050, ("joe",))
    audio = speak(engine, "Hello there, how are you today?")
    seconds = audio.shape[0] / engine.sample_rate
    assert audio.dtype == np.float32 and 1.0 < seconds < 4.0
    assert np.abs(audio).max() <= 1.0 and np.sqrt(np.mean(audio ** 2)) > 0.02  # not silence


def test_warm_up_logs_how_well_the_piper_windows_join(caplog):
    """The warm-up's window check measures an SNR against the whole decode; it is logged with
    the bound it was held to, so an operator sees by how much a voice passed (or failed)."""
    engine = load_engine(ModelSpec.parse("joe?noise_scale=0&noise_w=0"), "cpu")
    with caplog.at_level("INFO", logger="tts_core.engines.base"):
        engine.warm_up("Warming up the voice, one two three.")
    [line] = [r.getMessage() for r in caplog.records if "SNR" in r.getMessage()]
    snr = float(line.split(" dB SNR")[0].rsplit(" ", 1)[-1])
    assert engine.supports_windows and snr >= MIN_WINDOW_SNR_DB
    assert f"at least {MIN_WINDOW_SNR_DB:.0f} dB" in line and line.startswith("en_US-joe-medium")


def test_piper_speed_changes_duration():
    engine = load_engine(ModelSpec.parse("joe?noise_scale=0&noise_w=0"), "cpu")  # deterministic
    normal = speak(engine, "This sentence is spoken at two speeds.")
    fast = speak(engine, "This sentence is spoken at two speeds.", speed=2.0)
    # Twice the speed halves each phoneme's frames, rounded up to whole frames: a bit over half.
    assert 0.45 < fast.shape[0] / normal.shape[0] < 0.7


def test_missing_piper_file_is_a_clear_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_engine(ModelSpec.parse(str(tmp_path / "nope.onnx")), "cpu")


def test_tiny_vits_loads_through_from_pretrained(tiny_vits_dir):
    engine = load_engine(ModelSpec.parse(f"vits:{tiny_vits_dir}?name=tiny"), "auto")
    assert (engine.name, engine.sample_rate, engine.voices, engine.device) == (
        "tiny", 16000, ("default",), "cpu")
    audio = speak(engine, "hello there", seed=1)
    assert audio.dtype == np.float32 and audio.shape[0] > 0 and np.abs(audio).max() > 0


def test_vits_same_seed_same_audio(tiny_vits_dir):
    engine = load_engine(ModelSpec.parse(f"vits:{tiny_vits_dir}"), "cpu")
    a, b = speak(engine, "same seed", seed=7), speak(engine, "same seed", seed=7)
    np.testing.assert_array_equal(a, b)


def test_multi_speaker_vits_lists_speakers_as_voices(tiny_vits_multi_dir):
    engine = load_engine(ModelSpec.parse(f"vits:{tiny_vits_multi_dir}"), "cpu")
    assert engine.voices == ("speaker_0", "speaker_1", "speaker_2")
    a = speak(engine, "who is speaking", voice="speaker_0", seed=3)
    b = speak(engine, "who is speaking", voice="speaker_2", seed=3)
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_vits_says_nothing_for_characters_outside_its_alphabet(tiny_vits_dir):
    engine = load_engine(ModelSpec.parse(f"vits:{tiny_vits_dir}"), "cpu")
    assert engine.prepare("日本語", SynthesisParams(voice="default")) is None


def test_bad_vits_folder_is_a_clear_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="could not be loaded"):
        load_engine(ModelSpec.parse(f"vits:{tmp_path}"), "cpu")


def test_cuda_requested_without_cuda_names_the_variable():
    with pytest.raises(ConfigError, match="TTS_DEVICE"):
        resolve_device("cuda", cuda_available=False)
    assert resolve_device("auto", cuda_available=False) == "cpu"
    assert resolve_device("auto", cuda_available=True) == "cuda"


def test_warm_load_runs_each_model_once_and_records_timings(tiny_vits_dir):
    registry = warm_load(Settings.from_env({"TTS_MODELS": f"joe,vits:{tiny_vits_dir}?name=tiny"}))
    assert registry.available_models() == ["en_US-joe-medium", "tiny"]
    assert registry.default.name == "en_US-joe-medium"
    for warm in registry.warm:
        assert warm.load_s > 0 and warm.warmup_s > 0 and warm.card.device == "cpu"


def test_one_bad_model_stops_startup(tiny_vits_dir, tmp_path):
    settings = Settings.from_env({"TTS_MODELS": f"vits:{tiny_vits_dir},{tmp_path}/missing.onnx"})
    with pytest.raises(ModelLoadError, match="missing.onnx"):
        warm_load(settings)
