"""The joe voice heard by Whisper tiny.en when the app runs it on a device, beside piper on the CPU.

    python scripts/intelligibility_device.py --device cuda      # the CUDA execution provider
    python scripts/intelligibility_device.py --device cpu --sentences 10

The plain sentences of tests/data/intelligibility.tsv (noise off on both sides), spoken by
the app's Pipeline on `--device` and by `PiperVoice` as piper's README calls it, each
transcribed by the same listener as tests/test_intelligibility.py (Whisper's English
normalizer). Target: the app's word error rate on the device is no worse than piper's own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--sentences", type=int, default=0, help="the first N plain ones (0: all)")
    args = parser.parse_args(argv)
    from test_intelligibility import NOISE_OFF, Listener, load_sentences, piper_direct

    from tts_core import Pipeline, Settings, SpeechRequest

    plain = [s for s in load_sentences() if s.plain]
    plain = plain[:args.sentences] if args.sentences else plain
    pipeline = Pipeline.from_settings(Settings.from_env({"TTS_MODELS": NOISE_OFF,
                                                         "TTS_DEVICE": args.device}))
    engine = pipeline.registry.default
    print(f"app: piper on {engine.device}, providers {engine.voice.session.get_providers()}")
    ours = []
    for s in plain:
        result = pipeline.synthesize(SpeechRequest(s.text))
        ours.append((result.audio, result.sample_rate))
    listener = Listener()
    references = [s.reference for s in plain]
    wer, diffs = listener.wer(references, ours)
    peer_wer, _ = listener.wer(references, piper_direct([s.text for s in plain]))
    verdict = "met" if wer <= peer_wer else "MISSED"
    print(f"{len(plain)} plain sentences: WER {wer:.1%} (app on {engine.device}) vs {peer_wer:.1%} "
          f"(piper on the CPU); target: no worse: {verdict}")
    for line in diffs:
        print("  ", line)
    return 0 if wer <= peer_wer else 1


if __name__ == "__main__":
    sys.exit(main())
