"""Startup: a bad setting or a model that will not load stops the app with one clear line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def start(env_overrides: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTS_")} | env_overrides
    return subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("env, words", [
    ({"TTS_MAX_CHARS": "many"}, "TTS_MAX_CHARS: 'many' is not a whole number"),
    ({"TTS_DEVICE": "gpu"}, "TTS_DEVICE: 'gpu' is not one of auto, cpu, cuda"),
    ({"TTS_MODELS": "/nowhere/voice.onnx"}, "/nowhere/voice.onnx does not exist"),
    ({"TTS_ZEROGPU_DURATION": "a minute"}, "TTS_ZEROGPU_DURATION: 'a minute' is not a whole number"),
])
def test_bad_configuration_exits_non_zero_with_one_line_saying_what_to_fix(env, words):
    proc = start(env)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("TTS Studio cannot start:") and words in last, proc.stderr
