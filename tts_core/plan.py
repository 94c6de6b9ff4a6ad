"""A request checked once: `make_plan` turns a SpeechRequest into an immutable Plan, or says what is wrong.

The plan is everything the pipeline needs to run the request and nothing that changes
while it runs (those counters are `record.RecordClock`'s): the request as asked, the
engine, its checked parameters, the text's chunks, the word plan for timings and the
loudness target. `batch_key` is the one place a plan's device batch is decided.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from . import audio as audio_io
from . import cost, loudness
from . import ssml
from . import text as textproc
from .config import Settings
from .engines import Engine, SynthesisParams
from .errors import InputError, UnknownVoiceError
from .registry import Registry, listed_voices
from .request import (MAX_LUFS, MAX_SEED, MAX_SPEED, MAX_TEMPERATURE, MAX_TRUE_PEAK_DB, MIN_LUFS,
                      MIN_SPEED, MIN_TEMPERATURE, MIN_TRUE_PEAK_DB, SpeechRequest)
from .timings import SourceWord, source_words
from .voices import read_xvector

FOREIGN_SHOWN = 12  # letters of another alphabet quoted back in the error
VOICES_SHOWN = 20  # voices listed in the unknown-voice error


@dataclass(frozen=True)
class Plan:
    """A checked request, ready to run; it does not change while the request runs."""

    request: SpeechRequest  # as the caller asked
    engine: Engine
    params: SynthesisParams  # voice, speed, seed, temperature, embedding: checked
    chunks: tuple[str, ...]  # the spoken text in whole sentences, each at most a chunk long
    started: float  # perf_counter when the request was made
    text_s: float  # spent checking, cleaning and chunking the text
    windowed: bool  # decode inside sentences (streams from two-stage engines)
    loudness: loudness.LoudnessTarget | None  # None: the voice's own level
    # Word timings (timings=True): the typed words, and where each chunk's words start
    # among the spoken words (one more entry: the end).
    words: tuple[SourceWord, ...] | None = None
    chunk_words: tuple[int, ...] | None = None
    background: bool = False  # a long job's: the gate's lowest priority, no admission place
    # Speech markup (tts_core/ssml.py): each chunk's speed, the silence in samples before each
    # chunk (one more entry: after the last), and what the markup asked that the model cannot do.
    speeds: tuple[float, ...] | None = None
    silences: tuple[int, ...] | None = None
    note: str = ""

    def params_at(self, index: int) -> SynthesisParams:
        """The parameters chunk `index` is spoken with (its own speed, under SSML prosody)."""
        return self.params if self.speeds is None else replace(self.params, speed=self.speeds[index])

    def silence_before(self, index: int) -> int:
        """Samples of silence before chunk `index` (`len(chunks)`: after the last)."""
        return self.silences[index] if self.silences is not None else 0

    @property
    def format(self) -> str:
        return self.request.format

    @property
    def chars(self) -> int:
        return len(self.request.text)

    @property
    def batch_key(self) -> tuple | None:
        """The first chunk's `batch_key_at`."""
        return self.batch_key_at(0)

    def batch_key_at(self, index: int) -> tuple | None:
        """What a turn's items must share to be batched into one device call; None: alone.

        Requests for the same engine with the same parameters (voice, speed, temperature,
        and any parameter added later) can share a device turn; seeded ones (and ones with
        their own speaker) run alone, so that a seed gives the same audio every time.
        """
        engine, params = self.engine, self.params_at(index)
        if not engine.supports_batching or params.seed is not None \
                or params.speaker_embedding is not None:
            return None
        return (id(engine), params)  # SynthesisParams is frozen: compared and hashed by value


def make_plan(request: SpeechRequest, registry: Registry, settings: Settings,
              streamed: bool = False, continuous: bool = False) -> Plan:
    """Check every field of `request` against the model it names; raise InputError (with the
    field as `param`) for the first that is wrong. `streamed`: the audio leaves piece by piece;
    `continuous`: as one stream of bytes, which only some formats can be."""
    started = time.perf_counter()
    text, fmt = request.text, request.format
    engine = registry.get(request.model)
    params = SynthesisParams(voice=_voice(engine, request.voice), speed=_speed(engine, request.speed),
                             seed=_seed(request.seed),
                             temperature=_temperature(engine, request.temperature),
                             speaker_embedding=_embedding(engine, request.speaker_embedding))
    if fmt not in audio_io.ALL_FORMATS:
        raise InputError(f"Unknown audio format {fmt!r}; choose one of "
                         f"{', '.join(audio_io.ALL_FORMATS)}.", param="format")
    if fmt == "aac" and not audio_io.aac_available():
        raise InputError("aac needs ffmpeg, which is not installed on this server; "
                         "ask for mp3, opus, flac, wav or pcm.", param="format")
    if not isinstance(text, str):
        raise InputError("The text must be a string.", param="text")
    limit = settings.max_chars
    if len(text) > limit:
        raise InputError(f"The text is {len(text)} characters long; the limit is {limit}. "
                         "Shorten it or split it into several requests.", param="text")
    if ssml.is_ssml(text):  # speech markup: read by tts_core/ssml.py, then the same plan
        return _markup_plan(request, engine, params, settings, started, streamed, continuous)
    cleaned = textproc.clean(text)
    if not cleaned:
        raise InputError("The text is empty. Type something to speak.", param="text")
    if not textproc.has_speakable(cleaned):
        raise InputError("The text has nothing to speak: no letters or digits are left "
                         "after removing symbols and control characters.", param="text")
    cleaned = textproc.read_symbols(cleaned)  # emoji dropped, "㎜" as "mm": see text.py
    foreign = textproc.foreign_letters(cleaned, engine.language)
    if foreign and not textproc.has_speakable(cleaned.translate(dict.fromkeys(map(ord, foreign)))):
        raise InputError(f"Model {engine.name!r} cannot pronounce any of this text: it speaks "
                         f"{engine.language!r}, and none of the text is in that alphabet "
                         f"(letters {textproc.letters_shown(foreign, FOREIGN_SHOWN)}). "
                         "Choose a model for the text's language.", param="text")
    if request.timings and not engine.supports_timings:
        raise InputError(f"Model {engine.name!r} ({engine.family}) gives no phoneme durations, "
                         "so it has no word timings; ask a Piper or VITS model for them.",
                         param="model")
    typed = cleaned
    if engine.language == "en":
        # MMS-TTS has no digits in its alphabet, and espeak reads "$20" as "dollar twenty".
        cleaned = textproc.expand(cleaned)
        if len(cleaned) > limit:  # "7" * 3000 would otherwise be twenty minutes of "seven"
            raise InputError(f"Spelled out (numbers as words), the text is {len(cleaned)} "
                             f"characters long; the limit is {limit}. Shorten it.",
                             param="text")
    longest = min(settings.chunk_chars, engine.max_chunk_chars or settings.chunk_chars)
    chunks = engine.chunk_texts(textproc.chunk(cleaned, longest))
    cost.check_speech(engine, chunks, params.speed, settings, param="text")  # before any turn
    words = chunk_words = None
    if request.timings:
        words, chunk_words = _word_plan(typed, cleaned, chunks, engine.language == "en")
    text_s = time.perf_counter() - started
    target = _loudness(settings, request.loudness, request.true_peak)
    if continuous and fmt not in audio_io.STREAMABLE:
        raise InputError(f"{fmt} cannot be streamed; stream one of "
                         f"{', '.join(sorted(audio_io.STREAMABLE))}, or ask for the whole file.",
                         param="format")
    return Plan(request, engine, params, tuple(chunks), started, text_s,
                windowed=streamed and engine.supports_windows, loudness=target,
                words=None if words is None else tuple(words),
                chunk_words=None if chunk_words is None else tuple(chunk_words))


def _markup_plan(request: SpeechRequest, engine: Engine, params: SynthesisParams,
                 settings: Settings, started: float, streamed: bool, continuous: bool) -> Plan:
    """`make_plan` for an SSML request: its chunks, speeds and silences from `ssml.read`."""
    if request.timings and not engine.supports_timings:
        raise InputError(f"Model {engine.name!r} ({engine.family}) gives no phoneme durations, "
                         "so it has no word timings; ask a Piper or VITS model for them.",
                         param="model")
    longest = min(settings.chunk_chars, engine.max_chunk_chars or settings.chunk_chars)
    spoken = ssml.read(request.text, engine, params.speed, (MIN_SPEED, MAX_SPEED), longest,
                       settings.max_chars, param="text")
    # The slowest rate the markup asks for bounds the whole: a conservative estimate.
    cost.check_speech(engine, spoken.chunks, min(spoken.speeds, default=params.speed), settings,
                      param="text")
    words = chunk_words = None
    if request.timings:
        words, chunk_words = _word_plan(spoken.typed, " ".join(spoken.chunks),
                                        list(spoken.chunks), True, spoken.spell)
    text_s = time.perf_counter() - started
    target = _loudness(settings, request.loudness, request.true_peak)
    if continuous and request.format not in audio_io.STREAMABLE:
        raise InputError(f"{request.format} cannot be streamed; stream one of "
                         f"{', '.join(sorted(audio_io.STREAMABLE))}, or ask for the whole file.",
                         param="format")
    return Plan(request, engine, params, tuple(engine.chunk_texts(list(spoken.chunks))),
                started, text_s,
                windowed=streamed and engine.supports_windows, loudness=target,
                words=None if words is None else tuple(words),
                chunk_words=None if chunk_words is None else tuple(chunk_words),
                speeds=spoken.speeds, silences=spoken.silences, note=spoken.note)


def model_label(request: SpeechRequest, registry: Registry) -> str:
    """The model a request is counted under before it is checked: a loaded model's name,
    the default's for none, "unknown" for anything else (metric labels stay bounded)."""
    model = request.model
    if isinstance(model, str) and model in registry.engines:
        return model
    return registry.default.name if not model else "unknown"


def _voice(engine: Engine, voice) -> str:
    if voice is None or voice == "":
        return engine.default_voice
    if not isinstance(voice, str) or voice not in engine.voices:
        voices = listed_voices(engine)  # never another caller's one-off voice
        shown = ", ".join(voices[:VOICES_SHOWN]) + (" ..." if len(voices) > VOICES_SHOWN else "")
        raise UnknownVoiceError(f"Unknown voice {voice!r} for model {engine.name!r}. "
                                f"Its voices: {shown}.", param="voice")
    return voice


def _speed(engine: Engine, speed) -> float:
    if isinstance(speed, bool) or not isinstance(speed, (int, float)):
        raise InputError(f"Speed must be a number between {MIN_SPEED} and {MAX_SPEED}, "
                         f"not {speed!r}.", param="speed")
    if not math.isfinite(speed) or not MIN_SPEED <= speed <= MAX_SPEED:
        raise InputError(f"Speed must be between {MIN_SPEED} and {MAX_SPEED}; got {speed}.",
                         param="speed")
    if speed != 1.0 and not engine.supports_speed:
        raise InputError(f"Model {engine.name!r} ({engine.family}) has no speed control; "
                         "leave the speed at 1.0.", param="speed")
    return float(speed)


def _temperature(engine: Engine, temperature) -> float | None:
    if temperature is None:
        return None
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE):
        raise InputError(f"Temperature must be a number between {MIN_TEMPERATURE} and "
                         f"{MAX_TEMPERATURE}, not {temperature!r}.", param="temperature")
    # Models without sampling take no temperature: the UI sends its slider's value regardless.
    return float(temperature) if engine.supports_temperature else None


def _embedding(engine: Engine, embedding):
    if embedding is None:
        return None
    if engine.embedding_dim is None:
        raise InputError(f"Model {engine.name!r} ({engine.family}) takes no speaker embedding; "
                         "only SpeechT5 models do.", param="speaker_embedding")
    return read_xvector(embedding, engine.embedding_dim)


def _seed(seed) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, float)) or (
            isinstance(seed, float) and not (math.isfinite(seed) and seed.is_integer())):
        raise InputError(f"Seed must be a whole number, not {seed!r}.", param="seed")
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f"Seed must be between 0 and {MAX_SEED}; got {int(seed)}.", param="seed")
    return int(seed)


def _loudness(settings: Settings, lufs, true_peak) -> loudness.LoudnessTarget | None:
    """A request's loudness target: its own, else the TTS_LOUDNESS setting; False: off."""
    if lufs is False:
        return None
    lufs = settings.loudness_lufs if lufs is None else lufs
    if lufs is None:
        return None
    peak = settings.true_peak_db if true_peak is None else true_peak
    return loudness.LoudnessTarget(
        _bounded(lufs, MIN_LUFS, MAX_LUFS, "Loudness", "LUFS", "loudness"),
        _bounded(peak, MIN_TRUE_PEAK_DB, MAX_TRUE_PEAK_DB,
                 "The true-peak ceiling", "dBTP", "true_peak"))


def _bounded(value, low: float, high: float, what: str, unit: str, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and low <= value <= high):
        raise InputError(f"{what} must be a number from {low:g} to {high:g} {unit} "
                         f"(for example -16 for loudness), not {value!r}.", param=param)
    return float(value)


def _word_plan(typed: str, spoken: str, chunks: list[str], expanded: bool,
               spell=None) -> tuple[list[SourceWord], list[int]]:
    """The typed words with the spoken words each became, and where each chunk's words start
    among the spoken words (one more entry: the end). Chunks are the spoken text's words in
    order; where a word longer than a chunk was cut, the chunks' own words are shown."""
    bounds = [0]
    for chunk in chunks:
        bounds.append(bounds[-1] + len(chunk.split(" ")))
    spoken_words = [w for chunk in chunks for w in chunk.split(" ")]
    if spoken_words != spoken.split(" "):
        return source_words(" ".join(spoken_words), " ".join(spoken_words)), bounds
    return source_words(typed, spoken, spell or (textproc.expand if expanded else None)), bounds
