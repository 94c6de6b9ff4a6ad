"""JobManager: accepts long-form jobs, renders them in the background through the pipeline, resumes them after a restart.

Each job slot (`TTS_JOBS_CONCURRENCY`, default 1) is a thread that takes the oldest queued
job and renders its pieces one by one, each an ordinary request made with
`Pipeline.synthesize(..., background=True)`: the gate's lowest priority, no admission
place. A finished piece is saved (atomically) before the next starts; a job found
unfinished at start-up carries on from its first missing piece. The finished files are
assembled once, after the last piece. Finished jobs are deleted `TTS_JOB_TTL` seconds
after they end.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import audio as audio_io
from ..errors import InputError, TTSError
from ..request import SpeechRequest
from .assemble import BOOK_FORMATS, FFMPEG_FORMATS, assemble, book_name, chapters_zip
from .pieces import disk_estimate, job_spec, piece_request
from .source import Chapter
from .store import JobFolder, job_folders, new_id, valid_id

logger = logging.getLogger(__name__)
ROUTE = "job"  # the metrics' route for a job's pieces
ACTIVE = ("queued", "running")
JANITOR_EVERY_S = 60.0
# A job slot's thread (and the inference threads it starts, which inherit it) runs at this
# CPU niceness: on a CPU server the cores go to interactive requests first (Linux).
JOB_NICENESS = 19


class JobNotFound(TTSError):
    """No job with that id (or not one this caller may see)."""


class JobCancelled(Exception):
    """Raised inside a piece's progress callback to stop it."""


@dataclass
class _Job:
    """A job as the server knows it this life: its folder, spec, state and live progress."""

    folder: JobFolder
    spec: dict[str, Any]
    state: dict[str, Any]
    done: int = 0  # pieces finished
    sentences: int = 0  # sentences finished (pieces done, plus the current piece's)
    audio_samples: int = 0
    life_start: float = 0.0  # when it started rendering in this server life
    life_sentences: int = 0  # sentences done when it did
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def id(self) -> str:
        return self.folder.id


class JobManager:
    """The jobs of one pipeline; see the module docstring."""

    def __init__(self, pipeline, start: bool = True):
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self._root = Path(self.settings.jobs_dir) if self.settings.jobs_dir else None
        self._jobs: dict[str, _Job] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._started = False
        self._threads: list[threading.Thread] = []
        if start and self._root is not None:
            self.start()

    # --- life ---------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The jobs' folder: TTS_JOBS_DIR, else a temporary one made on first use."""
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="tts-jobs-"))
            logger.info("jobs in %s (TTS_JOBS_DIR is unset: they end with the process)", self._root)
        return self._root

    def start(self) -> None:
        """Load the jobs on disk (unfinished ones queue again) and start the job slots."""
        with self._cond:
            if self._started:
                return
            self._started = True
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in job_folders(self.root):
            try:
                self._load(folder)
            except (OSError, ValueError, KeyError) as e:
                logger.warning("job %s could not be read (%s); left as it is", folder.id, e)
        for n in range(self.settings.jobs_concurrency):
            self._spawn(self._slot, f"tts-job-{n}")
        self._spawn(self._janitor, "tts-job-janitor")

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the slots after the piece each is rendering (its job stays queued on disk)."""
        with self._cond:
            self._stopped = True
            for job in self._jobs.values():
                job.cancel.set()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def _load(self, folder: JobFolder) -> None:
        spec, state = folder.spec(), folder.state()
        job = _Job(folder, spec, state)
        job.done = folder.pieces_done(len(spec["pieces"]))
        job.sentences = sum(p["sentences"] for p in spec["pieces"][:job.done])
        job.audio_samples = sum(folder.piece_samples(i) for i in range(job.done))
        if state["status"] in ACTIVE:
            logger.info("job %s resumes at piece %d of %d", folder.id, job.done + 1,
                        len(spec["pieces"]))
            self._set(job, status="queued")
        self._jobs[folder.id] = job

    # --- what callers use ---------------------------------------------------------------

    def submit(self, chapters: list[Chapter], request: SpeechRequest, owner: str | None = None,
               input_format: str = "text") -> dict[str, Any]:
        """Check a job (InputError when it cannot be made), save it and queue it."""
        fmt = request.format
        if fmt not in BOOK_FORMATS:
            raise InputError(f"Unknown audio format {fmt!r} for a job; choose one of "
                             f"{', '.join(BOOK_FORMATS)}.", param="format")
        if fmt in FFMPEG_FORMATS and not audio_io.aac_available():
            raise InputError(f"{fmt} needs ffmpeg, which is not installed on this server.",
                             param="format")
        spec = job_spec(chapters, request, self.pipeline.registry, self.settings)
        spec.update(format=fmt, owner=owner, input_format=input_format, created=time.time())
        self.start()
        free = shutil.disk_usage(self.root).free
        needed = disk_estimate(spec)
        if free < needed:
            raise InputError(f"Not enough free disk for this job: it needs about "
                             f"{needed / 2**30:.1f} GiB and {free / 2**30:.1f} GiB are free.",
                             param="disk")
        folder = JobFolder(self.root, new_id())
        spec["id"] = folder.id
        job = _Job(folder, spec, {"status": "queued", "error": None, "finished": None})
        folder.create(spec, job.state)
        with self._cond:
            self._jobs[folder.id] = job
            self._cond.notify_all()
        logger.info("job %s queued: %d chapters, %d pieces, %d characters", folder.id,
                    len(spec["chapters"]), len(spec["pieces"]), spec["total_chars"])
        return self.describe(job)

    def get(self, job_id: str, owner: str | None = None) -> dict[str, Any]:
        return self.describe(self._find(job_id, owner))

    def list_jobs(self, owner: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            jobs = [j for j in self._jobs.values() if j.spec.get("owner") == owner]
        return [self.describe(j) for j in sorted(jobs, key=lambda j: j.spec["created"])]

    def delete(self, job_id: str, owner: str | None = None) -> dict[str, Any]:
        """Cancel a queued or running job; remove a finished, failed or cancelled one."""
        job = self._find(job_id, owner)
        with self._cond:
            if job.state["status"] in ACTIVE:
                job.cancel.set()
                self._set(job, status="cancelled", finished=time.time())
                return self.describe(job)
            self._jobs.pop(job.id, None)
        job.folder.remove()
        return dict(self.describe(job), status="removed")

    def file(self, job_id: str, owner: str | None, kind: str = "audio") -> Path:
        """A done job's book ("audio"), subtitles ("srt", "vtt") or chapters ("zip", made
        when first asked for); JobNotFound if none."""
        job = self._find(job_id, owner)
        if job.state["status"] != "done":
            raise InputError(f"Job {job_id} is {job.state['status']}, not done: its audio "
                             "is not ready.", param="id")
        if kind == "zip":
            return chapters_zip(job.folder, job.spec, job.spec["format"])
        name = book_name(job.spec["format"]) if kind == "audio" else f"book.{kind}"
        path = job.folder.out / name
        if not path.is_file():
            raise JobNotFound(f"Job {job_id} has no {kind} file (subtitles need timings).")
        return path

    def chapter_audio(self, job_id: str, owner: str | None, chapter: int):
        """(rate, int16 samples) of a finished chapter, None while it renders."""
        job = self._find(job_id, owner)
        marks = job.spec["chapters"]
        if not 0 <= chapter < len(marks):
            raise IndexError(f"The job has {len(marks)} chapters, not {chapter + 1}.")
        c = marks[chapter]
        if job.done < c["first"] + c["count"]:
            return None
        pieces = [job.folder.read_piece(i) for i in range(c["first"], c["first"] + c["count"])]
        return job.spec["sample_rate"], np.concatenate(pieces)

    def _find(self, job_id: str, owner: str | None) -> _Job:
        job = self._jobs.get(job_id) if valid_id(job_id) else None
        if job is None or job.spec.get("owner") != owner:
            raise JobNotFound(f"There is no job {job_id!r}.")
        return job

    def describe(self, job: _Job) -> dict[str, Any]:
        """A job's status as the API shows it: progress 0..1, sentences, audio, estimated finish."""
        spec, state = job.spec, job.state
        total = spec["total_sentences"]
        done_status = state["status"] == "done"
        progress = 1.0 if done_status else min(job.sentences / total, 0.999) if total else 0.0
        rate = spec["sample_rate"]
        out = {"id": job.id, "status": state["status"], "progress": round(progress, 4),
               "sentences_done": total if done_status else job.sentences,
               "sentences": total, "characters": spec["total_chars"],
               "audio_seconds": round(job.audio_samples / rate, 3),
               "format": spec["format"], "created": spec["created"],
               "finished": state.get("finished"), "error": state.get("error"),
               "estimated_finish": self._eta(job), "chapters": self._chapters(job)}
        return out

    def _eta(self, job: _Job) -> float | None:
        """When the job should be done (unix time), from its pace in this server life."""
        if job.state["status"] != "running" or not job.life_start:
            return None
        elapsed = time.time() - job.life_start
        pace = (job.sentences - job.life_sentences) / elapsed if elapsed > 0 else 0.0
        if pace <= 0:
            return None
        return round(time.time() + (job.spec["total_sentences"] - job.sentences) / pace, 1)

    @staticmethod
    def _chapters(job: _Job) -> list[dict[str, Any]]:
        out = []
        for c in job.spec["chapters"]:
            done = min(max(job.done - c["first"], 0), c["count"])
            out.append({"title": c["title"], "pieces": c["count"], "pieces_done": done,
                        "progress": round(done / c["count"], 4)})
        return out

    def _set(self, job: _Job, **changes) -> None:
        job.state = dict(job.state, **changes)
        job.folder.write_state(job.state)

    # --- the job slots ------------------------------------------------------------------

    def _slot(self) -> None:
        _lowest_cpu_priority()
        while True:
            with self._cond:
                job = self._cond.wait_for(self._next_queued)
                if self._stopped:
                    return
                job.cancel.clear()
                job.state = dict(job.state, status="running")  # taken: no other slot takes it
            try:
                job.folder.write_state(job.state)
                self._render(job)
            except Exception:  # never lose the slot: the job fails with what went wrong
                logger.exception("job %s failed", job.id)
                self._fail(job, "The server failed while rendering this job; the log has the details.")

    def _next_queued(self):
        """The oldest queued job, True when stopped, else None (keep waiting)."""
        if self._stopped:
            return True
        queued = [j for j in self._jobs.values() if j.state["status"] == "queued"]
        return min(queued, key=lambda j: j.spec["created"]) if queued else None

    def _render(self, job: _Job) -> None:
        spec, folder = job.spec, job.folder
        job.life_start, job.life_sentences = time.time(), job.sentences
        while job.done < len(spec["pieces"]):
            if job.cancel.is_set():
                return
            try:
                self._piece(job, job.done)
            except JobCancelled:
                return
            except TTSError as e:
                return self._fail(job, f"Piece {job.done + 1} of {len(spec['pieces'])}: {e}")
            except OSError as e:
                return self._fail(job, f"Could not save piece {job.done + 1}: {e}")
        try:
            made = assemble(folder, spec, spec["format"])
        except (OSError, RuntimeError) as e:
            return self._fail(job, f"Could not assemble the finished file: {e}")
        with self._cond:
            if job.state["status"] == "running":
                self._set(job, status="done", finished=time.time(), seconds=made["seconds"])
        logger.info("job %s done: %.1f s of audio", job.id, made["seconds"])

    def _piece(self, job: _Job, index: int) -> None:
        """Render piece `index` and save it; the job's sentences advance as it goes."""
        base = job.sentences

        def progress(done: int, total: int) -> None:
            if job.cancel.is_set():
                raise JobCancelled()
            job.sentences = max(job.sentences, base + done)

        result = self.pipeline.synthesize(piece_request(job.spec, index), route=ROUTE,
                                          on_chunk=progress, background=True)
        words = None if result.words is None else [w.to_dict() for w in result.words]
        job.folder.write_piece(index, audio_io.to_int16(result.audio), words)
        job.done, job.sentences = index + 1, base + job.spec["pieces"][index]["sentences"]
        job.audio_samples += result.audio.shape[0]

    def _fail(self, job: _Job, reason: str) -> None:
        logger.warning("job %s failed: %s", job.id, reason)
        with self._cond:
            if job.state["status"] == "running":
                try:
                    self._set(job, status="failed", error=reason, finished=time.time())
                except OSError as e:  # a full disk: failed in this life; resumed in the next
                    logger.error("job %s: its state could not be saved: %s", job.id, e)

    def _janitor(self) -> None:
        """Delete jobs that ended more than TTS_JOB_TTL ago."""
        while True:
            with self._cond:
                if self._cond.wait_for(lambda: self._stopped, timeout=JANITOR_EVERY_S):
                    return
            self.expire()

    def expire(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._cond:
            old = [j for j in self._jobs.values() if j.state["status"] not in ACTIVE
                   and (j.state.get("finished") or now) + self.settings.job_ttl_s < now]
            for job in old:
                self._jobs.pop(job.id, None)
        for job in old:
            job.folder.remove()
            logger.info("job %s deleted: it ended more than %d s ago", job.id,
                        self.settings.job_ttl_s)
        return len(old)


def _lowest_cpu_priority() -> None:
    """This thread, and the threads it starts, at the lowest CPU priority (Linux only: there
    a thread's niceness is its own)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), JOB_NICENESS)
    except (AttributeError, OSError) as e:
        logger.debug("job slot keeps its CPU priority: %s", e)


def owner_for_key(key: str | None) -> str | None:
    """Whose jobs these are: a digest of the API key that made them; None with no key."""
    return None if key is None else hashlib.sha256(key.encode()).hexdigest()[:32]


def jobs_for(pipeline) -> JobManager:
    """The one job manager of `pipeline` (shared by the HTTP routes and the UI panel)."""
    manager = getattr(pipeline, "_job_manager", None)
    if manager is None:
        manager = pipeline._job_manager = JobManager(pipeline)
    return manager
