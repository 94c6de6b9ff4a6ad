"""CPU slots side by side: one app server per slot count (threads divided), and piper's own server.

    python scripts/cpu_slots.py --slots 1,2                  # this 2-core machine
    python scripts/cpu_slots.py --slots 1,2,4,8 --passes 3   # a 16-core machine
    python scripts/cpu_slots.py --slots 1,1:1,2              # 1:1 = one slot, TTS_CPU_THREADS=1

Every server is up for the whole run (`python app.py` with TTS_CPU_SLOTS=k, and
`python -m piper.http_server` on the same voice file); for each number of clients the
servers take turns, burst by burst, in an order that rotates each pass, so no two share
the CPU at once and drift on a shared machine hits them all alike. Prints audio seconds
per wall second and p50/p95 latency per server and client count (medians over passes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench  # noqa: E402  (the burst, the percentiles and the peer server are bench.py's)

START_TIMEOUT_S = 180.0
TEXT = "Client request number {i}, asking for a sentence of ordinary length."


class AppServer:
    """`python app.py` in a subprocess with TTS_CPU_SLOTS (and TTS_CPU_THREADS) from `spec`
    ("2": two slots; "1:1": one slot, one thread), on CPU."""

    def __init__(self, spec: str):
        slots, _, threads = spec.partition(":")
        self.slots = int(slots)
        self.name = f"ours, {slots} slot{'s' if self.slots > 1 else ''}" + (
            f", {threads} thread{'s' if int(threads) > 1 else ''}" if threads else "")
        self.port = bench._free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, TTS_CPU_SLOTS=slots, TTS_DEVICE="cpu", TTS_LOG_LEVEL="WARNING",
                   GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(self.port))
        if threads:
            env["TTS_CPU_THREADS"] = threads
        self.process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"app.py with TTS_CPU_SLOTS={self.slots} exited at start")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"app.py with TTS_CPU_SLOTS={self.slots} not ready in {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--slots", default="1,2",
                        help="slot counts to compare, comma-separated; k:t also sets TTS_CPU_THREADS=t")
    parser.add_argument("--clients", default="1,4,8,16")
    parser.add_argument("--requests", type=int, default=16, help="requests per burst")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true", help="leave piper's own server out")
    args = parser.parse_args(argv)
    import httpx

    from tts_core.engines.piper import embedded_voice_paths

    clients_levels = [int(c) for c in args.clients.split(",")]
    servers = [AppServer(k.strip()) for k in args.slots.split(",")]
    peer = None if args.no_peer else bench.PiperHttpServer(embedded_voice_paths()[0]).__enter__()
    try:
        for s in servers:
            s.wait_ready()
        sides = {s.name: s.url for s in servers}
        if peer is not None:
            sides["piper http_server"] = peer.url
        clients = {name: [httpx.Client(base_url=url, timeout=300) for _ in range(max(clients_levels))]
                   for name, url in sides.items()}

        def poster(name):
            def post(c, i):
                h = clients[name][c]
                if name.startswith("piper"):
                    r = h.post("/synthesize", json={"text": TEXT.format(i=i)})
                    r.raise_for_status()
                    return bench.wav_seconds(r.content)
                r = h.post("/v1/audio/speech", json={"input": TEXT.format(i=i), "response_format": "wav"})
                r.raise_for_status()
                return float(r.headers["x-audio-seconds"])
            return post

        for name in sides:
            bench._burst(poster(name), 2, 1)  # warm
        runs = {(name, c): [] for name in sides for c in clients_levels}
        names = list(sides)
        for n in range(args.passes):
            for level in clients_levels:
                order = names[n % len(names):] + names[:n % len(names)]
                for name in order:
                    runs[(name, level)].append(
                        bench._burst(poster(name), level, max(1, args.requests // level)))
        print(f"\n{os.cpu_count()} CPU cores; {args.requests} requests a burst, median of "
              f"{args.passes} passes; audio s per wall s, latency p50/p95 ms")
        print(f"{'clients':>8}  " + "  ".join(f"{name:>26}" for name in names))
        for level in clients_levels:
            cells = []
            for name in names:
                rate = statistics.median(r for r, _ in runs[(name, level)])
                p50, p95 = bench._p50_p95([x for _, lat in runs[(name, level)] for x in lat])
                cells.append(f"{rate:6.1f} x {p50:6.0f}/{p95:6.0f}")
            print(f"{level:>8}  " + "  ".join(f"{c:>26}" for c in cells))
    finally:
        for s in servers:
            s.stop()
        if peer is not None:
            peer.__exit__()
    return 0


if __name__ == "__main__":
    sys.exit(main())
