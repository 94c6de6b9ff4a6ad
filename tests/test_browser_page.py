"""The page's loudness, Dia helper, charts and small things (issue 25), in Chromium as in
test_browser_ui.py: what a user sees and hears, each test red before its fix."""

import io
import re

import httpx
import pytest
import soundfile as sf

from test_browser_bounds import small_uploads_url  # noqa: F401  (TTS_MAX_UPLOAD_BYTES 100000)
from test_browser_ui import PHONE, browser, families_url, open_page, pick, toast  # noqa: F401
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


@pytest.fixture(scope="module")
def dia_url(tmp_path_factory):
    """The embedded voice first, a tiny Dia beside it."""
    from conftest import free_port
    import app
    from tiny_models import make_tiny_dia
    from tts_core import Pipeline, Settings
    from tts_core.server import StudioServer
    from ui.studio import build_demo

    folder = make_tiny_dia(tmp_path_factory.mktemp("models") / "tiny-dia")
    pipeline = Pipeline.from_settings(Settings.from_env(
        {"TTS_MODELS": f"joe,dia:{folder}?name=tiny-dia"}))
    server = StudioServer("127.0.0.1", free_port()).start()
    server.attach(app.build_server(pipeline, build_demo(pipeline, streaming=False),
                                   server.readiness))
    yield server.url
    server.stop()


def test_the_dialogue_helper_shows_for_dia_only_and_inserts_its_example(browser, dia_url):
    from tts_core.engines.dia import DIA_DIALOGUE

    page = open_page(browser, dia_url)
    assert not page.is_visible("#dialogue-box")  # Piper's joe: no speakers in its text
    pick(page, "#model", "tiny-dia")
    page.wait_for_selector("#dialogue-box", state="visible", timeout=15_000)
    help_text = page.inner_text("#dialogue-help")
    assert "[S1] and [S2]" in help_text and "(laughs)" in help_text and "(clears throat)" in help_text
    assert "Text without a tag is spoken by [S1]" in help_text
    page.click("#dialogue-example")
    page.wait_for_function("(t) => document.querySelector('#text textarea').value === t",
                           arg=DIA_DIALOGUE.example, timeout=10_000)
    pick(page, "#model", "en_US-joe-medium")
    page.wait_for_selector("#dialogue-box", state="hidden", timeout=15_000)
    page.close()


# The charts are SVG (Gradio's LinePlot draws through Vega with the svg renderer): what each
# chart draws, its y axis' labels, and where its legend ends, as the browser laid them out.
CHART = """(c) => { const box = document.querySelector(c), svg = box.querySelector('svg');
  if (!svg) return null;
  const y = [...svg.querySelectorAll('g[aria-label^="Y-axis"] .role-axis-label text')];
  const legend = svg.querySelector('.role-legend');
  return {points: svg.querySelectorAll('.role-mark.plot_marks.mark-symbol path').length,
          lines: svg.querySelectorAll('.role-mark.plot_marks.mark-line path').length,
          y: y.map(t => t.textContent),
          x: [...svg.querySelectorAll('g[aria-label^="X-axis"] .role-axis-label text')].map(t => t.textContent),
          legend_right: legend ? legend.getBoundingClientRect().right : null,
          caption_bottom: box.querySelector('p.caption')?.getBoundingClientRect().bottom,
          bottom: box.getBoundingClientRect().bottom,
          right: box.getBoundingClientRect().right, text: box.innerText} }"""


def test_the_charts_read_on_a_phone_a_point_whole_numbers_and_a_legend_that_fits(browser, serve):
    """At 390 px: one request is drawn as points (not a line), the axes count whole ms and whole
    requests (no label twice), the legend ends inside its chart, the page does not scroll
    sideways, and the per-model table stays within the screen."""
    from fakes import FakeEngine, fake_pipeline
    from tts_core import SpeechRequest

    pipeline = fake_pipeline(FakeEngine(infer_s=0.01))
    page = open_page(browser, serve(pipeline), viewport=PHONE)
    page.wait_for_function("() => document.querySelector('#latency-chart')?.innerText"
                           ".includes('No requests yet')", timeout=15_000)
    pipeline.synthesize(SpeechRequest("A first request."))
    page.wait_for_function("() => document.querySelector('#latency-chart')?.innerText"
                           ".includes('Whole milliseconds')", timeout=15_000)
    page.wait_for_timeout(4_500)  # two more refreshes with nothing new: still one point each
    latency, gate = (page.evaluate(CHART, c) for c in ("#latency-chart", "#queue-chart"))
    assert latency["points"] == 4 and latency["lines"] == 0, latency  # 4 series, a point each
    pipeline.synthesize(SpeechRequest("A second request, a refresh later."))
    page.wait_for_function("() => document.querySelectorAll('#latency-chart svg "
                           ".role-mark.plot_marks.mark-line path').length === 4", timeout=15_000)
    latency, gate = (page.evaluate(CHART, c) for c in ("#latency-chart", "#queue-chart"))
    for chart in (latency, gate):
        for axis in ("x", "y"):  # seconds ago, whole ms / whole requests: no label twice
            labels = [label.replace("\u2212", "-") for label in chart[axis]]
            assert labels and all(label.lstrip("-").isdigit() for label in labels), labels
            assert len(set(labels)) == len(labels), f"a label twice on {axis}: {labels}"
        # the caption (what the chart counts, or where it clipped) is read in full
        assert chart["caption_bottom"] is not None and chart["caption_bottom"] <= chart["bottom"], chart
    assert latency["legend_right"] <= latency["right"], latency
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    table = page.evaluate("() => document.querySelector('#per-model table')"
                          ".getBoundingClientRect().right")
    assert table <= PHONE["width"], table
    page.screenshot(path="/tmp/charts-390.png", full_page=False)
    page.close()


FITS = "(s) => { const i = document.querySelector(s + ' input'); return [i.value, i.scrollWidth, i.clientWidth] }"


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["1280", "390"])
def test_bark_voice_names_are_not_cut_in_the_voice_picker(browser, families_url, viewport):
    page = open_page(browser, families_url, viewport=viewport)
    pick(page, "#model", "tiny-bark")
    page.wait_for_function("() => document.querySelector('#voice input').value.includes('en_speaker_0')",
                           timeout=15_000)
    value, scroll, client = page.evaluate(FITS, "#voice")
    assert scroll <= client + 1, f"{value!r} is cut: {scroll} px of text in {client} px"
    page.click("#voice input")
    options = page.evaluate("() => [...document.querySelectorAll('#voice ul[role=listbox] li')]"
                            ".map(li => [li.innerText.trim(), li.scrollWidth, li.clientWidth])")
    assert any("en_speaker_1" in o[0] for o in options), options
    for text, scroll, client in options:
        assert scroll <= client + 1, f"option {text!r} is cut"
    page.close()


def test_the_api_page_shows_no_gradio_p50_figure(browser, quiet_url):
    """"Use via API" showed Gradio's own queue timing per endpoint ("p50: 0 ms" for /models),
    beside none of the speech figures the live panel and /metrics count."""
    from gradio_client import Client

    client = Client(quiet_url, verbose=False)
    client.predict("Hello there.", "", "", 1.0, -1, api_name="/synthesize")
    client.predict(api_name="/models")
    page = open_page(browser, quiet_url)
    page.click("footer >> text=Use via API")
    page.wait_for_function("() => document.body.innerText.includes('Speak a text aloud')"
                           " && document.body.innerText.includes('List the warm-loaded')",
                           timeout=15_000)
    page.wait_for_timeout(1_500)  # the page asks for its figures after it opens
    shown = re.findall(r"[^\n]{0,40}p50: [^\n]{0,20}", page.inner_text("body"))
    assert shown == [], shown
    assert httpx.get(f"{quiet_url}/monitoring/summary", timeout=10).status_code == 403
    page.close()


def test_an_oversized_book_file_is_refused_with_the_limit_named(browser, small_uploads_url,
                                                                tmp_path):
    """The jobs panel's book file and the x-vector box say their limit before a file is picked,
    and a larger book is refused on the page with a message naming it; nothing is sent."""
    page = open_page(browser, small_uploads_url)
    uploads = []
    page.on("request", lambda r: uploads.append(r.url) if r.method == "POST"
            and "/gradio_api/upload" in r.url else None)
    page.click("#long-text button")
    page.wait_for_selector("#job-file", state="visible", timeout=10_000)
    assert "(at most 97.7 KB)" in page.inner_text("#job-file")
    page.click("#xvector-box button")
    assert "(at most 97.7 KB)" in page.inner_text("#xvector")
    book = tmp_path / "book.txt"
    book.write_text("Chapter one. " * 20_000)  # 260 kB
    page.set_input_files("#job-file input[type=file]", str(book))
    message = toast(page, "exceed the maximum allowed size", timeout=15_000)
    assert "97.7 Kb" in message and "book.txt" in message, message
    assert uploads == [] and page.locator("#job-file a").count() == 0
    page.close()


def test_on_a_phone_a_history_row_never_starts_a_line_with_its_comma(browser):
    """The history's markup in the page's own CSS at 390 px: the comma after the model's name
    sits right after it, on its line ("en_US-joe-medium , default:" put it on the next)."""
    from pathlib import Path

    from ui.html import history_html

    css = (Path(__file__).resolve().parent.parent / "assets" / "ui" / "studio.css").read_text()
    entry = dict(path="/tmp/a.wav", text="Hello there.", model="en_US-joe-medium",
                 voice="default", total_ms=812.0, first_audio_ms=95.0, audio_seconds=1.9,
                 words=[{"word": "Hello", "start": 0.0, "end": 0.4}])
    page = browser.new_page(viewport=PHONE)
    page.set_content(f"<style>{css}</style><div id='history'>{history_html([entry])}</div>")
    where = page.evaluate("""() => {
      const b = document.querySelector('#history .history-item b');
      const text = b.nextSibling;  // ", default: ..."
      const range = document.createRange();
      range.setStart(text, 0); range.setEnd(text, 1);
      const comma = range.getBoundingClientRect(), name = b.getBoundingClientRect();
      return {text: text.textContent.slice(0, 10), gap: comma.left - name.right,
              line: Math.abs(comma.top - name.top)} }""")
    assert where["text"].startswith(",") and where["line"] < 2 and where["gap"] < 2, where
    page.close()
