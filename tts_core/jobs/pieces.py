"""A job's chapters cut into pieces of whole sentences, each checked as the request it will be.

A piece is the unit a job renders, saves and resumes from: whole sentences of one chapter,
at most `TTS_JOB_PIECE_CHARS` characters (a longer sentence is a piece of its own, cut at
clauses only past `TTS_MAX_CHARS`). Each piece becomes an ordinary `SpeechRequest`, so it
is cleaned, spelled out and chunked exactly as `/v1/audio/speech` would for its text; a
text cut at sentence ends this way speaks the same sentences, in the same order.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from .. import text as textproc
from ..errors import InputError
from ..plan import make_plan
from ..request import SpeechRequest
from .source import Chapter

# Speech runs at about 15 characters a second; a sample on disk is int16 (the pieces), and
# the finished files take about as much again (the book, and the chapters' zip).
CHARS_PER_SECOND = 15
DISK_BYTES_PER_SAMPLE = 2 * 3
DISK_MARGIN_BYTES = 64 * 2**20


def split_text(text: str, piece_chars: int, max_chars: int,
               spoken: Callable[[str], list[str]] = lambda t: [t]) -> list[str]:
    """`text` (a chapter) as pieces of whole sentences; pieces with nothing to say are dropped.

    `spoken(text)` is the chunks the plan makes of a text (spelled out, then cut into
    sentences). A piece ends only where the text's own sentences end after spelling out
    too ("6:30 a.m. she" ends no sentence once it reads "six thirty AM she"), so the
    pieces' chunks, one after another, are the whole text's chunks.
    """
    sentences = [part for sentence in textproc.split_sentences(textproc.clean(text))
                 for part in ([sentence] if len(sentence) <= max_chars
                              else textproc.chunk(sentence, max_chars))]
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for i, sentence in enumerate(sentences):
        over = current and size + 1 + len(sentence) > piece_chars
        if over and (size + 1 + len(sentence) > max_chars or _ends_here(sentences, i, spoken)):
            pieces.append(" ".join(current))
            current, size = [], -1
        current.append(sentence)
        size += 1 + len(sentence)
    if current:
        pieces.append(" ".join(current))
    return [p for p in pieces if textproc.has_speakable(p)]


def _ends_here(sentences: list[str], i: int, spoken: Callable[[str], list[str]]) -> bool:
    """Whether cutting before sentence `i` keeps the chunks its neighbours make together."""
    left, right = " ".join(sentences[max(0, i - 2):i]), " ".join(sentences[i:i + 2])
    return spoken(f"{left} {right}") == spoken(left) + spoken(right)


def job_spec(chapters: list[Chapter], request: SpeechRequest, registry, settings) -> dict[str, Any]:
    """What a job will render: its chapters, their pieces (text, sentences, characters) and
    the request each piece is made with; InputError when the text or a field is wrong.
    The output's format is the job's own to check: each piece is checked as raw samples."""
    request = dataclasses.replace(request, format="wav")
    total = sum(len(c.text) for c in chapters)
    if total > settings.job_max_chars:
        raise InputError(f"The text is {total} characters long; a job takes at most "
                         f"{settings.job_max_chars} (TTS_JOB_MAX_CHARS).", param="text")
    if not any(textproc.has_speakable(c.text) for c in chapters):
        raise InputError("The text is empty: there is nothing to speak.", param="text")
    engine = registry.get(request.model)
    longest = min(settings.chunk_chars, engine.max_chunk_chars or settings.chunk_chars)
    english = engine.language == "en"

    def spoken(text: str) -> list[str]:  # the plan's text path (plan.make_plan)
        cleaned = textproc.clean(text)
        return textproc.chunk(textproc.expand(cleaned) if english else cleaned, longest)

    pieces, marks = [], []
    for number, chapter in enumerate(chapters):
        texts = split_text(chapter.text, settings.job_piece_chars, settings.max_chars, spoken)
        if not texts:
            continue
        marks.append({"title": chapter.title, "first": len(pieces), "count": len(texts)})
        for text in texts:
            plan = _checked(dataclasses.replace(request, text=text), registry, settings,
                            chapter.title)
            pieces.append({"text": text, "chapter": len(marks) - 1,
                           "sentences": len(plan.chunks), "chars": len(text)})
    if not pieces:
        raise InputError("The text has nothing to speak: no letters or digits.", param="text")
    return {"request": _fields(request, engine), "sample_rate": engine.sample_rate,
            "chapters": marks, "pieces": pieces,
            "total_sentences": sum(p["sentences"] for p in pieces),
            "total_chars": sum(p["chars"] for p in pieces)}


def _checked(request: SpeechRequest, registry, settings, chapter: str):
    try:
        return make_plan(request, registry, settings)
    except InputError as e:
        if e.param == "text":  # which part of a long text it is
            raise InputError(f"In chapter {chapter!r}: {e}", param="text") from e
        raise


def _fields(request: SpeechRequest, engine) -> dict[str, Any]:
    """The request's fields a piece is made with (JSON), the model resolved to its name."""
    return {"model": engine.name, "voice": request.voice, "speed": request.speed,
            "seed": request.seed, "timings": request.timings, "loudness": request.loudness,
            "true_peak": request.true_peak}


def piece_request(spec: dict[str, Any], index: int) -> SpeechRequest:
    """Piece `index` of a job as the request it is rendered with (raw samples: wav)."""
    return SpeechRequest(text=spec["pieces"][index]["text"], format="wav", **spec["request"])


def disk_estimate(spec: dict[str, Any]) -> int:
    """Bytes a job will take on disk, about: its audio at the model's rate, plus a margin."""
    seconds = spec["total_chars"] / CHARS_PER_SECOND
    return int(seconds * spec["sample_rate"] * DISK_BYTES_PER_SAMPLE) + DISK_MARGIN_BYTES
