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
import zipfile
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
        def write(tmp: str) -> None:
            _soundfile_book(pieces(), rate, fmt, tmp)
            if fmt == "mp3" and len(chapters) > 1:
                id3_chapters(tmp, chapters)
        _write_file(target, write)
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


def id3_chapters(path: str, chapters: list[dict]) -> None:
    """Chapter marks in an MP3's ID3 tag: a CHAP frame per chapter, under one ordered CTOC."""
    from mutagen.id3 import CHAP, CTOC, ID3, TIT2, CTOCFlags

    tags = ID3()
    ids = [f"chp{n}" for n in range(len(chapters))]
    tags.add(CTOC(element_id="toc", flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
                  child_element_ids=ids, sub_frames=[TIT2(text=["Chapters"])]))
    for element_id, c in zip(ids, chapters):
        tags.add(CHAP(element_id=element_id, start_time=round(c["start"] * 1000),
                      end_time=round(c["end"] * 1000), sub_frames=[TIT2(text=[c["title"]])]))
    tags.save(path)


def chapters_zip(folder: JobFolder, spec: dict[str, Any], fmt: str) -> Path:
    """A zip of one file per chapter (made once, when first asked for): `NN title.ext`."""
    target = folder.out / "chapters.zip"
    if target.is_file():
        return target
    fmt = "mp3" if fmt in FFMPEG_FORMATS else fmt  # one AAC-in-MP4 file per chapter: MP3 instead
    rate = spec["sample_rate"]

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
            for n, c in enumerate(spec["chapters"], start=1):
                pieces = (folder.read_piece(i) for i in range(c["first"], c["first"] + c["count"]))
                part = Path(tmp + ".part")
                try:
                    _soundfile_book(pieces, rate, fmt, str(part))
                    archive.write(part, f"{n:02d} {_file_title(c['title'])}.{EXTENSIONS.get(fmt, fmt)}")
                finally:
                    part.unlink(missing_ok=True)

    _write_file(target, write)
    return target


def _file_title(title: str) -> str:
    """A chapter title as a file name: letters, digits, spaces and a few marks, 60 at most."""
    kept = "".join(ch if ch.isalnum() or ch in " -_,.'" else " " for ch in title)
    return " ".join(kept.split())[:60].strip(" .") or "chapter"


def ffmetadata(chapters: list[dict]) -> str:
    """ffmpeg's metadata file: a [CHAPTER] per chapter, in milliseconds."""
    lines = [";FFMETADATA1"]
    for c in chapters:
        title = "".join(f"\\{ch}" if ch in "=;#\\\n" else ch for ch in c["title"])
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={round(c['start'] * 1000)}",
                  f"END={round(c['end'] * 1000)}", f"title={title}"]
    return "\n".join(lines) + "\n"
