"""AI agents as callers: Gradio's own MCP endpoint, driven by the official `mcp` Python client."""

from __future__ import annotations

import ast
import asyncio
import io

import httpx
import numpy as np
import soundfile as sf
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from prometheus_client.parser import text_string_to_metric_families

MCP_PATH = "/gradio_api/mcp/"  # the URL docs/python-and-mcp.md's client config names


def run(coro):
    return asyncio.run(coro)


async def mcp_call(url: str, action):
    """One MCP session over streamable HTTP, as an agent's client opens it."""
    async with streamablehttp_client(url + MCP_PATH) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await action(session)


def mcp_requests(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "tts_requests_total" and s.labels.get("route") == "mcp"
               and s.labels.get("status") == "ok")


def test_the_tools_are_synthesize_and_models_with_usable_descriptions(studio):
    tools = {t.name: t for t in run(mcp_call(studio.url, lambda s: s.list_tools())).tools}
    assert set(tools) == {"synthesize", "models", "captioned"}  # the UI's own events are not tools
    synthesize = tools["synthesize"]
    assert "`models`" in synthesize.description and "'url'" in synthesize.description
    properties = synthesize.inputSchema["properties"]
    assert {"text", "model", "voice", "speed", "seed"} <= set(properties)
    assert "5,000 characters" in properties["text"]["description"]
    assert "0.25 to 4.0" in properties["speed"]["description"]
    assert "before `synthesize`" in tools["models"].description


def test_models_lists_the_loaded_models_and_their_voices(studio):
    result = run(mcp_call(studio.url, lambda s: s.call_tool("models", {})))
    assert not result.isError
    models = ast.literal_eval(result.content[0].text)  # Gradio writes the list as Python text
    assert [m["name"] for m in models] == list(studio.pipeline.registry.engines)
    joe = models[0]
    assert joe["voices"] == ["joe"] and joe["sample_rate"] == 22050


def fetch_wav(url: str) -> tuple[np.ndarray, int]:
    return sf.read(io.BytesIO(httpx.get(url, timeout=30).content), dtype="float32")


def test_synthesize_returns_playable_audio_through_the_gate(studio, figure):
    pipeline = studio.pipeline
    turns, served = pipeline.gate.turns_served, mcp_requests(studio.url)
    text = "An agent asked for this sentence. It came back as a file."
    result = run(mcp_call(studio.url, lambda s: s.call_tool("synthesize", {"text": text})))
    assert not result.isError, result.content
    # Without a progress token Gradio answers with one text: its two outputs as a Python list,
    # the file data (with the download URL) and the latency record.
    file_data, record = ast.literal_eval(result.content[0].text)
    assert file_data["url"].startswith(studio.url) and file_data["url"].endswith(".wav")
    audio, rate = fetch_wav(file_data["url"])
    seconds = audio.shape[0] / rate
    figure(f"MCP synthesize: {seconds:.2f} s of audio, {record['total_ms']:.0f} ms in the pipeline")
    assert rate == 22050 and 1.5 < seconds < 8 and np.sqrt(np.mean(audio ** 2)) > 0.02
    assert abs(record["audio_seconds"] - seconds) < 0.01 and record["model"] == "en_US-joe-medium"
    # The same gate and the same latency record as every other caller, labelled as MCP.
    assert pipeline.gate.turns_served > turns
    assert mcp_requests(studio.url) == served + 1
    assert pipeline.gate.queue_depth == 0 and not pipeline.gate.busy


def test_a_client_that_follows_progress_gets_the_url_and_the_record_apart(studio):
    steps = []

    async def progress(done, total, message):
        steps.append(message)

    result = run(mcp_call(studio.url, lambda s: s.call_tool(
        "synthesize", {"text": "First sentence. Second sentence."}, progress_callback=progress)))
    assert not result.isError, result.content
    url, record = result.content[0].text, ast.literal_eval(result.content[1].text)
    audio, rate = fetch_wav(url)
    assert abs(audio.shape[0] / rate - record["audio_seconds"]) < 0.01
    assert steps  # Gradio relays the queue's status (and the chunk progress) as notifications


def test_a_bad_call_is_an_error_the_agent_can_read_and_the_app_keeps_serving(studio):
    async def calls(session):
        bad = await session.call_tool("synthesize", {"text": "hi", "voice": "nobody"})
        good = await session.call_tool("synthesize", {"text": "Still here."})
        return bad, good

    bad, good = run(mcp_call(studio.url, calls))
    assert bad.isError and "nobody" in bad.content[0].text
    assert not good.isError and ast.literal_eval(good.content[0].text)[0]["url"].endswith(".wav")


def test_behind_the_ui_login_tools_are_listed_but_calls_refused(serve):
    """Gradio's MCP server calls the app through its own client, which cannot log in."""
    from fakes import FakeEngine, fake_pipeline

    url = serve(fake_pipeline(FakeEngine(infer_s=0.001), api_key="s3cret", ui_auth=True))

    async def calls(session):
        return (await session.list_tools()).tools, await session.call_tool(
            "synthesize", {"text": "hi", "model": "fake", "voice": "a"})

    tools, result = run(mcp_call(url, calls))
    assert {t.name for t in tools} == {"synthesize", "models", "captioned"}
    assert result.isError and "login" in result.content[0].text


def test_ctrl_c_after_an_mcp_call_stops_at_once_without_a_traceback():
    """Gradio's MCP tools call the events through a client that keeps a session heartbeat
    open; a Ctrl+C must end it rather than wait out the drain and cancel it mid-response."""
    import os
    import signal
    import time

    from conftest import free_port, start_app

    env = dict(os.environ, TTS_MODELS="joe", GRADIO_SERVER_PORT=str(free_port()))
    proc, url = start_app(env)
    try:
        result = run(mcp_call(url, lambda s: s.call_tool(
            "synthesize", {"text": "one call", "model": "", "voice": "", "speed": 1.0,
                           "seed": -1})))
        assert not result.isError
        asked = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        took = time.monotonic() - asked
    finally:
        if proc.poll() is None:
            proc.kill()
    log = proc.output.text()
    assert "Traceback" not in log and "timeout graceful shutdown" not in log, log[-3000:]
    assert proc.returncode == 0 and took < 8, f"stopped in {took:.1f} s, exit {proc.returncode}"
