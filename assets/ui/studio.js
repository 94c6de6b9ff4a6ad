// TTS Studio page behaviour: keyboard, dropdown fix, result into view, the Web Audio stream
// player, the spoken words lit up as they play, and click-to-sound. Loaded in the page head.
(() => {
  const combobox = (el) => el instanceof HTMLInputElement && el.getAttribute("role") === "combobox";
  const $ = (selector) => document.querySelector(selector);

  document.addEventListener("keydown", (e) => {
    // Gradio 6.31's Dropdown handles every key asynchronously (after `await tick()`) and sets its
    // list open for any key but Escape, so a Tab re-opens the list after focus has left it; the
    // list then stays drawn, and Escape or a click no longer reach it. Tab is not the dropdown's
    // business: it never sees it (focus still moves on, the list closes on blur).
    if (e.key === "Tab" && combobox(e.target)) e.stopPropagation();
    // Ctrl+Enter (Cmd+Enter) in the text box: Speak.
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && e.target.closest && e.target.closest("#text")) {
      e.preventDefault();
      $("#speak")?.click();
    }
  }, true);

  // On a narrow screen the result column sits below the form: bring it into view on Speak.
  const NARROW_PX = 768;
  document.addEventListener("click", (e) => {
    if (window.innerWidth < NARROW_PX && e.target.closest && e.target.closest("#generate, #speak")) {
      setTimeout(() => $("#result-column")?.scrollIntoView({block: "start"}), 0);
    }
  }, true);

  // ---- Stream through Web Audio ---------------------------------------------------------
  // Gradio's streaming player is HLS/AAC: it buffers segments before it plays (over a second).
  // This player asks the app's own HTTP API for the stream as 16-bit PCM and schedules each
  // piece back to back on an AudioContext the moment it arrives. /v1/audio/captioned streams
  // NDJSON: a line per piece (its PCM in base64 and the words that start in it), then a line
  // with the latency record; /v1/audio/speech (models without word timings) streams the bytes.
  // A piece that finds the player idle starts this far after "now" (a render quantum or two:
  // at once, never cut); the next ones are scheduled back to back after it.
  const SCHEDULE_AHEAD_S = 0.005;
  const SILENCE = 0.01;  // a sample below this (-40 dBFS) is not yet sound
  const FALLBACK_STATUSES = [401, 403, 404, 405];  // the page cannot use the API: Gradio can
  const PCM_RATE = 24000;  // OpenAI's pcm rate: where a response does not name its own
  const studio = window.studio = {webAudio: !!(window.AudioContext && window.fetch && window.ReadableStream)};
  // Gradio's streaming player stays hidden unless the page falls back to it.
  // (Gradio may add this script after the document has loaded.)
  const mark = () => document.body.classList.add("studio-webaudio");
  if (studio.webAudio) document.body ? mark() : document.addEventListener("DOMContentLoaded", mark);
  let ctx = null;
  let session = null;  // the stream now playing through Web Audio
  let clickAt = null;  // performance.now() of the last Speak (or Generate) click

  const context = () => {
    if (!ctx && studio.webAudio) ctx = new AudioContext({latencyHint: "interactive"});
    if (ctx && ctx.state !== "running") ctx.resume();
    return ctx;
  };
  // Warm the context on the first gesture, so that the Stream click finds it running.
  for (const type of ["pointerdown", "keydown"]) {
    document.addEventListener(type, () => context(), {capture: true, once: true});
  }

  const config = () => {
    const el = $("#player .player-config");
    try { return el ? JSON.parse(el.dataset.config) : null; } catch { return null; }
  };
  const status = (text, error = false) => {
    const el = $("#player .player-status");
    if (el) { el.textContent = text; el.classList.toggle("error", error); }
  };

  function stop() {
    if (!session) return;
    session.abort.abort();
    for (const source of session.sources) { try { source.stop(); } catch { /* not started */ } }
    session = null;
  }

  // Stop: what sounds now ends; a Web Audio stream keeps what was heard as the Result.
  studio.halt = () => {
    const s = session;
    for (const a of allMedia()) a.pause();
    pending = null;
    if (!s) return status("Stopped.");
    const t = streamPosition(s) ?? (ctx && ctx.currentTime >= s.next ? s.offset : 0);
    stop();
    let keep = Math.round(t * s.rate);
    const kept = [];
    for (const part of s.pcm) {
      if (keep <= 0) break;
      kept.push(part.subarray(0, Math.min(keep, part.length)));
      keep -= part.length;
    }
    s.pcm = kept;
    s.words = s.words && s.words.filter((w) => w.start < t);
    s.record = null;
    status(`Stopped after ${t.toFixed(1)} s of sound; what was heard is kept as the Result.`);
    quietUntil = performance.now() + 5000;  // the kept part waits to be pressed
    if (kept.length) handBack(s, s.req, true);
  };

  function gradioStream(why) {
    stop();
    document.body.classList.add("gradio-stream");
    status(`Streaming with Gradio's player: ${why}.`);
    pending = request();
    $("#stream-gradio")?.click();
  }

  // The loudness control's value as the HTTP body takes it: "off" false, a number LUFS, else null.
  const loudnessOf = (v) => v === "off" ? false : v === null || v === undefined || v === "" ? null : Number(v);

  studio.stream = (text, model, voice, speed, seed, loudness, xvector) => {
    const cfg = config();
    const name = model || cfg?.default;
    const card = cfg?.models?.[name];
    const why = !studio.webAudio ? "this browser has no Web Audio"
      : studio.forceGradio ? "the Web Audio player is switched off"
      : !cfg ? "the page has no player settings"
      : cfg.auth ? "the HTTP API asks for a key this page does not hold"
      : !card ? `${name} is not in this page's list; reload the page`
      : card.temperature ? `${name} samples with a temperature, which the HTTP API does not take`
      : xvector ? "your own speaker file goes through Gradio"
      : null;
    if (why) gradioStream(why);
    else play({text: text || "", model: name, voice: voice || "", speed: Number(speed) || 1.0,
               timings: card.timings, loudness: loudnessOf(loudness),
               seed: seed === null || seed === undefined || Number(seed) === -1 ? null : Number(seed)}).catch((e) => {
      if (e.name !== "AbortError") status(`The stream stopped: ${e.message || e}`, true);  // not a newer click
    });
    return [];
  };

  function b64ToInt16(b64) {
    const bytes = atob(b64);
    const out = new Int16Array(bytes.length >> 1);
    for (let i = 0; i < out.length; i++) {
      const v = bytes.charCodeAt(2 * i) | (bytes.charCodeAt(2 * i + 1) << 8);
      out[i] = v > 32767 ? v - 65536 : v;
    }
    return out;
  }

  function int16ToB64(parts) {
    let binary = "";
    for (const part of parts) {
      const bytes = new Uint8Array(part.buffer, part.byteOffset, part.byteLength);
      for (let i = 0; i < bytes.length; i += 0x8000) {
        binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
      }
    }
    return btoa(binary);
  }

  // One piece of PCM: scheduled right after the last one (or just ahead of now if the stream
  // fell behind), its place in the whole audio noted for the word highlight.
  function schedule(s, pcm, rate) {
    if (!pcm.length) return;
    const samples = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
    const buffer = ctx.createBuffer(1, samples.length, rate);
    buffer.copyToChannel(samples, 0);
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(ctx.destination);
    const now = ctx.currentTime;
    const at = Math.max(s.next, now + SCHEDULE_AHEAD_S);
    source.start(at);
    s.sources.push(source);
    s.placed.push({at, offset: s.offset, seconds: buffer.duration});
    s.marks.first ??= performance.now();
    if (s.heard === null) {
      const first = samples.findIndex((v) => Math.abs(v) > SILENCE);
      if (first >= 0) s.heard = performance.now() + (at + first / rate - now) * 1000 - s.clickAt;
    }
    s.offset += buffer.duration;
    s.next = at + buffer.duration;
    s.pcm.push(pcm);
    s.rate = rate;
  }

  // Seconds into the stream's audio that are playing now (null before it starts or after it ends).
  function streamPosition(s) {
    if (!s || !s.placed.length) return null;
    const now = ctx.currentTime;
    let p = null;
    for (const piece of s.placed) if (piece.at <= now) p = piece;
    if (!p || now > s.next + 0.05) return null;
    return p.offset + Math.min(now - p.at, p.seconds);
  }

  async function play(req) {
    stop();
    context();
    document.body.classList.remove("gradio-stream");
    const s = session = {abort: new AbortController(), sources: [], placed: [], pcm: [], rate: PCM_RATE, req,
                         next: 0, offset: 0, heard: null, clickAt: clickAt ?? performance.now(),
                         words: req.timings ? [] : null, record: null, marks: {call: performance.now()}};
    if (req.timings) spoken.start();
    else spoken.plain(req.text, req.model);
    status("Streaming through Web Audio...");
    const route = req.timings ? "v1/audio/captioned" : "v1/audio/speech";
    let response;
    s.marks.fetch = performance.now();
    try {
      response = await fetch(new URL(route, document.baseURI), {
        method: "POST", headers: {"Content-Type": "application/json"}, signal: s.abort.signal,
        body: JSON.stringify({model: req.model, voice: req.voice, input: req.text, speed: req.speed,
                              seed: req.seed, loudness: req.loudness, response_format: "pcm",
                              stream: true})});
    } catch (e) {
      if (session === s) gradioStream(`the HTTP API could not be reached (${e.message})`);
      return;
    }
    if (!response.ok) {
      let message = response.statusText;
      try { message = (await response.json()).error.message; } catch { /* not JSON */ }
      if (session !== s) return;
      if (FALLBACK_STATUSES.includes(response.status)) return gradioStream(`the HTTP API said ${response.status}`);
      session = null;
      spoken.clear();
      return status(message, true);
    }
    s.marks.headers = performance.now();
    const reader = response.body.getReader();
    if (req.timings) await readLines(s, reader);
    else await readBytes(s, reader, Number(response.headers.get("X-Sample-Rate")) || PCM_RATE);
    if (session !== s) return;
    if (req.timings && !s.record) {  // no closing line: the server stopped it part-way
      return status("The stream broke off before the end of the text (the server's log says " +
                    "why); what was heard is not kept. Try again, or use Generate.", true);
    }
    const heard = s.heard === null ? "" : `; sound ${Math.round(s.heard)} ms after the click`;
    status(`Streamed through Web Audio${heard}.`);
    handBack(s, req);
  }

  async function readLines(s, reader) {
    const decoder = new TextDecoder();
    let text = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done || session !== s) break;
      text += decoder.decode(value, {stream: true});
      let end;
      while ((end = text.indexOf("\n")) >= 0) {
        const line = text.slice(0, end).trim();
        text = text.slice(end + 1);
        if (!line) continue;
        const piece = JSON.parse(line);
        if (piece.done) { s.record = piece.latency; s.words = piece.words; continue; }
        schedule(s, b64ToInt16(piece.audio), piece.sample_rate);
        spoken.add(piece.words);
        s.words.push(...(piece.words || []));
      }
    }
  }

  async function readBytes(s, reader, rate) {
    let carry = null;  // a byte split from its sample's other half
    for (;;) {
      const {value, done} = await reader.read();
      if (done || session !== s) break;
      let bytes = value;
      if (carry !== null) { bytes = new Uint8Array(value.length + 1); bytes[0] = carry; bytes.set(value, 1); }
      carry = bytes.length % 2 ? bytes[bytes.length - 1] : null;
      const whole = bytes.subarray(0, bytes.length - (bytes.length % 2)).slice();  // (little-endian hosts)
      schedule(s, new Int16Array(whole.buffer), rate);
    }
    s.words = null;
  }

  // The whole stream goes back to the page's Result player (and the history), with the
  // server's record and when the listener first heard it.
  function handBack(s, req, stopped = false) {
    const box = $("#played-back textarea, #played-back input");
    if (!box) return;
    box.value = JSON.stringify({pcm: int16ToB64(s.pcm), rate: s.rate, record: s.record, words: s.words,
                                heard_ms: s.heard, text: req.text, model: req.model, stopped,
                                loudness: req.loudness});
    box.dispatchEvent(new Event("input", {bubbles: true}));
  }

  // ---- The spoken text, its current word lit up -------------------------------------------
  const spoken = {
    start() {
      this.target()?.replaceChildren(Object.assign(document.createElement("p"), {className: "words"}));
    },
    target() { return $("#spoken .prose") || $("#spoken"); },
    add(words) {
      const p = $("#spoken p.words");
      if (!p) return;
      for (const w of words || []) {
        const span = Object.assign(document.createElement("span"), {className: "w", textContent: w.word});
        span.dataset.start = w.start.toFixed(3);
        span.dataset.end = w.end.toFixed(3);
        if (p.childNodes.length) p.append(" ");
        p.append(span);
      }
    },
    plain(text, model) {
      const note = Object.assign(document.createElement("p"), {className: "note",
        textContent: `${model} gives no word timings, so the text is shown without highlighting.`});
      const words = Object.assign(document.createElement("p"), {className: "words plain", textContent: text});
      this.target()?.replaceChildren(note, words);
    },
    clear() { this.target()?.replaceChildren(); },
  };

  let lit = null;
  function light(t) {
    const words = document.querySelectorAll("#spoken span.w");
    let current = null;
    for (const w of words) {
      if (Number(w.dataset.start) <= t) current = w;
      else break;
    }
    if (current === lit) return;
    lit?.classList.remove("now");
    current?.classList.add("now");
    lit = current;
    // The panel scrolls within its height: the lit word stays in view, a third of the way down.
    const box = $("#spoken");
    if (current && box && box.scrollHeight > box.clientHeight) {
      const w = current.getBoundingClientRect(), b = box.getBoundingClientRect();
      if (w.top < b.top || w.bottom > b.bottom) box.scrollTop += w.top - b.top - b.height / 3;
    }
  }

  // Media elements the page plays: those in the document, and those played from outside it.
  // The result player is whichever of them (not a history entry) is playing now.
  let media = null;  // the result player last seen playing
  // A press on a player: a play that follows it is the listener's own.
  const USER_PLAY_MS = 2000;
  let pressedAt = -Infinity;
  for (const type of ["pointerdown", "keydown"]) {
    document.addEventListener(type, (e) => {
      if (e.target.closest && e.target.closest("#audio, #stream-audio, #history")) pressedAt = performance.now();
    }, true);
  }
  let pending = null;  // a Generate or Gradio stream click waiting for its first sound
  const played = new Set();
  const allMedia = () => new Set([...document.querySelectorAll("audio"), ...played]);
  const play0 = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function (...args) {
    played.add(this);
    return overSound(this) ? Promise.resolve() : play0.apply(this, args);
  };
  // One sound at a time: while a stream or another player sounds, a player the listener did not
  // press (Gradio's autoplaying the whole file at the end of its stream, or of the handed-back
  // one) does not start; one the listener pressed stops the others.
  const sounding = (a) => !a.paused && !a.ended && a.currentTime > 0;
  let quietUntil = -Infinity;  // after Stop: nothing starts by itself
  const quiet = () => performance.now() < quietUntil && performance.now() - pressedAt >= USER_PLAY_MS;
  const overSound = (player) => {
    if (quiet()) return true;
    const others = [...allMedia()].filter((a) => a !== player && sounding(a));
    const streaming = session && streamPosition(session) !== null;
    if (!streaming && !others.length) return false;
    if (performance.now() - pressedAt < USER_PLAY_MS) {
      stop();
      for (const a of others) a.pause();
      return false;
    }
    return true;
  };
  document.addEventListener("play", (e) => { if (overSound(e.target)) e.target.pause(); }, true);
  // Players that start without play() or outside the document (autoplay, Gradio's waveform
  // player): the one that was sounding keeps sounding, unless the listener pressed another.
  function oneAtATime() {
    const sound = [...allMedia()].filter(sounding);
    if (quiet()) { for (const a of sound) a.pause(); return; }
    const streaming = session && streamPosition(session) !== null;
    if (sound.length < (streaming ? 1 : 2)) return;
    const pressed = performance.now() - pressedAt < USER_PLAY_MS;
    if (pressed) stop();
    const keep = pressed ? (sound.find((a) => a !== media) ?? sound[0])
      : streaming ? null : sound.includes(media) ? media : sound[0];
    for (const a of sound) if (a !== keep) a.pause();
  }
  // The result player playing now; for a request (`p`), only a player with a file it did not
  // hold at the click: its own, never the last result still sounding.
  function playingNow(p = null) {
    for (const a of allMedia()) {
      if (a.paused || a.ended || !(a.currentTime > 0) || (a.closest && a.closest("#history"))) continue;
      if (p && p.srcs.get(a) === (a.currentSrc || a.src)) continue;
      return a;
    }
    return null;
  }
  // A request waiting for its first sound: when it was clicked, and what each player held then.
  const request = () => ({clickAt, timing: $("#timing")?.innerHTML,
                          srcs: new Map([...allMedia()].map((a) => [a, a.currentSrc || a.src]))});

  // Click-to-sound for Generate (and Gradio's stream): put in the timing bar, beside the
  // server's figures, once the bar shows this request. In the page, not through the server:
  // an answer that came back after a newer click would bring the last request's bar back.
  const BAR_WAIT_MS = 60_000;  // a request's bar comes within this, or it is not shown
  function heardAfter(p, ms) {
    const started = performance.now();
    const show = () => {
      if (clickAt !== p.clickAt) return;  // a newer click: the bar is that request's
      const bar = $("#timing");  // this request's bar: a new one, with its numbers
      const shown = bar && bar.innerHTML !== p.timing && bar.querySelector("b[data-part=chars]");
      if (!shown) {
        if (performance.now() - started < BAR_WAIT_MS) setTimeout(show, 100);
        return;
      }
      const total = bar.querySelector("b[data-part=total]")?.parentElement;
      if (!total || bar.querySelector("b[data-part=heard]")) return;
      const heard = document.createElement("span");
      heard.append("heard in the browser ", Object.assign(document.createElement("b"),
        {textContent: `${Math.round(ms)} ms`}));
      heard.lastChild.dataset.part = "heard";
      total.after(heard);
    };
    show();
  }

  document.addEventListener("click", (e) => {
    const button = e.target.closest && e.target.closest("#generate, #speak, #captions");
    if (!button) return;
    // A new request: what sounds now stops (one player at a time).
    if (button.id !== "speak") stop();  // (Speak's own player stops the last stream itself)
    for (const a of allMedia()) a.pause();
    status("");
    pending = null;
    quietUntil = -Infinity;  // a new request's sound may start (Stop's quiet was for the last)
    if (button.id === "captions") return;  // it has no latency record to time the sound against
    clickAt = performance.now();
    if (button.id === "generate") pending = request();
  }, true);

  // What the page is playing, for a look from the console (and the browser tests).
  studio.state = () => ({media: media && {paused: media.paused, time: media.currentTime},
                         playing: !!playingNow(),
                         stream: session && {position: streamPosition(session), heard: session.heard,
                                             // when each step happened, in ms after the click
                                             steps: Object.fromEntries(Object.entries(session.marks)
                                               .map(([k, v]) => [k, Math.round(v - session.clickAt)]))},
                         lit: lit?.textContent ?? null});


  function frame() {
    oneAtATime();
    const now = playingNow();
    if (now) media = now;
    const own = pending && playingNow(pending);
    if (own) {  // when it began: now, less what it has played
      heardAfter(pending, performance.now() - 1000 * own.currentTime / (own.playbackRate || 1) - pending.clickAt);
      pending = null;
    }
    const t = session ? streamPosition(session) : null;
    if (t !== null) light(t);
    else if (now) light(now.currentTime);
  }
  setInterval(frame, 20);
})();
