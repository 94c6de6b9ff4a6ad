"""CPU slots side by side: one app server per slot count (threads follow the load), and piper's own server.

    python scripts/cpu_slots.py --slots 1,2                  # this 2-core machine
    python scripts/cpu_slots.py --slots 1,2,4,8 --passes 3   # a 16-core machine
    python scripts/cpu_slots.py --slots 1,1:1,2              # 1:1 = one slot, TTS_CPU_THREADS=1

A slot count bounds the model calls at once; each call gets the free threads divided among
the calls starting beside it (all of them alone), so slots past the core count only add
calls on one thread each.

Every server is up for the whole run (`python app.py` with TTS_CPU_SLOTS=k, and
`python -m piper.http_server` on the same voice file); for each number of clients the
servers take turns, burst by burst, in an order that rotates level by level, so no two share
the CPU at once and drift on a shared machine hits them all alike. Prints audio seconds
per wall second and p50/p95 latency per server and client count (medians over passes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench  # noqa: E402  (the servers, the bursts and the percentiles are bench.py's)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--slots", default="1,2",
                        help="slot counts to compare, comma-separated; k:t also sets TTS_CPU_THREADS=t")
    parser.add_argument("--clients", default="1,4,8,16")
    parser.add_argument("--requests", type=int, default=16, help="requests per burst")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true", help="leave piper's own server out")
    args = parser.parse_args(argv)
    from tts_core.engines.piper import embedded_voice_paths

    levels = tuple(int(c) for c in args.clients.split(","))
    servers = [bench.AppServer(k.strip()) for k in args.slots.split(",")]
    peer = None if args.no_peer else bench.PiperHttpServer(embedded_voice_paths()[0]).__enter__()
    try:
        for s in servers:
            s.wait_ready()
        urls = {s.name: s.url for s in servers} | ({"piper http_server": peer.url} if peer else {})
        runs = bench._side_by_side(urls, args.requests, args.passes, levels)
    finally:
        for s in servers:
            s.stop()
        if peer is not None:
            peer.__exit__()
    print(f"\n{os.cpu_count()} CPU cores; {args.requests} requests a burst, median of "
          f"{args.passes} passes; audio s per wall s, latency p50/p95 ms")
    print(f"{'clients':>8}  " + "  ".join(f"{name:>26}" for name in urls))
    for level in levels:
        cells = []
        for name in urls:
            rate = statistics.median(r for r, _ in runs[(name, level)])
            p50, p95 = bench._p50_p95([x for _, lat in runs[(name, level)] for x in lat])
            cells.append(f"{rate:6.1f} x {p50:6.0f}/{p95:6.0f}")
        print(f"{level:>8}  " + "  ".join(f"{c:>26}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
