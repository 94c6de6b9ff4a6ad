"""Loudness targets: whole files land on the target, streams keep one gain, no peak passes the ceiling."""

import io

import httpx
import numpy as np
import pytest
import soundfile as sf
from scipy.ndimage import maximum_filter1d

from tts_core import ConfigError, InputError, Settings, SpeechRequest
from tts_core.loudness import Limiter, integrated_lufs, true_peak

MAX_ERROR_LU = 1.0  # the bound
CEILING_DB = -1.5
QUIET = 0.05  # stream samples this far below full scale: even +20 dB leaves them under the ceiling
# Not the sentences the voice's level is measured on at warm-up (engines/base.py).
TEXTS = (
    "Hello there. It is 9:30 now.",
    "Close the front door.",
    "I paid $20 for it, didn't I?",
    "The committee reviewed the proposal for nearly three hours before anyone suggested that "
    "the whole plan should be reconsidered from the start.",
    "A quiet street at dawn. The milkman whistles as he works. Somewhere a dog barks twice, "
    "then settles down again.",
    "Please hold the line. Your call is important to us, and an agent will be with you shortly.",
)


def peak_db(audio: np.ndarray) -> float:
    return 20 * np.log10(true_peak(audio))


def wav(data: bytes) -> np.ndarray:
    audio, _ = sf.read(io.BytesIO(data), dtype="float32")
    return audio


def stream_samples(synthesis) -> tuple[np.ndarray, list]:
    pieces = list(synthesis)
    return np.concatenate([p.audio for p in pieces]), pieces


@pytest.mark.parametrize("target", [-16.0, -23.0])
def test_whole_files_land_within_1_lu_with_no_peak_over_the_ceiling(quiet_pipeline, target, figure):
    errors = []
    for text in TEXTS:
        result = quiet_pipeline.synthesize(SpeechRequest(text, loudness=target))
        served = wav(result.data)  # as the caller gets it: int16
        errors.append(integrated_lufs(served, 22050) - target)
        assert peak_db(served) <= CEILING_DB, text
    figure(f"loudness, whole files at {target:g} LUFS: errors {', '.join(f'{e:+.2f}' for e in errors)} LU "
           f"over {len(TEXTS)} texts; true peak at most {CEILING_DB} dBTP")
    assert max(abs(e) for e in errors) <= MAX_ERROR_LU


def test_streams_keep_one_gain_under_the_ceiling(quiet_pipeline, figure):
    errors, spreads, gains_db = [], [], []
    for text in TEXTS:
        plain, _ = stream_samples(quiet_pipeline.stream(SpeechRequest(text)))
        loud, pieces = stream_samples(quiet_pipeline.stream(SpeechRequest(text, loudness=-16)))
        assert loud.shape == plain.shape  # the limiter's look-ahead hands everything back
        assert peak_db(loud) <= CEILING_DB
        # Where the limiter had nothing to do (no loud sample within 20 ms), every piece has
        # the same gain over the plain stream: no step from one piece to the next.
        untouched = (maximum_filter1d(np.abs(plain), int(0.04 * 22050)) < QUIET) & (np.abs(plain) > 1e-3)
        gains, at = [], 0
        for piece in pieces:
            span = slice(at, at + piece.audio.shape[0])
            at += piece.audio.shape[0]
            if untouched[span].sum() > 100:
                gains.append(float(np.median(loud[span][untouched[span]] / plain[span][untouched[span]])))
        if len(gains) > 1:
            spreads.append(20 * np.log10(max(gains) / min(gains)))
        gains_db.append(20 * np.log10(np.median(gains)))
        errors.append(integrated_lufs(loud, 22050) + 16)
    figure(f"loudness, streams at -16 LUFS: gains {', '.join(f'{g:+.1f}' for g in gains_db)} dB, one per "
           f"request (largest spread between its pieces {max(spreads):.3f} dB); errors "
           f"{', '.join(f'{e:+.2f}' for e in errors)} LU")
    assert len(spreads) >= 3 and max(spreads) < 0.05
    assert max(abs(e) for e in errors) <= MAX_ERROR_LU


def test_the_limiter_holds_the_ceiling_across_chunks_without_steps():
    rate = 22050
    t = np.arange(rate * 2) / rate
    loud = (0.5 * np.sin(2 * np.pi * 220 * t) * (1 + 2 * (t > 1))).astype(np.float32)  # +9.5 dB at 1 s
    limiter = Limiter(rate, 10 ** (CEILING_DB / 20))
    out = np.concatenate([limiter.process(loud[a:a + 1000]) for a in range(0, loud.shape[0], 1000)]
                         + [limiter.flush()])
    assert out.shape == loud.shape and peak_db(out) <= CEILING_DB
    np.testing.assert_allclose(out[:rate // 2], loud[:rate // 2], atol=1e-6)  # below it: untouched
    assert np.max(np.abs(np.diff(out))) < 0.1  # no click where the gain came down


def test_loudness_off_keeps_the_voices_own_level(quiet_pipeline):
    off = quiet_pipeline.synthesize(SpeechRequest(TEXTS[0], loudness=False))
    assert off.data == quiet_pipeline.synthesize(SpeechRequest(TEXTS[0])).data


def test_the_setting_is_the_default_and_a_request_may_turn_it_off(quiet_pipeline):
    from tts_core import Pipeline

    settings = Settings.from_env({"TTS_MODELS": "joe?noise_scale=0&noise_w=0", "TTS_LOUDNESS": "-20"})
    assert settings.loudness_lufs == -20 and settings.true_peak_db == CEILING_DB
    levelled = Pipeline.from_registry(quiet_pipeline.registry, settings)
    result = levelled.synthesize(SpeechRequest(TEXTS[3]))
    assert abs(integrated_lufs(result.audio, 22050) + 20) <= MAX_ERROR_LU
    off = levelled.synthesize(SpeechRequest(TEXTS[3], loudness=False))
    assert off.data == quiet_pipeline.synthesize(SpeechRequest(TEXTS[3])).data
    assert Settings.from_env({"TTS_LOUDNESS": "off"}).loudness_lufs is None
    with pytest.raises(ConfigError, match="TTS_LOUDNESS.*between -40 and -9"):
        Settings.from_env({"TTS_LOUDNESS": "0"})


@pytest.mark.parametrize("value, param", [(-100, "loudness"), ("loud", "loudness")])
def test_a_bad_target_is_refused_clearly(quiet_pipeline, value, param):
    with pytest.raises(InputError, match="Loudness must be a number from -40 to -9 LUFS"):
        quiet_pipeline.synthesize(SpeechRequest("hello", loudness=value))
    with pytest.raises(InputError, match="true-peak ceiling must be a number from -9 to 0 dBTP"):
        quiet_pipeline.synthesize(SpeechRequest("hello", loudness=-16, true_peak=3))


def test_http_loudness_whole_and_streamed(studio, figure):
    with httpx.Client(base_url=studio.url, timeout=60) as http:
        r = http.post("/v1/audio/speech", json={"input": TEXTS[0], "response_format": "wav",
                                                  "loudness": -16})
        assert r.status_code == 200, r.text
        whole = wav(r.content)
        r = http.post("/v1/audio/speech", json={"input": TEXTS[0], "response_format": "wav",
                                                  "loudness": -16, "stream": True})
        assert r.status_code == 200
        streamed = np.frombuffer(r.content[r.content.index(b"data") + 8:], "<i2") / 32767
        r = http.post("/v1/audio/speech", json={"input": "hi", "loudness": -3})
        assert r.status_code == 400 and r.json()["error"]["param"] == "loudness"
    figure(f"loudness over HTTP, {TEXTS[0]!r} at -16 LUFS: whole {integrated_lufs(whole, 22050):.2f}, "
           f"streamed {integrated_lufs(streamed, 22050):.2f} LUFS; true peaks {peak_db(whole):.2f} and "
           f"{peak_db(streamed):.2f} dBTP")
    assert abs(integrated_lufs(whole, 22050) + 16) <= MAX_ERROR_LU and peak_db(whole) <= CEILING_DB
    assert abs(integrated_lufs(streamed, 22050) + 16) <= MAX_ERROR_LU and peak_db(streamed) <= CEILING_DB
