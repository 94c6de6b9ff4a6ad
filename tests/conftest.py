"""Shared fixtures: tiny models, a warm pipeline, and the real Gradio app on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

# The tiny test models are too small to gain from a second thread, and on a shared 2-core
# machine torch's thread hand-offs made them 20-50x slower. (The app's TTS_CPU_THREADS.)
torch.set_num_threads(1)

from tiny_models import (make_tiny_bark, make_tiny_speecht5, make_tiny_text_to_audio,  # noqa: E402
                         make_tiny_vits, write_xvectors)

from tts_core import Pipeline, Settings  # noqa: E402
from tts_core.config import ModelSpec  # noqa: E402
from tts_core.server import StudioServer, free_port, wait_ready  # noqa: E402,F401 (free_port: for the tests)


@pytest.fixture(scope="session")
def tiny_vits_dir(tmp_path_factory) -> Path:
    return make_tiny_vits(tmp_path_factory.mktemp("models") / "tiny-vits")


@pytest.fixture(scope="session")
def tiny_vits_multi_dir(tmp_path_factory) -> Path:
    return make_tiny_vits(tmp_path_factory.mktemp("models") / "tiny-vctk", num_speakers=3)


@pytest.fixture(scope="session")
def tiny_speecht5_dir(tmp_path_factory) -> Path:
    return make_tiny_speecht5(tmp_path_factory.mktemp("models") / "tiny-speecht5")


@pytest.fixture(scope="session")
def xvector_dir(tmp_path_factory) -> Path:
    """Two SpeechT5 voices: 512-value x-vectors as .npy files, like assets/voices/speecht5/."""
    return write_xvectors(tmp_path_factory.mktemp("xvectors"))


@pytest.fixture(scope="session")
def tiny_bark_dir(tmp_path_factory) -> Path:
    return make_tiny_bark(tmp_path_factory.mktemp("models") / "tiny-bark")


@pytest.fixture(scope="session")
def tiny_csm_dir(tmp_path_factory) -> Path:
    return make_tiny_text_to_audio(tmp_path_factory.mktemp("models") / "tiny-csm")


@pytest.fixture(scope="session")
def family_specs(tiny_vits_dir, tiny_speecht5_dir, xvector_dir, tiny_bark_dir, tiny_csm_dir) -> str:
    """TTS_MODELS naming one tiny model of each transformers family, as a person would write it."""
    return (f"vits:{tiny_vits_dir}?name=tiny-vits,"
            f"speecht5:{tiny_speecht5_dir}?name=tiny-speecht5&voices={xvector_dir},"
            f"bark:{tiny_bark_dir}?name=tiny-bark,"
            f"transformers:{tiny_csm_dir}?name=tiny-csm")


@pytest.fixture(scope="session")
def model_specs(tiny_vits_dir, tiny_vits_multi_dir) -> str:
    """TTS_MODELS for the suite: the embedded voice first (the default), then two tiny VITS."""
    return f"joe,vits:{tiny_vits_dir}?name=tiny-vits,vits:{tiny_vits_multi_dir}?name=tiny-vctk"


@pytest.fixture(scope="session")
def pipeline(model_specs) -> Pipeline:
    return Pipeline.from_settings(Settings.from_env({"TTS_MODELS": model_specs}))


@pytest.fixture(scope="session")
def quiet_pipeline() -> Pipeline:
    """The embedded voice with its noise off: the same text always makes the same samples."""
    return Pipeline.from_settings(Settings.from_env({"TTS_MODELS": QUIET_JOE}))


QUIET_JOE = "joe?noise_scale=0&noise_w=0"
ROOT = Path(__file__).resolve().parent.parent


def speak(engine, text, **kw):
    """`tts_core.engines.speak` (what the warm-up and the self-check run) with these params
    (voice: the engine's default)."""
    from tts_core.engines import SynthesisParams, speak as speak_once

    return speak_once(engine, text, SynthesisParams(voice=kw.pop("voice", engine.default_voice), **kw))


class ChildOutput:
    """A child process's stream read to the end by a thread, so the child never blocks on a
    full pipe; the test reads it with text(), and a failing test's report shows its tail."""

    def __init__(self, name: str, proc: subprocess.Popen, stream):
        self.name, self.proc, self._parts = name, proc, []
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()
        CHILDREN.append(self)

    def _read(self, stream) -> None:
        for line in stream:
            self._parts.append(line)

    def text(self) -> str:
        """Everything so far; all of it once the child has exited."""
        if self.proc.poll() is not None:
            self._reader.join(10)
        return "".join(self._parts)


CHILDREN: list[ChildOutput] = []  # running children, shown in a failing test's report
CHILD_TAIL_CHARS = 4000


def drain(name: str, proc: subprocess.Popen) -> ChildOutput:
    """Read `proc`'s stderr (opened with stderr=PIPE, text=True) into a buffer as it comes."""
    proc.output = ChildOutput(name, proc, proc.stderr)
    return proc.output


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        for child in CHILDREN:
            report.sections.append((f"{child.name} stderr (last {CHILD_TAIL_CHARS} characters)",
                                    child.text()[-CHILD_TAIL_CHARS:]))
    if call.when == "teardown":  # a child that outlives its test (a module's app) stays listed
        CHILDREN[:] = [child for child in CHILDREN if child.proc.poll() is None]
    return report


def start_app(env: dict, timeout: float = 300) -> tuple[subprocess.Popen, str]:
    """`python app.py` with `env` (GRADIO_SERVER_PORT set), returned once /ready says 200.
    Its stderr is drained as it comes: `proc.output.text()`."""
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    output = drain("app.py", proc)
    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}"
    if wait_ready(url, timeout, alive=lambda: proc.poll() is None):
        return proc, url
    proc.kill()
    proc.wait()
    raise AssertionError(f"app.py was not ready within {timeout} s: {output.text()[-2000:]}")


@pytest.fixture(scope="session")
def studio(model_specs):
    """The real app module: imported (which warm-loads), served as `python app.py` serves it."""
    os.environ["TTS_MODELS"] = model_specs
    import app

    server = StudioServer("127.0.0.1", free_port()).start()
    server.attach(app.build_server(app.pipeline, app.demo, server.readiness))
    app.url = server.url
    yield app
    server.stop()


@pytest.fixture
def serve(studio):
    """Serve another pipeline (a fake engine, a small gate) through the same app wiring."""
    from ui.studio import build_demo

    servers = []

    def start(pipeline, streaming=False) -> str:
        server = StudioServer("127.0.0.1", free_port()).start()
        demo = build_demo(pipeline, streaming=streaming)
        server.attach(studio.build_server(pipeline, demo, server.readiness))
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def quiet_url(studio, quiet_pipeline):
    """The real app wiring (Gradio UI + HTTP API) over the noise-off voice: exact lengths."""
    from ui.studio import build_demo

    server = StudioServer("127.0.0.1", free_port()).start()
    demo = build_demo(quiet_pipeline, streaming=False)
    server.attach(studio.build_server(quiet_pipeline, demo, server.readiness))
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def client(studio):
    from gradio_client import Client

    return Client(studio.url, verbose=False)


def embedded_spec() -> ModelSpec:
    return ModelSpec.parse("joe")


FIGURES: list[str] = []


@pytest.fixture
def figure():
    """Report a measured figure: it is printed in the run's summary, passed or not."""
    return FIGURES.append


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("figures measured by this run")
        for line in FIGURES:
            terminalreporter.write_line(line)
