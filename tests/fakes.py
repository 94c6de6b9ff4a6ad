"""An instrumented stand-in engine: records how many inferences run at once and can fail on cue."""

from __future__ import annotations

import threading
import time

import numpy as np

from waiting import wait_until
from tts_core import ModelSpec, Pipeline, Settings
from tts_core.engines import CloneLimits, Engine, SynthesisParams, WarmModel
from tts_core.registry import Registry

FAKE_RATE = 8000


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError, which is what the pipeline recognizes."""


class FakeEngine(Engine):
    family = "fake"

    def __init__(self, infer_s: float = 0.02, fail_on: str | None = None,
                 oom_on: str | None = None, hang_on: str | None = None,
                 samples_per_char: int = 100):
        super().__init__(ModelSpec("fake", "fake", "fake"), "cpu")
        self.sample_rate, self.voices = FAKE_RATE, ("a", "b")
        self.infer_s = infer_s
        self.fail_on = fail_on
        self.oom_on = oom_on
        self.hang_on = hang_on
        self.samples_per_char = samples_per_char
        self.unhang = threading.Event()
        self._lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.calls = 0
        self.texts: list[str] = []  # every chunk inferred, in order

    def prepare(self, text: str, params: SynthesisParams):
        return text

    def infer(self, prepared: str, params: SynthesisParams) -> np.ndarray:
        with self._lock:
            self.active += 1
            self.calls += 1
            self.texts.append(prepared)
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.infer_s)
            if self.fail_on and self.fail_on in prepared:
                raise RuntimeError("simulated device fault")
            if self.oom_on and self.oom_on in prepared:
                raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            if self.hang_on and self.hang_on in prepared:
                self.unhang.wait(60)  # a call that does not come back
            return np.full(len(prepared) * self.samples_per_char, 0.1, dtype=np.float32)
        finally:
            with self._lock:
                self.active -= 1


def fake_pipeline(engine: FakeEngine, **settings) -> Pipeline:
    registry = Registry({engine.name: engine}, [WarmModel(engine.card(), 0, 0)])
    return Pipeline.from_registry(registry, Settings(**settings))


class BatchingFakeEngine(FakeEngine):
    """Runs a whole batch in one call (one sleep); a bad item fails the whole batch call."""

    supports_batching = True

    def __init__(self, infer_s: float = 0.05, fail_on: str | None = None):
        super().__init__(infer_s, fail_on)
        self.batch_sizes: list[int] = []

    def infer_batch(self, prepared: list[str], params: SynthesisParams) -> list[np.ndarray]:
        with self._lock:
            self.batch_sizes.append(len(prepared))
        time.sleep(self.infer_s)
        if self.fail_on and any(self.fail_on in p for p in prepared):
            raise RuntimeError("simulated device fault")
        return [np.full(len(p) * 100, 0.1, dtype=np.float32) for p in prepared]


CLONE_RATE = 16000


class CloningFakeEngine(FakeEngine):
    """Speaks cloned voices: its conditioning (counted calls of `encode_voice`) is a tone whose
    pitch comes from the clip, so a cloned voice sounds unlike the default and alike each time."""

    supports_cloning = True

    def __init__(self, name: str = "cloner", max_s: float = 10.0, needs_transcript: bool = True):
        super().__init__(infer_s=0.0)
        self.spec = ModelSpec("fake", "fake", name, raw=f"fake:{name}")
        self.name = name
        self.limits = CloneLimits(min_s=1.0, max_s=max_s, sample_rate=CLONE_RATE,
                                  needs_transcript=needs_transcript)
        self.encodes = 0
        self.cloned: dict[str, dict[str, np.ndarray]] = {}

    def clone_limits(self) -> CloneLimits:
        return self.limits

    def encode_voice(self, audio: np.ndarray, transcript: str | None) -> dict[str, np.ndarray]:
        self.encodes += 1
        spectrum = np.abs(np.fft.rfft(audio))
        centroid = float(np.sum(spectrum * np.arange(spectrum.size)) / np.sum(spectrum))
        return {"pitch_hz": np.array(100.0 + centroid * CLONE_RATE / 2 / spectrum.size),
                "transcript": np.array(transcript or ""), "seconds": np.array(audio.size / CLONE_RATE)}

    def add_voice(self, name: str, conditioning: dict[str, np.ndarray]) -> None:
        self.cloned[name] = conditioning
        self.voices = (*self.voices, name)

    def remove_voice(self, name: str) -> None:
        del self.cloned[name]
        self.voices = tuple(v for v in self.voices if v != name)

    def infer(self, prepared: str, params: SynthesisParams) -> np.ndarray:
        audio = super().infer(prepared, params)
        if params.voice in self.cloned:
            t = np.arange(audio.size) / self.sample_rate
            pitch = float(self.cloned[params.voice]["pitch_hz"])
            audio = (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)
        return audio


def lined_up(gate, turns: list[tuple[str, dict]]) -> list[str]:
    """Hold the device, line `turns` up in order (name, run_item's keywords), release: the
    order they ran."""
    order, holding, release = [], threading.Event(), threading.Event()

    def hold(_):
        holding.set()
        release.wait(10)
        return [None]

    holder = threading.Thread(target=gate.run_item, args=(None, "holder", hold))
    holder.start()
    assert holding.wait(10)
    threads = []
    for name, kw in turns:
        t = threading.Thread(target=gate.run_item, kwargs=kw, args=(
            None, name, lambda items: (order.append(items[0]), [None])[1]))
        t.start()
        threads.append(t)
        wait_until(lambda: len(gate._turns) == len(threads), what=f"{name} in line")
    release.set()
    for t in [holder, *threads]:
        t.join(10)
    assert not gate.busy
    return order
