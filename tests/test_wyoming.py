"""The Wyoming server, driven by the `wyoming` package's own client (what Home Assistant runs).

Over 127.0.0.1 only. The noise-off joe voice (`quiet_pipeline`) makes the same text give
the same samples, so lengths are compared exactly with the HTTP API's; a slow stand-in
engine (`fakes.FakeEngine`) shows what a client that leaves mid-stream does to the gate.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
import wave

import httpx
import numpy as np
import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop,
                         SynthesizeStopped, SynthesizeVoice)

from fakes import FAKE_RATE, FakeEngine, fake_pipeline
from tts_core import Settings, SpeechRequest
from tts_core.errors import ConfigError
from tts_core.wyoming_server import WyomingServer, complete_sentences, start_wyoming

SENTENCES = ["The kitchen lights are on.", "The front door is locked.",
             "It will rain tomorrow afternoon, so take an umbrella."]
TEXT = " ".join(SENTENCES)
READ_TIMEOUT_S = 60


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def serve(pipeline, max_connections: int = 4, zeroconf: str | None = None) -> WyomingServer:
    return WyomingServer(pipeline, "tcp://127.0.0.1:0", max_connections, zeroconf).start()


@pytest.fixture(scope="module")
def quiet_server(quiet_pipeline):
    server = serve(quiet_pipeline)
    yield server
    server.stop()


def client(server: WyomingServer) -> AsyncTcpClient:
    return AsyncTcpClient("127.0.0.1", server.port, read_timeout=READ_TIMEOUT_S)


async def events_until(c: AsyncTcpClient, *last: str) -> list[Event]:
    """Every event up to and including the first of a type in `last` (or an error, or the end)."""
    seen = []
    while (event := await c.read_event()) is not None:
        seen.append(event)
        if event.type in (*last, "error"):
            break
    return seen


async def synthesize(server, text, voice=None) -> list[Event]:
    async with client(server) as c:
        await c.write_event(Synthesize(text=text, voice=voice).event())
        return await events_until(c, "audio-stop")


def pcm(events: list[Event]) -> np.ndarray:
    return np.frombuffer(b"".join(AudioChunk.from_event(e).audio for e in events
                                  if AudioChunk.is_type(e.type)), dtype=np.int16)


def wav_samples(data: bytes) -> tuple[int, int]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes(), w.getframerate()


def gate_free(pipeline, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pipeline.gate.queue_depth == 0 and pipeline.gate.slots_in_use == 0:
            return True
        time.sleep(0.02)
    return False


# --- describe ---------------------------------------------------------------------------


def test_describe_lists_every_loaded_model_with_languages_and_speakers(pipeline):
    server = serve(pipeline)
    try:
        async def ask():
            async with client(server) as c:
                await c.write_event(Describe().event())
                return Info.from_event(await c.read_event())

        info = run(ask())
    finally:
        server.stop()
    (program,) = info.tts
    assert program.installed and program.version and program.supports_synthesize_streaming
    voices = {v.name: v for v in program.voices}
    assert list(voices) == pipeline.registry.available_models()
    joe = voices["en_US-joe-medium"]
    assert joe.languages == ["en_US"] and joe.installed and joe.version
    assert "English" in joe.description and joe.attribution.name == "rhasspy"
    assert joe.speakers is None  # one speaker: nothing to pick
    vctk = pipeline.registry.card("tiny-vctk")
    assert [s.name for s in voices["tiny-vctk"].speakers] == list(vctk.voices)


# --- synthesize -------------------------------------------------------------------------


def test_synthesize_is_the_voices_own_pcm_of_the_http_apis_length(quiet_server, quiet_url,
                                                                  quiet_pipeline):
    events = run(synthesize(quiet_server, TEXT))
    types = [e.type for e in events]
    assert types[0] == "audio-start" and types[-1] == "audio-stop"
    assert set(types[1:-1]) == {"audio-chunk"}
    start = AudioStart.from_event(events[0])
    rate = quiet_pipeline.registry.default.sample_rate
    assert (start.rate, start.width, start.channels) == (rate, 2, 1)
    body = httpx.post(f"{quiet_url}/v1/audio/speech", timeout=120,
                      json={"input": TEXT, "response_format": "wav"}).content
    assert wav_samples(body) == (pcm(events).shape[0], rate)
    # The same samples the pipeline's own stream makes, as int16: nothing lost or added.
    streamed = np.concatenate([c.audio for c in quiet_pipeline.stream(SpeechRequest(TEXT))])
    assert np.array_equal(pcm(events), (np.clip(streamed, -1, 1) * 32767).astype(np.int16))


def test_chunks_come_in_order_and_the_first_before_its_sentence_is_done(quiet_server,
                                                                        quiet_pipeline):
    events = run(synthesize(quiet_server, TEXT))
    chunks = [AudioChunk.from_event(e) for e in events if AudioChunk.is_type(e.type)]
    rate = chunks[0].rate
    # Each chunk's timestamp is where it starts in the audio: in order, nothing skipped.
    starts = np.cumsum([0] + [c.samples for c in chunks[:-1]])
    assert [c.timestamp for c in chunks] == [int(s) * 1000 // rate for s in starts]
    assert AudioStop.from_event(events[-1]).timestamp == sum(c.samples for c in chunks) * 1000 // rate
    first_sentence = quiet_pipeline.synthesize(SpeechRequest(SENTENCES[0])).audio.shape[0]
    assert len(chunks) > len(SENTENCES)
    assert chunks[0].samples < first_sentence, "the first chunk should be part of a sentence"


def test_a_speaker_of_a_multi_speaker_model_is_spoken(pipeline):
    server = serve(pipeline)
    try:
        for speaker in pipeline.registry.card("tiny-vctk").voices[1:]:
            events = run(synthesize(server, "Hello there.",
                                    SynthesizeVoice(name="tiny-vctk", speaker=speaker)))
            assert [e.type for e in events][-1] == "audio-stop", events
            assert AudioStart.from_event(events[0]).rate == pipeline.registry.get("tiny-vctk").sample_rate
    finally:
        server.stop()


# --- streaming synthesis ----------------------------------------------------------------


def test_each_sentence_is_spoken_once_whole_and_the_rest_waits(quiet_server, quiet_pipeline):
    async def talk():
        async with client(quiet_server) as c:
            await c.write_event(SynthesizeStart().event())
            await c.write_event(SynthesizeChunk(text="The kitchen li").event())
            await c.write_event(SynthesizeChunk(text="ghts are on. The front").event())
            # Before any stop: the whole sentence, spoken (30 s: far more than it takes).
            first = await asyncio.wait_for(events_until(c, "audio-stop"), 30)
            await c.write_event(SynthesizeChunk(text=" door is locked.").event())
            await c.write_event(SynthesizeStop().event())
            return first, await events_until(c, "synthesize-stopped")

    first, rest = run(talk())
    alone = quiet_pipeline.synthesize(SpeechRequest(SENTENCES[0])).audio.shape[0]
    assert [e.type for e in first][0] == "audio-start" and pcm(first).shape[0] == alone
    assert [e.type for e in rest][-1] == "synthesize-stopped"
    second = quiet_pipeline.synthesize(SpeechRequest(SENTENCES[1])).audio.shape[0]
    assert pcm(rest).shape[0] == second  # "The front" waited for the rest of its sentence


@pytest.mark.parametrize("cuts", [
    [10, 31, 40, 77],  # inside words and sentences
    [len(SENTENCES[0]) + 1, len(SENTENCES[0]) + len(SENTENCES[1]) + 2],  # as wyoming-bench sends
])
def test_streamed_text_makes_the_same_audio_as_the_text_at_once(quiet_server, quiet_pipeline,
                                                                cuts):
    pieces = [TEXT[a:b] for a, b in zip([0] + cuts, cuts + [len(TEXT)])]
    assert "".join(pieces) == TEXT

    async def talk():
        async with client(quiet_server) as c:
            await c.write_event(SynthesizeStart().event())
            for piece in pieces:
                await c.write_event(SynthesizeChunk(text=piece).event())
            await c.write_event(Synthesize(text=TEXT).event())  # Home Assistant sends it too
            await c.write_event(SynthesizeStop().event())
            streamed = await events_until(c, "synthesize-stopped")
            await c.write_event(Synthesize(text="Done.").event())  # next on this connection
            return streamed, await events_until(c, "audio-stop")

    streamed, after = run(talk())
    types = [e.type for e in streamed]
    assert types[-1] == "synthesize-stopped" and "error" not in types
    assert types.count("audio-start") == types.count("audio-stop") >= 1
    at_once = run(synthesize(quiet_server, TEXT))
    assert pcm(streamed).shape[0] == pcm(at_once).shape[0]
    # Decoded in other windows (each request's first sentence in small ones): not bit-equal,
    # but the same speech.
    a, b = pcm(streamed).astype(float), pcm(at_once).astype(float)
    assert np.corrcoef(a, b)[0, 1] > 0.99
    # The stream's own `synthesize` was not spoken as well: what comes next is the next request.
    assert pcm(after).shape[0] == quiet_pipeline.synthesize(SpeechRequest("Done.")).audio.shape[0]


def test_complete_sentences_follows_the_core_chunker():
    assert complete_sentences("Hello there. How") == ("Hello there. ", "How")
    assert complete_sentences("Hello there. ") == ("", "Hello there. ")  # may go on: wait
    assert complete_sentences("Ask Dr. Smith") == ("", "Ask Dr. Smith")
    assert complete_sentences("One. Two. Thr") == ("One. Two. ", "Thr")


# --- bad input --------------------------------------------------------------------------


async def error_after(server, *events: Event) -> Error:
    async with client(server) as c:
        for event in events:
            await c.write_event(event)
        got = await events_until(c, "audio-stop", "synthesize-stopped")
    assert got and got[-1].type == "error", [e.type for e in got]
    return Error.from_event(got[-1])


def test_bad_requests_get_an_error_event_and_the_server_goes_on(quiet_server, quiet_pipeline):
    unknown = run(error_after(quiet_server, Synthesize("Hi.", SynthesizeVoice(name="nobody")).event()))
    assert unknown.code == "voice_not_found" and "en_US-joe-medium" in unknown.text
    limit = quiet_pipeline.settings.max_chars
    long = run(error_after(quiet_server, Synthesize("a" * (limit + 1)).event()))
    assert long.code == "invalid_input" and str(limit) in long.text
    no_text = run(error_after(quiet_server, Event("synthesize", {"text": 5})))
    assert no_text.code == "invalid_input"
    lost = run(error_after(quiet_server, SynthesizeChunk("Hello.").event()))
    assert lost.code == "unexpected_event"
    speaker = run(error_after(quiet_server, Synthesize(
        "Hi.", SynthesizeVoice(name="en_US-joe-medium", speaker="nobody")).event()))
    assert speaker.code == "voice_not_found" and "nobody" in speaker.text
    assert gate_free(quiet_pipeline)
    assert run(synthesize(quiet_server, "Still here."))[-1].type == "audio-stop"


def test_a_streamed_text_is_held_to_the_limit_in_all_not_piece_by_piece():
    limit = 50
    server = serve(fake_pipeline(FakeEngine(), max_chars=limit))
    piece = "One two. "  # each sentence is spoken alone, once the next piece arrives

    async def talk():
        async with client(server) as c:
            await c.write_event(SynthesizeStart().event())
            await c.write_event(SynthesizeChunk(piece).event())
            for _ in range(limit // len(piece) + 1):
                await c.write_event(SynthesizeChunk(piece).event())
                spoken = await events_until(c, "audio-stop")
                if spoken[-1].type == "error":
                    return Error.from_event(spoken[-1])
            await c.write_event(SynthesizeStop().event())
            return await events_until(c, "synthesize-stopped")

    try:
        refused = run(talk())
    finally:
        server.stop()
    assert isinstance(refused, Error), [e.type for e in refused]
    assert refused.code == "invalid_input" and str(limit) in refused.text


def test_a_malformed_event_gets_an_error_and_the_connection_closes(quiet_server, quiet_pipeline):
    async def send_raw(line: bytes):
        reader, writer = await asyncio.open_connection("127.0.0.1", quiet_server.port)
        writer.write(line)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), READ_TIMEOUT_S)  # to the server's close
        writer.close()
        return answer

    for line in (b"this is not json\n", b'{"data": {}}\n', b'{"type": "synthesize", '
                 b'"data_length": -4}\n', b"[1, 2]\n"):
        answer = run(send_raw(line))
        assert b'"type": "error"' in answer and b"malformed_event" in answer, (line, answer)
    assert run(synthesize(quiet_server, "Still here."))[-1].type == "audio-stop"
    assert b'route="wyoming"' in quiet_pipeline.prometheus_text()


def test_a_client_that_leaves_mid_stream_frees_the_gate():
    engine = FakeEngine(infer_s=0.2)
    slow = fake_pipeline(engine)
    server = serve(slow)
    try:
        async def leave_after_first_chunk():
            c = client(server)
            await c.connect()
            await c.write_event(Synthesize(" ".join(f"Sentence number {i}." for i in range(20))).event())
            assert (await c.read_event()).type == "audio-start"
            assert (await c.read_event()).type == "audio-chunk"
            assert slow.gate.queue_depth == 1  # it holds its place while it streams
            await c.disconnect()

        run(leave_after_first_chunk())
        assert gate_free(slow, timeout_s=5), "the synthesis kept its place at the gate"
        calls = engine.calls
        time.sleep(1.0)
        assert engine.calls == calls < 20, "the synthesis went on without its client"
        assert b'route="wyoming",status="cancelled"' in slow.prometheus_text()
        events = run(synthesize(server, "Next, please."))
        assert pcm(events).shape[0] == len("Next, please.") * 100  # others are still served
        assert AudioStart.from_event(events[0]).rate == FAKE_RATE
    finally:
        server.stop()


def test_two_clients_at_once_each_get_their_own_audio(quiet_server, quiet_pipeline):
    texts = [SENTENCES[0], SENTENCES[2]]

    async def both():
        return await asyncio.gather(*(synthesize(quiet_server, t) for t in texts))

    alone = [quiet_pipeline.synthesize(SpeechRequest(t)).audio.shape[0] for t in texts]
    together = run(both())
    assert [pcm(events).shape[0] for events in together] == alone


def test_two_clients_are_served_side_by_side_through_the_gate():
    engine = FakeEngine(infer_s=0.2)
    shared = fake_pipeline(engine, cpu_slots=2)
    server = serve(shared)
    try:
        texts = ["First caller. It asks for two sentences.", "Second caller. Also two."]

        async def both():
            return await asyncio.gather(*(synthesize(server, t) for t in texts))

        together = run(both())
    finally:
        server.stop()
    # The fake makes 100 samples a character of each sentence (the space between is not said).
    assert [pcm(events).shape[0] for events in together] == [(len(t) - t.count(". ")) * 100
                                                             for t in texts]
    assert engine.max_active == 2, "the two connections were not served at the same time"
    assert gate_free(shared)


def test_connections_past_the_bound_are_refused():
    slow = fake_pipeline(FakeEngine())
    server = serve(slow, max_connections=2)
    try:
        async def crowd():
            held = [client(server) for _ in range(2)]
            for c in held:
                await c.connect()
                await c.write_event(Describe().event())
                assert (await c.read_event()).type == "info"  # accepted and served
            extra = client(server)
            await extra.connect()
            refused = await asyncio.wait_for(events_until(extra, "error"), 10)
            end = await extra.read_event()  # then closed
            await held[0].disconnect()
            await asyncio.sleep(0.2)
            served = await synthesize(server, "My turn.")
            await held[1].disconnect()
            return refused, end, served

        refused, end, served = run(crowd())
        assert Error.from_event(refused[-1]).code == "too_many_connections" and end is None
        assert served[-1].type == "audio-stop"
    finally:
        server.stop()


# --- zeroconf, settings, the app ----------------------------------------------------------


def test_zeroconf_announces_the_server_on_loopback(quiet_pipeline):
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncZeroconf

    name = f"tts-studio-test-{uuid.uuid4().hex[:8]}"
    server = serve(quiet_pipeline, zeroconf=name)
    try:
        async def browse():
            zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
            try:
                return await zc.async_get_service_info("_wyoming._tcp.local.",
                                                       f"{name}._wyoming._tcp.local.", timeout=5000)
            finally:
                await zc.async_close()

        found = run(browse())
    finally:
        server.stop()
    assert found is not None and found.port == server.port
    assert found.parsed_addresses() == ["127.0.0.1"]


def test_wyoming_settings_are_checked():
    s = Settings.from_env({"TTS_WYOMING_URI": "tcp://0.0.0.0:10200", "TTS_WYOMING_ZEROCONF": "on",
                           "TTS_WYOMING_MAX_CONNECTIONS": "3"})
    assert (s.wyoming_uri, s.wyoming_zeroconf, s.wyoming_max_connections) == (
        "tcp://0.0.0.0:10200", "tts-studio", 3)
    assert Settings.from_env({}).wyoming_uri is None
    for env, words in [({"TTS_WYOMING_URI": "http://host:1"}, "tcp://host:port"),
                       ({"TTS_WYOMING_URI": "tcp://host"}, "needs a host and a port"),
                       ({"TTS_WYOMING_ZEROCONF": "kitchen"}, "needs a TCP server"),
                       ({"TTS_WYOMING_URI": "tcp://h:1", "TTS_WYOMING_ZEROCONF": "a.b"}, "dots"),
                       ({"TTS_WYOMING_URI": "tcp://h:1", "TTS_WYOMING_MAX_CONNECTIONS": "0"},
                        "minimum")]:
        with pytest.raises(ConfigError, match=words):
            Settings.from_env(env)


def test_unset_nothing_listens(quiet_pipeline):
    assert quiet_pipeline.settings.wyoming_uri is None
    assert start_wyoming(quiet_pipeline) is None


@pytest.mark.timeout(600)
def test_the_app_serves_wyoming_beside_http_when_the_setting_asks(tmp_path):
    """`python app.py` with TTS_WYOMING_URI: Home Assistant's client and wyoming-bench (both
    modes) are served; the requests show in /metrics under the route "wyoming"."""
    import os
    import subprocess
    import sys

    from conftest import free_port, start_app

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTS_")} | {
        "TTS_MODELS": "joe", "GRADIO_SERVER_PORT": str(free_port()),
        "TTS_WYOMING_URI": f"tcp://127.0.0.1:{port}"}
    proc, url = start_app(env)
    try:
        server = type("Address", (), {"port": port})  # what `client` reads

        async def served():
            for _ in range(100):  # it opens just after /ready turns 200
                try:
                    return await synthesize(server, TEXT)
                except OSError:
                    await asyncio.sleep(0.1)

        assert run(served())[-1].type == "audio-stop"
        bench = subprocess.run(
            [sys.executable, "-m", "wyoming_bench.cli", "tts", f"127.0.0.1:{port}", "--rounds",
             "1", "--warmup", "0", "--texts", TEXT], capture_output=True, text=True, timeout=300)
        assert bench.returncode == 0, bench.stdout + bench.stderr
        assert "non-streaming, streaming" in bench.stdout and "FAIL" not in bench.stdout
        assert 'route="wyoming",status="ok"' in httpx.get(f"{url}/metrics").text
    finally:
        proc.terminate()
        proc.wait(30)
