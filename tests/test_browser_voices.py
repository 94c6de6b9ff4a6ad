"""The Voices tab in Chromium over a tiny CSM (a real cloning family): a voice cloned from an
uploaded WAV, its kept part and transcript shown, previewed, saved, seen in the Voice picker
of a second open page without a reload, deleted and gone from it.

Debian's Chromium driven by Playwright, as in test_browser_ui.py.
"""

import io
import re
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from test_browser import ARTIFACTS, CHROMIUM, pick
from tiny_models import make_tiny_csm
from tts_core import SpeechRequest
from tts_core.plan import make_plan

pytestmark = pytest.mark.slow
PHONE = {"width": 390, "height": 844}
CSM_RATE = 24000
CSM_MAX_S = 10.0  # CSM's clip limits: 2 to 10 s with the transcript
TINY_CSM_CHUNK_S = 0.96  # the tiny CSM speaks at most 12 frames (0.96 s) per chunk
UPLOAD_LIMIT = 2_000_000  # TTS_MAX_UPLOAD_BYTES here: the clip below is well under it
# Joe reads about 14 s of this: longer than CSM takes, with pauses between sentences.
SPOKEN = ("The quick brown fox jumps over the lazy dog. Then it runs far away into the green "
          "forest. Nobody sees it again for a very long time. In the spring it comes back "
          "home, tired and hungry, and sleeps for three days.")


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def cloning(studio, tmp_path_factory):
    """joe beside a tiny CSM, voices in a folder of their own, served as app.py serves them:
    (url, pipeline)."""
    from conftest import free_port
    from tts_core import Pipeline, Settings
    from tts_core.server import StudioServer
    from ui.studio import build_demo

    csm = make_tiny_csm(tmp_path_factory.mktemp("tiny") / "csm")
    voices_dir = tmp_path_factory.mktemp("voices")
    pipeline = Pipeline.from_settings(Settings.from_env({
        "TTS_MODELS": f"joe?noise_scale=0&noise_w=0,csm:{csm}?name=tiny-csm",
        "TTS_VOICES_DIR": str(voices_dir), "TTS_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)}))
    server = StudioServer("127.0.0.1", free_port()).start()
    server.attach(studio.build_server(pipeline, build_demo(pipeline, streaming=False),
                                      server.readiness))
    yield server.url, pipeline
    server.stop()


@pytest.fixture(scope="module")
def speech_wav(cloning, tmp_path_factory) -> str:
    """Joe reading SPOKEN, half a second of silence at each end: the clip a person uploads."""
    _, pipeline = cloning
    result = pipeline.synthesize(SpeechRequest(SPOKEN, model="en_US-joe-medium"))
    pad = np.zeros(result.sample_rate // 2, np.float32)
    path = tmp_path_factory.mktemp("clips") / "my-voice.wav"
    sf.write(path, np.concatenate([pad, result.audio, pad]), result.sample_rate)
    return str(path)


def open_page(browser, url):
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    failures = []
    page.on("response", lambda r: failures.append(f"{r.status} {r.url}") if r.status >= 500 else None)
    page.failures = failures
    page.goto(url)
    page.wait_for_selector("#text textarea", timeout=30_000)
    page.wait_for_selector("#language input:not([disabled])", timeout=30_000)
    return page


def toast(page, words: str, timeout=30_000) -> str:
    """The text of the toast that says `words`, once it shows."""
    return page.wait_for_function(
        "(w) => [...document.querySelectorAll('[data-testid=toast-body]')]"
        ".map(t => t.innerText).find(t => t.includes(w))", arg=words, timeout=timeout).json_value()


def fetched(page, url: str, selector: str) -> tuple[np.ndarray, int]:
    """The audio file of the player `selector`, as served."""
    link = page.wait_for_selector(f"{selector} a[download]", timeout=60_000)
    data = httpx.get(httpx.URL(url).join(link.get_attribute("href")), timeout=30).content
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    return audio, rate


def voice_options(page) -> list[str]:
    """The Voice picker's options, as a person sees them when it is open (then closed)."""
    page.click("#voice input")
    page.wait_for_selector("#voice ul[role='listbox'] li", timeout=10_000)
    options = page.eval_on_selector_all("#voice ul[role='listbox'] li",
                                        "items => items.map(i => i.innerText.trim())")
    page.keyboard.press("Escape")
    page.evaluate("() => document.activeElement.blur()")  # the next click opens it again
    return options


def wait_for_voice(page, name: str, present: bool, timeout_s: float = 15) -> None:
    """Until the Voice picker offers `name` (or no longer does), opened every half second."""
    deadline = time.monotonic() + timeout_s
    while (name in voice_options(page)) != present:
        assert time.monotonic() < deadline, f"{name!r} {'never came' if present else 'stayed'}"
        page.wait_for_timeout(500)


def test_clone_preview_save_seen_on_another_open_page_then_delete(browser, cloning,
                                                                   speech_wav):
    url, pipeline = cloning
    other = open_page(browser, url)  # a second person's page, open before the voice exists
    pick(other, "#model", "tiny-csm")
    other.wait_for_function("() => document.querySelector('#model-note').innerText"
                            ".includes('tiny-csm')", timeout=10_000)
    assert "narrator" not in voice_options(other)

    page = open_page(browser, url)
    page.get_by_role("tab", name="Voices").click()
    guidance = page.wait_for_selector("#voice-guidance", timeout=10_000).inner_text()
    assert "tiny-csm (csm): 2–10 s of speech, with its transcript" in guidance

    page.set_input_files("#voice-clip input[type=file]", speech_wav)
    page.wait_for_function("() => document.querySelector('#voice-kept-note').innerText"
                           ".includes('Kept')", timeout=60_000)
    note = page.inner_text("#voice-kept-note")
    kept_s, of_s = map(float, re.search(r"Kept ([\d.]+) s of ([\d.]+) s", note).groups())
    assert "(cut at a pause)" in note and of_s == pytest.approx(sf.info(speech_wav).duration, abs=0.05)
    kept, rate = fetched(page, url, "#voice-kept")  # the kept part, on its waveform
    assert kept.shape[0] / rate == pytest.approx(kept_s, abs=0.05) and kept_s <= CSM_MAX_S
    transcript = page.input_value("#voice-transcript textarea")
    assert transcript.lower().startswith("the quick brown fox") and "three days" not in transcript

    page.click("#voice-preview")
    heard, rate = fetched(page, url, "#voice-preview-audio")
    chunks = len(make_plan(SpeechRequest(page.input_value("#voice-preview-text textarea"),
                                         model="tiny-csm"), pipeline.registry,
                           pipeline.settings).chunks)
    assert rate == CSM_RATE and 0 < heard.shape[0] <= chunks * TINY_CSM_CHUNK_S * CSM_RATE
    assert np.abs(heard).max() > 1e-3  # sound, not silence
    assert "narrator" not in pipeline.registry.get("tiny-csm").voices  # nothing kept yet

    page.fill("#voice-name textarea", "narrator")
    page.click("#voice-save")
    page.wait_for_function("() => document.querySelector('#voice-status').innerText"
                           ".includes('Saved narrator')", timeout=60_000)
    assert "narrator" in page.inner_text("#voice-list")
    page.screenshot(path=str(ARTIFACTS / "voices-1280.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(ARTIFACTS / "voices-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 1000})
    wait_for_voice(other, "narrator", present=True)  # no reload

    pick(page, "#voice-pick", "narrator")
    page.click("#voice-delete")
    page.wait_for_function("() => document.querySelector('#voice-status').innerText"
                           ".includes('Deleted narrator')", timeout=30_000)
    wait_for_voice(other, "narrator", present=False)
    assert page.failures == [] and other.failures == []


@pytest.mark.parametrize("kind", ["oversized", "not audio"])
def test_an_oversized_or_non_audio_upload_says_so_on_the_page(browser, cloning, tmp_path, kind):
    url, _ = cloning
    page = open_page(browser, url)
    page.get_by_role("tab", name="Voices").click()
    path = tmp_path / "clip.wav"
    if kind == "oversized":
        path.write_bytes(b"RIFF" + bytes(UPLOAD_LIMIT + 1000))
    else:
        path.write_bytes(b"This is a letter, not a recording. " * 100)
    page.set_input_files("#voice-clip input[type=file]", str(path))
    if kind == "oversized":  # refused before it is sent, in Gradio's words (max_file_size)
        message = toast(page, "exceed the maximum allowed size")
        assert f"{UPLOAD_LIMIT / 2**20:.1f} Mb" in message and "clip.wav" in message
        assert f"Files up to {UPLOAD_LIMIT / 2**20:.1f} MB" in page.inner_text("#voice-guidance")
    else:
        page.wait_for_function("() => document.querySelector('#voice-kept-note').innerText"
                               ".includes('cannot make a voice')", timeout=30_000)
        assert "not an audio file this server can read" in page.inner_text("#voice-kept-note")
    assert page.query_selector("#voice-kept a[download]") is None  # nothing kept
    assert page.failures == []


def test_a_one_off_voice_speaks_on_its_own_page_only_and_goes_when_it_closes(
        browser, cloning, speech_wav):
    url, pipeline = cloning
    csm = pipeline.registry.get("tiny-csm")
    other = open_page(browser, url)
    page = open_page(browser, url)
    page.get_by_role("tab", name="Voices").click()
    page.set_input_files("#voice-clip input[type=file]", speech_wav)
    page.wait_for_function("() => document.querySelector('#voice-kept-note').innerText"
                           ".includes('Kept')", timeout=60_000)
    page.click("#voice-once")
    page.wait_for_function("() => document.querySelector('#voice-status').innerText"
                           ".includes('Nothing is saved')", timeout=60_000)
    (one_off,) = [v for v in csm.voices if "~" in v]

    page.get_by_role("tab", name="Speak").click()
    pick(page, "#model", "tiny-csm")
    page.wait_for_function("() => document.querySelector('#model-note').innerText"
                           ".includes('tiny-csm')", timeout=10_000)
    wait_for_voice(page, "your clip (this session)", present=True)
    pick(page, "#voice", "your clip (this session)")
    page.fill("#text textarea", "Hello there.")
    page.evaluate("() => document.querySelector('#generate').click()")  # hidden: /synthesize
    audio, rate = fetched(page, url, "#audio")
    assert rate == CSM_RATE and np.abs(audio).max() > 1e-3

    pick(other, "#model", "tiny-csm")  # another page never sees it
    other.wait_for_function("() => document.querySelector('#model-note').innerText"
                            ".includes('tiny-csm')", timeout=10_000)
    assert not any("session" in v or "~" in v for v in voice_options(other))
    assert other.failures == [] and page.failures == []

    page.close()  # its heartbeat ends: Gradio's unload forgets the voice
    deadline = time.monotonic() + 30
    while one_off in csm.voices:
        assert time.monotonic() < deadline, "the one-off voice outlived its page"
        other.wait_for_timeout(500)
    assert list(Path(pipeline.settings.voices_dir).iterdir()) == []  # never on disk


@pytest.fixture(scope="module")
def mic_browser(playwright):
    """Chromium with its fake microphone (a beeping tone) allowed without asking."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + [
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
    yield browser
    browser.close()


def test_a_recorded_clip_shows_its_kept_part_with_the_typed_transcript(mic_browser, cloning):
    url, _ = cloning
    page = open_page(mic_browser, url)
    page.context.grant_permissions(["microphone"])
    page.get_by_role("tab", name="Voices").click()
    page.fill("#voice-transcript textarea", "A beep for a voice.")
    page.click("#voice-clip button[aria-label='Record audio']")
    page.click("#voice-clip button:has-text('Record')")
    page.wait_for_timeout(4000)
    page.click("#voice-clip button:visible:has-text('Stop')")
    page.wait_for_function("() => document.querySelector('#voice-kept-note').innerText"
                           ".match(/Kept|cannot/)", timeout=60_000)
    note = page.inner_text("#voice-kept-note")
    kept_s, of_s = map(float, re.search(r"Kept ([\d.]+) s of ([\d.]+) s", note).groups())
    assert 3.0 <= of_s <= 6.0 and 2.0 <= kept_s <= of_s  # about the 4 s recorded
    kept, rate = fetched(page, url, "#voice-kept")
    assert kept.shape[0] / rate == pytest.approx(kept_s, abs=0.05)
    assert page.input_value("#voice-transcript textarea") == "A beep for a voice."
    assert page.failures == []
