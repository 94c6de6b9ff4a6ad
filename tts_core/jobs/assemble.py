"""A finished job's files, assembled once from its pieces: the book in its format, its subtitles, its chapters.

Pieces are read one at a time and written on (a book of many hours never sits in memory
whole); each file is written beside its target and renamed over it, so a crash during
assembly leaves no half file, and the restarted job assembles again.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import soundfile as sf

from .. import audio as audio_io
from ..ffmpeg import find_ffmpeg
from ..timings import WordTiming, to_srt, to_vtt
from .store import JobFolder, write_atomic

# The job's output formats: the speech formats, and an audiobook (AAC in MP4 with chapters).
BOOK_FORMATS = tuple(audio_io.ALL_FORMATS) + ("m4b",)
FFMPEG_FORMATS = frozenset({"aac", "m4b"})
EXTENSIONS = {"opus": "ogg", "m4b": "m4b"}
MEDIA_TYPES = dict(audio_io.MEDIA_TYPES, m4b="audio/mp4")


def book_name(fmt: str) -> str:
    return f"book.{EXTENSIONS.get(fmt, fmt)}"


def assemble(folder: JobFolder, spec: dict[str, Any], fmt: str) -> dict[str, Any]:
    """Write the book (and its subtitles when the job has timings); return what was made:
    the file's name, its length, the chapters' start times."""
    rate = spec["sample_rate"]
    lengths = [folder.piece_samples(i) for i in range(len(spec["pieces"]))]
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    chapters = [{"title": c["title"], "start": float(starts[c["first"]] / rate),
                 "end": float(starts[c["first"] + c["count"]] / rate)} for c in spec["chapters"]]
    pieces = lambda: (folder.read_piece(i) for i in range(len(lengths)))  # noqa: E731
    target = folder.out / book_name(fmt)
    if fmt in FFMPEG_FORMATS:
        _ffmpeg_book(pieces(), rate, fmt, target, chapters)
    else:
        _write_file(target, lambda tmp: _soundfile_book(pieces(), rate, fmt, tmp))
    made = {"file": target.name, "seconds": float(starts[-1] / rate), "chapters": chapters}
    if spec["request"].get("timings"):
        words = [WordTiming(w["word"], w["start"] + starts[i] / rate, w["end"] + starts[i] / rate)
                 for i in range(len(lengths)) for w in folder.read_words(i)]
        write_atomic(folder.out / "book.srt", to_srt(words).encode())
        write_atomic(folder.out / "book.vtt", to_vtt(words).encode())
        made["subtitles"] = True
    write_atomic(folder.out / "made.json", json.dumps(made).encode())
    return made


def _write_file(target: Path, write: Callable[[str], None]) -> None:
    """`write(tmp)` makes the file at a temporary path beside `target`, then it replaces it."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _samples(pieces: Iterator[np.ndarray], rate: int, out_rate: int) -> Iterator[np.ndarray]:
    """Each piece as int16 at `out_rate` (resampled piece by piece where the format needs it)."""
    for samples in pieces:
        if out_rate == rate:
            yield samples
        else:
            audio = samples.astype(np.float32) / audio_io.INT16_MAX
            yield audio_io.to_int16(audio_io.resample(audio, rate, out_rate))


def _soundfile_book(pieces: Iterator[np.ndarray], rate: int, fmt: str, path: str) -> None:
    out_rate = audio_io.output_rate(fmt, rate)
    if fmt == "pcm":
        with open(path, "wb") as f:
            for samples in _samples(pieces, rate, out_rate):
                f.write(samples.astype("<i2").tobytes())
        return
    container, subtype = audio_io.SOUNDFILE_FORMATS[fmt]
    with sf.SoundFile(path, "w", samplerate=out_rate, channels=1, subtype=subtype,
                      format=container) as f:
        for samples in _samples(pieces, rate, out_rate):
            f.write(samples)


def _ffmpeg_book(pieces: Iterator[np.ndarray], rate: int, fmt: str, target: Path,
                 chapters: list[dict]) -> None:
    """AAC (ADTS) or an M4B audiobook with chapter marks, encoded by ffmpeg from the samples
    piped in (ffmetadata gives the chapters)."""
    ffmpeg = find_ffmpeg()
    if ffmpeg is None:
        raise RuntimeError(f"{fmt} needs ffmpeg, and none is installed here")

    def write(tmp: str) -> None:
        meta = Path(tmp + ".ffmeta")
        meta.write_text(ffmetadata(chapters))
        args = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "s16le", "-ar", str(rate),
                "-ac", "1", "-i", "pipe:0"]
        if fmt == "m4b":
            args += ["-i", str(meta), "-map", "0:a", "-map_metadata", "1", "-map_chapters", "1",
                     "-c:a", "aac", "-b:a", "64k", "-f", "mp4", tmp]
        else:
            args += ["-c:a", "aac", "-b:a", "96k", "-f", "adts", tmp]
        try:
            with subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
                for samples in pieces:
                    proc.stdin.write(samples.astype("<i2").tobytes())
                proc.stdin.close()
                error = proc.stderr.read().decode(errors="replace")
            if proc.returncode != 0:
                raise RuntimeError(f"ffmpeg could not write {fmt}: {error[:300]}")
        finally:
            meta.unlink(missing_ok=True)

    _write_file(target, write)


def ffmetadata(chapters: list[dict]) -> str:
    """ffmpeg's metadata file: a [CHAPTER] per chapter, in milliseconds."""
    lines = [";FFMETADATA1"]
    for c in chapters:
        title = "".join(f"\\{ch}" if ch in "=;#\\\n" else ch for ch in c["title"])
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={round(c['start'] * 1000)}",
                  f"END={round(c['end'] * 1000)}", f"title={title}"]
    return "\n".join(lines) + "\n"
