"""Latency records for each request and rolling statistics over the last N of them."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

# Exactly the keys every request reports, in this order.
RECORD_KEYS = (
    "queue_ms", "text_ms", "inference_ms", "encode_ms", "total_ms", "first_audio_ms",
    "audio_seconds", "rtf", "model", "device", "chars", "note", "threads",
)


@dataclass(frozen=True)
class LatencyRecord:
    """Where one request's time went; milliseconds unless the name says otherwise."""

    queue_ms: float  # waiting for the device gate, summed over the request's chunks
    text_ms: float  # normalize, chunk, phonemize/tokenize
    inference_ms: float  # inside the gate, on the device
    encode_ms: float  # float32 -> int16 -> container
    total_ms: float  # request start to last byte ready
    first_audio_ms: float  # request start to the first audio chunk ready
    audio_seconds: float
    rtf: float  # inference seconds / audio seconds; below 1 is faster than real time
    model: str
    device: str
    chars: int
    note: str = ""  # what the request asked that the model could not do (SSML markup it ignored)
    threads: float = 0.0  # CPU threads per device turn, mean over its turns (0: undivided, a GPU)

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class RollingStats:
    """Thread-safe window over the last `window` successful requests, plus lifetime counters."""

    def __init__(self, window: int = 100):
        self._records: deque[LatencyRecord] = deque(maxlen=window)
        self._lock = threading.Lock()
        self.window = window
        self.served = 0
        self.failed = 0

    def add(self, record: LatencyRecord) -> None:
        with self._lock:
            self._records.append(record)
            self.served += 1

    def add_failure(self) -> None:
        with self._lock:
            self.failed += 1

    def records(self) -> list[LatencyRecord]:
        """The window's records, oldest first (a copy)."""
        with self._lock:
            return list(self._records)

    def snapshot(self, queue_depth: int = 0, model: str | None = None) -> dict:
        """count, p50/p95 of total_ms and first_audio_ms, mean rtf, queue depth; `model`: its
        requests only (the lifetime counters stay overall)."""
        with self._lock:
            records = [r for r in self._records if model is None or r.model == model]
            served, failed = self.served, self.failed
        stats = {"count": len(records), "served": served, "failed": failed, "queue_depth": queue_depth}
        for key in ("total_ms", "first_audio_ms"):
            values = np.array([getattr(r, key) for r in records], dtype=np.float64)
            stats[f"p50_{key}"] = round(float(np.percentile(values, 50)), 1) if records else None
            stats[f"p95_{key}"] = round(float(np.percentile(values, 95)), 1) if records else None
        stats["mean_rtf"] = round(float(np.mean([r.rtf for r in records])), 4) if records else None
        threads = [r.threads for r in records if r.threads]
        stats["mean_threads"] = round(float(np.mean(threads)), 2) if threads else None  # per CPU call
        return stats


# Latency histogram buckets in milliseconds: from a cached short reply to a long CPU synthesis.
MS_BUCKETS = (10, 25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2500, 5000, 10000, 30000, 60000)
# CPU threads a model call got (the gate gives all the cores, half, a quarter ... one).
THREAD_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class PrometheusMetrics:
    """The operator's view, in Prometheus' own client: requests, latency, audio, queue, models.

    Each instance has its own CollectorRegistry, so several apps in one process (tests)
    do not collide. Label values come only from loaded model names and fixed words,
    never from what a client typed, so their number stays bounded.
    """

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("tts_requests", "Synthesis requests by route, model and outcome",
                                ("route", "model", "status"), registry=self.registry)
        self.queue_ms = Histogram("tts_queue_ms", "Time waiting for the device gate (ms)", ("model",),
                                  buckets=MS_BUCKETS, registry=self.registry)
        self.first_audio_ms = Histogram("tts_first_audio_ms", "Request start to first audio (ms)",
                                        ("model",), buckets=MS_BUCKETS, registry=self.registry)
        self.total_ms = Histogram("tts_total_ms", "Request start to last byte (ms)", ("model",),
                                  buckets=MS_BUCKETS, registry=self.registry)
        self.audio_seconds = Counter("tts_audio_seconds", "Seconds of audio produced", ("model",),
                                     registry=self.registry)
        self.queue_depth = Gauge("tts_queue_depth", "Requests admitted to the gate (waiting or running)",
                                 registry=self.registry)
        self.slots = Gauge("tts_device_slots", "Model calls the device runs at once (1 on a GPU)",
                           registry=self.registry)
        self.slots_in_use = Gauge("tts_device_slots_in_use", "Device slots running a model call now",
                                  registry=self.registry)
        self.threads = Gauge("tts_device_threads", "CPU threads model calls share (0: not divided, "
                             "a GPU)", registry=self.registry)
        self.threads_in_use = Gauge("tts_device_threads_in_use", "CPU threads given to the model "
                                    "calls running now", registry=self.registry)
        self.turn_threads = Histogram("tts_turn_threads", "CPU threads each model call got (all when "
                                      "alone, a share when others run at once)",
                                      buckets=THREAD_BUCKETS, registry=self.registry)
        self.busy_seconds = Gauge("tts_device_busy_seconds", "Slot-seconds spent in model calls since "
                                  "start (rate / slots = how busy the device is)", registry=self.registry)
        self.device_calls = Gauge("tts_device_calls", "Model calls run on the device since start",
                                  registry=self.registry)
        self.device_items = Gauge("tts_device_items", "Chunks and windows those calls ran (items / "
                                  "calls = the mean batch size)", registry=self.registry)
        self.stuck_calls = Gauge("tts_device_stuck_calls", "Model calls given up on past "
                                 "TTS_INFER_TIMEOUT since start (each may still hold a thread)",
                                 registry=self.registry)
        self.load_seconds = Gauge("tts_model_load_seconds", "Seconds to load and to warm up each model",
                                  ("model", "phase"), registry=self.registry)
        self.device_memory = Gauge("tts_device_memory_bytes", "CUDA memory allocated by this process",
                                   ("device",), registry=self.registry)

    def observe(self, record: LatencyRecord, route: str) -> None:
        self.requests.labels(route, record.model, "ok").inc()
        self.queue_ms.labels(record.model).observe(record.queue_ms)
        self.first_audio_ms.labels(record.model).observe(record.first_audio_ms)
        self.total_ms.labels(record.model).observe(record.total_ms)
        self.audio_seconds.labels(record.model).inc(record.audio_seconds)

    def count(self, route: str, model: str, status: str) -> None:
        self.requests.labels(route, model, status).inc()

    def observe_load(self, warm) -> None:
        """A model now serving: its load and warm-up seconds, from its `WarmModel`."""
        self.load_seconds.labels(warm.name, "load").set(warm.load_s)
        self.load_seconds.labels(warm.name, "warmup").set(warm.warmup_s)

    def forget_load(self, model: str) -> None:
        """A removed model's load and warm-up seconds leave the exposition."""
        for phase in ("load", "warmup"):
            try:
                self.load_seconds.remove(model, phase)
            except KeyError:
                pass

    def exposition(self) -> bytes:
        """The text format, with the gauges that are read rather than counted brought up to date."""
        from prometheus_client import generate_latest

        _cuda_memory(self.device_memory)
        return generate_latest(self.registry)


def _cuda_memory(gauge) -> None:
    import sys

    torch = sys.modules.get("torch")  # only report CUDA where a torch model already imported it
    if torch is not None and torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            gauge.labels(f"cuda:{i}").set(torch.cuda.memory_allocated(i))
