"""The "Long text" panel: upload or paste a book, see its chapters, start a job, watch it, play and download.

Jobs made here are the same as POST /v1/audio/jobs makes (`tts_core.jobs`): they render in
the background at the gate's lowest priority, so nobody at the page waits for them, and
survive a restart when TTS_JOBS_DIR is set.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import gradio as gr

from tts_core import SpeechRequest, TTSError
from tts_core.jobs import jobs_for, read_input
from tts_core.jobs.assemble import BOOK_FORMATS
from tts_core.jobs.manager import JobNotFound, owner_for_key
from ui.context import StudioContext
from ui.html import file_size

POLL_S = 1.0  # how often the panel reads a running job's progress
UPLOAD_TYPES = [".txt", ".md", ".markdown", ".epub"]
SHOWN_FORMATS = ("mp3", "m4b", "wav", "flac", "opus")


def _read(file, pasted: str, input_format: str):
    """The chapters of the uploaded file, else of the pasted text."""
    if file:
        path = Path(file if isinstance(file, str) else file.name)
        return read_input(path.read_bytes(), "" if input_format == "auto" else input_format,
                          path.name)
    fmt = "text" if input_format in ("auto", "epub") else input_format
    return read_input(pasted or "", fmt)


def chapters_table(chapters) -> list[list]:
    return [[n + 1, c.title, len(c.text)] for n, c in enumerate(chapters)]


def progress_html(job: dict | None) -> str:
    """A job's progress bar, estimated finish and each chapter's progress."""
    if not job:
        return ""
    percent = round(job["progress"] * 100, 1)
    eta = job.get("estimated_finish")
    when = f", done in about {max(0, round(eta - time.time()))} s" if eta else ""
    error = f"<p class='job-error'>{html.escape(job['error'])}</p>" if job.get("error") else ""
    rows = "".join(f"<li>{html.escape(c['title'])}: {round(c['progress'] * 100)} %</li>"
                   for c in job["chapters"])
    return (f"<div class='job-progress'><progress max='100' value='{percent}'></progress> "
            f"{percent} % ({job['status']}{when}; {job['audio_seconds']:.0f} s of audio)"
            f"{error}<ul>{rows}</ul></div>")


def add_jobs_panel(ctx: StudioContext, model, voice, speed) -> None:
    """The panel, inside the current Blocks; `model`, `voice`, `speed`: the page's own pickers."""
    manager = jobs_for(ctx.pipeline)
    owner = owner_for_key(ctx.settings.api_key)
    with gr.Accordion("Long text: books and chapters, rendered in the background", open=False,
                      elem_id="long-text"):
        with gr.Row():
            limit = file_size(ctx.settings.max_upload_bytes)  # TTS_MAX_UPLOAD_BYTES
            upload = gr.File(label=f"A .txt, .md or .epub file (at most {limit})",
                             file_types=UPLOAD_TYPES, elem_id="job-file")
            pasted = gr.Textbox(label="or paste text", lines=6, elem_id="job-text")
        with gr.Row():
            input_format = gr.Dropdown(["auto", "text", "markdown", "epub"], value="auto",
                                       label="Input", elem_id="job-input-format")
            out_format = gr.Dropdown([f for f in SHOWN_FORMATS if f in BOOK_FORMATS], value="mp3",
                                     label="Audio", elem_id="job-format")
            show = gr.Button("Show chapters", elem_id="job-chapters-button")
            start = gr.Button("Start", variant="primary", elem_id="job-start")
        chapters = gr.Dataframe(headers=["#", "chapter", "characters"], interactive=False,
                                elem_id="job-chapters")
        job_id = gr.State(None)
        progress = gr.HTML(elem_id="job-progress")
        with gr.Row():
            number = gr.Number(1, precision=0, minimum=1, label="Chapter", elem_id="job-chapter")
            play = gr.Button("Play chapter", elem_id="job-play")
        chapter_audio = gr.Audio(label="Chapter", type="numpy", elem_id="job-chapter-audio")
        download = gr.File(label="The finished book", elem_id="job-download")
        timer = gr.Timer(POLL_S, active=False)

    def show_chapters(file, text, fmt):
        try:
            return chapters_table(_read(file, text, fmt))
        except TTSError as e:
            raise gr.Error(str(e)) from e

    def start_job(file, text, fmt, model_name, voice_name, speed_value, audio_format):
        try:
            found = _read(file, text, fmt)
            request = SpeechRequest("", model=model_name, voice=voice_name or None,
                                    speed=speed_value, format=audio_format)
            job = manager.submit(found, request, owner, "auto" if fmt == "auto" else fmt)
        except TTSError as e:
            raise gr.Error(str(e)) from e
        return job["id"], chapters_table(found), progress_html(job), gr.Timer(active=True)

    def poll(current):
        if not current:
            return "", None, gr.Timer(active=False)
        try:
            job = manager.get(current, owner)
        except JobNotFound:
            return "The job is gone.", None, gr.Timer(active=False)
        done = job["status"] == "done"
        running = job["status"] in ("queued", "running")
        book = str(manager.file(current, owner)) if done else None
        return progress_html(job), book, gr.Timer(active=running)

    def play_chapter(current, n):
        if not current:
            raise gr.Error("Start a job first.")
        try:
            found = manager.chapter_audio(current, owner, int(n) - 1)
        except (JobNotFound, IndexError) as e:
            raise gr.Error(str(e)) from e
        if found is None:
            raise gr.Error(f"Chapter {int(n)} is not finished yet.")
        return found

    private = {"api_visibility": "private"}
    show.click(show_chapters, [upload, pasted, input_format], chapters, **private)
    start.click(start_job, [upload, pasted, input_format, model, voice, speed, out_format],
                [job_id, chapters, progress, timer], **private)
    timer.tick(poll, job_id, [progress, download, timer], **private)
    play.click(play_chapter, [job_id, number], chapter_audio, **private)
