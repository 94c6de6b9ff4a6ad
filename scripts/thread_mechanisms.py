"""Threads that follow the load: three ways to run Piper side by side, measured in one run.

    python scripts/thread_mechanisms.py                 # the joe voice, 2 sentences, 5 rounds
    python scripts/thread_mechanisms.py --rounds 9 --calls 4

Each mechanism runs in its own process (ONNX Runtime's global thread pool is per process),
and the processes take turns round by round, so drift on a shared machine hits them alike:

* ``fixed``: today's slots: one session with ``cores // 2`` threads, whatever the load;
* ``per-count``: one session per thread count (``cores``, ``cores // 2``, ... 1); each call
  takes the one for ``cores // calls in flight``;
* ``per-count-nospin``: the same, with ONNX Runtime's idle threads not spinning
  (``session.intra_op.allow_spinning = 0``);
* ``global``: one session on ONNX Runtime's global pool of ``cores`` threads
  (``use_per_session_threads = False``): calls in flight share that pool.

For each: one call alone (ms, median), then ``--calls`` calls at once from as many threads
(wall ms for all of them, median), the CPU time the process used per call (ms: what spinning
and contention waste shows here), and the resident memory after loading (MB). The whole
voice graph runs (as Piper's own ``synthesize`` runs it).
"""

from __future__ import annotations

import argparse
import json
import os
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

TEXT = ("The quick brown fox jumps over the lazy dog near the river bank. "
        "A second sentence follows, so the call is about as long as a short answer.")
MECHANISMS = ("fixed", "per-count", "per-count-nospin", "global")


def _thread_counts(cores: int) -> list[int]:
    counts, n = [], cores
    while n >= 1:
        counts.append(n)
        n //= 2
    return counts


def _worker(mechanism: str, cores: int, calls: int, repeats: int) -> dict:
    import numpy as np
    import onnxruntime
    from piper import PiperVoice

    from tts_core.engines.piper import embedded_voice_paths

    model, config = embedded_voice_paths()
    base_rss = rss_mb()
    if mechanism == "global":
        onnxruntime.capi._pybind_state.set_global_thread_pool_sizes(cores, 1)

    def session(threads: int | None):
        options = onnxruntime.SessionOptions()
        if threads is None:  # thread counts are the global pool's; setting any is refused
            options.use_per_session_threads = False
        else:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            if mechanism == "per-count-nospin":
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    if mechanism == "fixed":
        sessions = {n: session(max(1, cores // 2)) for n in (1,)}
        pick = lambda in_flight: sessions[1]  # noqa: E731
    elif mechanism.startswith("per-count"):
        sessions = {n: session(n) for n in _thread_counts(cores)}
        pick = lambda in_flight: sessions[max(  # noqa: E731
            n for n in sessions if n <= max(1, cores // in_flight))]
    else:
        sessions = {0: session(None)}
        pick = lambda in_flight: sessions[0]  # noqa: E731
    loaded_rss = rss_mb()
    from piper.config import PiperConfig

    with open(config, encoding="utf-8") as f:  # not PiperVoice.load: it makes a session of its own
        voice = PiperVoice(session=next(iter(sessions.values())),
                           config=PiperConfig.from_dict(json.load(f)))
    ids = [voice.phonemes_to_ids(p) for p in voice.phonemize(TEXT) if p]
    cfg = voice.config

    def call(in_flight: int) -> None:
        run(pick(in_flight))

    def run(s) -> None:
        for sentence in ids:
            s.run(None, {"input": np.array([sentence], dtype=np.int64),
                         "input_lengths": np.array([len(sentence)], dtype=np.int64),
                         "scales": np.array([cfg.noise_scale, cfg.length_scale, cfg.noise_w_scale],
                                            dtype=np.float32)})

    for s in sessions.values():  # warm each
        run(s)
    alone, together, cpu = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        call(1)
        alone.append((time.perf_counter() - t) * 1000)
        threads = [threading.Thread(target=call, args=(calls,)) for _ in range(calls)]
        t, c = time.perf_counter(), time.process_time()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        together.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000 / calls)
    return {"alone_ms": alone, "together_ms": together, "cpu_ms": cpu,
            "sessions_mb": loaded_rss - base_rss, "sessions": len(sessions)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="alone/together pairs per round")
    parser.add_argument("--calls", type=int, default=2, help="calls at once")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.cores, args.calls, args.repeats)))
        return 0
    results: dict[str, list[dict]] = {m: [] for m in MECHANISMS}
    for r in range(args.rounds):
        order = MECHANISMS[r % len(MECHANISMS):] + MECHANISMS[:r % len(MECHANISMS)]
        for m in order:
            out = subprocess.run([sys.executable, __file__, "--worker", m, "--cores", str(args.cores),
                                  "--calls", str(args.calls), "--repeats", str(args.repeats)],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            results[m].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{args.cores} cores, {args.calls} calls at once, {args.rounds} rounds x {args.repeats}; "
          "median ms")
    print(f"{'mechanism':>16} {'alone':>8} {'together':>9} {'per call':>9} {'CPU/call':>9} "
          f"{'sessions':>9} {'MB':>6}")
    for m, runs in results.items():
        alone = statistics.median(x for r in runs for x in r["alone_ms"])
        together = statistics.median(x for r in runs for x in r["together_ms"])
        mb = statistics.median(r["sessions_mb"] for r in runs)
        cpu = statistics.median(x for r in runs for x in r["cpu_ms"])
        print(f"{m:>16} {alone:8.0f} {together:9.0f} {together / args.calls:9.0f} {cpu:9.0f} "
              f"{runs[0]['sessions']:9d} {mb:6.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
