"""A job's folder on disk: its spec (written once), its state, its finished pieces and outputs, every write atomic.

Layout under `TTS_JOBS_DIR/<id>/`:
  job.json          what to render: the request, the chapters and their pieces (never changes)
  state.json        status, error, timestamps (rewritten whole, atomically)
  pieces/NNNNNN.npy a finished piece: int16 mono samples at the model's rate
  pieces/NNNNNN.json its timed words, when the job asked for timings
  out/              the finished files, assembled once at the end

A write goes to a temporary file in the same folder, is flushed to disk and then renamed
over the target (`os.replace`), so a reader or a restart after `kill -9` sees the old file
or the new one, never half of one. Which pieces are done is read from the pieces
themselves: a piece is done when its file exists.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
SPEC_FILE, STATE_FILE = "job.json", "state.json"


def new_id() -> str:
    return secrets.token_hex(16)


def valid_id(job_id: str) -> bool:
    """A job id is 32 lowercase hex digits: nothing else ever becomes a path."""
    return isinstance(job_id, str) and bool(ID_PATTERN.match(job_id))


def write_atomic(path: Path, data: bytes) -> None:
    """`data` at `path`, whole or not at all (temporary file, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class JobFolder:
    """One job's files; `root/<id>`."""

    def __init__(self, root: Path, job_id: str):
        if not valid_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        self.id = job_id
        self.path = root / job_id
        self.pieces = self.path / "pieces"
        self.out = self.path / "out"

    def create(self, spec: dict[str, Any], state: dict[str, Any]) -> None:
        """The folder with its spec and first state; a half-made folder is removed."""
        self.pieces.mkdir(parents=True)
        self.out.mkdir()
        try:
            self.write_state(state)
            write_atomic(self.path / SPEC_FILE, json.dumps(spec).encode())  # last: the job exists
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise

    def exists(self) -> bool:
        return (self.path / SPEC_FILE).is_file()

    def spec(self) -> dict[str, Any]:
        return json.loads((self.path / SPEC_FILE).read_text())

    def state(self) -> dict[str, Any]:
        return json.loads((self.path / STATE_FILE).read_text())

    def write_state(self, state: dict[str, Any]) -> None:
        write_atomic(self.path / STATE_FILE, json.dumps(state).encode())

    def piece_path(self, index: int, suffix: str = ".npy") -> Path:
        return self.pieces / f"{index:06d}{suffix}"

    def write_piece(self, index: int, samples: np.ndarray, words: list[dict] | None) -> None:
        """A finished piece: its words first, then its samples (which mark it done)."""
        if words is not None:
            write_atomic(self.piece_path(index, ".json"), json.dumps(words).encode())
        buf = _npy(samples.astype(np.int16, copy=False))
        write_atomic(self.piece_path(index), buf)

    def read_piece(self, index: int) -> np.ndarray:
        return np.load(self.piece_path(index), allow_pickle=False)

    def piece_samples(self, index: int) -> int:
        """A finished piece's length in samples, read from its header only."""
        return int(np.load(self.piece_path(index), mmap_mode="r", allow_pickle=False).shape[0])

    def read_words(self, index: int) -> list[dict]:
        path = self.piece_path(index, ".json")
        return json.loads(path.read_text()) if path.is_file() else []

    def pieces_done(self, total: int) -> int:
        """How many pieces, from the first, are finished (a restart carries on from there)."""
        done = 0
        while done < total and self.piece_path(done).is_file():
            done += 1
        return done

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _npy(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, samples, allow_pickle=False)
    return buf.getvalue()


def job_folders(root: Path) -> list[JobFolder]:
    """Every job under `root` (folders whose name is not a job id are left alone)."""
    if not root.is_dir():
        return []
    return [JobFolder(root, p.name) for p in sorted(root.iterdir())
            if valid_id(p.name) and (p / SPEC_FILE).is_file()]
