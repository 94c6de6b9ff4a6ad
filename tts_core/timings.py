"""Word timings from a model's own durations, mapped to the words as typed, and subtitles (SRT, WebVTT).

Three steps, each a plain function:

1. `source_words`: the words as the user typed them, each with the range of spoken
   (expanded) words it became: "$20" is one word that became "twenty dollars".
2. `unit_owners`: which spoken word each of the model's input units (a phoneme id, a
   character) belongs to, aligning the units with each word's own units, so that a
   phonemizer that joins words ("of the" -> one espeak word) or splits them
   ("example.com" -> three) still lands every unit on the right word.
3. `word_frames`: the model's frames per unit summed into each word's first and last frame.

The pipeline converts frames to seconds (the engine's samples per frame) and offsets them
by where each chunk starts in the whole audio.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

# Subtitle cues: at most this many characters (a common single-line limit for subtitles)
# and words, and a cue ends at a sentence end or at a pause this long.
CUE_MAX_CHARS = 42
CUE_MAX_WORDS = 8
CUE_PAUSE_S = 0.6
_SENTENCE_END = (".", "!", "?", "…", ".\"", "!\"", "?\"", ".”", "!”", "?”")


@dataclass(frozen=True)
class WordTiming:
    """One word as the user typed it, and when it is heard (seconds from the audio's start)."""

    word: str
    start: float
    end: float

    def to_dict(self) -> dict:
        return {"word": self.word, "start": round(self.start, 3), "end": round(self.end, 3)}


@dataclass(frozen=True)
class SourceWord:
    """A typed word (or a few typed words that became speech together, "3:30 PM") and the
    spoken words [first, stop) of the expanded text that say it."""

    text: str
    first: int
    stop: int


def source_words(typed: str, spoken: str, expand: Callable[[str], str] | None = None) -> list[SourceWord]:
    """Map the words of `spoken` (the expanded text) back to the words of `typed`.

    Both are whitespace-normalized. Words the same in both map one to one; a run that
    expansion rewrote ("$20" -> "twenty dollars") becomes one source word per typed word
    when expanding each typed word alone gives the same words, else one for the run
    ("3:30 PM" -> "three thirty p m"). A typed word that says nothing (a lone dash) joins
    the word before it.
    """
    typed_words, spoken_words = typed.split(), spoken.split()
    if typed_words == spoken_words or expand is None:
        return [SourceWord(w, i, i + 1) for i, w in enumerate(spoken_words)]
    out: list[SourceWord] = []
    orphans: list[str] = []  # typed words with nothing spoken, before any source word

    def add(text: str, first: int, stop: int) -> None:
        if orphans:
            text = " ".join(orphans + [text])
            orphans.clear()
        out.append(SourceWord(text, first, stop))

    matcher = difflib.SequenceMatcher(None, typed_words, spoken_words, autojunk=False)
    for op, t0, t1, s0, s1 in matcher.get_opcodes():
        if op == "equal":
            for k in range(t1 - t0):
                add(typed_words[t0 + k], s0 + k, s0 + k + 1)
        elif op == "delete":
            if out:
                last = out[-1]
                out[-1] = SourceWord(" ".join([last.text, *typed_words[t0:t1]]), last.first, last.stop)
            else:
                orphans.extend(typed_words[t0:t1])
        elif op == "insert":
            if out:
                last = out[-1]
                out[-1] = SourceWord(last.text, last.first, s1)
            else:
                add("", s0, s1)
        else:  # replace
            pieces = [expand(w).split() for w in typed_words[t0:t1]]
            if [w for p in pieces for w in p] == spoken_words[s0:s1] and all(pieces):
                at = s0
                for word, piece in zip(typed_words[t0:t1], pieces):
                    add(word, at, at + len(piece))
                    at += len(piece)
            else:
                add(" ".join(typed_words[t0:t1]), s0, s1)
    if orphans and out:
        first = out[0]
        out[0] = SourceWord(" ".join(orphans + [first.text]).strip(), first.first, first.stop)
    return [w if w.text else SourceWord(spoken_words[w.first], w.first, w.stop) for w in out]


# A unit that belongs to the unit before it (Piper's PAD after each phoneme, VITS's blank
# after each character): it lengthens that unit's word, and is silence otherwise.
JOINS_PREVIOUS = ""
# The unit between two words (a space): it anchors the alignment at word boundaries and
# belongs to no word.
WORD_BREAK = " "


def unit_owners(word_units: Sequence[Sequence[str]],
                sentences: Sequence[Sequence[str | None]]) -> list[list[int | None]]:
    """For each sentence, the word each unit belongs to.

    `word_units[w]`: word w's own units (what the model reads for it alone; empty for a word
    that says nothing). `sentences`: the units the model read, per sentence: a symbol,
    WORD_BREAK, None for silence (punctuation, start and end marks), or JOINS_PREVIOUS.

    Two readings, the one whose units agree more with the words' own wins: word by word
    (the model read as many words as there are, the usual case, and "a" said one way
    alone and another in "for a ticket" is still "a"), or unit by unit, the two unit
    sequences aligned, for a phonemizer that joined words ("of the" as one) or split them
    ("example.com" as three). Unit by unit, a run said differently in context is shared
    out in order among the words it stands for, and a unit with no counterpart takes the
    word of the unit before it (else after it).
    """
    spoken = [(symbol, s, u) for s, units in enumerate(sentences) for u, symbol in enumerate(units)
              if symbol and symbol != WORD_BREAK]
    groups: list[list[int]] = []  # positions in `spoken` of each word the model read
    last = None
    for k, (_, s, u) in enumerate(spoken):
        if last is None or last[0] != s or WORD_BREAK in sentences[s][last[1] + 1:u]:
            groups.append([])
        groups[-1].append(k)
        last = (s, u)
    speaking = [w for w, units in enumerate(word_units) if units]
    found, score = _aligned(word_units, [a[0] for a in spoken])
    if len(groups) == len(speaking):
        pairs = [(w, group) for w, group in zip(speaking, groups)]
        if sum(_matches(word_units[w], [spoken[k][0] for k in group]) for w, group in pairs) >= score:
            found = [None] * len(spoken)
            for w, group in pairs:
                for k in group:
                    found[k] = w
    owners: list[list[int | None]] = [[None] * len(units) for units in sentences]
    for (_, s, u), owner in zip(spoken, found):
        owners[s][u] = owner
    for s, units in enumerate(sentences):
        speech = [u for u, symbol in enumerate(units) if symbol and symbol != WORD_BREAK]
        known = [u for u in speech if owners[s][u] is not None]
        if not known:
            continue
        for u in speech:
            if owners[s][u] is None:
                before = [k for k in known if k < u]
                owners[s][u] = owners[s][before[-1] if before else known[0]]
        for u, symbol in enumerate(units):
            if symbol == JOINS_PREVIOUS and u > 0 and units[u - 1] and units[u - 1] != WORD_BREAK:
                owners[s][u] = owners[s][u - 1]
    return owners


def _matches(a: Sequence[str], b: Sequence[str]) -> int:
    return sum(block.size for block in
               difflib.SequenceMatcher(None, list(a), list(b), autojunk=False).get_matching_blocks())


def _aligned(word_units: Sequence[Sequence[str]], spoken: list[str]) -> tuple[list[int | None], int]:
    """Unit by unit: the word of each spoken unit (None: no counterpart), and how many agreed."""
    ref = [(symbol, w) for w, units in enumerate(word_units) for symbol in units]
    found: list[int | None] = [None] * len(spoken)
    score = 0
    matcher = difflib.SequenceMatcher(None, [r[0] for r in ref], spoken, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            found[j1:j2] = [ref[i][1] for i in range(i1, i2)]
            score += i2 - i1
        elif tag == "replace":
            words = [ref[i][1] for i in range(i1, i2)]
            for k in range(j2 - j1):
                found[j1 + k] = words[k * len(words) // (j2 - j1)]
    return found, score


def word_frames(owners: Sequence[Sequence[int | None]],
                durations: Sequence[Sequence[int]]) -> dict[int, tuple[int, int]]:
    """{word: (first frame, frame after its last)} over a chunk's sentences in order (each
    sentence's frames follow the one before it, as its audio does)."""
    spans: dict[int, tuple[int, int]] = {}
    offset = 0
    for sentence_owners, frames in zip(owners, durations):
        at = offset
        for owner, n in zip(sentence_owners, frames):
            n = int(n)
            if owner is not None and n > 0:
                start, end = spans.get(owner, (at, at + n))
                spans[owner] = (min(start, at), max(end, at + n))
            at += n
        offset += int(sum(int(n) for n in frames))
    return spans


def chunk_timings(first_word: int, frames: dict[int, tuple[int, int]], seconds_per_frame: float,
                  offset_s: float) -> dict[int, tuple[float, float]]:
    """Spoken-word spans of one chunk in seconds from the whole audio's start, by global
    spoken-word index (`first_word`: the chunk's first word's index)."""
    return {first_word + w: (offset_s + a * seconds_per_frame, offset_s + b * seconds_per_frame)
            for w, (a, b) in frames.items()}


class WordTracker:
    """Collects spoken-word spans chunk by chunk and hands out each source word once all the
    spoken words it became have been heard (in order; a word never spoken is left out)."""

    def __init__(self, words: Sequence[SourceWord]):
        self.words = list(words)
        self._spans: dict[int, tuple[float, float]] = {}
        self._next = 0

    def add(self, spans: dict[int, tuple[float, float]], done_through: int) -> list[WordTiming]:
        """Record `spans`; every spoken word below `done_through` is now known. Returns the
        source words completed by this."""
        self._spans.update(spans)
        out = []
        while self._next < len(self.words) and self.words[self._next].stop <= done_through:
            word = self.words[self._next]
            heard = [self._spans[i] for i in range(word.first, word.stop) if i in self._spans]
            if heard:
                out.append(WordTiming(word.text, min(a for a, _ in heard), max(b for _, b in heard)))
            self._next += 1
        return out


# --- subtitles -------------------------------------------------------------------------------


def cues(words: Iterable[WordTiming]) -> list[tuple[float, float, str]]:
    """Words grouped into subtitle cues: (start, end, text)."""
    out: list[tuple[float, float, str]] = []
    current: list[WordTiming] = []

    def close():
        if current:
            out.append((current[0].start, current[-1].end, " ".join(w.word for w in current)))
            current.clear()

    for word in words:
        if current:
            text = " ".join(w.word for w in current) + " " + word.word
            if (len(text) > CUE_MAX_CHARS or len(current) >= CUE_MAX_WORDS
                    or current[-1].word.endswith(_SENTENCE_END)
                    or word.start - current[-1].end > CUE_PAUSE_S):
                close()
        current.append(word)
    close()
    return out


def _clock(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def to_srt(words: Iterable[WordTiming]) -> str:
    """SubRip: numbered cues, 'HH:MM:SS,mmm --> HH:MM:SS,mmm', a blank line after each."""
    return "".join(f"{n}\n{_clock(a, ',')} --> {_clock(b, ',')}\n{text}\n\n"
                   for n, (a, b, text) in enumerate(cues(words), start=1))


def to_vtt(words: Iterable[WordTiming]) -> str:
    """WebVTT: the header, then cues 'HH:MM:SS.mmm --> HH:MM:SS.mmm'."""
    return "WEBVTT\n\n" + "".join(f"{_clock(a, '.')} --> {_clock(b, '.')}\n{text}\n\n"
                                  for a, b, text in cues(words))
