"""An upload over TTS_MAX_UPLOAD_BYTES says so on the page (issue 30), in Chromium as in
test_browser_ui.py: Gradio checks the size in the browser, before sending, and shows a toast."""

import numpy as np
import pytest

from test_browser_ui import browser, open_page, pick  # noqa: F401  (the module's browser)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_uploads_url(tiny_speecht5_dir, xvector_dir):
    """A SpeechT5 model (the page's x-vector upload box) and uploads of at most 100 kB."""
    from conftest import free_port
    import app
    from tts_core import Pipeline, Settings
    from tts_core.server import StudioServer
    from ui.studio import build_demo

    pipeline = Pipeline.from_settings(Settings.from_env({
        "TTS_MODELS": f"speecht5:{tiny_speecht5_dir}?name=tiny-speecht5&voices={xvector_dir}",
        "TTS_MAX_UPLOAD_BYTES": "100000"}))
    server = StudioServer("127.0.0.1", free_port()).start()
    server.attach(app.build_server(pipeline, build_demo(pipeline, streaming=False),
                                   server.readiness))
    yield server.url
    server.stop()


def test_an_oversized_upload_is_refused_on_the_page_with_a_message(browser, small_uploads_url,
                                                                    tmp_path):
    page = open_page(browser, small_uploads_url)
    uploads = []
    page.on("request", lambda r: uploads.append(r.url) if r.method == "POST"
            and "/gradio_api/upload?" in r.url + "?" else None)
    page.wait_for_selector("#xvector-box", state="visible", timeout=10_000)
    page.click("#xvector-box button")
    big = tmp_path / "voice.npy"
    np.save(big, np.zeros(60_000, dtype=np.float32))  # 240 kB
    page.set_input_files("#xvector input[type=file]", str(big))
    found = page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=toast-body]')].map(t => t.innerText)"
        ".join(' | ') || null", timeout=15_000)
    message = found.json_value()
    assert 'File(s) exceed the maximum allowed size of 97.7 Kb: "voice.npy"' in message, message
    assert page.locator("#xvector a").count() == 0 and uploads == []  # never sent
    page.close()
