"""The page's loudness, Dia helper, charts and small things (issue 25), in Chromium as in
test_browser_ui.py: what a user sees and hears, each test red before its fix."""

import io
import re

import httpx
import pytest
import soundfile as sf

from test_browser_ui import PHONE, browser, open_page, pick, toast  # noqa: F401  (the module's browser)
from tts_core.loudness import integrated_lufs

pytestmark = pytest.mark.slow
MAX_ERROR_LU = 1.0  # the tolerance the HTTP loudness tests use (test_loudness.py)
TEXT = "Close the front door, and bring the letters in before the rain starts."


def result_file(page, url: str, before: str | None) -> tuple[bytes, str]:
    """The Result player's file once it is a new one (not `before`): its bytes and its link."""
    found = page.wait_for_function(
        "(b) => { const a = document.querySelector('#audio a[download]');"
        " return a && a.getAttribute('href') !== b ? a.getAttribute('href') : null }",
        arg=before, timeout=60_000)
    href = found.json_value()
    return httpx.get(httpx.URL(url).join(href), timeout=30).content, href


def shown_record(page, target: str) -> str:
    """The latency record the page shows (its JSON panel, unfolded once), once it names the
    loudness target `target` (a number, or null for off)."""
    if not page.is_visible("#latency"):
        page.click("#latency-box button")
    page.wait_for_function("(t) => new RegExp('loudness_target_lufs\\\\W+' + t + '\\\\b')"
                           ".test(document.querySelector('#latency')?.innerText || '')",
                           arg=target, timeout=30_000)
    return page.inner_text("#latency")


def speak_at(page, url, target_label: str, before):
    page.click(f"#loudness label:has-text('{target_label}')")
    page.fill("#text textarea", TEXT)
    page.click("#speak")
    return result_file(page, url, before)


def test_speak_plays_at_the_loudness_picked_and_the_record_says_so(browser, quiet_url, figure):
    """-16 through the page's Web Audio player (the HTTP API), -23 through its Gradio fallback:
    the Result's file measures the target within 1 LU, and the record shows it."""
    page = open_page(browser, quiet_url)
    page.wait_for_selector("#loudness", timeout=10_000)
    assert page.is_checked("#loudness input[value='off']")
    whole, href = speak_at(page, quiet_url, "-16 LUFS", None)
    audio, rate = sf.read(io.BytesIO(whole), dtype="float32")
    streamed = integrated_lufs(audio, rate)
    assert "Streamed through Web Audio" in page.inner_text("#player")
    record = shown_record(page, "-16")
    assert re.search(r"loudness_lufs\W+-1[5-7]\.\d", record), record  # the measured one
    page.evaluate("() => { window.studio.forceGradio = true }")  # the Gradio fallback
    whole, _ = speak_at(page, quiet_url, "-23 LUFS", href)
    audio, rate = sf.read(io.BytesIO(whole), dtype="float32")
    fallback = integrated_lufs(audio, rate)
    assert "Gradio's player" in page.inner_text("#player")
    shown_record(page, "-23")
    figure(f"page loudness: Speak at -16 LUFS measured {streamed:.2f}, its Gradio fallback at "
           f"-23 measured {fallback:.2f} LUFS")
    assert abs(streamed + 16) <= MAX_ERROR_LU and abs(fallback + 23) <= MAX_ERROR_LU
    page.close()
