"""A request's cost bounded by what will be spoken (issue 30): symbols dropped or read
briefly, and a bound on estimated seconds of speech per chunk and per request, checked in the
plan before any device turn."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from tts_core import InputError, Settings, SpeechRequest
from tts_core.plan import make_plan

# Run in a fresh process with the real embedded voice: each request's audio, CPU time and
# resident memory growth (psutil's RSS now, and the peak from getrusage) are printed as JSON.
PROBE = r"""
import json, resource, sys, time
import psutil
from tts_core import InputError, Pipeline, Settings, SpeechRequest
pipeline = Pipeline.from_settings(Settings.from_env({"TTS_MODELS": "joe", "TTS_CPU_THREADS": "1"}))
pipeline.synthesize(SpeechRequest("Warm once more.", format="wav"))
me = psutil.Process()
for text in json.loads(sys.argv[1]):
    rss, peak, cpu = me.memory_info().rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time()
    try:
        seconds, error = pipeline.synthesize(SpeechRequest(text, format="wav")).duration_s, None
    except InputError as e:
        seconds, error = None, str(e)
    print(json.dumps({"audio_s": seconds, "error": error, "cpu_s": time.process_time() - cpu,
                      "rss_mb": (me.memory_info().rss - rss) / 2**20,
                      "peak_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024}))
"""
EMOJI = "Hello there. " + "😀" * 300 + " Goodbye now."
SQUARES = "㎯" * 5000
CJK = "Hello " + "中" * 600  # espeak reads each as "Chinese letter": minutes of speech


def probe(texts: list[str]) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(texts)], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_symbols_cost_seconds_of_audio_and_little_memory(figure):
    emoji, squares, cjk = probe([EMOJI, SQUARES, CJK])
    for name, row in (("300 emoji", emoji), ("5,000 ㎯", squares), ("600 中", cjk)):
        figure(f"cost: {name}: audio {row['audio_s']} s, cpu {row['cpu_s']:.1f} s, "
               f"RSS +{row['rss_mb']:.0f} MB, peak +{row['peak_mb']:.0f} MB, {row['error']}")
    assert emoji["error"] is None and 1.0 < emoji["audio_s"] < 4.0  # the words only
    assert squares["error"].startswith("The text has nothing to speak")
    assert "would be about 2 minutes of speech; the limit for one sentence is 60 seconds" \
        in cjk["error"]
    for row in (emoji, squares, cjk):
        assert row["rss_mb"] < 200 and row["peak_mb"] < 200


PLAIN = ("The quick brown fox jumps over the lazy dog, and then it runs into the forest. "
         "Nobody saw where it went, but everyone had an opinion about it. ") * 34  # 4,998


def test_the_request_bound_counts_speech_at_its_speed(quiet_pipeline):
    registry, settings = quiet_pipeline.registry, quiet_pipeline.settings
    assert len(PLAIN) <= settings.max_chars
    plan = make_plan(SpeechRequest(PLAIN), registry, settings)  # about 5 minutes: spoken
    assert len(plan.chunks) == 68
    with pytest.raises(InputError, match=r"The text would be about 2\d minutes of speech; "
                                         r"the limit is 10 minutes\. Shorten it or speak it "
                                         r"faster") as refused:
        make_plan(SpeechRequest(PLAIN, speed=0.25), registry, settings)
    assert refused.value.param == "text"  # the request's own field name (HTTP says "input")
    tight = Settings.from_env({"TTS_MODELS": "joe", "TTS_MAX_SPEECH_S": "60"})
    with pytest.raises(InputError, match=r"would be about \d minutes of speech; the limit is "
                                         r"60 seconds"):
        make_plan(SpeechRequest(PLAIN), registry, tight)


def test_a_refused_cost_never_reaches_the_device(quiet_pipeline):
    gate = quiet_pipeline.gate
    turns = gate.turns_served
    with pytest.raises(InputError, match="would be about"):
        quiet_pipeline.synthesize(SpeechRequest(CJK))
    assert gate.turns_served == turns and not gate.busy and gate.queue_depth == 0
