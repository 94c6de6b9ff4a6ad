"""Where a burst's time goes: 8 HTTP clients at once, spans inside the gate, outside it, between turns.

    python scripts/profile_burst.py                  # 8 clients x 2 requests, the default voice
    python scripts/profile_burst.py --clients 16 --slots 2

Measured with `time.perf_counter` spans, no sampling: every device turn's start and end
(the gate's own clock), the ONNX Runtime calls inside each turn, and each request's
latency record (text, queue, inference, encode) beside the client's wall time. The
device's idle time is the burst's wall time not covered by any turn.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TEXT = "Client request number {i}, asking for a sentence of ordinary length."


def _covered(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of `spans` (their union)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def profile(url: str, pipeline, clients: int, per_client: int, model: str) -> dict:
    import httpx

    engine = pipeline.registry.get(model)
    ort_spans: list[tuple[float, float]] = []
    turn_spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def timed(fn, into):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                with lock:
                    into.append((start, time.perf_counter()))
        return wrapper

    sessions = [s for s in (engine.voice.session, getattr(engine, "decoder", None)) if s is not None]
    originals = [(s, s.run) for s in sessions]
    for s in sessions:
        s.run = timed(s.run, ort_spans)
    gate = pipeline.gate
    original_execute = gate._execute
    gate._execute = timed(original_execute, turn_spans)
    records, walls = [], []

    def client(c):
        with httpx.Client(base_url=url, timeout=300) as h:
            for j in range(per_client):
                start = time.perf_counter()
                r = h.post("/v1/audio/speech", json={"model": model, "response_format": "pcm",
                                                     "input": TEXT.format(i=c * per_client + j)})
                wall = time.perf_counter() - start
                r.raise_for_status()
                with lock:
                    walls.append(wall)
                    records.append({k: float(r.headers[f"x-{k}-ms"]) for k in
                                    ("queue", "text", "inference", "encode", "total")}
                                   | {"audio": float(r.headers["x-audio-seconds"])})

    try:
        start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    finally:
        for s, run in originals:
            s.run = run
        gate._execute = original_execute
    held = _covered(turn_spans)
    ort = _covered(ort_spans)
    n = len(records)
    mean = {k: statistics.mean(r[k] for r in records) for k in records[0]}
    return {
        "clients": clients, "requests": n, "wall_s": wall,
        "audio_per_wall_s": sum(r["audio"] for r in records) / wall,
        "turns": len(turn_spans), "slots": gate.slots,
        "slot_use": sum(b - a for a, b in turn_spans) / (wall * gate.slots),
        "device_held_s": held, "ort_s": ort, "ort_s_sum": sum(b - a for a, b in ort_spans),
        "python_in_turn_s": sum(b - a for a, b in turn_spans) - sum(b - a for a, b in ort_spans),
        "between_turns_s": wall - held,
        "mean_ms": mean,
        "http_ms": statistics.mean(walls) * 1000 - mean["total"],
        "p50_ms": statistics.median(walls) * 1000,
    }


def report(p: dict) -> str:
    m = p["mean_ms"]
    wall = p["wall_s"]
    return "\n".join([
        f"burst: {p['clients']} clients, {p['requests']} requests, {p['turns']} device turns in "
        f"{p['slots']} slot{'s' if p['slots'] > 1 else ''} (slots in use {p['slot_use']:.0%} of the time), "
        f"wall {wall:.2f} s, {p['audio_per_wall_s']:.1f} audio s per wall s",
        f"  device held (union of turns)   {p['device_held_s']:.2f} s  ({p['device_held_s'] / wall:.0%} of wall)",
        f"    ONNX Runtime calls (union)   {p['ort_s']:.2f} s  (sum over calls {p['ort_s_sum']:.2f} s)",
        f"    Python inside turns (sum)    {p['python_in_turn_s']:.3f} s",
        f"  between turns (device idle)    {p['between_turns_s']:.2f} s  ({p['between_turns_s'] / wall:.0%} of wall)",
        f"  per request, mean: text {m['text']:.0f} ms, queue {m['queue']:.0f} ms, inference "
        f"{m['inference']:.0f} ms, encode {m['encode']:.1f} ms, pipeline total {m['total']:.0f} ms, "
        f"HTTP around it {p['http_ms']:.0f} ms (client p50 {p['p50_ms']:.0f} ms)",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="bursts; each is reported")
    parser.add_argument("--slots", type=int, default=None, help="TTS_CPU_SLOTS for the run")
    args = parser.parse_args(argv)
    os.environ.setdefault("TTS_LOG_LEVEL", "WARNING")
    if args.slots is not None:
        os.environ["TTS_CPU_SLOTS"] = str(args.slots)

    import app
    from tts_core.server import StudioServer, free_port

    server = StudioServer("127.0.0.1", free_port()).start()
    server.attach(app.build_server(app.pipeline, app.demo, server.readiness))
    model = app.pipeline.registry.default.name
    profile(server.url, app.pipeline, 2, 2, model)  # warm the HTTP path
    for _ in range(args.rounds):
        print(report(profile(server.url, app.pipeline, args.clients, args.per_client, model)))
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
