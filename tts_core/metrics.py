"""Latency records for each request and rolling statistics over the last N of them."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

# Exactly the keys every request reports, in this order.
RECORD_KEYS = (
    "queue_ms", "text_ms", "inference_ms", "encode_ms", "total_ms", "first_audio_ms",
    "audio_seconds", "rtf", "model", "device", "chars",
)


@dataclass(frozen=True)
class LatencyRecord:
    """Where one request's time went; milliseconds unless the name says otherwise."""

    queue_ms: float  # waiting for the GPU gate, summed over the request's chunks
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

    def snapshot(self, queue_depth: int = 0) -> dict:
        """count, p50/p95 of total_ms and first_audio_ms, mean rtf, queue depth."""
        with self._lock:
            records = list(self._records)
            served, failed = self.served, self.failed
        stats = {"count": len(records), "served": served, "failed": failed, "queue_depth": queue_depth}
        for key in ("total_ms", "first_audio_ms"):
            values = np.array([getattr(r, key) for r in records], dtype=np.float64)
            stats[f"p50_{key}"] = round(float(np.percentile(values, 50)), 1) if records else None
            stats[f"p95_{key}"] = round(float(np.percentile(values, 95)), 1) if records else None
        stats["mean_rtf"] = round(float(np.mean([r.rtf for r in records])), 4) if records else None
        return stats
