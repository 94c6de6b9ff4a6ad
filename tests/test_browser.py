"""The real UI in a real browser: Debian's Chromium driven by Playwright.

Chromium comes from Debian (`apt-get install chromium`; scripts/install-test-deps.sh does
it); Playwright's own browser download is never used.
"""

import io
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
import soundfile as sf

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
SENTENCE = "Hello there. This page was served by a warm studio, and it speaks at once."

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ui(studio):
    from playwright.sync_api import sync_playwright

    assert shutil.which("chromium") or Path(CHROMIUM).exists(), \
        "Debian's chromium is missing: run scripts/install-test-deps.sh"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(studio.url)
        rendered(page)
        yield page
        browser.close()


# What the tests use of the page. Gradio renders each kind of component once its code has
# loaded: on a loaded machine the hidden Generate button can come after the text box.
RENDERED = ["#text textarea", "#speak", "#stop", "#generate", "#stream-gradio", "#audio",
            "#player .player-config", "#timing", "#spoken"]


def rendered(page) -> None:
    """Wait until every component the tests use is in the document (hidden ones too)."""
    page.wait_for_function("(s) => s.every((q) => document.querySelector(q))", arg=RENDERED,
                           timeout=30_000)


def open_record(page) -> None:
    """The latency JSON is folded away under the timing bar: unfold it once."""
    if page.query_selector("#latency") is None:
        page.click("#latency-box button")
        page.wait_for_selector("#latency", timeout=10_000)


def served_count(page) -> int:
    return int(re.search(r"served (\d+)", page.inner_text("#live-stats")).group(1))


def test_generate_plays_real_audio_and_the_panels_show_numbers(ui, studio):
    page = ui
    before = served_count(page)
    page.fill("#text textarea", SENTENCE)
    assert page.inner_text("#char-count").startswith(f"{len(SENTENCE)} / 5000")
    page.evaluate("() => document.querySelector('#generate').click()")  # hidden: /synthesize
    link = page.wait_for_selector("#audio a[download]", timeout=30_000)
    audio = httpx.get(httpx.URL(studio.url).join(link.get_attribute("href")), timeout=30).content
    info = sf.info(io.BytesIO(audio))
    assert info.samplerate == 22050 and 3 < info.duration < 10
    open_record(page)
    page.wait_for_function("() => /total_ms/.test(document.querySelector('#latency').innerText)",
                           timeout=30_000)
    latency = page.inner_text("#latency")
    assert re.search(r"total_ms\W+\d", latency) and re.search(r"rtf\W+0\.\d", latency)
    deadline = time.time() + 15  # the live panel refreshes on a timer
    while served_count(page) <= before and time.time() < deadline:
        time.sleep(0.5)
    assert served_count(page) > before
    assert re.search(r"\d+ ms", page.inner_text("#live-stats"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-after-generate.png"), full_page=True)


def stream_once(page, previous_src: str = "") -> dict:
    page.click("#speak")
    page.wait_for_function(
        "(old) => { const a = document.querySelector('#stream-audio audio');"
        " return a && a.src && a.src !== old && isFinite(a.duration) && a.duration > 2"
        " && a.currentTime > 1 }", arg=previous_src, timeout=60_000)
    return page.evaluate("() => { const a = document.querySelector('#stream-audio audio');"
                         " return {src: a.src, duration: a.duration, played: a.currentTime} }")


def test_stream_plays_and_plays_again(ui, figure):
    """Gradio's own streaming player: what Stream falls back to where the page's Web Audio
    player cannot play (test_browser_ui.py tests that one)."""
    page = ui
    page.evaluate("() => { window.studio.forceGradio = true }")
    page.fill("#text textarea", SENTENCE)
    try:
        first = stream_once(page)
        second = stream_once(page, first["src"])  # the second clip must not be silent (gradio 13807)
    finally:  # the page is shared with the tests after this one
        page.evaluate("() => { window.studio.forceGradio = false }")
    figure(f"browser: streamed twice: {first['duration']:.1f} s and {second['duration']:.1f} s of "
           f"audio, played {first['played']:.1f} s and {second['played']:.1f} s")
    assert second["src"] != first["src"]
    for clip in (first, second):
        assert 3 < clip["duration"] < 10 and clip["played"] > 1
    assert "Gradio's player" in page.inner_text("#player")
    page.screenshot(path=str(ARTIFACTS / "ui-after-stream.png"), full_page=True)


def pick(page, dropdown: str, label: str) -> None:
    """Choose an option of a Gradio dropdown the way a person does: open it, click the option."""
    page.click(f"{dropdown} input")
    page.click(f"{dropdown} ul[role='listbox'] li:has-text('{label}')")


def test_switching_model_switches_voices_controls_and_note_at_once(ui, studio):
    page = ui
    pick(page, "#model", "tiny-vctk")
    page.wait_for_function("() => document.querySelector('#model-note').innerText"
                           ".includes('tiny-vctk')", timeout=10_000)
    page.click("#voice input")
    voices = page.inner_text("#voice ul[role='listbox']")
    assert all(f"speaker_{i}" in voices for i in range(3)) and "joe" not in voices
    page.click("#voice ul[role='listbox'] li:has-text('speaker_1')")
    page.fill("#text textarea", "hello from another model")
    page.evaluate("() => document.querySelector('#generate').click()")  # hidden: /synthesize
    open_record(page)
    page.wait_for_function("() => /tiny-vctk/.test(document.querySelector('#latency').innerText)",
                           timeout=30_000)
    link = page.wait_for_selector("#audio a[download]", timeout=30_000)
    audio = httpx.get(httpx.URL(studio.url).join(link.get_attribute("href")), timeout=30).content
    assert sf.info(io.BytesIO(audio)).samplerate == 16000
    pick(page, "#model", "en_US-joe-medium")  # back to the default for the other tests
    page.wait_for_function("() => document.querySelector('#model-note').innerText"
                           ".includes('en_US-joe-medium')", timeout=10_000)
