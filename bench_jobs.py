"""Interactive speech while a long job renders: the median /v1/audio/speech time idle and during a 50,000-character job.

    python bench_jobs.py                    # 15 requests idle, then 15 while the job renders
    python bench_jobs.py --requests 5       # a smoke run
    python bench_jobs.py --slots 1          # TTS_CPU_SLOTS=1 (one turn at a time)

One process: the embedded joe voice on the CPU, the HTTP API served on 127.0.0.1 (speech
and jobs routes, as `python app.py` serves them). First the idle round: `--requests`
whole-file /v1/audio/speech requests of one sentence, one after another. Then a job of
`--chars` characters is posted to /v1/audio/jobs, and once it renders the same requests
run again; the job is cancelled at the end. Printed: both medians, their ratio against the
target (at most 1.5), and the job's audio seconds per wall second from the start of the
second round to the first piece it saved after it (pieces of 300 characters).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

TARGET_RATIO = 1.5
SENTENCE = "The quick brown fox jumps over the lazy dog, and then it runs into the woods."
PARAGRAPH = ("Chapter {n} begins on a quiet morning. The station at Millbrook opened long ago, "
             "and every day someone wrote the readings into a green notebook: wind, rain and "
             "the temperature. In spring the river rose, and the children were rowed to school. "
             "Was it safe? Nobody asked twice, and the work went on as it always had.\n\n")


def book(chars: int) -> str:
    text, n = "", 1
    while len(text) < chars:
        text += PARAGRAPH.format(n=n)
        n += 1
    return text[:chars].rsplit(".", 1)[0] + "."


def timed_requests(url: str, n: int) -> list[float]:
    import httpx

    times = []
    for _ in range(n):
        start = time.perf_counter()
        answer = httpx.post(f"{url}/v1/audio/speech", timeout=120,
                            json={"input": SENTENCE, "response_format": "wav"})
        answer.raise_for_status()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--requests", type=int, default=15)
    cli.add_argument("--chars", type=int, default=50_000)
    cli.add_argument("--slots", type=int, default=None, help="TTS_CPU_SLOTS (default: the app's)")
    args = cli.parse_args()
    import httpx

    from tts_core import Pipeline, Settings
    from tts_core.http import create_http_api
    from tts_core.jobs import jobs_for
    from tts_core.server import StudioServer

    # Pieces of about 300 characters: the job's audio is counted piece by piece.
    env = {"TTS_JOBS_DIR": tempfile.mkdtemp(prefix="bench-jobs-"), "TTS_LOG_LEVEL": "WARNING",
           "TTS_JOB_PIECE_CHARS": "300"}
    if args.slots:
        env["TTS_CPU_SLOTS"] = str(args.slots)
    settings = Settings.from_env({**os.environ, **env})
    pipeline = Pipeline.from_settings(settings)
    server = StudioServer("127.0.0.1", _free_port()).start()
    server.attach(create_http_api(pipeline, server.readiness))
    url = server.url
    try:
        timed_requests(url, 2)  # warm the route
        idle = timed_requests(url, args.requests)
        job = httpx.post(f"{url}/v1/audio/jobs", timeout=120,
                         json={"input": book(args.chars), "response_format": "wav"}).json()
        manager = jobs_for(pipeline)
        while manager.get(job["id"])["sentences_done"] < 2:
            time.sleep(0.1)
        before, start = manager.get(job["id"])["audio_seconds"], time.perf_counter()
        busy = timed_requests(url, args.requests)
        # The job's pace over the round, and on until its next piece is saved (at most 2 min).
        deadline = time.perf_counter() + 120
        while manager.get(job["id"])["audio_seconds"] == before and time.perf_counter() < deadline:
            time.sleep(0.1)
        wall = time.perf_counter() - start
        made = manager.get(job["id"])["audio_seconds"] - before
        httpx.delete(f"{url}/v1/audio/jobs/{job['id']}")
    finally:
        jobs_for(pipeline).stop()
        server.stop()
    idle_ms, busy_ms = statistics.median(idle) * 1000, statistics.median(busy) * 1000
    ratio = busy_ms / idle_ms
    print(f"slots {pipeline.gate.slots}, {args.requests} requests of {len(SENTENCE)} characters, "
          f"job of {args.chars} characters")
    print(f"median idle            {idle_ms:8.1f} ms")
    print(f"median while job runs  {busy_ms:8.1f} ms")
    print(f"ratio                  {ratio:8.2f}  (target <= {TARGET_RATIO}: "
          f"{'met' if ratio <= TARGET_RATIO else 'missed'})")
    print(f"job audio s / wall s   {made / wall:8.2f}  ({made:.1f} s of audio in {wall:.1f} s)")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
