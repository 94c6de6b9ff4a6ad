"""Speed of each model family at full size (random weights), in float32 and in its CUDA dtype.

    python bench_families.py                       # CPU: SpeechT5 and Bark-small, float32
    python bench_families.py --device cuda         # GPU: float32 and each family's CUDA dtype
    python bench_families.py --families bark --rounds 5

There are no real weights on the test machines, so each family is built from its Config's
defaults (SpeechT5: microsoft/speecht5_tts's size with a full HiFi-GAN; Bark: suno/bark-small's)
with random weights, and run through the app's own engine (the code a
request runs inside the gate). Speed is real; the audio is noise. Random weights never stop
on their own: SpeechT5 runs to its length limit (20 frames per input character, about four
times real speech, and its decoder slows as it grows, so its RTF here is pessimistic), Bark
to the studio's limit (8 semantic tokens a character, at most 768).
RTF = inference seconds / audio seconds, the median over --rounds calls per dtype, the
dtypes interleaved call by call so a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "tests"))

TEXT = "Every voice here was loaded before you arrived."  # 47 characters


def build_speecht5(root: Path) -> str:
    import torch
    from tiny_models import make_tiny_speecht5, write_xvectors
    from transformers import (SpeechT5Config, SpeechT5ForTextToSpeech, SpeechT5HifiGan,
                              SpeechT5HifiGanConfig, SpeechT5Tokenizer)

    folder = make_tiny_speecht5(root / "speecht5")  # its tokenizer and processor, then full size
    vocab = len(SpeechT5Tokenizer.from_pretrained(folder))
    model = SpeechT5ForTextToSpeech(SpeechT5Config(vocab_size=vocab))
    with torch.no_grad():  # never stop early: run to the length limit
        model.speech_decoder_postnet.prob_out.weight.zero_()
        model.speech_decoder_postnet.prob_out.bias.fill_(-10.0)
    model.save_pretrained(folder)
    SpeechT5HifiGan(SpeechT5HifiGanConfig()).save_pretrained(folder / "vocoder")
    return f"speecht5:{folder}?voices={write_xvectors(root / 'xvectors')}"


def build_bark(root: Path) -> str:
    from tiny_models import make_tiny_bark
    from transformers import (BarkCoarseConfig, BarkConfig, BarkFineConfig, BarkModel,
                              BarkSemanticConfig, EncodecConfig, GenerationConfig)

    folder = make_tiny_bark(root / "bark")  # its processor, presets and generation config
    # suno/bark-small: the sub-models' default widths (768, 12 layers) with its vocabularies,
    # and EnCodec 24 kHz at its default size.
    config = BarkConfig(
        semantic_config=BarkSemanticConfig(input_vocab_size=129_600, output_vocab_size=10_048).to_dict(),
        coarse_acoustics_config=BarkCoarseConfig(input_vocab_size=12_096,
                                                 output_vocab_size=12_096).to_dict(),
        fine_acoustics_config=BarkFineConfig(input_vocab_size=1_056, output_vocab_size=1_056,
                                             n_codes_total=8, n_codes_given=1).to_dict(),
        codec_config=EncodecConfig(target_bandwidths=[1.5, 3.0, 6.0]).to_dict())
    model = BarkModel(config)
    model.generation_config = GenerationConfig.from_pretrained(folder)
    model.generation_config.semantic_config["max_new_tokens"] = 768  # suno's own limit
    model.save_pretrained(folder)
    return f"bark:{folder}"


BUILDERS = {"speecht5": build_speecht5, "bark": build_bark}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--families", default="speecht5,bark",
                        help="comma-separated, of: " + ", ".join(BUILDERS))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    import torch

    from tts_core import ModelSpec
    from tts_core.engines import SynthesisParams, load_engine

    root = Path(tempfile.mkdtemp(prefix="families-"))
    rows = []
    for family in args.families.split(","):
        spec = BUILDERS[family.strip()](root)
        sep = "&" if "?" in spec else "?"
        engines = {"float32": load_engine(ModelSpec.parse(f"{spec}{sep}dtype=float32"), args.device)}
        if args.device == "cuda":  # the dtype `auto` picks on CUDA, beside float32
            auto = load_engine(ModelSpec.parse(spec), args.device)
            if auto.dtype != "float32":
                engines[auto.dtype] = auto
        rtf = {name: [] for name in engines}
        audio_s = {}
        for round_ in range(args.rounds + 1):  # the first round warms up and is not counted
            for name, engine in engines.items():
                params = SynthesisParams(voice=engine.default_voice, seed=round_)
                prepared = engine.prepare(TEXT, params)
                if args.device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                audio = engine.infer(prepared, params)
                if args.device == "cuda":
                    torch.cuda.synchronize()
                seconds = audio.shape[0] / engine.sample_rate
                audio_s[name] = seconds
                if round_:
                    rtf[name].append((time.perf_counter() - start) / seconds)
        for name, engine in engines.items():
            rows.append((family, name, engine.memory_bytes / 2**20, audio_s[name],
                         statistics.median(rtf[name])))
        del engines
        if args.device == "cuda":
            torch.cuda.empty_cache()

    where = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"\nModel families at full size, random weights, on {where}; {args.rounds} rounds; "
          f"text: {TEXT!r}")
    print("| family | dtype | weights | audio per call | RTF (median) |")
    print("|---|---|---|---|---|")
    for family, dtype, mb, seconds, value in rows:
        print(f"| {family} | {dtype} | {mb:.0f} MB | {seconds:.1f} s | {value:.3f} |")
    by_family: dict[str, dict[str, float]] = {}
    for family, dtype, _, _, value in rows:
        by_family.setdefault(family, {})[dtype] = value
    for family, values in by_family.items():
        for dtype, value in values.items():
            if dtype != "float32":
                print(f"{family}: {dtype} / float32 RTF = {value / values['float32']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
