"""Wyoming entry point: Home Assistant's protocol (JSON events over TCP) mapped to SpeechRequests and the pipeline's stream.

`TTS_WYOMING_URI` (tcp://host:port or unix://path) starts it beside the UI and the HTTP
API, in the same process, over the same warm pipeline and the one gate: its requests are
counted and recorded under the route "wyoming" (live panel, /metrics).

- `describe` -> `info`: one TTS program whose voices are the loaded models, with their
  languages and, for multi-speaker models, their speakers.
- `synthesize` -> `audio-start`, `audio-chunk`..., `audio-stop`: the pipeline's stream, so
  the first chunk leaves while the first sentence is still being decoded; int16 mono at
  the voice's own rate.
- `synthesize-start`, `synthesize-chunk`..., `synthesize-stop` (Home Assistant's streaming):
  each sentence is spoken once it is whole, as the core's chunker cuts sentences (one is
  whole when text follows its end); the rest waits for more text or for the stop. Each
  spoken piece is an audio-start/-chunk/-stop cycle, then `synthesize-stopped`. The
  `synthesize` Home Assistant sends inside a stream (for servers that do not stream) is
  ignored there.
- Bad input gets an `error` event (code and a sentence a person understands); an
  unreadable event also closes the connection. A client that goes away mid-stream stops
  its synthesis at the next piece, and its place at the gate is freed. Past
  `TTS_WYOMING_MAX_CONNECTIONS`, a new connection gets an error and is closed.

The server runs its own asyncio loop in a daemon thread, not on uvicorn's loop: it then
starts and stops on its own, and a burst of Wyoming clients never delays an HTTP response
(each synthesis step runs in a worker thread either way, since the gate blocks).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import Awaitable, Callable
from urllib.parse import urlsplit

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice, TtsVoiceSpeaker
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import (Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop,
                         SynthesizeStopped)

from . import audio as audio_io
from . import text as textproc
from .bootstrap import StartupError
from .engines import ModelCard
from .errors import (GateBusyError, GateTimeoutError, InputError, TTSError, UnknownModelError,
                     UnknownVoiceError)
from .pipeline import Pipeline
from .request import SpeechRequest

logger = logging.getLogger(__name__)

ROUTE = "wyoming"  # the route label in the metrics and the live panel
PROGRAM_NAME = "tts-studio"
SAMPLE_WIDTH = 2  # bytes: int16
CHANNELS = 1
SERVICE_TYPE = "_wyoming._tcp.local."  # what Home Assistant browses for
MDNS_GROUP = "224.0.0.251"  # routed to: tells which address a wildcard server is reached at
WILDCARD_HOSTS = ("", "0.0.0.0", "::")
STOP_TIMEOUT_S = 10.0
# Who made each family's voices (Wyoming's attribution); other families are transformers'.
ATTRIBUTIONS = {"piper": ("rhasspy", "https://github.com/rhasspy/piper")}
TRANSFORMERS = ("Hugging Face transformers", "https://github.com/huggingface/transformers")
RUNTIMES = {"piper": "piper-tts"}  # the package whose version a family's voices report
_REGION_TAG = re.compile(r"([a-z]{2,3})[-_]([a-z]{2})", re.IGNORECASE)


class MalformedEvent(Exception):
    """An event that is not Wyoming: not a JSON line with a type, or with impossible lengths."""


# --- info ------------------------------------------------------------------------------


def describe(pipeline: Pipeline) -> Info:
    """The `info` answer: one TTS program, a voice per loaded model (as loaded now)."""
    return Info(tts=[TtsProgram(
        name=PROGRAM_NAME, description="TTS Studio: every warm model, one device gate",
        attribution=Attribution(name="TTS Studio", url=""), installed=True,
        version=_version("wyoming"), voices=[_voice(w.card) for w in pipeline.registry.warm],
        supports_synthesize_streaming=True)])


def _voice(card: ModelCard) -> TtsVoice:
    name, url = ATTRIBUTIONS.get(card.family, TRANSFORMERS)
    return TtsVoice(
        name=card.name, description=f"{card.name} ({card.spoken_language}, {card.family})",
        attribution=Attribution(name=name, url=url), installed=True,
        version=_version(RUNTIMES.get(card.family, "transformers")),
        languages=[wyoming_language(card)],
        speakers=[TtsVoiceSpeaker(name=v) for v in card.voices] if len(card.voices) > 1 else None)


def wyoming_language(card: ModelCard) -> str:
    """The language as Wyoming voices state it ('en_US', as wyoming-piper does), else the code."""
    tag = card.language_tag or card.language or "und"
    m = _REGION_TAG.fullmatch(tag)
    if m:
        return f"{m.group(1).lower()}_{m.group(2).upper()}"
    return card.language or tag


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# --- requests --------------------------------------------------------------------------


def resolve_voice(pipeline: Pipeline, voice) -> tuple[str | None, str | None]:
    """A Wyoming voice {name, speaker, language} as (model, voice); None: the default.

    `name` is a model (as `info` lists it), or one of a model's voices; `speaker`, one of
    that model's voices; `language` alone picks the first model that speaks it.
    """
    if voice is None:
        return None, None
    if not isinstance(voice, dict):
        raise InputError("'voice' must be an object: {\"name\": ..., \"speaker\": ...}.", "voice")
    fields = {k: voice.get(k) for k in ("name", "speaker", "language")}
    for key, value in fields.items():
        if value is not None and not isinstance(value, str):
            raise InputError(f"The voice's {key!r} must be a string.", "voice")
    name, speaker, language = fields.values()
    cards = [w.card for w in pipeline.registry.warm]
    if name:
        if name in pipeline.registry.engines:
            return name, speaker
        owner = next((c for c in cards if name in c.voices), None)
        if owner is not None:
            return owner.name, name
        raise UnknownVoiceError(f"Unknown voice {name!r}. Voices here: "
                                f"{', '.join(c.name for c in cards)}.", "voice")
    if language:
        wanted = language.replace("-", "_").lower()
        for card in cards:
            spoken = wyoming_language(card).lower()
            if wanted in (spoken, spoken.split("_")[0]) or spoken == wanted.split("_")[0]:
                return card.name, speaker
        raise UnknownVoiceError(f"No loaded voice speaks {language!r}; the languages here: "
                                f"{', '.join(sorted({wyoming_language(c) for c in cards}))}.",
                                "voice")
    return None, speaker


def complete_sentences(text: str) -> tuple[str, str]:
    """(the whole sentences at the start of `text`, the rest). A sentence is whole once text
    follows its end, as the core's chunker splits (`text.split_sentences`), so more text can
    never join it to the next one: "Dr. Smith" or "No. 5" wait for what follows."""
    sentences = textproc.split_sentences(text)
    if len(sentences) < 2:
        return "", text
    cut = text.rindex(sentences[-1])  # the last piece is the text's end, stripped
    return text[:cut], text[cut:]


def error_event(e: TTSError) -> Event:
    """A pipeline error as Wyoming's `error`, with a code a program can act on."""
    if isinstance(e, (UnknownVoiceError, UnknownModelError)):
        code = "voice_not_found"
    elif isinstance(e, InputError):
        code = "invalid_input"
    elif isinstance(e, GateBusyError):
        code = "server_busy"
    elif isinstance(e, GateTimeoutError):
        code = "gate_timeout"
    else:
        code = "synthesis_failed"
    return Error(text=str(e), code=code).event()


async def read_event(reader: asyncio.StreamReader, limit: int) -> Event | None:
    """The next event (a JSON header line, then its data and payload), or None when the
    client has gone; MalformedEvent for anything else."""
    try:
        line = await reader.readline()
    except ValueError as e:  # longer than the reader's line limit
        raise MalformedEvent("An event's header line is too long.") from e
    if not line:
        return None
    try:
        header = json.loads(line)
    except ValueError as e:
        raise MalformedEvent("An event is not a line of JSON.") from e
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise MalformedEvent("An event must be a JSON object with a 'type'.")
    data = header.get("data") or {}
    lengths = [header.get("data_length") or 0, header.get("payload_length") or 0]
    if not isinstance(data, dict) or any(isinstance(n, bool) or not isinstance(n, int)
                                         or not 0 <= n <= limit for n in lengths):
        raise MalformedEvent(f"An event's data must be an object and its lengths whole "
                             f"numbers up to {limit}.")
    try:
        if lengths[0]:
            extra = json.loads(await reader.readexactly(lengths[0]))
            if not isinstance(extra, dict):
                raise MalformedEvent("An event's data must be a JSON object.")
            data.update(extra)
        payload = await reader.readexactly(lengths[1]) if lengths[1] else None
    except asyncio.IncompleteReadError:
        return None
    except (ValueError, UnicodeDecodeError) as e:
        raise MalformedEvent("An event's data is not JSON.") from e
    return Event(type=header["type"], data=data, payload=payload)


# --- one connection --------------------------------------------------------------------


class _TextStream:
    """A streamed text (synthesize-start ... stop): whole sentences are handed to the speaker
    as they complete, the rest at the stop; at most `limit` characters in all."""

    def __init__(self, model: str | None, voice: str | None, limit: int):
        self.model, self.voice, self.limit = model, voice, limit
        self.pending = ""  # received, not yet handed out: an unfinished sentence
        self.received = 0
        self.ready: asyncio.Queue[str | None] = asyncio.Queue()  # None: no more text
        self.ended = False

    def add(self, text: str) -> None:
        self.received += len(text)
        if self.received > self.limit:
            raise InputError(f"The streamed text is over {self.limit} characters long, the "
                             "limit; the rest of it is not spoken.", "text")
        whole, self.pending = complete_sentences(self.pending + text)
        if whole:
            self.ready.put_nowait(whole)

    def end(self, speak_rest: bool = True) -> None:
        if not self.ended:
            if speak_rest and self.pending.strip():
                self.ready.put_nowait(self.pending)
            self.pending, self.ended = "", True
            self.ready.put_nowait(None)

    async def pieces(self):
        """What to speak next, as it comes: all the whole sentences waiting, joined."""
        while True:
            parts = [await self.ready.get()]
            while not self.ready.empty():
                parts.append(self.ready.get_nowait())
            text = " ".join(p for p in parts if p is not None)
            if textproc.has_speakable(textproc.clean(text)):  # "..." alone has nothing to say
                yield text
            if parts[-1] is None:
                return


class WyomingConnection(AsyncEventHandler):
    """One client: reads events as they come (so a client that leaves is seen at once) while
    its speech runs in one task at a time, in the order asked."""

    def __init__(self, server: "WyomingServer", reader, writer):
        super().__init__(reader, writer)
        self.server, self.pipeline = server, server.pipeline
        self._speaking: asyncio.Task | None = None  # the last speech asked for
        self._stream: _TextStream | None = None

    async def run(self) -> None:
        limit = self.pipeline.settings.max_body_bytes
        try:
            while True:
                try:
                    event = await read_event(self.reader, limit)
                except MalformedEvent as e:
                    self.pipeline.refused(ROUTE, "bad_request")
                    await self.write_event(Error(text=str(e), code="malformed_event").event())
                    break
                if event is None or not await self.handle_event(event):
                    break
        except ConnectionError:
            pass  # gone while we wrote to it
        finally:
            await self._stop_speaking()
            self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(describe(self.pipeline).event())
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif SynthesizeStart.is_type(event.type):
            await self._open_stream(event.data)
        elif SynthesizeChunk.is_type(event.type):
            await self._stream_text(event.data)
        elif SynthesizeStop.is_type(event.type):
            if self._stream is None:
                return await self._refuse("synthesize-stop came with no synthesize-start.")
            self._stream.end()
            self._stream = None
        elif Synthesize.is_type(event.type) and self._stream is None:
            await self._synthesize(event.data)
        # Anything else (select-program, the `synthesize` inside a stream, events of other
        # services) is dropped, as Wyoming servers do.
        return True

    async def _synthesize(self, data: dict) -> None:
        try:
            text = data.get("text")
            if not isinstance(text, str):
                raise InputError("'text' must be a string: what to speak.", "text")
            model, voice = resolve_voice(self.pipeline, data.get("voice"))
        except InputError as e:
            self.pipeline.refused(ROUTE, "bad_request")
            await self.write_event(error_event(e))
            return
        request = SpeechRequest(text=text, model=model, voice=voice, format="wav")
        self._then(lambda: self._speak(request))

    async def _open_stream(self, data: dict) -> None:
        if self._stream is not None:
            await self._refuse("A synthesize-start came while a stream was open; send "
                               "synthesize-stop first.")
            return
        try:
            model, voice = resolve_voice(self.pipeline, data.get("voice"))
        except InputError as e:
            self.pipeline.refused(ROUTE, "bad_request")
            await self.write_event(error_event(e))
            return
        stream = self._stream = _TextStream(model, voice, self.pipeline.settings.max_chars)
        self._then(lambda: self._speak_stream(stream))

    async def _stream_text(self, data: dict) -> None:
        text = data.get("text")
        if self._stream is None or not isinstance(text, str):
            await self._refuse("synthesize-chunk needs an open stream (synthesize-start) and "
                               "a 'text' string.")
            return
        if self._stream.ended:  # an error ended it: the rest of its text is dropped
            return
        try:
            self._stream.add(text)
        except InputError as e:
            self.pipeline.refused(ROUTE, "bad_request")
            self._stream.end(speak_rest=False)
            await self.write_event(error_event(e))

    async def _refuse(self, message: str) -> bool:
        self.pipeline.refused(ROUTE, "bad_request")
        await self.write_event(Error(text=message, code="unexpected_event").event())
        return True

    async def _speak_stream(self, stream: _TextStream) -> None:
        async for text in stream.pieces():
            request = SpeechRequest(text=text, model=stream.model, voice=stream.voice,
                                    format="wav")
            if not await self._speak(request):
                stream.end(speak_rest=False)  # after an error, the rest is not spoken
        await self.write_event(SynthesizeStopped().event())

    def _then(self, speak: Callable[[], Awaitable]) -> None:
        """Run `speak()` after what this connection asked before."""
        previous = self._speaking

        async def in_turn():
            if previous is not None:
                await previous
            await speak()

        self._speaking = asyncio.create_task(in_turn())

    async def _stop_speaking(self) -> None:
        """The client has gone: its speech stops (each synthesis closes, freeing its place)."""
        if self._stream is not None:
            self._stream.end(speak_rest=False)
        task = self._speaking
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def _speak(self, request: SpeechRequest) -> bool:
        """One request through the pipeline's stream: audio-start, a chunk per piece as it is
        made, audio-stop; an `error` event instead (or after the audio so far) if it fails.
        False after an error."""
        loop, executor = asyncio.get_running_loop(), self.server.executor
        try:  # checked at once; the gate is entered at the first piece
            synthesis = await loop.run_in_executor(
                executor, lambda: self.pipeline.stream(request, route=ROUTE, continuous=True))
        except TTSError as e:
            await self.write_event(error_event(e))
            return False
        chunks, pending, samples, rate = iter(synthesis), None, 0, synthesis.sample_rate
        try:
            while True:
                pending = loop.run_in_executor(executor, next, chunks, None)
                # Shielded: a piece being made holds the device; a client that leaves lets it finish.
                chunk = await asyncio.shield(pending)
                pending = None
                if chunk is None:
                    break
                if samples == 0:
                    await self._send_audio(AudioStart(rate=rate, width=SAMPLE_WIDTH,
                                                      channels=CHANNELS, timestamp=0).event())
                await self._send_audio(AudioChunk(
                    rate=rate, width=SAMPLE_WIDTH, channels=CHANNELS,
                    audio=audio_io.to_int16(chunk.audio).tobytes(),
                    timestamp=samples * 1000 // rate).event())
                samples += chunk.audio.shape[0]
            await self._send_audio(AudioStop(timestamp=samples * 1000 // rate).event())
            return True
        except TTSError as e:
            logger.info("wyoming synthesis ended early: %s", e)
            await self.write_event(error_event(e))
            return False
        finally:
            while pending is not None and not pending.done():
                try:
                    await asyncio.wait([pending])
                except asyncio.CancelledError:
                    continue  # a second cancel: the piece still has to finish first
            synthesis.close()  # frees the gate place now, however this ended

    async def _send_audio(self, event: Event) -> None:
        """Write while a synthesis holds its place at the gate: a client that reads nothing
        for TTS_STREAM_STALL seconds is cut off, so it cannot hold the place for ever."""
        stall_s = self.pipeline.settings.stream_stall_s
        try:
            await asyncio.wait_for(self.write_event(event), stall_s)
        except asyncio.TimeoutError:
            logger.warning("wyoming client read nothing for %.0f s; closing it", stall_s)
            self.writer.transport.abort()
            raise ConnectionAbortedError("the client stopped reading") from None


# --- the server ------------------------------------------------------------------------


class WyomingServer:
    """The Wyoming server on its own asyncio loop, in a daemon thread; `start()`, `stop()`."""

    def __init__(self, pipeline: Pipeline, uri: str, max_connections: int,
                 zeroconf_name: str | None = None):
        self.pipeline, self.uri = pipeline, uri
        self.max_connections, self.zeroconf_name = max_connections, zeroconf_name
        # One worker per connection: each has at most one synthesis step running at a time.
        self.executor = ThreadPoolExecutor(max_connections, thread_name_prefix="wyoming")
        self.loop = asyncio.new_event_loop()
        self.port: int | None = None  # the TCP port listened on (tcp://host:0 picks one)
        self._thread = threading.Thread(target=self.loop.run_forever, name="wyoming",
                                        daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task] = set()
        self._zeroconf = None

    def start(self, timeout_s: float = 30.0) -> "WyomingServer":
        """Listen (OSError if the address cannot be had), then announce when asked."""
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open(), self.loop).result(timeout_s)
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise
        logger.info("Wyoming server on %s%s", self.uri,
                    f", announced as {self.zeroconf_name!r}" if self._zeroconf else "")
        return self

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def _open(self) -> None:
        parts = urlsplit(self.uri)
        if parts.scheme == "unix":
            self._server = await asyncio.start_unix_server(self._accept, path=parts.path)
            return
        self._server = await asyncio.start_server(self._accept, host=parts.hostname,
                                                  port=parts.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.zeroconf_name:
            self._zeroconf = await announce(self.zeroconf_name, parts.hostname, self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.max_connections:
            self.pipeline.refused(ROUTE, "busy")
            logger.warning("wyoming: refused a connection, %d are open", len(self._connections))
            try:
                await async_write_event(Error(
                    text=f"The server has its limit of {self.max_connections} Wyoming "
                         "connections open; try again shortly.", code="too_many_connections"
                ).event(), writer)
            except ConnectionError:
                pass
            finally:
                writer.close()
            return
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            await WyomingConnection(self, reader, writer).run()
        finally:
            self._connections.discard(task)

    def stop(self) -> None:
        """Stop listening, end every connection (their syntheses close), withdraw the name."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(STOP_TIMEOUT_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(STOP_TIMEOUT_S)
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _close(self) -> None:
        if self._zeroconf is not None:
            await self._zeroconf.async_unregister_all_services()
            await self._zeroconf.async_close()
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)


async def announce(name: str, host: str | None, port: int):
    """Announce `name` as `_wyoming._tcp` on `host`'s interface (every interface for a
    wildcard host, at the address this machine is reached at), as wyoming-piper does; the
    AsyncZeroconf that holds the announcement is returned (close it to withdraw it)."""
    from zeroconf import InterfaceChoice, IPVersion
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

    wildcard = (host or "") in WILDCARD_HOSTS
    address = _reached_at() if wildcard else socket.gethostbyname(host)
    zeroconf = AsyncZeroconf(interfaces=InterfaceChoice.All if wildcard else [address],
                             ip_version=IPVersion.V4Only)
    info = AsyncServiceInfo(SERVICE_TYPE, f"{name}.{SERVICE_TYPE}", port=port,
                            addresses=[socket.inet_aton(address)])
    try:
        await zeroconf.async_register_service(info, allow_name_change=True)
    except BaseException:
        await zeroconf.async_close()
        raise
    return zeroconf


def _reached_at() -> str:
    """This machine's address on the network that multicast goes out on (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((MDNS_GROUP, 1))
        return probe.getsockname()[0]


def start_wyoming(pipeline: Pipeline) -> WyomingServer | None:
    """The app's one call: TTS_WYOMING_URI's server, started over `pipeline` (None when the
    setting is unset: nothing listens). StartupError when the address cannot be had."""
    settings = pipeline.settings
    if settings.wyoming_uri is None:
        return None
    server = WyomingServer(pipeline, settings.wyoming_uri, settings.wyoming_max_connections,
                           settings.wyoming_zeroconf)
    try:
        return server.start()
    except OSError as e:
        raise StartupError(f"TTS_WYOMING_URI={settings.wyoming_uri}: cannot listen there "
                           f"({e})") from e
