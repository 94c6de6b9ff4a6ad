"""Every Gradio route bounded (issue 30): uploads by size, every request body app-wide (by its
Content-Length and by counting what arrives), and the page's private `played_back` event by
what a real stream can be. Loopback only; each body is refused long before it is all sent."""

from __future__ import annotations

import json
import select
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fakes import FakeEngine, fake_pipeline

MB = 1_000_000
PIECE = 256 * 1024


def post_raw(url: str, path: str, headers: dict, total: int, chunked: bool = False,
             frame: tuple[bytes, bytes] = (b"", b""), timeout: float = 30.0
             ) -> tuple[int, str, int]:
    """POST a body of `total` bytes (`frame`'s head, b"x"s, its tail) in pieces, stopping as
    soon as the server answers: (status, body, bytes sent)."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    sent, deadline = 0, time.time() + timeout
    try:
        while sent < total and time.time() < deadline:
            if select.select([sock], [], [], 0)[0]:
                break  # answered before the body was all sent
            piece = b"x" * min(PIECE, total - sent - len(frame[1]))
            piece = (frame[0] if sent == 0 else b"") + piece
            piece += frame[1] if sent + len(piece) + len(frame[1]) >= total else b""
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        if chunked and sent >= total:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed: read what it said
    reply = b""
    while time.time() < deadline:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not data:
            break
        reply += data
    sock.close()
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line, f"no answer after {sent} bytes"
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode(errors="replace"), sent


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def bounded(serve, tmp_path, monkeypatch):
    """A fake-engine app (8 kHz; 1 MB uploads; at most 60 s of speech a request) whose Gradio
    upload folder is this test's own: (url, pipeline, upload folder)."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    pipeline = fake_pipeline(FakeEngine(infer_s=0.001), max_upload_bytes=MB, max_speech_s=60.0)
    return serve(pipeline), pipeline, tmp_path


BOUNDARY = "bound4ry"
UPLOAD_HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
UPLOAD_FRAME = ((f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; "
                 f"filename=\"clip.wav\"\r\nContent-Type: audio/wav\r\n\r\n").encode(),
                f"\r\n--{BOUNDARY}--\r\n".encode())


def upload_body(size: int) -> tuple[dict, bytes]:
    """A one-file upload form as a browser sends it, the file `size` bytes."""
    return UPLOAD_HEADERS, UPLOAD_FRAME[0] + b"x" * size + UPLOAD_FRAME[1]


def test_a_60_mb_upload_is_refused_and_nothing_is_stored(bounded, figure):
    url, _, folder = bounded
    before = files_under(folder)
    started = time.perf_counter()
    status, body, sent = post_raw(url, "/gradio_api/upload", UPLOAD_HEADERS, 60 * MB,
                                  frame=UPLOAD_FRAME)
    figure(f"60 MB upload: {status} after {sent / MB:.1f} MB sent, "
           f"{time.perf_counter() - started:.2f} s")
    assert status == 413 and "larger than" in json.loads(body)["error"]["message"]
    assert sent < 10 * MB and files_under(folder) == before
    # Chunked (no length said): an upload is refused before its first byte is written.
    status, body, _ = post_raw(url, "/gradio_api/upload", UPLOAD_HEADERS, 60 * MB, chunked=True,
                               frame=UPLOAD_FRAME)
    assert status == 411 and "Content-Length" in body
    assert files_under(folder) == before


def test_an_upload_over_max_file_size_is_refused_by_gradio_and_nothing_is_stored(bounded):
    """Under the app-wide body bound but over TTS_MAX_UPLOAD_BYTES: Gradio's own check."""
    url, _, folder = bounded
    before = files_under(folder)
    headers, body = upload_body(2 * MB)
    r = httpx.post(f"{url}/gradio_api/upload", content=body, headers=headers, timeout=30)
    assert r.status_code == 413 and "maximum allowed size of 1000000 bytes" in r.text
    assert files_under(folder) == before
    headers, body = upload_body(1000)  # a small one is taken (and kept, for the cache's TTL)
    r = httpx.post(f"{url}/gradio_api/upload", content=body, headers=headers, timeout=30)
    assert r.status_code == 200 and len(files_under(folder) - before) == 1


def test_the_body_bound_covers_every_gradio_route(bounded):
    url, _, _ = bounded
    json_headers = {"Content-Type": "application/json"}
    for path in ("/gradio_api/call/synthesize", "/gradio_api/run/predict",
                 "/gradio_api/queue/join", "/gradio_api/mcp/", "/v1/audio/speech"):
        status, body, sent = post_raw(url, path, json_headers, 100 * MB)
        assert (status, sent < 10 * MB) == (413, True), (path, status, body[:200])
        status, body, sent = post_raw(url, path, json_headers, 100 * MB, chunked=True)
        assert (status, sent < 30 * MB) == (413, True), (path, status, body[:200])
        assert "larger than" in body
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200  # serving on


def played_back_index(url: str) -> int:
    """The fn_index of the page's private `played_back` event (the played-back box's change)."""
    config = httpx.get(f"{url}/config", timeout=10).json()
    box = next(c["id"] for c in config["components"]
               if c.get("props", {}).get("elem_id") == "played-back")
    return next(d["id"] for d in config["dependencies"] if [box, "change"] in d["targets"])


def test_played_back_is_bounded_by_what_a_real_stream_can_be(serve, figure):
    # Uploads of up to 5 MB: the body bound lets a 4 MB hand-back through to the event itself.
    url = serve(fake_pipeline(FakeEngine(infer_s=0.001), max_upload_bytes=5 * MB,
                              max_speech_s=60.0))
    fn_index = played_back_index(url)

    def call(payload: str) -> httpx.Response:
        body = {"data": [payload, "hi", "fake"], "fn_index": fn_index, "session_hash": "s1"}
        return httpx.post(f"{url}/gradio_api/run/predict", json=body, timeout=60)

    # 53 MB (the review's payload): past the app-wide bound, refused before it is read.
    status, body, sent = post_raw(url, "/gradio_api/run/predict",
                                  {"Content-Type": "application/json"}, 53 * MB)
    assert status == 413 and sent < 10 * MB
    # Past what 60 s at 8 kHz can be, though under the body bound: refused before parsing.
    started = time.perf_counter()
    r = call(json.dumps({"pcm": "A" * 4 * MB, "rate": 8000}))
    figure(f"played_back 4 MB over its bound: refused in {time.perf_counter() - started:.2f} s")
    assert "a stream of at most 60 seconds is at most" in r.text, r.text[:300]
    # Under that, but more audio than 60 s at the rate it claims: refused, nothing kept.
    r = call(json.dumps({"pcm": "AAAA" * (2 * 8000 * 61 // 3), "rate": 8000}))
    assert "more than 60 seconds is not kept" in r.text, r.text[:300]
    # A real stream's hand-back (one second) is still taken.
    pcm = "AAAA" * (2 * 8000 // 3)
    r = call(json.dumps({"pcm": pcm, "rate": 8000, "text": "hi", "model": "fake"}))
    assert r.status_code == 200 and "error" not in r.text[:200], r.text[:300]


def test_uploads_are_deleted_with_the_cache(serve, tmp_path, monkeypatch):
    """An upload nobody uses goes after TTS_CACHE_TTL, as returned audio does."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    url = serve(fake_pipeline(FakeEngine(infer_s=0), cache_ttl_s=2))
    headers, body = upload_body(1000)
    r = httpx.post(f"{url}/gradio_api/upload", content=body, headers=headers, timeout=30)
    assert r.status_code == 200
    stored = Path(r.json()[0])
    assert stored.exists() and stored.is_relative_to(tmp_path)
    deadline = time.time() + 15
    while time.time() < deadline and stored.exists():
        time.sleep(0.5)
    assert not stored.exists(), "Gradio kept an upload past its TTL"
