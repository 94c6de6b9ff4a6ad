"""The page's synthesis events, which are also the public Gradio API and MCP tools
(/synthesize, /captioned, /models) and Stream's Gradio player, over a StudioContext.

Their names, parameters (names and order: gradio_client callers pass them by position) and
docstrings (the MCP tools' descriptions) are the API; `ui.studio` binds the context.
"""

import gradio as gr
import numpy as np

from tts_core import InputError, SpeechRequest, TTSError
from tts_core import audio as audio_io
from tts_core.loudness import integrated_lufs
from tts_core.text import foreign_letters, letters_shown
from tts_core.timings import to_srt
from ui.context import StudioContext
from ui.named_audio import NamedAudio

RANDOM_SEED = -1  # the seed box's "no seed": a fresh random voice every time
LOUDNESS_OFF = "off"  # the loudness control's "the voice's own level" (ui.pickers offers it)


def gr_error(e: TTSError) -> gr.Error:
    """The pipeline's error as the page shows it; a person's own mistake is not a server fault,
    so it stays out of the error log."""
    return gr.Error(str(e), print_exception=not isinstance(e, InputError))


def speech_request(text, model, voice, speed, seed, temperature, xvector,
                   timings=False, loudness=None) -> SpeechRequest:
    """The form's values as a request: an empty model or voice is the default, seed -1 none."""
    return SpeechRequest(text=text, model=model or None, voice=voice or None, speed=speed,
                         seed=None if seed is None or seed == RANDOM_SEED else seed,
                         temperature=temperature, speaker_embedding=xvector or None,
                         timings=timings, loudness=loudness_value(loudness))


def loudness_value(value):
    """The loudness control's value as the request takes it: "off" is False (the voice's own
    level), empty is None (the server's TTS_LOUDNESS), a number (or its text) a target in LUFS;
    anything else goes on as it is, for the pipeline to refuse in its own words."""
    if value is None or value == "":
        return None
    if value is False or str(value).strip().lower() == LOUDNESS_OFF:
        return False
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def with_loudness(ctx: StudioContext, record: dict | None, loudness, audio, rate: int):
    """The latency record as the page shows it, with the loudness asked for and the integrated
    loudness (BS.1770) of the audio served: `loudness_target_lufs` (None: off) and
    `loudness_lufs` (None: too quiet to measure)."""
    if record is None:
        return None
    value = loudness_value(loudness)
    target = None if value is False else ctx.settings.loudness_lufs if value is None else value
    measured = integrated_lufs(np.asarray(audio, dtype=np.float32), rate) if len(audio) else None
    return {**record, "loudness_target_lufs": target,
            "loudness_lufs": round(measured, 2) if measured is not None and np.isfinite(measured)
            else None}


def spoken_text(text: str, model_name: str, words) -> dict:
    """What the spoken-text panel shows: the text, the model, the words as timed (or None)."""
    return {"text": text, "model": model_name,
            "words": None if words is None else [w.to_dict() for w in words]}


def gives_timings(ctx: StudioContext, model) -> bool:
    """Whether the page can light up this model's words (it gives phoneme durations)."""
    try:
        return ctx.pipeline.registry.card(model or None).capabilities.timings
    except TTSError:
        return False  # the pipeline's own error says it better


def warn_foreign(ctx: StudioContext, text, model) -> None:
    """Letters the model's alphabet lacks are spelled out as symbol names or dropped: say so."""
    try:
        card = ctx.pipeline.registry.card(model or None)
    except TTSError:
        return  # the pipeline's own error says it better
    foreign = foreign_letters(text or "", card.language)
    if foreign:
        gr.Warning(f"{card.name} speaks {card.spoken_language}; it cannot pronounce these "
                   f"letters, so they were not spoken as words: {letters_shown(foreign, 40)}")


def _route(call: gr.Request | None) -> str:
    """Gradio's MCP server calls the events through its own client, which says so."""
    return "mcp" if call is not None and call.headers.get("x-gradio-user") == "mcp" else "gradio"


def _chunk_progress(progress):
    def on_chunk(done, total):
        progress((done, total), desc=f"chunk {done} of {total}", unit="chunks")
    return on_chunk


def synthesize(ctx: StudioContext, text, model, voice, speed, seed, temperature=None,
               xvector=None, loudness=None, progress=gr.Progress(), call: gr.Request = None):
    """Speak a text aloud with one of the warm-loaded voices and return the audio file.

    Call the `models` tool first to see the model names, their voices and languages.

    Args:
        text: What to say, in the model's language: plain text, up to the server's limit (5,000 characters by default); long texts are spoken sentence by sentence and joined.
        model: A model name from the `models` tool, e.g. 'en_US-joe-medium'. Empty: the default model.
        voice: One of that model's voices (see `models`). Empty: the model's default voice.
        speed: Speaking rate, 0.25 to 4.0; 1.0 is normal. Models without speed control ignore it.
        seed: -1 for a fresh random rendering; a number >= 0 repeats the same rendering.
        temperature: Sampling temperature 0.05 to 2.0, only for sampling models such as Bark; leave it out otherwise.
        xvector: Only for SpeechT5: a URL of a .npy speaker embedding; leave it out otherwise.
        loudness: 'off' for the voice's own level, or a loudness target in LUFS from -40 to -9: '-23' (broadcast), '-16' (podcast), '-14' (streaming services). Left out: the server's default.

    Returns:
        The WAV file as Gradio file data, whose 'url' is where to download it, and the request's latency record (milliseconds queued, in inference and in total, and the seconds of audio made; its loudness target and the integrated loudness measured, in LUFS).
    """
    # The page (x-gradio-user "app"; gradio_client sends "api", MCP "mcp") lights the words
    # up as they play: it asks for their timings.
    page = call is not None and call.headers.get("x-gradio-user") == "app"
    timings = page and gives_timings(ctx, model)
    try:
        result = ctx.pipeline.synthesize(
            speech_request(text, model, voice, speed, seed, temperature, xvector, timings,
                           loudness),
            route=_route(call), on_chunk=_chunk_progress(progress), client=client_of(call))
    except TTSError as e:
        raise gr_error(e) from e
    warn_foreign(ctx, text, model)
    if page:
        ctx.pending_spoken.hold(call, spoken_text(text, result.record.model, result.words))
    audio = NamedAudio(f"{ctx.files.new_name()}.{result.format}", result.data)
    return audio, with_loudness(ctx, result.record.to_dict(), loudness, result.audio,
                                result.sample_rate)


def captioned(ctx: StudioContext, text, model, voice, speed, seed, temperature=None,
              xvector=None, loudness=None, progress=gr.Progress(), call: gr.Request = None):
    """Speak a text aloud and return the audio with each word's start and end time and SRT subtitles.

    Word timings come from the model's own phoneme durations (Piper and VITS models); other models refuse with a message. Call `models` first for the names.

    Args:
        text: What to say, as for `synthesize`; numbers, money and times come back as the words you typed ("$20" is one word).
        model: A model name from the `models` tool. Empty: the default model.
        voice: One of that model's voices. Empty: the model's default voice.
        speed: Speaking rate, 0.25 to 4.0; the timings follow it.
        seed: -1 for a fresh random rendering; a number >= 0 repeats the same rendering.
        temperature: Not used by models with timings; leave it out.
        xvector: Not used by models with timings; leave it out.
        loudness: 'off', or a loudness target in LUFS as for `synthesize`. Left out: the server's default.

    Returns:
        The WAV file, the words as a list of {word, start, end} in seconds from the start of the audio, and an .srt subtitle file.
    """
    try:
        result = ctx.pipeline.synthesize(
            speech_request(text, model, voice, speed, seed, temperature, xvector, timings=True,
                           loudness=loudness),
            route=_route(call), on_chunk=_chunk_progress(progress), client=client_of(call))
    except TTSError as e:
        raise gr_error(e) from e
    name = ctx.files.new_name()  # the audio and its subtitles: one name
    return (NamedAudio(f"{name}.{result.format}", result.data),
            [w.to_dict() for w in result.words], ctx.files.write(name, "srt", to_srt(result.words)))


def client_of(call: gr.Request | None) -> str | None:
    """The caller's address, which the gate bounds places by (TTS_MAX_PER_CLIENT)."""
    return call.client.host if call is not None and call.client is not None else None


def models(ctx: StudioContext) -> list[dict]:
    """List the warm-loaded text-to-speech models: call this before `synthesize`.

    Returns:
        One entry per model: its name (the `model` argument of `synthesize`), language, voices (the `voice` argument) and default voice, sample rate, and whether it takes speed, seed and temperature.
    """
    return ctx.pipeline.models()


def stream(ctx: StudioContext, page, text, model, voice, speed, seed, temperature=None,
           xvector=None, loudness=None):
    """Gradio's own streaming player (HLS): where the page's Web Audio player cannot be used.
    (`page`: the ui.layout.Page whose stream_audio, audio, latency and spoken_state it sets.)"""
    pieces, words = [], ([] if gives_timings(ctx, model) else None)
    try:
        synthesis = ctx.pipeline.stream(
            speech_request(text, model, voice, speed, seed, temperature, xvector,
                           timings=words is not None, loudness=loudness), route="gradio")
        yield {page.audio: None}  # one current result: the last file goes
        try:
            for chunk in synthesis:
                pieces.append(chunk.audio)
                if words is not None:
                    words.extend(chunk.words)
                yield {page.stream_audio: chunk.data}
        finally:
            synthesis.close()
    except TTSError as e:
        raise gr_error(e) from e
    warn_foreign(ctx, text, model)
    # The whole file as well: its player shows the true length (the streamed one grows);
    # it does not start playing over the stream.
    joined = np.concatenate(pieces)
    whole = audio_io.encode(joined, synthesis.sample_rate, "wav")
    yield {page.audio: gr.update(value=NamedAudio(f"{ctx.files.new_name()}.wav", whole),
                                 autoplay=False),
           page.latency: with_loudness(ctx, synthesis.record.to_dict(), loudness, joined,
                                       synthesis.sample_rate),
           page.spoken_state: spoken_text(text, synthesis.engine.name, words)}


def stream_fallback(ctx: StudioContext, page, text, model, voice, speed, seed, temperature=None,
                    xvector=None, loudness=None, progress=gr.Progress(),
                    call: gr.Request = None):
    """Stream without ffmpeg: the whole file, as Generate makes it, with a word why."""
    gr.Warning("Streaming needs ffmpeg, which is not installed here; "
               "playing the whole file instead.")
    data, record = synthesize(ctx, text, model, voice, speed, seed, temperature, xvector,
                              loudness, progress, call)
    return {page.audio: data, page.latency: record,
            page.spoken_state: ctx.pending_spoken.collect(call)}
