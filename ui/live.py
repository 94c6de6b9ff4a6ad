"""The live panel: rolling latency tables for every request to this server, and its charts."""

from __future__ import annotations

import math
import time

import gradio as gr
import pandas as pd

from tts_core import Pipeline
from ui.context import StudioContext, bind

LIVE_REFRESH_S = 2.0  # how often the live latency panel polls the rolling stats
CLIP_FACTOR = 4  # a latency point this many times the chart's median or more is clipped there
# The live chart's lines; "first" is first audio (the caption says so): with "first audio"
# written out, the legend ran past the chart on a 390 px phone.
LATENCY_COLOURS = {"total p50": "#2563eb", "total p95": "#93c5fd",
                   "first p50": "#dc2626", "first p95": "#fca5a5"}


def _threads(value) -> str:
    """CPU threads a model call got, on average ('–': none counted, e.g. on a GPU)."""
    return "–" if value is None else f"{value:.1f}"


def _ms(value) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def live_markdown(pipeline: Pipeline) -> str:
    """The rolling totals and the warm-loaded models' table."""
    s = pipeline.snapshot()
    rtf = "–" if s["mean_rtf"] is None else f"{s['mean_rtf']:.3f}"
    lines = [
        f"**Last {s['count']} requests** (served {s['served']}, failed {s['failed']}, "
        f"in the gate now: {s['queue_depth']}; device slots in use: {s['slots_in_use']} of "
        f"{s['slots']}" + (f"; CPU threads in use: {s['threads_in_use']} of {s['threads']})"
                           if s.get("threads") else ")"),
        "",
        "| total p50 | total p95 | first audio p50 | first audio p95 | mean RTF | threads per call |",
        "|---|---|---|---|---|---|",
        f"| {_ms(s['p50_total_ms'])} | {_ms(s['p95_total_ms'])} | {_ms(s['p50_first_audio_ms'])} "
        f"| {_ms(s['p95_first_audio_ms'])} | {rtf} | {_threads(s.get('mean_threads'))} |",
        "",
        "**Warm-loaded models**",
        "",
        "| model | family | device | dtype | memory | sample rate | load | warm-up | warm-up RTF |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {c.name} | {c.family} | {c.device} | {c.dtype} | {c.memory_mb:.1f} MB "
              f"| {c.sample_rate} Hz | {w.load_s:.2f} s | {w.warmup_s:.2f} s | {w.warmup_rtf:.2f} |"
              for w, c in ((w, w.card) for w in pipeline.registry.warm)]
    return "\n".join(lines)


def per_model_markdown(pipeline: Pipeline) -> str:
    """Rolling p50/p95 per model: a Bark and a VITS request mixed into one p50 mean nothing."""
    models = sorted({r.model for r in pipeline.stats.records()})
    if not models:
        return "**Per model**: no requests yet."
    rows = ["**Per model** (the same window)", "",
            "| model | requests | total p50 | total p95 | first audio p50 | first audio p95 | mean RTF "
            "| threads per call |",
            "|---|---|---|---|---|---|---|---|"]
    for name in models:
        s = pipeline.stats.snapshot(model=name)
        rows.append(f"| {name} | {s['count']} | {_ms(s['p50_total_ms'])} | {_ms(s['p95_total_ms'])} "
                    f"| {_ms(s['p50_first_audio_ms'])} | {_ms(s['p95_first_audio_ms'])} "
                    f"| {s['mean_rtf']:.3f} | {_threads(s.get('mean_threads'))} |")
    return "\n".join(rows)


MIN_Y_TOP = 5  # the y axis reaches at least this high: its ticks are whole steps, never 0.2
# The x axis (seconds ago) spans the first of these that holds every point: whole-second ticks
# (a span of 2 s labelled in whole seconds read "-3, -3, -2, -2"), and a span that changes
# only in steps. The last is the LIVE_SAMPLES window.
X_SPANS_S = (10, 30, 60, 120, 300)


def new_requests(samples) -> list[dict]:
    """The refreshes at which requests had been served since the one before: one point each.
    (A refresh with nothing new would repeat the last p50 and draw one request as a flat line.)"""
    points, before = [], 0
    for s in samples:
        if s["served"] != before and s["count"]:
            points.append(s)
        before = s["served"]
    return points


def latency_frame(samples) -> tuple[pd.DataFrame, str, int]:
    """The rolling p50/p95 of total and first-audio time after each refresh that saw new
    requests, in whole ms; the chart's caption ("no requests yet", or where an outlier was
    clipped: a spike CLIP_FACTOR times the median or more would flatten every other line);
    the y axis' top."""
    series = (("total p50", "p50_total_ms"), ("total p95", "p95_total_ms"),
              ("first p50", "p50_first_audio_ms"), ("first p95", "p95_first_audio_ms"))
    now = samples[-1]["t"] if samples else 0.0
    rows = [(round(s["t"] - now, 1), name, round(s[key])) for s in new_requests(samples)
            for name, key in series if s[key] is not None]
    caption = ("Whole milliseconds (first: first audio), a point for each refresh that saw new "
               "requests; the newest on the right.")
    top = MIN_Y_TOP
    if rows:
        values = sorted(ms for _, _, ms in rows)
        ceiling = max(1, CLIP_FACTOR * values[len(values) // 2])
        if values[-1] > ceiling:
            rows = [(t, name, min(ms, ceiling)) for t, name, ms in rows]
            caption = (f"Clipped at {ceiling} ms ({CLIP_FACTOR}x the median) so that the other "
                       f"lines stay readable; the highest point was {values[-1]} ms.")
        top = max(MIN_Y_TOP, min(values[-1], ceiling))
    else:
        caption = "No requests yet."
    # Never empty: a LinePlot whose first value has no rows draws no lines after it (Gradio
    # 6.31), so with no requests yet each line gets one blank (NaN) point.
    rows = rows or [(0.0, name, float("nan")) for name, _ in series]
    return pd.DataFrame(rows, columns=["seconds ago", "series", "ms"]).astype(
        {"seconds ago": float, "series": str, "ms": float}), caption, top


def queue_frame(samples) -> tuple[pd.DataFrame, str, int]:
    """How many requests were in the gate at each live refresh (whole requests), the chart's
    caption, and the y axis' top."""
    now = samples[-1]["t"] if samples else 0.0
    frame = pd.DataFrame([(round(s["t"] - now, 1), int(s["queue_depth"])) for s in samples],
                         columns=["seconds ago", "requests"]).astype(
        {"seconds ago": float, "requests": float})
    served = samples[-1]["served"] if samples else 0
    top = max([MIN_Y_TOP] + [int(s["queue_depth"]) for s in samples])
    return frame, ("No requests yet." if not served else "Whole requests, waiting or running."), top


class PointLinePlot(gr.LinePlot):
    """A line chart whose lone points are drawn as points: a line through one point draws
    nothing (and a line of repeated samples draws a flat line across)."""

    is_template = True  # drawn by Gradio's own LinePlot

    def postprocess(self, value):
        data = super().postprocess(value)
        if isinstance(value, pd.DataFrame) and data is not None and not isinstance(data, dict):
            x, y = self.x, self.y
            drawn = value.dropna(subset=[y])
            per_line = drawn.groupby(self.color)[x].nunique() if self.color else \
                pd.Series([drawn[x].nunique()])
            if len(drawn) and per_line.max() <= 1:
                data.mark = "point"
        return data


def x_span(frame: pd.DataFrame) -> int:
    """The x axis' span in seconds: the first of X_SPANS_S that holds every point."""
    earliest = frame["seconds ago"].min() if len(frame) else 0.0
    oldest = 0.0 if pd.isna(earliest) else -float(earliest)
    return next((span for span in X_SPANS_S if oldest <= span), X_SPANS_S[-1])


def _chart(frame_caption_top, shown) -> tuple[dict, tuple[int, int]]:
    """The chart's update, and its axes' (y top, x span). The axes go to the page only when
    they change: a new `y_lim`/`x_lim` (a new list each time) makes the browser draw the chart
    anew, which every refresh on a busy 2-core machine slowed the page's other events."""
    frame, caption, top = frame_caption_top
    axes = (top, x_span(frame))
    if axes == shown:
        return gr.update(value=frame, caption=caption), axes
    return gr.update(value=frame, caption=caption, **axis_limits(*axes)), axes


def axis_limits(top: int, span: int) -> dict:
    """The charts' `y_lim` and `x_lim`, with room past the highest and the newest point (a
    point on the frame's edge was drawn cut in half)."""
    return {"y_lim": [0, math.ceil(top * 1.08)], "x_lim": [-span, span / 40]}


def refresh(ctx: StudioContext, shown=None):
    """The live panel, per-model table and charts; a point is added at most once a refresh
    (the points are shared by every page of this server). `shown`: this page's charts' y
    and x axes (None at page load), kept in its State."""
    samples = ctx.live_samples
    now = time.time()
    if not samples or now - samples[-1]["t"] >= LIVE_REFRESH_S / 2:
        samples.append(dict(ctx.pipeline.snapshot(), t=now))
    latency_axes, queue_axes = shown or (None, None)
    latency, latency_axes = _chart(latency_frame(samples), latency_axes)
    queue, queue_axes = _chart(queue_frame(samples), queue_axes)
    return (live_markdown(ctx.pipeline), per_model_markdown(ctx.pipeline), latency, queue,
            (latency_axes, queue_axes))


def add_live_panel(ctx: StudioContext, demo: gr.Blocks) -> None:
    """The panel, inside the current Blocks, refreshed on page load and every LIVE_REFRESH_S."""
    with gr.Column(elem_id="live"):
        gr.Markdown("## Live: every request to this server")
        live_md = gr.Markdown(live_markdown(ctx.pipeline), elem_id="live-stats")
        with gr.Row():
            latency, caption, top = latency_frame([])
            latency_chart = PointLinePlot(latency, x="seconds ago", y="ms",
                                          color="series", color_map=LATENCY_COLOURS,
                                          color_title=" ",  # no "series": the legend fits 390 px
                                          title="Latency: total and first audio (p50, p95)",
                                          y_axis_format="d", x_axis_format="d", caption=caption,
                                          **axis_limits(top, X_SPANS_S[0]),
                                          elem_id="latency-chart", min_width=300)
            queue, caption, top = queue_frame([])
            queue_chart = PointLinePlot(queue, x="seconds ago", y="requests",
                                        **axis_limits(top, X_SPANS_S[0]),
                                        title="In the gate (waiting or running)",
                                        y_axis_format="d", x_axis_format="d", caption=caption,
                                        elem_id="queue-chart",
                                        min_width=300)
        per_model = gr.Markdown(per_model_markdown(ctx.pipeline), elem_id="per-model")
    # this page's charts' axes. (No fixed height: Gradio 6.31 cuts a plot's caption off below it.)
    shown = gr.State(None)
    outputs = [live_md, per_model, latency_chart, queue_chart, shown]
    demo.load(bind(refresh, ctx), None, outputs, api_visibility="private", queue=False)
    gr.Timer(LIVE_REFRESH_S).tick(bind(refresh, ctx), shown, outputs, api_visibility="private",
                                  queue=False)
