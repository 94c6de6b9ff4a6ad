"""ONNX Runtime's CPU memory arena after a long symbol text, and what each way of bounding it costs.

    python scripts/arena_memory.py                   # 5,000 x "㎯" once, 3 rounds
    python scripts/arena_memory.py --chars 300 --rounds 2

Each variant runs in its own process, the variants taking turns round by round (so a
shared machine's drift hits them alike), on the embedded joe voice loaded by the app's own
engine (threads as the app gives them: every core to a call alone):

* ``arena``: ONNX Runtime's default (before): the CPU arena keeps the largest allocation it ever
  made, so one long text leaves the process that much bigger for good;
* ``no-arena``: ``SessionOptions.enable_cpu_mem_arena = False``;
* ``shrink``: the engine's own: the arena, shrunk after each large call (the run option
  ``memory.enable_memory_arena_shrinkage = cpu:0`` past ``LARGE_CALL_IDS`` phoneme ids or
  ``LARGE_CALL_FRAMES`` latent frames); ordinary calls keep it.

For each: the resident memory after warm-up, its peak while the symbol text is spoken
chunk by chunk (as the pipeline cuts it, TTS_CHUNK_CHARS), what stays resident after, and
the latency of a two-sentence request before and after (median ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import rss_mb  # noqa: E402

VARIANTS = ("arena", "no-arena", "shrink")
SHORT = ("The quick brown fox jumps over the lazy dog near the river bank. "
         "A second sentence follows, so the call is about as long as a short answer.")


def _patch(variant: str) -> None:
    """The engine's sessions as the variant wants them (before the engine loads)."""
    import onnxruntime

    from tts_core.engines import piper

    arena = variant != "no-arena"
    made = piper.session_options

    def options(threads):
        o = made(threads)
        o.enable_cpu_mem_arena = arena
        return o

    piper.session_options = options
    if variant != "shrink":  # the engine's own run options shrink the arena after each call
        piper._RUN = onnxruntime.RunOptions()


def _worker(variant: str, chars: int, repeats: int) -> dict:
    _patch(variant)
    from tts_core import Settings
    from tts_core.engines import SynthesisParams, load_engine
    from tts_core.text import chunk, clean

    settings = Settings()
    engine = load_engine(settings.parse_spec("joe"), "cpu", settings.device_threads())
    engine.use_threads(settings.device_threads())
    params = SynthesisParams(voice=engine.default_voice)
    engine.warm_up(SHORT)

    def short_ms() -> list[float]:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            engine.infer(engine.prepare(SHORT, params), params)
            times.append((time.perf_counter() - t) * 1000)
        return times

    before_ms, warm_rss = short_ms(), rss_mb()
    peak, done = [warm_rss], threading.Event()

    def watch():
        while not done.wait(0.05):
            peak.append(rss_mb())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t, audio_s = time.perf_counter(), 0.0
    for piece in chunk(clean("㎯" * chars), settings.chunk_chars):
        prepared = engine.prepare(piece, params)
        if prepared:
            audio_s += engine.infer(prepared, params).size / engine.sample_rate
    long_s = time.perf_counter() - t
    done.set()
    watcher.join()
    return {"warm_mb": warm_rss, "peak_mb": max(peak), "after_mb": rss_mb(),
            "before_ms": before_ms, "after_ms": short_ms(), "long_s": long_s, "audio_s": audio_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--chars", type=int, default=5000, help='how many "㎯"')
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5, help="short requests before and after")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.chars, args.repeats)))
        return 0
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        for v in VARIANTS[r % 3:] + VARIANTS[:r % 3]:
            out = subprocess.run([sys.executable, __file__, "--worker", v, "--chars", str(args.chars),
                                  "--repeats", str(args.repeats)],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            runs[v].append(json.loads(out.stdout.strip().splitlines()[-1]))
    audio = statistics.median(r["audio_s"] for rs in runs.values() for r in rs)
    print(f'{args.chars} x "㎯" ({audio:.0f} s of audio), {args.rounds} rounds; medians; '
          "MB resident, ms for the two-sentence request")
    print(f"{'variant':>9} {'warm MB':>8} {'peak MB':>8} {'after MB':>9} {'kept MB':>8} "
          f"{'long s':>7} {'short ms before':>16} {'after':>6}")
    for v, rs in runs.items():
        med = lambda key: statistics.median(r[key] for r in rs)  # noqa: E731
        before = statistics.median(x for r in rs for x in r["before_ms"])
        after = statistics.median(x for r in rs for x in r["after_ms"])
        print(f"{v:>9} {med('warm_mb'):8.0f} {med('peak_mb'):8.0f} {med('after_mb'):9.0f} "
              f"{med('after_mb') - med('warm_mb'):8.0f} {med('long_s'):7.1f} {before:16.0f} "
              f"{after:6.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
