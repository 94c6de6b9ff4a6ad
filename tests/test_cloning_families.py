"""The cloning families (CSM, Pocket TTS, Dia) on tiny random models built offline: load, warm,
speak, seed, cloned voices, streams that join the whole file, conditioning computed once."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tts_core.config import Settings
from tts_core.engines import SynthesisParams
from tts_core.errors import InputError
from tts_core.pipeline import Pipeline
from tts_core.request import SpeechRequest

from tiny_models import make_tiny_csm, make_tiny_dia, make_tiny_pocket

MIN_SNR_DB = 40.0  # engines.base.MIN_WINDOW_SNR_DB: what the warm-up demands of a stream
TEXT = "Hello there, how are you today? I am fine."

# family -> (builder, sample rate its tiny model speaks at, the codec's samples per frame)
FAMILIES = {"csm": (make_tiny_csm, 24000, 1920), "dia": (make_tiny_dia, 44100, 512),
            "pocket": (make_tiny_pocket, 24000, 1920)}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    """(family, warm pipeline serving the family's tiny model as `name`)."""
    name = request.param
    build = FAMILIES[name][0]
    folder = build(tmp_path_factory.mktemp(f"tiny-{name}") / name)
    settings = Settings.from_env({"TTS_MODELS": f"{name}:{folder}?name={name}"})
    return name, Pipeline.from_settings(settings)


def _clip(engine) -> np.ndarray:
    """A reference clip of the family's minimum length and more: a vowel-like tone with noise."""
    limits = engine.clone_limits()
    n = int((limits.min_s + 0.5) * limits.sample_rate)
    t = np.arange(n) / limits.sample_rate
    rng = np.random.default_rng(7)
    tone = 0.3 * np.sin(2 * np.pi * 150 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (tone + 0.02 * rng.standard_normal(n)).astype(np.float32)


def _add_voice(pipeline, name: str, voice: str) -> None:
    engine = pipeline.registry.get(name)
    if voice not in engine.voices:
        engine.add_voice(voice, engine.encode_voice(_clip(engine), "A clip of my own voice."))
        pipeline.registry.refresh_card(name)


def _whole(pipeline, name, **kw) -> np.ndarray:
    return pipeline.synthesize(SpeechRequest(TEXT, model=name, loudness=False, **kw)).audio


def _snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    assert other.shape == reference.shape, (other.shape, reference.shape)
    error = float(np.sum((other - reference) ** 2))
    return float("inf") if error == 0 else 10 * np.log10(float(np.sum(reference ** 2)) / error)


def test_loads_warms_and_speaks_at_its_rate(family):
    name, pipeline = family
    engine = pipeline.registry.get(name)
    card = pipeline.registry.card(name)
    rate, hop = FAMILIES[name][1:]
    assert (card.family, card.sample_rate, card.capabilities.clones) == (name, rate, True)
    assert engine.window_snr_db is not None and engine.window_snr_db >= MIN_SNR_DB
    audio = _whole(pipeline, name)
    assert audio.dtype == np.float32 and audio.size >= hop and np.isfinite(audio).all()
    assert 1e-3 < float(np.abs(audio).max()) <= 1.0  # real audio, not silence


def test_a_seed_repeats_exactly_and_another_seed_differs(family):
    name, pipeline = family
    first, again = _whole(pipeline, name, seed=11), _whole(pipeline, name, seed=11)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, _whole(pipeline, name, seed=12))


def test_a_cloned_voice_changes_the_output_and_is_listed(family):
    name, pipeline = family
    _add_voice(pipeline, name, "mine")
    assert "mine" in pipeline.registry.card(name).voices
    own = _whole(pipeline, name, seed=5)
    cloned = _whole(pipeline, name, seed=5, voice="mine")
    n = min(own.size, cloned.size)
    assert own.size != cloned.size or not np.allclose(own[:n], cloned[:n])


def test_a_stream_of_a_cloned_voice_equals_the_whole_file(family):
    name, pipeline = family
    _add_voice(pipeline, name, "mine")
    request = SpeechRequest(TEXT, model=name, voice="mine", seed=21, loudness=False, format="pcm")
    whole = pipeline.synthesize(request).audio
    synthesis = pipeline.stream(request)
    pieces = list(synthesis)
    streamed = np.concatenate([p.audio for p in pieces])
    snr = _snr_db(whole, streamed)
    print(f"{name}: stream of a cloned voice vs whole file: {snr:.1f} dB SNR, "
          f"{len(pieces)} pieces for {len(synthesis.chunks)} sentences")
    assert snr >= MIN_SNR_DB
    # Heard from inside the sentence: more pieces than sentences, the first one short.
    assert len(pieces) > len(synthesis.chunks)
    rate, hop = FAMILIES[name][1:]
    engine = pipeline.registry.get(name)
    assert pieces[0].audio.size == engine.first_window_frames * hop


def test_conditioning_is_computed_once(family, monkeypatch):
    name, pipeline = family
    engine = pipeline.registry.get(name)
    calls = []
    encoder = engine.codec_encoder()
    original = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda *a, **k: calls.append(1) or original(*a, **k))
    engine.add_voice("once", engine.encode_voice(_clip(engine), "Counted once."))
    assert len(calls) == 1
    for n in range(3):
        pipeline.synthesize(SpeechRequest(TEXT, model=name, voice="once", seed=n))
        list(pipeline.stream(SpeechRequest(TEXT, model=name, voice="once", format="pcm")))
    assert len(calls) == 1
    engine.remove_voice("once")
    assert "once" not in engine.voices


@pytest.mark.parametrize("clip, transcript, message", [
    ("short", "Some words.", "needs at least"),
    ("silent", "Some words.", "silent"),
    ("stereo", "Some words.", "mono"),
])
def test_a_bad_clip_gets_a_clear_error(family, clip, transcript, message):
    name, pipeline = family
    engine = pipeline.registry.get(name)
    good = _clip(engine)
    audio = {"short": good[:engine.clone_limits().sample_rate // 2],
             "silent": np.zeros_like(good), "stereo": np.stack([good, good], axis=1)}[clip]
    with pytest.raises(InputError, match=message):
        engine.encode_voice(audio, transcript)


def test_a_transcript_is_required_where_the_family_needs_one(family):
    name, pipeline = family
    engine = pipeline.registry.get(name)
    if not engine.clone_limits().needs_transcript:
        engine.encode_voice(_clip(engine), None)  # no transcript is fine
        return
    with pytest.raises(InputError, match="transcript"):
        engine.encode_voice(_clip(engine), "  ")


def test_batched_requests_each_get_their_own_audio(family):
    name, pipeline = family
    engine = pipeline.registry.get(name)
    params = SynthesisParams(voice=engine.default_voice)
    texts = ["Short one.", "A somewhat longer sentence to say."]
    batch = engine.infer_batch([engine.prepare(t, params) for t in texts], params)
    rate, hop = FAMILIES[name][1:]
    assert len(batch) == 2 and all(a.size > 0 and a.size % hop == 0 for a in batch)


def test_stored_conditioning_is_what_the_processors_own_clip_path_makes(family):
    """Each request is built from the stored conditioning, never from the clip: it must be the
    very prompt transformers' processor makes from the clip itself (its `audio=` path)."""
    import torch

    name, pipeline = family
    engine = pipeline.registry.get(name)
    clip = _clip(engine)
    transcript, text = "A clip of my own voice.", "Now something new."
    voice = engine._voice_from(engine.encode_voice(clip, transcript))
    prepared = engine._prepare(text, voice)
    if name == "csm":
        turns = [{"role": "0", "content": [{"type": "text", "text": transcript},
                                           {"type": "audio", "path": ""}]},
                 {"role": "0", "content": [{"type": "text", "text": text}]}]
        prompt = engine.processor.apply_chat_template(turns, tokenize=False)
        ref = engine.processor(prompt, audio=[clip], return_tensors="pt", add_special_tokens=False)
        assert torch.equal(ref["input_ids"][0], prepared["ids"])
        merged = engine.model._merge_input_ids_with_input_values(
            ref["input_ids"], ref["input_values"], ref["input_values_cutoffs"])["inputs_embeds"]
        assert torch.allclose(merged[0], engine._embed(prepared), atol=1e-6)
    elif name == "dia":
        ref = engine.processor(text=[prepared["text"]], audio=[clip], padding=True,
                               return_tensors="pt")
        mine = engine._decoder_prompt(prepared["codes"], 1)
        assert torch.equal(ref["decoder_input_ids"].long(), mine["decoder_input_ids"].long())
        assert torch.equal(ref["decoder_attention_mask"], mine["decoder_attention_mask"])
    else:
        ref = engine.processor(text=prepared["prompt"], audio=[clip], return_tensors="pt")
        assert torch.allclose(ref["audio_prompt_latents"][0], prepared["voice"], atol=1e-5)


def test_a_stream_closed_early_ends_its_generation_and_frees_the_gate(family):
    name, pipeline = family
    synthesis = pipeline.stream(SpeechRequest(TEXT, model=name, seed=3, format="pcm"))
    started = {t.ident for t in threading.enumerate() if t.name == "tts-generate"}
    iterator = iter(synthesis)
    next(iterator)  # the first piece: its generation is paused, mid-sentence
    paused = [t for t in threading.enumerate()
              if t.name == "tts-generate" and t.ident not in started]
    assert paused, "the first piece came before the sentence's generation ended"
    synthesis.close()
    deadline = time.monotonic() + 10
    while any(t.is_alive() for t in paused) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.is_alive() for t in paused)
    assert pipeline.gate.queue_depth == 0 and pipeline.gate.slots_in_use == 0
    assert _whole(pipeline, name, seed=3).size > 0  # the model serves on
