"""Settings.from_env: defaults, model specs, and errors that name the variable."""

import subprocess
import sys
from pathlib import Path

import pytest

from tts_core import ConfigError, ModelSpec, Settings


def test_defaults_are_the_embedded_voice():
    s = Settings.from_env({})
    assert [(m.family, m.source, m.name) for m in s.models] == [("piper", "joe", "en_US-joe-medium")]
    assert (s.device, s.max_chars, s.queue_size) == ("auto", 5000, 16)


@pytest.mark.parametrize("raw, family, source, name, device", [
    ("joe", "piper", "joe", "en_US-joe-medium", None),
    ("/voices/en_GB-alan-low.onnx", "piper", "/voices/en_GB-alan-low.onnx", "en_GB-alan-low", None),
    ("facebook/mms-tts-eng", "vits", "facebook/mms-tts-eng", "mms-tts-eng", None),
    ("vits:kakao-enterprise/vits-vctk?name=vctk&device=cpu", "vits", "kakao-enterprise/vits-vctk",
     "vctk", "cpu"),
    ("piper:/x/y.onnx?name=mine", "piper", "/x/y.onnx", "mine", None),
    ("vits:/models/mms-deu/", "vits", "/models/mms-deu/", "mms-deu", None),
    ("speecht5:microsoft/speecht5_tts", "speecht5", "microsoft/speecht5_tts", "speecht5_tts", None),
    ("bark:suno/bark-small?dtype=float16&device=cuda", "bark", "suno/bark-small", "bark-small", "cuda"),
    ("transformers:sesame/csm-1b?name=csm", "transformers", "sesame/csm-1b", "csm", None),
])
def test_model_spec(raw, family, source, name, device):
    spec = ModelSpec.parse(raw)
    assert (spec.family, spec.source, spec.name, spec.device) == (family, source, name, device)


@pytest.mark.parametrize("env, variable, words", [
    ({"TTS_MAX_CHARS": "lots"}, "TTS_MAX_CHARS", "not a whole number"),
    ({"TTS_MAX_CHARS": "0"}, "TTS_MAX_CHARS", "below the minimum"),
    ({"TTS_QUEUE_SIZE": "-3"}, "TTS_QUEUE_SIZE", "below the minimum"),
    ({"TTS_DEVICE": "tpu"}, "TTS_DEVICE", "not one of auto, cpu, cuda"),
    ({"TTS_MODELS": " , "}, "TTS_MODELS", "names no model"),
    ({"TTS_MODELS": "whisper:openai/whisper-tiny"}, "TTS_MODELS", "unknown model family 'whisper'"),
    ({"TTS_MODELS": "joe?speed=2"}, "TTS_MODELS", "unknown option 'speed'"),
    ({"TTS_MODELS": "joe?dtype=float16"}, "TTS_MODELS", "piper runs in float32 only"),
    ({"TTS_MODELS": "vits:a/b?dtype=float16"}, "TTS_MODELS", "overflows to NaN in float16"),
    ({"TTS_MODELS": "joe?voices=/x"}, "TTS_MODELS", "unknown option 'voices' for a piper model"),
    ({"TTS_MODELS": "bark:suno/bark?vocoder=x"}, "TTS_MODELS", "its options: name, device, dtype, voices"),
    ({"TTS_MODELS": "bark:suno/bark?dtype=half"}, "TTS_MODELS", "dtype 'half'"),
    ({"TTS_MODELS": "vits:a/b?device=gpu"}, "TTS_MODELS", "device 'gpu'"),
    ({"TTS_MODELS": "joe,joe"}, "TTS_MODELS", "share the name"),
    ({"TTS_GATE_TIMEOUT": "nan"}, "TTS_GATE_TIMEOUT", "finite number"),
    ({"TTS_LOG_LEVEL": "loud"}, "TTS_LOG_LEVEL", "not one of DEBUG, INFO, WARNING, ERROR"),
    ({"TTS_ZEROGPU_DURATION": "60s"}, "TTS_ZEROGPU_DURATION", "not a whole number"),
    ({"TTS_ZEROGPU_DURATION": "0"}, "TTS_ZEROGPU_DURATION", "below the minimum"),
])
def test_invalid_values_name_the_variable(env, variable, words):
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert err.value.variable == variable
    assert str(err.value).startswith(variable) and words in str(err.value)


def test_the_api_key_never_shows_in_the_settings_repr():
    settings = Settings.from_env({"TTS_API_KEY": "s3cret-key"})
    assert settings.api_key == "s3cret-key" and "s3cret-key" not in repr(settings)


def test_family_options_are_parsed():
    spec = ModelSpec.parse("speecht5:microsoft/speecht5_tts?voices=/data/xv&vocoder=/m/hifigan"
                           "&dtype=bfloat16")
    assert (spec.voices, spec.vocoder, spec.dtype) == ("/data/xv", "/m/hifigan", "bfloat16")
    assert ModelSpec.parse("bark:suno/bark").dtype == "auto"
    assert ModelSpec.parse("transformers:facebook/seamless-m4t-v2-large?lang=deu").lang == "deu"


def test_reading_a_torch_family_spec_imports_no_torch():
    """Specs are read at start-up before the port opens, and when a model is added while
    serving (on the event loop): importing torch there would stall every stream for seconds."""
    code = ("import sys; from tts_core.config import ModelSpec; "
            "spec = ModelSpec.parse('bark:suno/bark-small?dtype=float16&voices=v2/en_speaker_6'); "
            "print(spec.family, spec.dtype, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parent.parent)
    assert out.stdout.split() == ["bark", "float16", "False"], out.stderr[-2000:]
