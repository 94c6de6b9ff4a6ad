"""TTS Studio: the Gradio UI and API wiring; every synthesis goes through tts_core's pipeline and gate.

Importing this module warm-loads every model in TTS_MODELS (each run once), then builds
the UI, so the first request is as fast as the hundredth. `python app.py` opens the port
first, so /health and /ready answer (ready: 503) while the models warm, then serves the
UI at / and the HTTP API (/v1/audio/speech, /v1/models, /ready, /metrics ...) beside it.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path

import gradio as gr
from fastapi import FastAPI

from tts_core import ConfigError, InputError, ModelLoadError, Pipeline, Settings, TTSError, selfcheck
from tts_core.config import MAX_SPEED, MAX_TEMPERATURE, MIN_SPEED, MIN_TEMPERATURE
from tts_core.ffmpeg import ensure_ffmpeg
from tts_core.http_api import create_http_api
from tts_core.server import Readiness, StudioServer
from tts_core.timings import to_srt

logger = logging.getLogger("tts_studio")

LIVE_REFRESH_S = 2.0  # how often the live latency panel polls the rolling stats
RANDOM_SEED = -1  # the seed box's "no seed": a fresh random voice every time
EXAMPLES = Path(__file__).parent / "assets" / "examples"  # <language>.txt, one text a line
ALL_LANGUAGES = ""  # the language filter's "show every model"


def load_examples(language: str | None) -> list[list[str]]:
    """Example texts for a language (ISO 639-1 'de', else the model's own tag), English if none."""
    path = EXAMPLES / f"{language}.txt"
    if not path.is_file():
        path = EXAMPLES / "en.txt"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return [[line.strip()] for line in lines if line.strip()]


def _language(engine) -> str:
    return engine.describe()["language_name"] or "language not stated"


def _model_choices(pipeline: Pipeline, language: str = ALL_LANGUAGES) -> list[tuple[str, str]]:
    """(label, name) for the model picker: 'mms-tts-deu: German, vits', filtered by language."""
    return [(f"{name}: {_language(e)}, {e.family}", name)
            for name, e in pipeline.registry.engines.items()
            if language == ALL_LANGUAGES or _language(e) == language]


def _model_note(pipeline: Pipeline, model: str | None) -> str:
    engine = pipeline.registry.get(model)
    d = engine.describe()
    info = next(i for i in pipeline.registry.load_info if i.model == engine.name)
    voices = len(engine.voices)
    line = (f"**{engine.name}**: {engine.family}, {_language(engine)}, {engine.sample_rate} Hz, "
            f"{voices} voice{'s' if voices != 1 else ''}, {d['dtype']} on {engine.device}, "
            f"{d['memory_mb']} MB; warm-up ran at RTF {info.warmup_rtf:.2f}.")
    return f"{line}\n\n{engine.note}" if engine.note else line


def _fail(message: str) -> None:
    """Stop startup with one line that says what to fix (never serve half-loaded)."""
    print(f"TTS Studio cannot start: {message}", file=sys.stderr)
    raise SystemExit(1)


def _voice_choices(pipeline: Pipeline, model: str | None) -> list[tuple[str, str]]:
    engine = pipeline.registry.get(model)
    return [(f"default ({engine.default_voice})", "")] + [(v, v) for v in engine.voices]


def _live_markdown(pipeline: Pipeline) -> str:
    s = pipeline.snapshot()

    def ms(v):
        return "–" if v is None else f"{v:.0f} ms"

    rtf = "–" if s["mean_rtf"] is None else f"{s['mean_rtf']:.3f}"
    lines = [
        f"**Last {s['count']} requests** (served {s['served']}, failed {s['failed']}, "
        f"in the gate now: {s['queue_depth']}; device slots in use: {s['slots_in_use']} of "
        f"{s['slots']})",
        "",
        "| total p50 | total p95 | first audio p50 | first audio p95 | mean RTF |",
        "|---|---|---|---|---|",
        f"| {ms(s['p50_total_ms'])} | {ms(s['p95_total_ms'])} | {ms(s['p50_first_audio_ms'])} "
        f"| {ms(s['p95_first_audio_ms'])} | {rtf} |",
        "",
        "**Warm-loaded models**",
        "",
        "| model | family | device | dtype | memory | sample rate | load | warm-up | warm-up RTF |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {i.model} | {i.family} | {i.device} | {i.dtype} | {i.memory_mb:.1f} MB "
              f"| {i.sample_rate} Hz | {i.load_s:.2f} s | {i.warmup_s:.2f} s | {i.warmup_rtf:.2f} |"
              for i in pipeline.registry.load_info]
    return "\n".join(lines)


def _seed(seed):
    """The UI's seed box holds RANDOM_SEED for "no seed"; the pipeline's word for that is None."""
    return None if seed is None or seed == RANDOM_SEED else seed


class SubtitleFiles:
    """.srt files for Gradio to serve (it copies them into its cache); each is deleted after
    TTS_CACHE_TTL, as Gradio deletes its copies."""

    def __init__(self, ttl_s: int):
        self.folder = Path(tempfile.mkdtemp(prefix="tts-subtitles-"))
        self.ttl_s = ttl_s

    def write(self, text: str) -> str:
        now = time.time()
        for old in self.folder.glob("*.srt"):
            if now - old.stat().st_mtime > self.ttl_s:
                old.unlink(missing_ok=True)
        path = self.folder / f"captions-{uuid.uuid4().hex[:12]}.srt"
        path.write_text(text, encoding="utf-8")
        return str(path)


def _gr_error(e: TTSError) -> gr.Error:
    # A person's own mistake is not a server fault: keep it out of the error log.
    return gr.Error(str(e), print_exception=not isinstance(e, InputError))


def build_demo(pipeline: Pipeline, streaming: bool) -> gr.Blocks:
    """The UI over a warm pipeline; `streaming` is False when no ffmpeg could be found."""
    settings = pipeline.settings
    default = pipeline.registry.default
    # Enough Gradio workers that waiting happens at the gate, where it is measured and
    # bounded; one more than the gate admits, so the overflow gets the gate's busy message.
    gpu = {"concurrency_id": "gpu", "concurrency_limit": settings.queue_size + 1}
    subtitles = SubtitleFiles(settings.cache_ttl_s)

    def request(text, model, voice, speed, seed, temperature, xvector, route="gradio") -> dict:
        return dict(text=text, model=model or None, voice=voice or None, speed=speed,
                    seed=_seed(seed), temperature=temperature, speaker_embedding=xvector or None,
                    route=route)

    def synthesize(text, model, voice, speed, seed, temperature=None, xvector=None,
                   progress=gr.Progress(), call: gr.Request = None):
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

        Returns:
            The WAV file as Gradio file data, whose 'url' is where to download it, and the request's latency record (milliseconds queued, in inference and in total, and the seconds of audio made).
        """
        def on_chunk(done, total):
            progress((done, total), desc=f"chunk {done} of {total}", unit="chunks")

        # Gradio's MCP server calls this event through its own client, which says so.
        route = "mcp" if call is not None and call.headers.get("x-gradio-user") == "mcp" else "gradio"
        try:
            result = pipeline.synthesize(**request(text, model, voice, speed, seed, temperature,
                                                   xvector, route), on_chunk=on_chunk)
        except TTSError as e:
            raise _gr_error(e) from e
        return result.data, result.record.to_dict()

    def captioned(text, model, voice, speed, seed, temperature=None, xvector=None,
                  progress=gr.Progress(), call: gr.Request = None):
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

        Returns:
            The WAV file, the words as a list of {word, start, end} in seconds from the start of the audio, and an .srt subtitle file.
        """
        def on_chunk(done, total):
            progress((done, total), desc=f"chunk {done} of {total}", unit="chunks")

        route = "mcp" if call is not None and call.headers.get("x-gradio-user") == "mcp" else "gradio"
        try:
            result = pipeline.synthesize(**request(text, model, voice, speed, seed, temperature,
                                                   xvector, route), on_chunk=on_chunk, timings=True)
        except TTSError as e:
            raise _gr_error(e) from e
        return result.data, [w.to_dict() for w in result.words], subtitles.write(to_srt(result.words))

    def stream(text, model, voice, speed, seed, temperature=None, xvector=None):
        try:
            synthesis = pipeline.stream(**request(text, model, voice, speed, seed, temperature,
                                                  xvector))
            try:
                for chunk in synthesis:
                    yield chunk.data, gr.skip()
            finally:
                synthesis.close()
        except TTSError as e:
            raise _gr_error(e) from e
        yield gr.skip(), synthesis.record.to_dict()

    def stream_fallback(text, model, voice, speed, seed, temperature=None, xvector=None,
                        progress=gr.Progress()):
        gr.Warning("Streaming needs ffmpeg, which is not installed here; "
                   "playing the whole file instead.")
        return synthesize(text, model, voice, speed, seed, temperature, xvector, progress)

    def models() -> list[dict]:
        """List the warm-loaded text-to-speech models: call this before `synthesize`.

        Returns:
            One entry per model: its name (the `model` argument of `synthesize`), language, voices (the `voice` argument) and default voice, sample rate, and whether it takes speed, seed and temperature.
        """
        return pipeline.models()

    def model_changed(model: str):
        """The voice list, the controls the model uses, its note and its language's examples."""
        try:
            engine = pipeline.registry.get(model)
        except TTSError as e:
            raise _gr_error(e) from e
        return (gr.update(choices=_voice_choices(pipeline, model), value=""),
                gr.update(value=1.0, interactive=engine.supports_speed,
                          info=None if engine.supports_speed else "this model has no speed control"),
                gr.update(visible=engine.supports_temperature),
                gr.update(visible=engine.embedding_dim is not None, value=None),
                _model_note(pipeline, model),
                gr.update(samples=load_examples(engine.language or engine.language_tag)))

    def language_changed(language: str):
        choices = _model_choices(pipeline, language or ALL_LANGUAGES)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    # Gradio keeps each returned audio file in its cache; delete them after TTS_CACHE_TTL.
    ttl = settings.cache_ttl_s
    with gr.Blocks(title="TTS Studio", delete_cache=(max(1, ttl // 4), ttl)) as demo:
        gr.Markdown("# TTS Studio\nWarm-loaded text to speech: every model below was loaded "
                    "and run once before this page was served.")
        with gr.Row():
            with gr.Column(scale=3):
                text = gr.Textbox(label="Text", lines=6, elem_id="text",
                                  placeholder="Type or paste what should be spoken.")
                count = gr.Markdown(f"0 / {settings.max_chars} characters", elem_id="char-count")
                languages = sorted({_language(e) for e in pipeline.registry.engines.values()})
                with gr.Row():
                    language = gr.Dropdown([("All languages", ALL_LANGUAGES)] + languages,
                                           value=ALL_LANGUAGES, label="Language",
                                           elem_id="language")
                    model = gr.Dropdown(_model_choices(pipeline), value=default.name,
                                        label="Model", elem_id="model", allow_custom_value=True)
                    voice = gr.Dropdown(_voice_choices(pipeline, None), value="", label="Voice",
                                        elem_id="voice", allow_custom_value=True)
                note = gr.Markdown(_model_note(pipeline, None), elem_id="model-note")
                with gr.Row():
                    speed = gr.Slider(MIN_SPEED, MAX_SPEED, value=1.0, step=0.05, label="Speed",
                                      elem_id="speed", interactive=default.supports_speed)
                    seed = gr.Number(RANDOM_SEED, label=f"Seed ({RANDOM_SEED}: random)",
                                     minimum=RANDOM_SEED, precision=0, elem_id="seed")
                    temperature = gr.Slider(MIN_TEMPERATURE, MAX_TEMPERATURE, value=0.7, step=0.05,
                                            label="Temperature (sampling models such as Bark)",
                                            elem_id="temperature",
                                            visible=default.supports_temperature)
                xvector = gr.File(label="Your own speaker embedding (.npy x-vector, SpeechT5)",
                                  file_types=[".npy"], type="filepath", elem_id="xvector",
                                  visible=default.embedding_dim is not None)
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                    stream_btn = gr.Button("Stream" if streaming else "Stream (needs ffmpeg)",
                                           elem_id="stream")
                examples = gr.Dataset(components=[text], label="Examples", elem_id="examples",
                                      samples=load_examples(default.language or default.language_tag))
            with gr.Column(scale=2):
                audio = gr.Audio(label="Audio", interactive=False, elem_id="audio")
                stream_audio = gr.Audio(label="Streamed audio", interactive=False, autoplay=True,
                                        streaming=streaming, elem_id="stream-audio")
                latency = gr.JSON(label="This request's latency", elem_id="latency")
                with gr.Accordion("Captions (word timings, Piper and VITS models)", open=False):
                    captions_btn = gr.Button("Generate with captions", elem_id="captions")
                    words = gr.JSON(label="Words (seconds)", elem_id="words")
                    srt_file = gr.File(label="Subtitles (.srt)", elem_id="srt")
        live = gr.Markdown(_live_markdown(pipeline), elem_id="live-stats")

        def pickers():  # models added or removed while serving: each page load sees the warm ones
            names = sorted({_language(e) for e in pipeline.registry.engines.values()})
            return (gr.update(choices=[("All languages", ALL_LANGUAGES)] + names),
                    gr.update(choices=_model_choices(pipeline)))

        demo.load(pickers, None, [language, model], api_visibility="private", queue=False)
        if settings.ui_auth:  # the operator panel only behind the login
            from operator_panel import build_operator_panel

            build_operator_panel(pipeline, [language, model], pickers)

        inputs = [text, model, voice, speed, seed, temperature, xvector]
        generate_btn.click(synthesize, inputs, [audio, latency], api_name="synthesize", **gpu)
        if streaming:
            stream_btn.click(stream, inputs, [stream_audio, latency], api_visibility="private",
                             **gpu)
        else:
            stream_btn.click(stream_fallback, inputs, [audio, latency], api_visibility="private",
                             **gpu)
        gr.api(models, api_name="models")
        captions_btn.click(captioned, inputs, [audio, words, srt_file], api_name="captioned", **gpu)
        text.change(None, text, count,
                    js=f"(t) => `${{[...(t || '')].length}} / {settings.max_chars} characters`")
        model.change(model_changed, model, [voice, speed, temperature, xvector, note, examples],
                     api_visibility="private", queue=False)
        language.change(language_changed, language, model, api_visibility="private", queue=False)
        examples.click(lambda sample: sample[0], examples, text, api_visibility="private",
                       queue=False)
        gr.Timer(LIVE_REFRESH_S).tick(lambda: _live_markdown(pipeline), None, live,
                                      api_visibility="private", queue=False)

    demo.queue(max_size=settings.queue_size, api_open=False)
    return demo


def build_server(pipeline: Pipeline, demo: gr.Blocks, readiness: Readiness) -> FastAPI:
    """The HTTP API routes first, then the UI mounted at / on the same app: one process, one gate."""
    settings = pipeline.settings
    api = create_http_api(pipeline, readiness)
    auth = None
    if settings.ui_auth:  # any user name, the API key as password
        def auth(user: str, password: str) -> bool:
            return hmac.compare_digest(password.encode(), settings.api_key.encode())
    app = gr.mount_gradio_app(api, demo, path="/", auth=auth, mcp_server=True,
                              auth_message="Sign in with any name and the studio's API key.")
    if demo.mcp_server:  # Gradio's own MCP server: the `synthesize` and `models` events as tools
        logger.info("MCP tools at /gradio_api/mcp/ (streamable HTTP)")
    else:
        logger.warning("No MCP endpoint: %s", getattr(demo, "mcp_error", None) or "see above")
    return app


def load_settings() -> Settings:
    try:
        settings = Settings.from_env()
    except ConfigError as e:
        _fail(f"invalid setting {e}")
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return settings


def create_app(settings: Settings) -> tuple[Pipeline, gr.Blocks]:
    """Environment summary, ffmpeg, warm load, then the UI: the order the process starts in."""
    for check in selfcheck.environment(settings, inspect_torch=False):
        logger.log(logging.INFO if check.ok else logging.WARNING, "check %s: %s", check.name,
                   check.value)
    streaming = ensure_ffmpeg() is not None
    if not streaming:
        logger.warning("No ffmpeg found: the Stream button will play whole files instead")
    try:
        pipeline = Pipeline.from_settings(settings)
    except (ModelLoadError, ConfigError) as e:
        _fail(str(e))
    return pipeline, build_demo(pipeline, streaming)


def self_check(settings: Settings) -> None:
    """`python app.py --check`: the report, each model loaded once, exit 0 or 1 with the problem."""
    ensure_ffmpeg()
    checks, problem = selfcheck.run(settings)
    print(selfcheck.format_report(checks))
    if problem:
        _fail(problem)
    print("All checks passed.")
    raise SystemExit(0)


settings = load_settings()
if __name__ == "__main__":
    cli = argparse.ArgumentParser(description="TTS Studio: warm text-to-speech UI and HTTP API")
    cli.add_argument("--check", action="store_true",
                     help="check the environment and that every model loads, then exit 0 or 1")
    if cli.parse_args().check:
        self_check(settings)
    try:  # the port opens before the models load: probes see "starting", then "ready"
        server = StudioServer(settings.host, settings.port).start()
    except (OSError, TimeoutError) as e:
        _fail(str(e))
    logger.info("Listening on %s; warming up %d model(s)", server.url, len(settings.models))
pipeline, demo = create_app(settings)

if __name__ == "__main__":
    server.attach(build_server(pipeline, demo, server.readiness))
    server.serve_until_signal()
