"""First audio and RTF of the cloning families (CSM, Dia, Pocket TTS), with and without a cloned
voice, batched against one at a time, on random full-size weights built from the real configs.

The GPU machine cannot reach the hub, so each model is built from its Config class defaults
(CsmConfig(): sesame/csm-1b's 1B backbone with the Kyutai Mimi codec; DiaConfig(): the 1.6B
Dia with DacConfig()'s DAC at 44.1 kHz; PocketTTSConfig() with its audio tokenizer's
defaults), with the tests' tokenizers, saved with save_pretrained, and loaded by the app's
own engine (`csm:FOLDER` ...). Random weights never say "end", so every chunk runs to the
engine's cap for its text length: the timings are those of a chunk of that length.

    python scripts/bench_cloning.py --device cuda --families csm   # full size (a GPU pod)
    python scripts/bench_cloning.py --device cpu --tiny            # the tests' tiny models
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

TEXT = "The quick brown fox jumps over the lazy dog, and then it runs back home again."
TRANSCRIPT = "This is the reference clip of the voice to clone."


def full_size_csm(folder: Path) -> Path:
    """sesame/csm-1b's geometry with random weights, the tiny model's tokenizer and template."""
    from tiny_models import CSM_CHAT_TEMPLATE, make_tiny_csm
    from transformers import CsmConfig, CsmForConditionalGeneration, CsmProcessor, GenerationConfig

    tiny = make_tiny_csm(folder / "tokenizer-source")
    processor = CsmProcessor.from_pretrained(tiny)
    processor.chat_template = CSM_CHAT_TEMPLATE
    config = CsmConfig()  # defaults: the released 1B backbone, its depth decoder and Mimi
    config.audio_token_id = processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    config.audio_eos_token_id = processor.tokenizer.convert_tokens_to_ids("<|audio_eos|>")
    model = CsmForConditionalGeneration(config).to(torch.bfloat16).eval()
    model.generation_config = GenerationConfig(max_new_tokens=375, do_sample=True, temperature=0.9,
                                               top_k=50)
    model.depth_decoder.generation_config = GenerationConfig(
        min_new_tokens=config.num_codebooks - 1, max_new_tokens=config.num_codebooks - 1,
        do_sample=True, temperature=0.9, top_k=50)
    out = folder / "csm-full"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def full_size_dia(folder: Path) -> Path:
    """Dia-1.6B's geometry with random weights; a full-size DAC (44.1 kHz) beside it."""
    from tiny_models import make_tiny_dia
    from transformers import (DacConfig, DacModel, DiaConfig, DiaForConditionalGeneration,
                              DiaProcessor)

    tiny = make_tiny_dia(folder / "processor-source")
    DacModel(DacConfig(sampling_rate=44100)).save_pretrained(folder / "dac")
    processor = DiaProcessor.from_pretrained(tiny)
    processor.audio_tokenizer = DacModel.from_pretrained(folder / "dac")
    model = DiaForConditionalGeneration(DiaConfig()).to(torch.bfloat16).eval()
    model.generation_config = DiaForConditionalGeneration.from_pretrained(tiny).generation_config
    model.generation_config.max_new_tokens = None  # the engine's cap by text length decides
    out = folder / "dia-full"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def full_size_pocket(folder: Path) -> Path:
    """Pocket TTS's default geometry with random weights and a default-size audio tokenizer."""
    from tiny_models import make_tiny_pocket
    from transformers import (PocketTTSAudioTokenizerConfig, PocketTTSAudioTokenizerModel,
                              PocketTTSConfig, PocketTTSForConditionalGeneration, PocketTTSProcessor)

    tiny = make_tiny_pocket(folder / "processor-source")
    small = PocketTTSForConditionalGeneration.from_pretrained(tiny)
    ids = {k: getattr(small.config, k) for k in ("audio_prompt_token_id", "audio_latent_token_id",
                                                 "audio_prompt_bos_token_id", "audio_bos_token_id")}
    PocketTTSAudioTokenizerModel(PocketTTSAudioTokenizerConfig()).save_pretrained(folder / "codec")
    processor = PocketTTSProcessor.from_pretrained(tiny)
    processor.audio_tokenizer = PocketTTSAudioTokenizerModel.from_pretrained(folder / "codec")
    model = PocketTTSForConditionalGeneration(PocketTTSConfig(**ids)).eval()
    model.generation_config = small.generation_config
    out = folder / "pocket-full"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def first_audio_and_rtf(engine, voice: str, device: str, rounds: int) -> tuple[float, float]:
    """Median seconds to a stream's first audio, and whole-chunk RTF (compute s / audio s)."""
    from tts_core.engines import SynthesisParams

    params = SynthesisParams(voice=voice, seed=0)
    firsts, rtfs = [], []
    for _ in range(rounds):
        prepared = engine.prepare(TEXT, params)
        start = time.perf_counter()
        utterance = engine.start_utterance(prepared, params)
        engine.advance([utterance], params)
        _sync(device)
        firsts.append(time.perf_counter() - start)
        utterance.close()
        start = time.perf_counter()
        audio = engine.infer(prepared, params)
        _sync(device)
        rtfs.append((time.perf_counter() - start) / (audio.shape[0] / engine.sample_rate))
    return float(np.median(firsts)), float(np.median(rtfs))


def batched_rtf(engine, voice: str, device: str, size: int) -> tuple[float, float]:
    """RTF of `size` chunks in one batch, and of the same chunks one at a time."""
    from tts_core.engines import SynthesisParams

    params = SynthesisParams(voice=voice)
    prepared = [engine.prepare(TEXT, params) for _ in range(size)]
    result = []
    for batch in (True, False):
        start = time.perf_counter()
        audio = (engine.infer_batch(prepared, params) if batch
                 else [engine.infer(p, params) for p in prepared])
        _sync(device)
        seconds = sum(a.shape[0] for a in audio) / engine.sample_rate
        result.append((time.perf_counter() - start) / seconds)
    return result[0], result[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny models (a quick check)")
    parser.add_argument("--families", default="csm,pocket,dia")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    print("| family | voice | first audio (ms) | RTF whole | RTF batch of "
          f"{args.batch} | RTF one at a time |")
    print("|---|---|---|---|---|---|")
    for family in args.families.split(","):
        bench_family(family, args)


def bench_family(family: str, args) -> None:
    from tiny_models import CLONING_BUILDERS
    from tts_core.config import ModelSpec
    from tts_core.engines import load_engine

    full = {"csm": full_size_csm, "dia": full_size_dia, "pocket": full_size_pocket}[family]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        folder = CLONING_BUILDERS[family](Path(tmp) / family) if args.tiny else full(Path(tmp))
        built = time.perf_counter() - start
        engine = load_engine(ModelSpec.parse(f"{family}:{folder}?name={family}"), args.device)
        engine.warm_up("Hello, this is the warm-up sentence.")
        limits = engine.clone_limits()
        clip_n = int(min(6.0, limits.max_s) * limits.sample_rate)
        clip = (0.1 * np.random.default_rng(0).standard_normal(clip_n)).astype(np.float32)
        engine.add_voice("cloned", engine.encode_voice(clip, TRANSCRIPT))
        print(f"<!-- {family} ({'tiny' if args.tiny else 'full size, random weights'}) on "
              f"{engine.device}, {engine.dtype}: built in {built:.0f} s; warm-up stream SNR "
              f"{engine.window_snr_db:.1f} dB -->", flush=True)
        for voice in ("default", "cloned"):
            first, rtf = first_audio_and_rtf(engine, voice, args.device, args.rounds)
            batch, alone = batched_rtf(engine, voice, args.device, args.batch)
            print(f"| {family} | {voice} | {first * 1000:.0f} | {rtf:.3f} | {batch:.3f} | "
                  f"{alone:.3f} |", flush=True)
        del engine
        if args.device == "cuda":
            torch.cuda.empty_cache()

if __name__ == "__main__":
    main()
