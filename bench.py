"""Side-by-side benchmark, one process, one run: where a request's time goes and what the app adds.

    python bench.py                 # default voice, 20 rounds; prints a table, writes JSON

Rows, each measured in the same run with the calls interleaved round by round:
  * engine direct       the warm engine's prepare + infer, no pipeline, no server
  * pipeline direct     tts_core's whole request path in-process (text, gate, encode)
  * Gradio API          the app's /synthesize through a real server and gradio_client
  * Gradio floor        a trivial endpoint on an identical server returning the same WAV
  * RTF vs piper        the default voice's engine vs the `piper` package's own
                        PiperVoice.synthesize on the same weights and text
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

TWO_SENTENCES = "Hello there, and welcome to the studio. Every voice here was loaded before you arrived."
RTF_TEXTS = (
    TWO_SENTENCES,
    "The quick brown fox jumps over the lazy dog, while the cat watches from a sunny window.",
    "Long texts are cut into sentences and clauses, and every piece passes through one gate.",
)
OVERHEAD_TARGET_MS = 30.0  # the app's overhead may exceed Gradio's own floor by at most this
RTF_RATIO_TARGET = 1.1


def _ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000.0


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds per row")
    parser.add_argument("--out", default="bench-results/bench.json", help="where the JSON goes")
    args = parser.parse_args(argv)

    os.environ.setdefault("TTS_LOG_LEVEL", "WARNING")
    import gradio as gr
    from gradio_client import Client
    from piper import PiperVoice

    import app
    from tts_core.engines import SynthesisParams
    from tts_core.engines.piper import embedded_voice_paths

    pipeline = app.pipeline
    engine = pipeline.registry.default
    params = SynthesisParams(voice=engine.default_voice)
    reply = pipeline.synthesize(TWO_SENTENCES).data  # the floor returns exactly this file

    with gr.Blocks() as floor_demo:
        text = gr.Textbox()
        out = gr.Audio()
        gr.Button().click(lambda t: reply, text, out, api_name="floor")
    floor_demo.queue(api_open=False)

    app.demo.launch(server_name="127.0.0.1", prevent_thread_lock=True,
                    quiet=True)
    floor_demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    studio, floor = Client(app.demo.local_url, verbose=False), Client(floor_demo.local_url, verbose=False)

    calls = {
        "engine direct": lambda: engine.infer(engine.prepare(TWO_SENTENCES, params), params),
        "pipeline direct": lambda: pipeline.synthesize(TWO_SENTENCES),
        "Gradio API": lambda: studio.predict(TWO_SENTENCES, api_name="/synthesize"),
        "Gradio floor": lambda: floor.predict(TWO_SENTENCES, api_name="/floor"),
    }
    for fn in calls.values():  # one discarded warm-up call each
        fn()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, fn in calls.items():
            times[name].append(_timed(fn))

    # RTF: our engine vs the piper package's own synthesize, same weights, same text.
    model_path, config_path = embedded_voice_paths()
    reference = PiperVoice.load(model_path, config_path)
    rtf = {"engine": [], "piper": []}
    for text_ in RTF_TEXTS:
        list(reference.synthesize(text_))
        engine.infer(engine.prepare(text_, params), params)
    for _ in range(max(3, args.rounds // 4)):
        for text_ in RTF_TEXTS:
            start = time.perf_counter()
            ours = engine.infer(engine.prepare(text_, params), params)
            rtf["engine"].append((time.perf_counter() - start) / (ours.shape[0] / engine.sample_rate))
            start = time.perf_counter()
            theirs = sum(c.audio_float_array.shape[0] for c in reference.synthesize(text_))
            rtf["piper"].append((time.perf_counter() - start) / (theirs / engine.sample_rate))

    app.demo.close()
    floor_demo.close()

    ms = {name: _ms(v) for name, v in times.items()}
    overhead = ms["Gradio API"] - ms["engine direct"]
    over_floor = overhead - ms["Gradio floor"]
    rtf_engine, rtf_piper = statistics.median(rtf["engine"]), statistics.median(rtf["piper"])
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}",
        "model": engine.name, "device": engine.device, "rounds": args.rounds,
        "text": TWO_SENTENCES,
        "median_ms": {k: round(v, 1) for k, v in ms.items()},
        "app_overhead_ms": round(overhead, 1),
        "app_overhead_ratio": round(ms["Gradio API"] / ms["engine direct"], 3),
        "gradio_floor_ms": round(ms["Gradio floor"], 1),
        "overhead_above_floor_ms": round(over_floor, 1),
        "overhead_target_ms": OVERHEAD_TARGET_MS,
        "rtf_engine": round(rtf_engine, 4), "rtf_piper": round(rtf_piper, 4),
        "rtf_ratio": round(rtf_engine / rtf_piper, 3), "rtf_ratio_target": RTF_RATIO_TARGET,
    }
    print(f"\nTTS Studio benchmark: {result['model']} on {result['device']}, {result['machine']}")
    print(f"text: {TWO_SENTENCES!r}, median of {args.rounds} interleaved rounds\n")
    print(f"{'row':<38}{'figure':>14}{'target':>16}")
    for name in calls:
        print(f"{name + ' (ms)':<38}{ms[name]:>14.1f}{'':>16}")
    print(f"{'app overhead: API - engine (ms)':<38}{overhead:>14.1f}{'':>16}")
    print(f"{'app overhead ratio: API / engine':<38}{result['app_overhead_ratio']:>14.2f}{'':>16}")
    print(f"{'overhead above Gradio floor (ms)':<38}{over_floor:>14.1f}"
          f"{f'<= {OVERHEAD_TARGET_MS:.0f}':>16}  {'met' if over_floor <= OVERHEAD_TARGET_MS else 'MISSED'}")
    print(f"{'RTF engine / RTF piper':<38}{result['rtf_ratio']:>14.3f}"
          f"{f'<= {RTF_RATIO_TARGET}':>16}  {'met' if result['rtf_ratio'] <= RTF_RATIO_TARGET else 'MISSED'}")
    print(f"{'  (RTF engine, RTF piper)':<38}{f'{rtf_engine:.4f}, {rtf_piper:.4f}':>14}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
