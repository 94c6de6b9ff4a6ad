"""What a new user ran into in Chromium at 1280 and 390 px, each as a test that catches it.

Debian's Chromium driven by Playwright, as in test_browser.py; one page per viewport.
"""

import io
import re
import time
import urllib.parse
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from test_browser import ARTIFACTS, CHROMIUM, SENTENCE, open_record, pick, rendered
from tts_core import SpeechRequest
from waiting import wait_until

pytestmark = pytest.mark.slow
DOCS = Path(__file__).resolve().parent.parent / "docs"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--autoplay-policy=no-user-gesture-required"])
        yield browser
        browser.close()


def open_page(browser, url, viewport=None):
    page = browser.new_page(viewport=viewport or {"width": 1280, "height": 1000})
    failures = []
    page.on("response", lambda r: failures.append(f"{r.status} {r.url}") if r.status >= 500 else None)
    page.failures = failures
    page.goto(url)
    rendered(page)
    page.wait_for_selector("#language input:not([disabled])", timeout=30_000)
    return page


@pytest.fixture(scope="module")
def desk(browser, studio):
    page = open_page(browser, studio.url)
    yield page
    page.close()


@pytest.fixture(scope="module")
def families_url(family_specs):
    """SpeechT5 and Bark beside VITS: the models with an upload box and a temperature."""
    from conftest import free_port
    import app
    from tts_core import Pipeline, Settings
    from ui.studio import build_demo
    from tts_core.server import StudioServer

    pipeline = Pipeline.from_settings(Settings.from_env({"TTS_MODELS": family_specs}))
    server = StudioServer("127.0.0.1", free_port()).start()
    server.attach(app.build_server(pipeline, build_demo(pipeline, streaming=False),
                                   server.readiness))
    yield server.url
    server.stop()


def visible_lists(page) -> int:
    return page.evaluate("() => [...document.querySelectorAll('ul[role=listbox]')]"
                         ".filter(u => u.getBoundingClientRect().height > 0).length")


def toast(page, words: str, timeout=30_000) -> str:
    """The text of the toast (gr.Warning / gr.Error) that says `words`, once it shows; then
    every toast is closed, so the next test starts with none."""
    found = page.wait_for_function(
        "(w) => [...document.querySelectorAll('[data-testid=toast-body]')]"
        ".map(t => t.innerText).find(t => t.includes(w))", arg=words, timeout=timeout)
    text = found.json_value()
    page.evaluate("() => document.querySelectorAll('[data-testid=toast-close]')"
                  ".forEach(b => b.click())")
    return text


def settled(page, selector: str) -> None:
    """Wait until `selector` has stayed in place for 0.2 s (a layout change has finished)."""
    page.evaluate("() => { window.__lastY = null }")
    page.wait_for_function("(s) => { const y = document.querySelector(s).getBoundingClientRect().y;"
                           " const same = window.__lastY === y; window.__lastY = y; return same }",
                           arg=selector, polling=200, timeout=10_000)


def generate(page, text: str) -> None:
    """Generate `text` and wait until the timing bar shows that request (its character count)."""
    page.fill("#text textarea", text)
    page.evaluate("() => { const c = document.querySelector('#timing b[data-part=chars]');"
                  " if (c) c.textContent = '' }")  # a bar from before cannot pass for this one
    page.evaluate("() => document.querySelector('#generate').click()")  # hidden: /synthesize
    page.wait_for_function("(n) => document.querySelector('#timing b[data-part=chars]')"
                           "?.textContent === String(n)", arg=len(text), timeout=60_000)


def test_typed_model_text_goes_back_to_a_valid_model_without_a_server_error(desk, studio):
    page = desk
    page.fill("#model input", "bark")  # filtering the list, then leaving with Tab
    page.keyboard.press("Tab")
    page.fill("#voice input", "nobody")
    page.keyboard.press("Tab")
    page.wait_for_function("() => document.querySelector('#model input').value === "
                           "'en_US-joe-medium (piper)' && document.querySelector('#voice input')"
                           ".value === 'joe (default)'", timeout=10_000)
    assert "Error" not in page.inner_text("#model-note") and page.is_visible("#speed")
    generate(page, "Still speaking after the typing.")
    assert "en_US-joe-medium" in page.inner_text("#timing")
    assert page.failures == []


def test_tabbing_through_the_pickers_leaves_no_list_open(desk):
    page = desk
    page.click("#language input")
    assert visible_lists(page) == 1
    for _ in range(3):
        page.evaluate("() => { window.__focused = document.activeElement }")
        page.keyboard.press("Tab")
        page.wait_for_function("() => document.activeElement !== window.__focused", timeout=5_000)
    page.wait_for_function("() => ![...document.querySelectorAll('ul[role=listbox]')]"
                           ".some(u => u.getBoundingClientRect().height > 0)", timeout=5_000)
    assert visible_lists(page) == 0


def test_labels_fit_and_a_single_voice_reads_once(desk):
    page = desk
    for picker in ("#language", "#model", "#voice"):
        fits = page.evaluate("(s) => { const i = document.querySelector(s + ' input');"
                             " return i.scrollWidth <= i.clientWidth + 1 }", picker)
        assert fits, f"{picker}: its text runs under the arrow"
    pick(page, "#model", "tiny-vits")
    page.wait_for_function("() => document.querySelector('#model-note').innerText"
                           ".includes('tiny-vits')", timeout=10_000)
    assert page.input_value("#voice input") == "default"
    pick(page, "#model", "en_US-joe-medium")
    page.wait_for_function("() => document.querySelector('#model-note').innerText"
                           ".includes('en_US-joe-medium')", timeout=10_000)


def test_over_the_limit_the_count_turns_red_and_says_so(desk):
    page = desk
    page.fill("#text textarea", "x" * 6000)
    count = page.inner_text("#char-count")
    assert count.startswith("6000 / 5000") and "1000 over the limit" in count
    colour = page.evaluate("() => getComputedStyle(document.querySelector('#char-count .over')).color")
    assert colour == "rgb(185, 28, 28)"
    page.fill("#text textarea", "")


def test_chinese_on_the_english_voice_says_what_it_could_not_speak(desk):
    page = desk
    page.fill("#text textarea", "你好，世界。")
    page.evaluate("() => document.querySelector('#generate').click()")  # hidden: /synthesize
    assert "cannot pronounce any of this text" in toast(page, "cannot pronounce any of this")
    generate(page, "Hello 你好 world.")
    assert "not spoken as words: 你, 好" in toast(page, "not spoken as words")


def test_the_seed_says_its_range_and_a_huge_seed_is_refused_in_those_words(desk):
    page = desk
    pick(page, "#model", "tiny-vits")  # a model with a seed (Piper's card says it has none)
    page.wait_for_selector("#seed", state="visible", timeout=10_000)
    assert "0 to 4294967295" in page.inner_text("#seed")
    page.fill("#seed input", "1e20")
    page.fill("#text textarea", "seeded")
    page.evaluate("() => document.querySelector('#generate').click()")  # hidden: /synthesize
    message = toast(page, "4294967295", timeout=15_000)
    assert re.search(r"(maximum|between).*4294967295", message, re.S)
    page.fill("#seed input", "-1")
    pick(page, "#model", "en_US-joe-medium")
    page.wait_for_selector("#seed", state="hidden", timeout=10_000)


def test_ctrl_enter_generates_and_the_focus_outline_is_visible(desk, studio):
    page = desk
    said = "Control and enter, said once."
    served = studio.pipeline.stats.served
    page.fill("#text textarea", said)
    page.evaluate("() => { const c = document.querySelector('#timing b[data-part=chars]');"
                  " if (c) c.textContent = '' }")  # a bar from before cannot pass for this one
    page.focus("#text textarea")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("(n) => document.querySelector('#timing b[data-part=chars]')"
                           "?.textContent === String(n)", arg=len(said), timeout=60_000)
    # The page shows its result; a second submit of the same keypress would be in line by now.
    wait_until(lambda: studio.pipeline.gate.queue_depth == 0, 30, "the studio idle")
    assert studio.pipeline.stats.served == served + 1  # one keypress, one request
    assert studio.pipeline.stats.records()[-1].chars == len(said)
    page.focus("#stop")
    page.keyboard.press("Shift+Tab")  # keyboard focus: what :focus-visible draws for
    outline = page.evaluate("() => { const s = getComputedStyle(document.activeElement);"
                            " return [document.activeElement.id, s.outlineStyle, s.outlineWidth] }")
    assert outline[0] == "speak" and outline[1] != "none" and float(outline[2][:-2]) >= 2


def test_the_live_panel_is_filled_on_load_with_a_row_per_model(browser, studio):
    for text in ("one", "two"):
        studio.pipeline.synthesize(SpeechRequest(text))
    studio.pipeline.synthesize(SpeechRequest("three", model="tiny-vits"))
    served = studio.pipeline.stats.served
    config = httpx.get(f"{studio.url}/config", timeout=10).json()
    timer = next(c["id"] for c in config["components"] if c["type"] == "timer")
    ticks = {d["id"] for d in config["dependencies"] if [timer, "tick"] in d["targets"]}
    assert ticks
    page = browser.new_page(viewport={"width": 1280, "height": 1000})

    def no_ticks(route):  # the timer gets no answer: only the page's load can fill the panel
        body = route.request.post_data_json or {}
        route.abort() if body.get("fn_index") in ticks else route.continue_()

    page.route("**/run/predict*", no_ticks)
    page.goto(studio.url)
    page.wait_for_function("(n) => /served (\\d+)/.test(document.querySelector('#live-stats')"
                           "?.innerText) && +/served (\\d+)/.exec(document.querySelector("
                           "'#live-stats').innerText)[1] >= n", arg=served, timeout=30_000)
    rows = page.inner_text("#per-model")
    for model in ("en_US-joe-medium", "tiny-vits"):
        s = studio.pipeline.stats.snapshot(model=model)
        assert re.search(rf"{model}\s+{s['count']}\s+\d+ ms", rows), rows
    page.close()


def test_the_page_asks_for_its_live_panel_at_load(studio):
    """Not two seconds later on the timer: the load event itself fills it."""
    config = httpx.get(f"{studio.url}/config", timeout=10).json()
    live = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "live-stats")
    on_load = [d for d in config["dependencies"]
               if any(t[1] == "load" for t in d["targets"]) and live in d["outputs"]]
    assert on_load


def test_use_via_api_describes_its_endpoints_and_types_what_they_return(studio):
    info = httpx.get(f"{studio.url}/gradio_api/info", timeout=10).json()["named_endpoints"]
    synthesize, models = info["/synthesize"], info["/models"]
    assert "Speak a text aloud" in synthesize["description"]
    assert models["description"] and models["returns"][0]["python_type"]["type"] != "Any"
    # This server has no Bark and no SpeechT5: no temperature, no speaker file; the loudness
    # is last, with the server's default (old callers leave it out).
    assert [p["parameter_name"] for p in synthesize["parameters"]] == [
        "text", "model", "voice", "speed", "seed", "loudness"]
    assert synthesize["parameters"][-1]["parameter_has_default"]


def test_stream_then_generate_leaves_one_current_result_of_the_right_length(desk, studio):
    page = desk
    page.fill("#text textarea", SENTENCE)
    old = page.evaluate("() => document.querySelector('#audio a[download]')?.href || ''")
    served = studio.pipeline.stats.served
    page.click("#speak")
    page.wait_for_function("(old) => { const a = document.querySelector('#audio a[download]');"
                           " return a && a.href !== old }", arg=old, timeout=60_000)
    link = page.query_selector("#audio a[download]")
    assert studio.pipeline.stats.served == served + 1
    whole = httpx.get(httpx.URL(studio.url).join(link.get_attribute("href")), timeout=30).content
    record = studio.pipeline.stats.records()[-1]
    assert abs(sf.info(io.BytesIO(whole)).duration - record.audio_seconds) < 0.05
    # It played through the page's Web Audio player; Gradio's streaming player stayed hidden.
    assert "Streamed through Web Audio" in page.inner_text("#player")
    assert not page.is_visible("#stream-audio")
    assert page.evaluate("() => window.studio.state().stream") is not None
    assert not page.evaluate("() => window.studio.state().playing")  # the file waits its turn
    generate(page, "Now the whole file.")
    # The stream is stopped and gone: one current result.
    assert page.evaluate("() => window.studio.state().stream") is None


def test_the_timing_bar_and_the_live_charts_match_the_latency_record(desk, studio):
    page = desk
    generate(page, SENTENCE)
    total = page.inner_text("#timing b[data-part='total']")
    ours = [r.to_dict() for r in studio.pipeline.stats.records() if r.chars == len(SENTENCE)
            and f"{r.to_dict()['total_ms']:.0f} ms" == total]
    assert ours, f"no request of this text took {total}"
    record = ours[-1]
    for part in ("queue", "text", "inference", "encode", "first_audio", "total"):
        shown = page.inner_text(f"#timing b[data-part='{part}']")
        assert shown == f"{record[part + '_ms']:.0f} ms", (part, shown, record)
    open_record(page)
    assert f"{record['total_ms']}" in page.inner_text("#latency").replace(",", "")
    snapshot = studio.pipeline.snapshot()
    page.wait_for_selector("#latency-chart canvas, #latency-chart svg", timeout=15_000)
    assert page.query_selector("#queue-chart canvas, #queue-chart svg")
    # The panel's next refresh (every few seconds) shows the median as the server has it.
    page.wait_for_function("(s) => document.querySelector('#live-stats').innerText.includes(s)",
                           arg=f"{snapshot['p50_total_ms']:.0f} ms", timeout=15_000)
    history = page.inner_text("#history")
    assert "Now the whole file." in history or SENTENCE[:40] in history
    assert page.query_selector("#history audio[src]") and page.query_selector("#history a[download]")
    # The newest entry comes with its subtitles, timed from its own words.
    for kind, clock in (("srt", r"00:00:0\d,\d{3} --> "), ("vtt", r"00:00:0\d\.\d{3} --> ")):
        href = page.get_attribute(f"#history li[data-n='0'] a[download$='.{kind}']", "href")
        body = urllib.parse.unquote(href.split(",", 1)[1])
        assert re.search(clock, body) and "Hello there." in body, body
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-1280.png"), full_page=True)


def test_on_a_phone_the_result_comes_into_view_and_no_table_wraps_letters(browser, studio):
    page = open_page(browser, studio.url, PHONE)
    page.fill("#text textarea", SENTENCE)
    page.evaluate("() => document.querySelector('#generate').click()")  # hidden: /synthesize
    page.wait_for_selector("#audio a[download]", timeout=60_000)
    page.wait_for_function("(h) => { const b = document.querySelector('#audio').getBoundingClientRect();"
                           " return b.y < h && b.y + b.height > 0 }", arg=PHONE["height"], timeout=10_000)
    box = page.locator("#audio").bounding_box()
    assert box["y"] < PHONE["height"] and box["y"] + box["height"] > 0, box
    assert page.locator("#live td").count() >= 10  # the tables are there to be measured
    narrowest = page.evaluate("() => Math.min(...[...document.querySelectorAll('#live td, #live th')]"
                              ".map(c => c.getBoundingClientRect().width))")
    tallest = page.evaluate("() => Math.max(...[...document.querySelectorAll('#live td, #live th')]"
                            ".map(c => c.getBoundingClientRect().height))")
    assert narrowest > 30 and tallest < 80, (narrowest, tallest)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-390.png"), full_page=True)
    page.close()


def test_speecht5_bark_upload_and_temperature_keep_the_form_compact(browser, families_url,
                                                                     tmp_path):
    page = open_page(browser, families_url)
    top = page.locator("#speak").bounding_box()["y"]
    pick(page, "#model", "tiny-speecht5")
    page.wait_for_selector("#xvector-box", state="visible", timeout=10_000)
    settled(page, "#speak")
    moved = page.locator("#speak").bounding_box()["y"] - top
    assert moved < 120, f"Speak moved down {moved:.0f} px"
    page.click("#xvector-box button")
    renamed = tmp_path / "voice.npy"
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(1600, dtype=np.float32), 16000, format="WAV")
    renamed.write_bytes(buffer.getvalue())  # a recording renamed, not an x-vector
    page.set_input_files("#xvector input[type=file]", str(renamed))
    page.wait_for_selector("#xvector a, #xvector .file-name, #xvector table", timeout=15_000)
    page.fill("#text textarea", "hello")
    page.evaluate("() => document.querySelector('#generate').click()")  # hidden: /synthesize
    body = toast(page, "not a readable .npy file")
    assert "allow_pickle" not in body
    pick(page, "#model", "tiny-bark")
    page.wait_for_selector("#temperature", state="visible", timeout=10_000)
    label = page.evaluate("() => { const l = document.querySelector('#temperature [data-testid=block-info]')"
                          " || document.querySelector('#temperature label');"
                          " return [l.getBoundingClientRect().height,"
                          " parseFloat(getComputedStyle(l).lineHeight) || 20] }")
    assert label[0] < 2 * label[1], f"the Temperature label takes {label[0]:.0f} px"
    page.close()


# Taps every <audio> of the page (and every media element that is played) into a Web Audio analyser and notes when one first plays a
# non-silent block after a click on Speak (or the hidden Generate): click-to-sound as a listener hears it.
EAR = """
window.__ear = {click: null, heard: null};
document.addEventListener('pointerdown', (e) => {
  if (e.target.closest && e.target.closest('#generate, #speak'))
    window.__ear = {click: performance.now(), heard: null};
}, true);
const ctx = window.__ctx = new AudioContext();
// The page's own Web Audio output: whatever it connects to a destination goes through an
// analyser first (one per AudioContext of the page).
const taps = window.__taps = new Map();
const connect = AudioNode.prototype.connect;
AudioNode.prototype.connect = function (target, ...rest) {
  if (target instanceof AudioDestinationNode && this.context !== ctx) {
    let analyser = taps.get(this.context);
    if (!analyser) {
      analyser = this.context.createAnalyser();
      analyser.fftSize = 256;
      connect.call(analyser, target);
      taps.set(this.context, analyser);
    }
    return connect.call(this, analyser, ...rest);
  }
  return connect.call(this, target, ...rest);
};
// The page's first Web Audio buffer due to play (the issue's measure of a stream's start).
const start0 = AudioBufferSourceNode.prototype.start;
AudioBufferSourceNode.prototype.start = function (when = 0, ...rest) {
  if (this.context !== ctx && window.__ear.click && !window.__ear.due)
    window.__ear.due = performance.now() + Math.max(0, when - this.context.currentTime) * 1000;
  return start0.call(this, when, ...rest);
};
const tapped = new WeakSet();
const block = new Float32Array(256);
const played = window.__played = new Set();  // players outside the document too (Gradio's waveform player)
const play = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function (...args) { played.add(this); return play.apply(this, args); };
setInterval(() => {
  for (const a of new Set([...document.querySelectorAll('audio'), ...played])) {
    if (!tapped.has(a)) {
      tapped.add(a);
      const analyser = ctx.createAnalyser();
      analyser.fftSize = block.length;
      ctx.createMediaElementSource(a).connect(analyser);
      analyser.connect(ctx.destination);
      a.__analyser = analyser;
    }
    if (window.__ear.click && !window.__ear.heard && !a.paused && a.__analyser) {
      a.__analyser.getFloatTimeDomainData(block);
      if (block.some((v) => Math.abs(v) > SILENCE)) window.__ear.heard = performance.now();
    }
  }
  for (const analyser of taps.values()) {
    if (window.__ear.click && !window.__ear.heard) {
      analyser.getFloatTimeDomainData(block);
      if (block.some((v) => Math.abs(v) > SILENCE)) window.__ear.heard = performance.now();
    }
  }
}, 5);
"""
SILENCE = 0.01  # peak of a block below this is silence (-40 dBFS)
# Every player paused and every tap (the page's own Web Audio too) reads silence.
QUIET = f"""() => {{ const b = new Float32Array(256);
  const quiet = (an) => {{ an.getFloatTimeDomainData(b); return b.every((v) => Math.abs(v) <= {SILENCE}) }};
  return [...document.querySelectorAll('audio'), ...window.__played]
    .every((a) => a.paused && (!a.__analyser || quiet(a.__analyser)))
    && [...window.__taps.values()].every(quiet) }}"""


def click_to_sound(page, button: str, text: str) -> float:
    page.fill("#text textarea", text)
    page.evaluate("() => { window.__ear = {click: null, heard: null};"  # silence first
                  " [...document.querySelectorAll('audio'), ...window.__played]"
                  ".forEach((a) => a.pause()) }")
    page.wait_for_function(QUIET, timeout=30_000)
    page.evaluate("() => { const c = document.querySelector('#timing b[data-part=chars]');"
                  " if (c) c.textContent = '' }")  # a bar from before cannot pass for this one
    page.click(button)
    page.wait_for_function("() => window.__ear.heard", timeout=60_000)
    return page.evaluate("() => window.__ear.heard - window.__ear.click")


def click_to_due(page) -> float | None:
    """After click_to_sound: when the page's first Web Audio buffer was due to play, in ms
    after the click (None if no Web Audio buffer was scheduled: a whole file played)."""
    return page.evaluate("() => window.__ear.due ? window.__ear.due - window.__ear.click : null")


def api_first_bytes_ms(page, text: str) -> float:
    """The HTTP API's first audio bytes: a streamed PCM request from the same browser (its own
    fetch, as the page's player makes one; not from this test process, which is the server's
    too), timed from the call to its first body bytes; then it is cancelled."""
    return page.evaluate("""async (text) => {
      const t0 = performance.now();
      const r = await fetch("v1/audio/speech", {method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({model: "en_US-joe-medium", input: text, response_format: "pcm",
                              stream: true})});
      if (!r.ok) throw new Error(`the HTTP API said ${r.status}`);
      const reader = r.body.getReader();
      for (;;) {
        const {value, done} = await reader.read();
        if (done) throw new Error("the HTTP API sent no audio");
        if (value.length) {
          const first = performance.now();
          await reader.cancel();  // the rest is not needed: the server cancels it
          return first - t0;
        }
      }
    }""", text)


TRIES = 3  # each figure is the median of this many runs
# Issue 25's target: Speak's click-to-sound at most this many times the HTTP API's first bytes.
# Printed as met or missed: on this shared 2-core machine a 74-character run measured 1.04x to
# 1.56x from one full run to the next (tens of ms either way), so it is a figure, not the test.
SPEAK_TARGET = 1.5
# What the test asserts: sound from the first window, never the whole file. With Speak forced
# to the whole file the ratio was 7.1x on 74 characters (Generate 10x in the issue) and 47x on
# 1,500; a stream within the target is under half this bound.
WHOLE_FILE_BOUND = 3.0
# About 1,500 characters: twenty sentences, the first as short as the 74-character text's.
PAGE = " ".join([SENTENCE] + [f"Sentence {n} of this page carries on in the same calm and even "
                              "voice, to make the text long." for n in range(2, 18)])[:1500]


@pytest.mark.parametrize("text", [SENTENCE, PAGE], ids=["74-chars", "1500-chars"])
def test_speak_sounds_from_the_first_window_beside_the_apis_first_bytes(browser, studio, figure,
                                                                         text):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.add_init_script(EAR.replace("SILENCE", str(SILENCE)))
    page.goto(studio.url)
    rendered(page)
    page.wait_for_selector("#language input:not([disabled])", timeout=30_000)

    def idle():
        wait_until(lambda: studio.pipeline.gate.queue_depth == 0, 30,
                   "the studio idle (a stopped stream's request ended)")

    clicks, apis = [], []
    for n in range(1 + TRIES):  # the first, a warm-up (the page's first sound), is not counted
        # Each click between two of the API's requests, each made with the studio idle: the
        # machine's load as the click had it.
        idle()
        before = api_first_bytes_ms(page, text)
        heard = click_to_sound(page, "#speak", text)  # the first sample above -40 dBFS
        due = click_to_due(page)  # the measure; a whole file has none: it counts as heard
        steps = page.evaluate("() => window.studio.state().stream?.steps")
        # The page's own player, not Gradio's or a whole file (its fallbacks).
        assert "Streaming through Web Audio" in page.inner_text("#player") or \
            "Streamed through Web Audio" in page.inner_text("#player")
        page.click("#stop")  # (a long text would play for minutes)
        page.wait_for_function("() => !window.studio.state().stream", timeout=10_000)
        # The server has taken the page's hand-back (the Result, cleared at the click, holds
        # what was heard): its work is done before the API is timed again.
        page.wait_for_selector("#audio a[download]", timeout=30_000)
        idle()
        after = api_first_bytes_ms(page, text)
        if n:
            clicks.append((heard if due is None else due, heard, steps))
            apis += [before, after]
    # As the figures are: the median click-to-sound over the API's median first bytes.
    sound, heard, steps = sorted(clicks, key=lambda c: c[0])[TRIES // 2]
    api = float(np.median(apis))
    ratio = sound / api
    figure(f"browser click-to-sound, Speak, {len(text)} characters: first buffer due {sound:.0f} "
           f"ms after the click (its first sample above -40 dBFS {heard:.0f} ms; the page's steps "
           f"in ms after the click: {steps}); the HTTP API's first PCM bytes {api:.0f} ms: "
           f"{ratio:.2f}x (medians of {TRIES} clicks, {sorted(round(c[0]) for c in clicks)} ms, "
           f"and of the API's {len(apis)} requests around them, before/after each: "
           f"{[(round(b), round(a)) for b, a in zip(apis[::2], apis[1::2])]}); target at most "
           f"{SPEAK_TARGET}x: {'met' if ratio <= SPEAK_TARGET else 'MISSED'}")
    runs = (clicks, apis)
    assert ratio <= WHOLE_FILE_BOUND, runs
    page.close()


def test_the_page_shows_its_own_click_to_sound_beside_the_servers_figures(browser, studio):
    """The timing bar's "heard in the browser": the Web Audio stream's and a whole file's."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.add_init_script(EAR.replace("SILENCE", str(SILENCE)))
    page.goto(studio.url)
    rendered(page)
    page.wait_for_selector("#language input:not([disabled])", timeout=30_000)
    for button in ("#speak", "#generate"):
        page.fill("#text textarea", SENTENCE)
        page.evaluate("() => { const c = document.querySelector('#timing b[data-part=chars]');"
                      " if (c) c.textContent = '' }")
        page.evaluate("(b) => document.querySelector(b).click()", button)  # Generate is hidden
        page.wait_for_function("(n) => document.querySelector('#timing b[data-part=chars]')"
                               "?.textContent === String(n) && document.querySelector("
                               "'#timing b[data-part=heard]')", arg=len(SENTENCE), timeout=60_000)
        shown = float(page.inner_text("#timing b[data-part='heard']").split()[0])
        assert 0 < shown < 10_000, (button, shown)
    page.close()


LONG = ("The first sentence starts the stream. The second one follows it closely. A third "
        "sentence keeps the voice going. The fourth comes after that, and the fifth sentence "
        "ends this short text.")


OTHER = ("Captions come with this one. Each word has a start and an end, and the panel lights "
         "them in turn while the file plays from the top.")


def lit_words(page, seconds: float) -> list[tuple[float, int, str]]:
    """(time, index, text) of the highlighted word in #spoken, sampled every 0.1 s."""
    seen, start = [], time.time()
    while time.time() - start < seconds:
        index, word = page.evaluate(
            "() => { const w = [...document.querySelectorAll('#spoken span.w')];"
            " const i = w.findIndex((s) => s.classList.contains('now'));"
            " return [i, i >= 0 ? w[i].textContent : null] }")
        if index >= 0:
            seen.append((time.time() - start, index, word))
        time.sleep(0.1)
    return seen


def assert_advances_in_text_order(seen, text: str, what: str) -> None:
    words = text.split()
    assert seen, f"{what}: no word was ever highlighted"
    for _, index, word in seen:
        assert words[index] == word, (what, index, word)
    order = [index for _, index, _ in seen]
    assert order == sorted(order), f"{what}: the highlight went back: {order}"
    assert len(set(order)) >= 6, f"{what}: the highlight hardly moved: {order}"


def test_the_highlighted_word_advances_while_the_audio_plays(desk, studio):
    page = desk
    generate(page, LONG)  # Generate: the whole file plays, its words light up in turn
    seen = lit_words(page, 5)
    assert_advances_in_text_order(seen, LONG, "Generate")

    page.fill("#text textarea", LONG)  # Stream: lit while the stream still arrives
    page.evaluate("() => { const c = document.querySelector('#timing b[data-part=chars]');"
                  " if (c) c.textContent = '' }")
    page.click("#speak")
    seen = lit_words(page, 5)
    assert_advances_in_text_order(seen, LONG, "Stream")
    page.wait_for_function("(n) => document.querySelector('#timing b[data-part=chars]')"
                           "?.textContent === String(n)", arg=len(LONG), timeout=60_000)
    record = studio.pipeline.stats.records()[-1]
    # The first word was lit before the server had made the whole stream.
    assert record.chars == len(LONG) and seen[0][0] < record.total_ms / 1000, (seen[0], record)



def test_a_model_without_word_timings_shows_its_text_and_says_so(browser, families_url):
    page = open_page(browser, families_url)
    pick(page, "#model", "tiny-speecht5")
    page.wait_for_function("() => document.querySelector('#model-note').innerText"
                           ".includes('tiny-speecht5')", timeout=10_000)
    for button, said in (("#generate", "generated without timings"),
                         ("#speak", "streamed without timings")):
        page.fill("#text textarea", said)
        page.evaluate("(b) => document.querySelector(b).click()", button)
        page.wait_for_function("(s) => document.querySelector('#spoken').innerText.includes(s)"
                               " && document.querySelector('#spoken').innerText"
                               ".includes('gives no word timings')", arg=said, timeout=60_000)
        assert page.query_selector("#spoken span.w") is None
        page.wait_for_function("(n) => document.querySelector('#timing b[data-part=chars]')"
                               "?.textContent === String(n)", arg=len(said), timeout=60_000)
    # The stream played through Web Audio from /v1/audio/speech (no words to carry).
    assert "Streamed through Web Audio" in page.inner_text("#player")
    assert page.failures == []
    page.close()


def test_with_an_api_key_stream_falls_back_to_gradios_player(browser, serve):
    """The page holds no API key (the login, where there is one, is the UI's own): Stream goes
    through Gradio's player and still ends with the whole file as the one result."""
    from tts_core import Pipeline, Settings
    from tts_core.ffmpeg import expose_to_gradio, find_ffmpeg

    pipeline = Pipeline.from_settings(Settings.from_env({"TTS_MODELS": "joe",
                                                         "TTS_API_KEY": "page-has-none"}))
    ffmpeg = find_ffmpeg()
    if ffmpeg is not None:
        expose_to_gradio(ffmpeg)  # Gradio's streamed player runs ffmpeg by name, as in app.py
    page = open_page(browser, serve(pipeline, streaming=ffmpeg is not None))
    refused = []
    page.on("response", lambda r: refused.append(r.url) if r.status == 401 else None)
    page.fill("#text textarea", SENTENCE)
    page.click("#speak")
    page.wait_for_selector("#audio a[download]", timeout=60_000)
    assert "asks for a key" in page.inner_text("#player")
    assert refused == [] and page.failures == []
    assert pipeline.stats.served == 1
    page.close()


def test_a_refused_stream_says_why_in_the_player(desk):
    """The HTTP API's error (here: nothing this voice can pronounce) shows in red, in words."""
    page = desk
    page.fill("#text textarea", "你好，世界。")
    page.click("#speak")
    page.wait_for_function("() => document.querySelector('#player .player-status.error')",
                           timeout=30_000)
    assert "cannot pronounce any of this text" in page.inner_text("#player")
    assert page.failures == []


def test_a_stream_that_breaks_off_says_so_and_is_not_kept_as_the_result(browser, serve):
    """The server stops a stream part-way (here: the model fails on a later window): the page
    says so in red and does not hand the cut-off audio back as the Result."""
    from tts_core import Pipeline, Settings

    pipeline = Pipeline.from_settings(Settings.from_env({"TTS_MODELS": "joe"}))
    engine = pipeline.registry.default
    decode, calls = engine.decode, []

    def failing_later(*window):
        calls.append(window)
        if len(calls) > 4:  # the first sentence (three windows) and the second are heard
            raise RuntimeError("the device went away")
        return decode(*window)

    engine.decode = failing_later
    page = open_page(browser, serve(pipeline))
    page.fill("#text textarea", LONG)
    page.click("#speak")
    page.wait_for_function("() => document.querySelector('#player .player-status.error')",
                           timeout=60_000)
    assert "broke off before the end" in page.inner_text("#player")
    assert len(calls) == 5 and pipeline.stats.served == 0
    page.wait_for_timeout(1000)  # (a hand-back would have come by now)
    assert page.query_selector("#audio a[download]") is None
    page.close()


def test_stop_ends_a_stream_and_keeps_what_was_heard(desk, studio):
    """Stop mid-stream: the sound ends at once, the server's request is cancelled, and the
    Result holds the part that was heard (not the whole text, not nothing)."""
    page = desk
    page.fill("#text textarea", PAGE)
    page.click("#speak")
    page.wait_for_function("() => (window.studio.state().stream?.position || 0) > 1.5",
                           timeout=60_000)
    served = studio.pipeline.stats.served
    page.click("#stop")
    at = page.evaluate("() => window.studio.state()")
    assert at["stream"] is None and not at["playing"], at
    link = page.wait_for_selector("#audio a[download]", timeout=30_000)
    kept = httpx.get(httpx.URL(studio.url).join(link.get_attribute("href")), timeout=30).content
    seconds = sf.info(io.BytesIO(kept)).duration
    assert 1.4 < seconds < 4, f"the Result holds {seconds:.1f} s after a stop at about 1.5 s"
    assert "Stopped after" in page.inner_text("#player")
    time.sleep(1)
    assert studio.pipeline.stats.served == served  # the rest was not made
    assert not page.evaluate("() => window.studio.state().playing")


# The test's own ear on the players: every media element the page plays, in the document or not.
PLAYERS = """window.__players = new Set();
const play0 = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function (...a) { window.__players.add(this); return play0.apply(this, a); };"""
SOUNDING = ("() => [...new Set([...document.querySelectorAll('audio'), ...window.__players])]"
            ".filter((a) => !a.paused && !a.ended && a.currentTime > 0).length")


TRACE = ("() => [...new Set([...document.querySelectorAll('audio'), ...window.__players])]"
         ".map((a) => (a.closest && a.closest('[id]')?.id || 'detached') + ':' + (a.paused ? 'p' : 'P') + a.currentTime.toFixed(2) + (a.ended ? 'E' : '')).join(' ')")


def open_with_players(browser, url, viewport=None):
    page = browser.new_page(viewport=viewport or {"width": 1280, "height": 1000})
    page.add_init_script(PLAYERS)
    page.failures = []
    page.on("response", lambda r: page.failures.append(f"{r.status} {r.url}")
            if r.status >= 500 else None)
    page.goto(url)
    rendered(page)
    page.wait_for_selector("#language input:not([disabled])", timeout=30_000)
    return page


def test_one_player_sounds_at_a_time_when_speak_falls_back(browser, serve):
    """Speak through Gradio's player (a server with an API key): its stream plays, and the whole
    file that comes at the end does not play over it (the echo a newcomer heard)."""
    from tts_core import Pipeline, Settings
    from tts_core.ffmpeg import expose_to_gradio, find_ffmpeg

    ffmpeg = find_ffmpeg()
    assert ffmpeg is not None, "Gradio's streamed player needs ffmpeg (imageio-ffmpeg ships one)"
    expose_to_gradio(ffmpeg)
    pipeline = Pipeline.from_settings(Settings.from_env({"TTS_MODELS": "joe",
                                                         "TTS_API_KEY": "page-has-none"}))
    page = open_with_players(browser, serve(pipeline, streaming=True))
    page.fill("#text textarea", SENTENCE)
    page.click("#speak")
    most, heard, deadline = 0, 0.0, time.time() + 40
    last, trace = time.time(), []
    while time.time() < deadline and heard < 4:  # the whole sentence (4.5 s of audio)
        sounding = page.evaluate(SOUNDING)
        trace.append(page.evaluate(TRACE))
        most = max(most, sounding)
        now = time.time()
        heard += (now - last) if sounding else 0
        last = now
        time.sleep(0.05)
    assert "asks for a key" in page.inner_text("#player")
    assert page.query_selector("#audio a[download]")  # the whole file came
    assert heard > 2 and most == 1, f"{most} players sounded at once ({heard:.1f} s heard) {trace[::5]}"
    page.close()


def test_controls_follow_the_models_card(desk):
    """Piper's card says supports_seed false: no Seed box; a model with a seed shows it. The
    captions title names the model picked."""
    page = desk
    assert "en_US-joe-medium" in page.inner_text("#captions-box")
    assert not page.is_visible("#seed")
    pick(page, "#model", "tiny-vits")
    page.wait_for_function("() => document.querySelector('#model-note').innerText"
                           ".includes('tiny-vits')", timeout=10_000)
    page.wait_for_selector("#seed", state="visible", timeout=10_000)
    assert "tiny-vits" in page.inner_text("#captions-box")
    pick(page, "#model", "en_US-joe-medium")
    page.wait_for_function("() => document.querySelector('#model-note').innerText"
                           ".includes('en_US-joe-medium')", timeout=10_000)
    page.wait_for_selector("#seed", state="hidden", timeout=10_000)


def test_the_timing_bar_resets_at_the_click(desk):
    page = desk
    generate(page, SENTENCE)  # a bar with its numbers
    page.fill("#text textarea", PAGE)
    page.click("#speak")
    # Within a moment of the click the last request's numbers are gone (not at the end of
    # the stream, a minute and a half later).
    page.wait_for_function("() => !document.querySelector('#timing b[data-part=chars]')",
                           timeout=3_000)
    page.click("#stop")


def test_the_spoken_text_scrolls_within_its_box_and_follows_the_lit_word(browser, studio):
    page = open_with_players(browser, studio.url)
    generate(page, PAGE)  # a minute and a half of audio, its words timed
    page.wait_for_function("() => document.querySelector('#spoken span.w.now')", timeout=30_000)
    box = page.locator("#spoken").bounding_box()
    assert box["height"] < 400, f"the spoken text takes {box['height']:.0f} px"
    # All of it is there, within the box: it scrolls.
    assert page.evaluate("() => { const b = document.querySelector('#spoken');"
                         " return b.scrollHeight > b.clientHeight }")
    page.evaluate("() => window.__players.forEach((a) => { if (!a.paused) a.currentTime = 35 })")
    page.wait_for_function("() => { const w = document.querySelector('#spoken span.w.now');"
                           " return w && !w.textContent.startsWith('Hello') }", timeout=10_000)
    time.sleep(0.5)
    inside = page.evaluate(
        "() => { const w = document.querySelector('#spoken span.w.now').getBoundingClientRect();"
        " const b = document.querySelector('#spoken').getBoundingClientRect();"
        " return [w.top, w.bottom, b.top, b.bottom] }")
    assert inside[2] <= inside[0] and inside[1] <= inside[3], f"the lit word is out of view: {inside}"
    page.close()


def test_captions_are_those_of_what_was_heard(desk, studio):
    """No second rendering: the captions hold the words of the result just heard (Piper
    varies from run to run), the same as its history entry's subtitles."""
    page = desk
    if not page.is_visible("#srt"):
        page.click("#captions-box button")  # unfolded: what it holds can be seen
    page.wait_for_selector("#srt", state="visible", timeout=10_000)
    assert not page.is_visible("#captions")  # the separate button is gone from the page
    page.fill("#text textarea", OTHER)
    page.click("#speak")
    page.wait_for_function("(n) => document.querySelector('#timing b[data-part=chars]')"
                           "?.textContent === String(n)", arg=len(OTHER), timeout=60_000)
    # This result's entry, and its subtitles in the box (one name: speech-<n>.srt).
    page.wait_for_function(
        "(s) => { const e = document.querySelector('#history li[data-n=\"0\"]');"
        " const srt = e?.querySelector('a[download$=\".srt\"]')?.getAttribute('download');"
        " return e?.querySelector('.entry-text').innerText === s && srt && srt =="
        " document.querySelector('#srt a[download]')?.getAttribute('download') }",
        arg=OTHER, timeout=30_000)  # (shorter than the entry's 160 characters)
    link = page.query_selector("#srt a[download]")
    shown = httpx.get(httpx.URL(studio.url).join(link.get_attribute("href")), timeout=30).text
    href = page.get_attribute("#history li[data-n='0'] a[download$='.srt']", "href")
    heard = urllib.parse.unquote(href.split(",", 1)[1])
    assert "Captions" in shown and shown.strip() == heard.strip(), (shown[:200], heard[:200])


def test_the_charts_say_no_requests_yet_then_what_they_draw(browser, serve):
    """Before any request the charts say so; after, what they draw (whole ms, whole
    requests). (Their axes are drawn on a canvas: the labels' format is set, not read here.)"""
    from tts_core import Pipeline, Settings

    pipeline = Pipeline.from_settings(Settings.from_env({"TTS_MODELS": "joe"}))
    page = open_page(browser, serve(pipeline))
    for chart in ("#latency-chart", "#queue-chart"):
        page.wait_for_function("(c) => document.querySelector(c).innerText"
                               ".includes('No requests yet')", arg=chart, timeout=15_000)
    for text in ("A first request.", "And a second, a little longer than the first."):
        pipeline.synthesize(SpeechRequest(text))
    for chart, says in (("#latency-chart", "Whole milliseconds"), ("#queue-chart", "Whole requests")):
        page.wait_for_function("([c, s]) => document.querySelector(c).innerText.includes(s)",
                               arg=[chart, says], timeout=15_000)
    page.close()


def test_downloads_share_one_name(desk):
    """The Result's audio, its subtitles in the captions box and its history entry's files are
    one result's, named as one: speech-<n>.wav, speech-<n>.srt, speech-<n>.vtt (they were
    audio.wav beside captions-72f9b5f2cea0.srt and speech-1.srt)."""
    page = desk
    names = []
    for button in ("#speak", "#generate"):  # the Web Audio stream handed back; the whole file
        said = f"Downloads named as one, after {button[1:]}."
        page.fill("#text textarea", said)
        page.evaluate("(b) => document.querySelector(b).click()", button)  # Generate is hidden
        page.wait_for_function("(s) => document.querySelector('#history li[data-n=\"0\"]"
                               " .entry-text')?.innerText === s", arg=said, timeout=60_000)
        if not page.is_visible("#srt"):
            page.click("#captions-box button")
        audio = page.get_attribute("#audio a[download]", "download")
        assert re.fullmatch(r"speech-\d+\.wav", audio or ""), audio
        name = audio[:-len(".wav")]
        page.wait_for_function("(n) => document.querySelector('#srt a[download]')"
                               "?.getAttribute('download') === n", arg=f"{name}.srt",
                               timeout=30_000)
        entry = page.eval_on_selector_all("#history li[data-n='0'] a[download]",
                                          "(a) => a.map((x) => x.getAttribute('download'))")
        assert sorted(entry) == [f"{name}.srt", f"{name}.vtt", f"{name}.wav"], entry
        names.append(name)
    assert names[0] != names[1]  # each result its own name


def test_click_to_sound_is_timed_from_this_requests_own_player(desk):
    """A new request while the last result still plays: "heard in the browser" is this
    request's own sound (it read -725 ms when it timed the last result's player). A whole file
    cannot sound before the server has made it, so the figure is at least its total."""
    page = desk
    generate(page, LONG)  # the whole file plays at once (autoplay)
    page.wait_for_function("() => { const m = window.studio.state().media;"
                           " return m && !m.paused && m.time > 1 }", timeout=30_000)
    page.fill("#text textarea", SENTENCE)
    page.evaluate("() => { const c = document.querySelector('#timing b[data-part=chars]');"
                  " if (c) c.textContent = '' }")
    page.evaluate("() => document.querySelector('#generate').click()")  # hidden: /synthesize
    page.wait_for_function("(n) => document.querySelector('#timing b[data-part=chars]')"
                           "?.textContent === String(n) && document.querySelector("
                           "'#timing b[data-part=heard]')", arg=len(SENTENCE), timeout=60_000)
    heard = float(page.inner_text("#timing b[data-part='heard']").split()[0])
    total = float(page.inner_text("#timing b[data-part='total']").split()[0])
    assert heard >= total, f"heard {heard:.0f} ms after the click, but the file took {total:.0f} ms"
