"""A request's cost bounded by what will be spoken: estimated seconds of speech per chunk and in all.

Characters are a poor measure of cost: espeak reads a symbol or a letter of another alphabet
by its name ("Chinese letter ...", "square rad over s squared"), so 600 characters were
minutes of audio and gigabytes of decoder memory in one device call. The plan asks the
engine how much each chunk will say (`Engine.spoken_units`: Piper's phonemes, other
engines' spelled-out characters) before anything waits for the device, and refuses a
chunk or a request that would be far longer than its text suggests.
"""

from __future__ import annotations

from .errors import InputError

SHOWN = 40  # characters of a refused chunk quoted back


def spoken_seconds(engine, text: str) -> float:
    """About how many seconds of speech `engine` makes of `text` at speed 1."""
    return engine.spoken_units(text) * engine.seconds_per_unit


def check_speech(engine, chunks, speed: float, settings, param: str = "text") -> float:
    """The request's estimated seconds of speech at `speed`; InputError if one chunk would
    say more than TTS_MAX_CHUNK_SPEECH_S (at speed 1) or all of them more than
    TTS_MAX_SPEECH_S."""
    total = 0.0
    for chunk in chunks:
        seconds = spoken_seconds(engine, chunk)
        if seconds > settings.max_chunk_speech_s:
            quoted = chunk[:SHOWN] + (" ..." if len(chunk) > SHOWN else "")
            raise InputError(
                f"The sentence {quoted!r} would be about {_duration(seconds)} of speech; the "
                f"limit for one sentence is {_duration(settings.max_chunk_speech_s)}. Symbols "
                "and letters of other alphabets are read out by name: remove them, or split "
                "the sentence.", param=param)
        total += seconds / speed
    if total > settings.max_speech_s:
        raise InputError(
            f"The text would be about {_duration(total)} of speech; the limit is "
            f"{_duration(settings.max_speech_s)}. Shorten it"
            f"{' or speak it faster' if speed < 1 else ''}, or split it into several requests.",
            param=param)
    return total


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} seconds"
    return f"{seconds / 60:.0f} minutes"
