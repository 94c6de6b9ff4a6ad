"""Windows of a sentence's latent: the order in which a stream decodes one sentence.

A two-stage engine (Piper, transformers VITS) makes a sentence's whole latent in one
cheap pass, then its HiFi-GAN decoder turns frames of latent into audio. The decoder is
convolutional, so it can run on any window of frames (reading a few frames of context on
each side) and the windows join into the same audio as one decode of the whole sentence.
A stream decodes its first sentence's first window small, so the listener hears the
sentence begin after the first pass and one small decode, and lets the windows grow, so
the rest of the sentence costs little more than one decode (each window re-reads its
context frames). Later sentences, made while the first is heard, start at the largest
window.
"""

from __future__ import annotations

from typing import Iterator

# Chosen by measurement (bench.py, "streaming inside the sentence"; docs/benchmark.md): on the joe
# voice 256 samples a frame at 22,050 Hz, 24 frames are 0.28 s of audio, decoded in
# about 10 ms here; doubling after it keeps a 150-character sentence to 5 windows and the
# stream within a few percent of one whole decode.
FIRST_WINDOW_FRAMES = 24
WINDOW_GROWTH = 2
# No window holds the device longer than about this much audio (about 150 ms of decoding
# on this CPU for the joe voice), so a request waiting for its first audio is not kept
# behind another's long sentence.
MAX_WINDOW_FRAMES = 512


def window_plan(frames: int, first: int = FIRST_WINDOW_FRAMES, growth: int = WINDOW_GROWTH,
                largest: int = MAX_WINDOW_FRAMES) -> Iterator[tuple[int, int]]:
    """(start, stop) frame ranges covering [0, frames) in order: `first`, then growing.

    A last window smaller than half the one before it is merged into that one, so a
    sentence never ends on a sliver that costs a whole window's context.
    """
    start, size = 0, max(1, first)
    while start < frames:
        stop = min(frames, start + size)
        if frames - stop < size * growth // 2:
            stop = frames
        yield start, stop
        start, size = stop, min(largest, size * growth)
