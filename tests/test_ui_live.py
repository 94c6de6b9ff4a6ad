"""The live charts' data (ui/live.py): a point per refresh that saw new requests, whole ms and
whole requests, an outlier clipped and said so, "no requests yet" before any."""

import math

from ui.live import CLIP_FACTOR, MIN_Y_TOP, PointLinePlot, latency_frame, queue_frame


def sample(t, served, p50=None, p95=None, depth=0):
    return {"t": t, "served": served, "count": served, "queue_depth": depth,
            "p50_total_ms": p50, "p95_total_ms": p95, "p50_first_audio_ms": p50,
            "p95_first_audio_ms": p95}


def test_no_requests_yet_says_so_and_draws_nothing():
    frame, caption, top = latency_frame([sample(0, 0), sample(2, 0)])
    assert caption == "No requests yet." and frame["ms"].isna().all() and top == MIN_Y_TOP
    assert queue_frame([sample(0, 0)])[1] == "No requests yet."


def test_one_request_is_one_point_not_a_flat_line_across():
    samples = [sample(0, 0), sample(2, 1, 120.4, 120.4), sample(4, 1, 120.4, 120.4),
               sample(6, 1, 120.4, 120.4)]
    frame, caption, _ = latency_frame(samples)
    assert frame.groupby("series").size().max() == 1, frame  # one refresh saw it: one point
    assert set(frame["ms"]) == {120.0} and set(frame["seconds ago"]) == {-4.0}  # whole ms
    assert PointLinePlot(frame, x="seconds ago", y="ms", color="series").postprocess(
        frame).mark == "point"
    two = latency_frame(samples + [sample(8, 2, 130.0, 140.0)])[0]
    assert PointLinePlot(two, x="seconds ago", y="ms", color="series").postprocess(
        two).mark == "line"


def test_an_outlier_is_clipped_and_the_caption_says_where():
    samples = [sample(2 * i, i + 1, 100.0 + i, 110.0 + i) for i in range(6)]
    samples.append(sample(20, 7, 105.0, 30_000.0))
    frame, caption, top = latency_frame(samples)
    ceiling = CLIP_FACTOR * 110  # the median of every point drawn
    assert frame["ms"].max() == ceiling and top == ceiling
    assert frame["ms"].min() == 100  # the others keep their own values
    assert f"Clipped at {ceiling} ms" in caption and "the highest point was 30000 ms" in caption


def test_the_gate_chart_counts_whole_requests_and_its_axis_reaches_whole_steps():
    frame, caption, top = queue_frame([sample(0, 1, depth=0), sample(2, 1, depth=3)])
    assert list(frame["requests"]) == [0.0, 3.0] and caption.startswith("Whole requests")
    assert top == MIN_Y_TOP and all(not math.isnan(v) for v in frame["requests"])
    assert queue_frame([sample(0, 1, depth=9)])[2] == 9


def test_the_x_axis_spans_whole_steps_that_hold_every_point():
    """Seconds ago in whole-second ticks: a 2 s span labelled in whole seconds read
    "-3, -3, -2, -2"; the span is the first of 10, 30, 60, 120, 300 s that holds every point."""
    from ui.live import latency_frame, queue_frame, x_span

    def samples(ages):
        return [dict(served=i + 1, count=i + 1, queue_depth=0, t=100.0 - age,
                     p50_total_ms=100, p95_total_ms=120, p50_first_audio_ms=50,
                     p95_first_audio_ms=60) for i, age in enumerate(ages)]

    assert x_span(latency_frame([])[0]) == 10  # no requests yet: the NaN stand-ins
    assert x_span(latency_frame(samples([2.0, 0.0]))[0]) == 10
    assert x_span(queue_frame(samples([45.0, 20.0, 0.0]))[0]) == 60
    assert x_span(queue_frame(samples([299.0, 0.0]))[0]) == 300
