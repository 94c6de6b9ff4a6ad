"""Streamed responses: audio sent as it is made, and the captioned route's NDJSON lines.

A producer runs a few chunks ahead of the network and stops (freeing the request's place
at the gate) when the client leaves or stops reading.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, AsyncIterator, Iterator

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse

from .. import audio as audio_io
from ..captions import b64, captions
from ..errors import TTSError
from .errors import from_tts_error
from .guard import client_of

logger = logging.getLogger(__name__)

# Chunks made ahead of a slow reader; past this the producer waits for the client.
STREAM_AHEAD_CHUNKS = 4
# Producer tasks outlive the response that started them (they clean up after a client that
# went away), and asyncio keeps only weak references to tasks: these are the strong ones.
_PRODUCERS: set[asyncio.Task] = set()
# How often a waiting producer looks whether its client is still there.
DISCONNECT_POLL_S = 0.5


async def first_item(synthesis, items):
    """The stream's first item (made in a thread: the request waits its turn at the gate),
    before any header is sent, so an error still gets its status; the synthesis is closed
    (its gate place freed) if that fails or the client leaves meanwhile. anyio lets the
    thread finish even then."""
    try:
        return await anyio.to_thread.run_sync(next, items, None)
    except BaseException:
        synthesis.close()
        raise


async def stream_body(request: Request, synthesis, chunks, first,
                       stall_s: float) -> AsyncIterator[bytes]:
    """Send chunks as they are made, from a producer that runs ahead of the network.

    The producer, not the response, watches the client: the response's own cleanup can
    wait for the garbage collector after a disconnect. It stops making chunks (and frees
    the request's place at the gate) when the client goes away, or when the client has
    not taken a chunk for `stall_s` seconds: a client that never reads cannot hold a
    place forever.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    space = asyncio.Semaphore(STREAM_AHEAD_CHUNKS - 1)
    queue.put_nowait(first.data)

    async def room_for_a_chunk() -> bool:
        """Wait until the client has taken a chunk; False once it has gone away."""
        deadline = loop.time() + stall_s
        while not await request.is_disconnected():
            try:
                await asyncio.wait_for(space.acquire(), max(0.0, min(DISCONNECT_POLL_S,
                                                                     deadline - loop.time())))
                return True
            except asyncio.TimeoutError:
                if loop.time() >= deadline:
                    raise
        return False

    async def produce():
        pending = None
        try:
            while await room_for_a_chunk():
                pending = loop.run_in_executor(None, next, chunks, None)
                # Shielded: a chunk being made holds the device; let it finish, then stop.
                chunk = await asyncio.shield(pending)
                pending = None
                if chunk is None:
                    return
                queue.put_nowait(chunk.data)
            logger.info("client went away mid-stream")
        except asyncio.TimeoutError:
            logger.warning("client read nothing for %.0f s; ending its stream", stall_s)
        except TTSError as e:
            logger.warning("stream ended early: %s", e)  # headers are sent: all we can do is stop
        finally:
            if pending is not None:
                synthesis.cancel()  # a chunk still waiting for its turn gives it up
                await asyncio.wait([pending])  # waits without cancelling it
            # Synchronous, with no await: a cancel landing now cannot skip it. It only ends
            # a generator paused between chunks (the gate place is freed), so it is quick.
            synthesis.close()
            queue.put_nowait(None)

    producer = asyncio.create_task(produce())
    _PRODUCERS.add(producer)
    producer.add_done_callback(_PRODUCERS.discard)
    try:
        while (data := await queue.get()) is not None:
            yield data
            space.release()
    finally:
        # No await here: this may run inside a cancelled scope (the client left). The
        # producer finishes the chunk in hand, closes the synthesis and frees its place.
        producer.cancel()


class _Line:
    """One NDJSON line, shaped like a chunk for `stream_body` (which sends `.data`)."""

    def __init__(self, obj: dict[str, Any]):
        self.data = json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def caption_lines(synthesis) -> Iterator[_Line]:
    """A captioned stream's lines: each piece (a complete file in the asked format) with the
    words that start in it, timed from the start of the whole audio; then the record."""
    rate = audio_io.output_rate(synthesis.format, synthesis.sample_rate)
    words = []
    for chunk in synthesis:
        words.extend(chunk.words)
        yield _Line({"chunk": chunk.index, "sentence": chunk.sentence, "text": chunk.text,
                     "audio": b64(chunk.data), "format": synthesis.format, "sample_rate": rate,
                     "words": [w.to_dict() for w in chunk.words]})
    yield _Line({"done": True, **captions(words), "latency": synthesis.record.to_dict()})


async def stream_audio(request: Request, pipeline, call, route: str) -> StreamingResponse:
    """`"stream": true` on the speech route: one continuous file, sent as it is made."""
    try:
        synthesis = pipeline.stream(call, route=route, continuous=True, client=client_of(request))
        chunks = iter(synthesis)
        first = await first_item(synthesis, chunks)
    except TTSError as e:
        raise from_tts_error(e) from e
    rate = audio_io.output_rate(synthesis.format, synthesis.sample_rate)
    headers = {"X-Model": call.model, "X-Device": synthesis.engine.device, "X-Sample-Rate": str(rate)}
    return StreamingResponse(stream_body(request, synthesis, chunks, first,
                                         pipeline.settings.stream_stall_s),
                             media_type=audio_io.MEDIA_TYPES[synthesis.format], headers=headers)


async def stream_captioned(request: Request, pipeline, call, route: str) -> StreamingResponse:
    """`"stream": true` on the captioned route: NDJSON, a line per piece, then the record."""
    try:
        synthesis = pipeline.stream(call, route=route, client=client_of(request))
        lines = caption_lines(synthesis)
        first = await first_item(synthesis, lines)
    except TTSError as e:
        raise from_tts_error(e) from e
    return StreamingResponse(stream_body(request, synthesis, lines, first,
                                         pipeline.settings.stream_stall_s),
                             media_type="application/x-ndjson",
                             headers={"X-Model": call.model, "X-Device": synthesis.engine.device})
