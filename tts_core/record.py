"""RecordClock: a running request's counters (waits, holds, samples, first audio), turned into its LatencyRecord.

The plan does not change while a request runs; everything that does is here. The
pipeline's generator is its only writer, and asks for the record once, when the last
byte is ready.
"""

from __future__ import annotations

import logging
import threading
import time

from .metrics import LatencyRecord
from .plan import Plan

logger = logging.getLogger(__name__)
MS = 1000.0


class RecordClock:
    """Where one request's time goes, as it goes: `record()` at the end makes its LatencyRecord."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.text_s = plan.text_s  # checking the request, then preparing each chunk
        self.queue_s = 0.0  # waiting at the gate, over all turns
        self.infer_s = 0.0  # holding the device, over all turns
        self.encode_s = 0.0
        self.turn_threads: list[int] = []  # each CPU turn's share of the threads
        self.samples = 0  # made so far (before any limiter holds some back)
        self.first_piece: float | None = None  # when the first piece left the generator
        self.finished: float | None = None
        self.cancel = threading.Event()  # set when the caller went away (Synthesis.cancel)

    @property
    def audio_s(self) -> float:
        """Seconds of audio made so far: where the next chunk starts."""
        return self.samples / self.plan.engine.sample_rate

    def piece_left(self) -> None:
        if self.first_piece is None:
            self.first_piece = time.perf_counter()

    def record(self, streamed: bool) -> LatencyRecord:
        """The request's record, now that its last byte is ready.

        First audio is when the caller can first hear something: for a stream, when its
        first piece left; for a whole file, when the file is ready (nothing is heard
        sooner), so there `first_audio_ms == total_ms`.
        """
        self.finished = time.perf_counter()
        plan = self.plan
        first_audio = self.first_piece if streamed else self.finished
        audio_s = self.audio_s
        record = LatencyRecord(
            queue_ms=self.queue_s * MS,
            text_ms=self.text_s * MS,
            inference_ms=self.infer_s * MS,
            encode_ms=self.encode_s * MS,
            total_ms=(self.finished - plan.started) * MS,
            first_audio_ms=(first_audio - plan.started) * MS,
            audio_seconds=audio_s,
            rtf=self.infer_s / audio_s if audio_s else 0.0,
            model=plan.engine.name,
            device=plan.engine.device,
            chars=plan.chars,
            note=plan.note,
            threads=(sum(self.turn_threads) / len(self.turn_threads)) if self.turn_threads else 0.0,
        )
        logger.info("served model=%s chars=%d audio=%.2fs total=%.0fms queue=%.0fms rtf=%.3f",
                    record.model, record.chars, audio_s, record.total_ms, record.queue_ms, record.rtf)
        return record
