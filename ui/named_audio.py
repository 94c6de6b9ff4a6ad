"""The Result player: a gr.Audio that serves a result's bytes under the result's own name.

Gradio 6.31 saves audio bytes as `audio.wav`, and probes a file path with ffprobe (absent
where ffmpeg comes from imageio-ffmpeg); a `NamedAudio` value is saved as its name, unprobed:
the WAV of result speech-<n> downloads as speech-<n>.wav, beside its speech-<n>.srt.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
from gradio import processing_utils
from gradio.data_classes import FileData


@dataclass(frozen=True)
class NamedAudio:
    """Encoded audio and the file name it is served and downloaded under."""

    filename: str  # e.g. "speech-3.wav"
    data: bytes


class ResultAudio(gr.Audio):
    """gr.Audio (the same player in the page and the same type in the API) that also takes a
    NamedAudio."""

    is_template = True  # Gradio draws it with gr.Audio's own frontend

    def postprocess(self, value):
        if isinstance(value, NamedAudio):
            path = processing_utils.save_bytes_to_cache(value.data, value.filename,
                                                        cache_dir=self.GRADIO_CACHE)
            return FileData(path=path, orig_name=value.filename)
        return super().postprocess(value)
