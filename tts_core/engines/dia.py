"""Nari Labs Dia (nari-labs/Dia-1.6B-0626): text (and a voice's DAC codes) -> DAC codes under a
delay pattern -> DAC, 44.1 kHz, about 86 frames a second.

A cloned voice is the clip's transcript, spoken before the new text, and its DAC codes as
the audio prompt; the codes are computed once by `encode_voice` and laid out for each
request as the processor lays out a clip's codes (BOS, codes, delay pattern), so no request
runs the DAC encoder. Dia writes channel c of frame t at step t + delay[c]: a frame is
complete `max(delay)` steps after it starts, and both the whole file and a stream take
exactly the complete frames before the first end-of-speech frame (`_complete_frames`).
"""

from __future__ import annotations

import logging
import re
from typing import Callable

import numpy as np
import torch
from transformers import DiaForConditionalGeneration, DiaProcessor

from ..config import ModelSpec
from .base import DialogueScript, SynthesisParams
from .codec_lm import CodecLMEngine, max_frames
from .torch_util import dtype_name, weights_bytes

logger = logging.getLogger(__name__)

SPEAKER_TAG = "[S1]"  # Dia's text names its speakers; one speaker for the clip and the new text
# The plan reads English numbers as words (text.expand), which turns "[S2]" into "[S two ]":
# the tag is put back before Dia reads it.
_NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_SPOKEN_TAG = re.compile(r"\[S\s*(" + "|".join(_NUMBER_WORDS) + r")\s*\]")

# Dia's text convention, as Nari Labs state it (github.com/nari-labs/dia README, "Features";
# the nari-labs/Dia-1.6B model card says the same): dialogue through the [S1] and [S2] tags,
# starting with [S1] and alternating; non-verbal sounds as these tags, which "will be
# recognized, but might result in unexpected output" (use them sparingly).
DIA_NONVERBAL = ("(laughs)", "(clears throat)", "(sighs)", "(gasps)", "(coughs)", "(singing)",
                 "(sings)", "(mumbles)", "(beep)", "(groans)", "(sniffs)", "(claps)",
                 "(screams)", "(inhales)", "(exhales)", "(applause)", "(burps)", "(humming)",
                 "(sneezes)", "(chuckle)", "(whistles)")
DIA_DIALOGUE = DialogueScript(
    speakers=("[S1]", "[S2]"), nonverbal=DIA_NONVERBAL,
    example=("[S1] Did you finish the last chapter? [S2] Almost, I stopped at the storm "
             "(sighs) because it kept me up. [S1] It gets better, I promise (laughs). "
             "[S2] You said that about the first one."),
    # What `speakers_carried` does to the sentences Dia is given one at a time.
    untagged=("Text without a tag is spoken by [S1]. A tag holds until the next one: the text "
              "goes to Dia a sentence at a time, and a sentence that starts with no tag is "
              "given the tag of whoever spoke last."))


_TAG = re.compile(r"\[S\d\]")


def _restored(text: str) -> str:
    return _SPOKEN_TAG.sub(lambda m: f"[S{_NUMBER_WORDS.index(m.group(1)) + 1}]", text.strip())


def _tagged(text: str) -> str:
    text = _restored(text)
    return text if text.startswith("[S") else f"{SPEAKER_TAG} {text}"


def speakers_carried(chunks: list[str]) -> list[str]:
    """Each chunk (a sentence) that starts with no speaker tag is spoken by whoever spoke last:
    a turn of several sentences keeps its speaker; text before any tag is [S1]."""
    carried, speaker = [], SPEAKER_TAG
    for chunk in chunks:
        chunk = _restored(chunk)
        if not _TAG.match(chunk):
            chunk = f"{speaker} {chunk}"
        speaker = _TAG.findall(chunk)[-1]
        carried.append(chunk)
    return carried


class DiaEngine(CodecLMEngine):
    family = "dia"
    supports_batching = True  # same voice, same prompt length: one generate, rows cut at their ends
    max_chunk_chars = 250  # Dia is trained on up to about 20 s of audio per generation
    # DAC's decoder is not causal: a window reads frames on both sides. 8 frames (93 ms) of
    # right context and 16 of left; checked at warm-up against the whole decode.
    lookahead = 8
    left_context = 16
    first_window_frames = 16  # 186 ms of audio before the first piece leaves
    max_window_frames = 128
    clip_min_s, clip_max_s, clip_needs_transcript = 3.0, 10.0, True
    dialogue = DIA_DIALOGUE

    def __init__(self, spec: ModelSpec, device: str, cpu_threads: int | None = None):
        super().__init__(spec, device, cpu_threads)
        # bfloat16 on CUDA for the 1.6B model (Nari Labs run it in bfloat16 or float16; bfloat16
        # keeps float32's range for its logits); the DAC codec stays float32 as the processor
        # loads it. Not measured on a GPU here (no GPU on the build machine).
        dtype = self._load_pretrained(
            spec, DiaProcessor, DiaForConditionalGeneration, "bfloat16", "Dia",
            "Give a hub id such as nari-labs/Dia-1.6B-0626 or a folder made by "
            "save_pretrained (model and DiaProcessor; its DAC codec is named by repo "
            "id or folder in processor_config.json).")
        self.codec = self.processor.audio_tokenizer.to(self.device).eval()
        audio = self.processor._merge_kwargs()["audio_kwargs"]
        self.delay = list(self.model.config.delay_pattern)
        self.bos, self.eos, self.pad = (int(audio["bos_token_id"]), int(audio["eos_token_id"]),
                                        int(audio["pad_token_id"]))
        self.sample_rate = int(self.codec.config.sampling_rate)
        self.samples_per_frame = int(self.codec.config.hop_length)
        self.frame_rate = self.sample_rate / self.samples_per_frame
        steps = getattr(self.model.generation_config, "max_new_tokens", None)  # the checkpoint's own cap
        self.frames_ceiling = max(1, int(steps) - max(self.delay)) if steps else None
        self.language_tag = "en"
        self.dtype = dtype_name(dtype)
        self.memory_bytes = weights_bytes(self.model, self.codec)
        self.note = ("Dia clones a voice from a 3-10 s clip and its transcript. Its text may name "
                     "speakers ([S1], [S2]) and non-verbal sounds; untagged text is [S1]. No speed "
                     "control; a seed repeats the audio exactly.")

    # --- prompt ---------------------------------------------------------------------------

    def chunk_texts(self, chunks: list[str]) -> list[str]:
        return speakers_carried(chunks)

    def _prepare(self, text: str, voice: dict | None) -> dict:
        spoken = _tagged(text) if voice is None else f"{_tagged(voice['text'])} {_tagged(text)}"
        return {"text": spoken, "codes": None if voice is None else voice["codes"],
                "max_frames": max_frames(text, self.frame_rate, self.frames_ceiling)}

    def _decoder_prompt(self, codes: torch.Tensor | None, batch: int) -> dict:
        """The decoder's start as the processor builds it for a clip (BOS, the clip's codes, the
        delay pattern laid over them); all BOS without a clip."""
        channels, max_delay = len(self.delay), max(self.delay)
        frames = 0 if codes is None else codes.shape[0]
        rows = torch.full((1, 1 + frames, channels), self.bos, dtype=torch.long)
        if codes is not None:
            rows[0, 1:] = codes.cpu()
        length = 1 + frames + max_delay
        prefill = torch.full((1, length, channels), self.pad, dtype=torch.int)
        prefill[:, :1 + frames] = rows
        indices = self.processor.build_indices(bsz=1, seq_len=length, num_channels=channels,
                                               delay_pattern=self.delay, revert=False)
        ids = self.processor.apply_audio_delay(audio=prefill, pad_token_id=self.pad,
                                               bos_token_id=self.bos, precomputed_idx=indices)
        return {"decoder_input_ids": ids.repeat(batch, 1, 1),
                "decoder_attention_mask": torch.ones((batch, length), dtype=torch.long)}

    # --- generation -----------------------------------------------------------------------

    def generate_frames(self, prepared: list[dict], params: SynthesisParams,
                        emit: Callable[[torch.Tensor], None] | None = None) -> list[torch.Tensor]:
        inputs = self.processor(text=[p["text"] for p in prepared], padding=True,
                                return_tensors="pt")
        inputs.update(self._decoder_prompt(prepared[0]["codes"], len(prepared)))
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        start = 1 + (0 if prepared[0]["codes"] is None else prepared[0]["codes"].shape[0])
        streamer = _DelayedFrames(self, start, emit) if emit is not None else None
        with torch.inference_mode():
            out = self.model.generate(**inputs, streamer=streamer, max_new_tokens=max(
                p["max_frames"] for p in prepared) + max(self.delay))
        return [self._complete_frames(rows, start) for rows in out]

    def _complete_frames(self, rows: torch.Tensor, start: int) -> torch.Tensor:
        """Frames [start, ...) of delayed `rows` (steps, channels) that are complete, up to the
        first whose first channel is end of speech (or padding)."""
        if rows.shape[0] == 0:
            return rows
        usable = rows.shape[0] - max(self.delay)
        if usable <= start:
            return rows.new_zeros((0, rows.shape[1]))
        frames = torch.stack([rows[start + d:usable + d, c] for c, d in enumerate(self.delay)], dim=1)
        ends = ((frames[:, 0] == self.eos) | (frames[:, 0] == self.pad)).nonzero()
        return frames[:int(ends[0])] if ends.numel() else frames

    def decode_frames(self, frames: torch.Tensor) -> np.ndarray:
        if frames.shape[0] == 0:
            return np.zeros(0, np.float32)
        codes = frames.T[None].to(self.device).clamp(0, self.codec.config.codebook_size - 1)
        with torch.inference_mode():
            audio = self.codec.decode(audio_codes=codes).audio_values
        return np.clip(audio.float().cpu().numpy().reshape(-1), -1.0, 1.0)

    # --- voices ---------------------------------------------------------------------------

    def codec_encoder(self) -> torch.nn.Module:
        """The module whose `encode` turns a clip into conditioning (only `encode_voice` calls it)."""
        return self.codec

    def _encode(self, audio: np.ndarray, transcript: str | None) -> dict[str, np.ndarray]:
        """The clip's DAC codes (frames, channels), padded to whole frames as the processor
        pads it, and its transcript."""
        hop = self.samples_per_frame
        padded = np.pad(audio, (0, -audio.shape[0] % hop))
        values = torch.from_numpy(padded)[None, None].to(self.device, self.codec.dtype)
        codes = self.codec.encode(values).audio_codes[0].T
        return {"codes": codes.cpu().numpy().astype(np.int64),
                "transcript": np.array((transcript or "").strip())}

    def _voice_from(self, conditioning: dict[str, np.ndarray]) -> dict:
        codes = np.asarray(conditioning["codes"])
        channels = len(self.delay)
        if codes.ndim != 2 or codes.shape[1] != channels or codes.shape[0] == 0:
            raise ValueError(f"codes of shape {codes.shape}, not (frames, {channels})")
        if codes.min() < 0 or codes.max() >= self.codec.config.codebook_size:
            raise ValueError("codes outside the codec's codebooks")
        text = str(np.asarray(conditioning["transcript"]))
        if not text:
            raise ValueError("no transcript")
        return {"codes": torch.from_numpy(codes.astype(np.int64)), "text": text}


class _DelayedFrames:
    """Dia's generate calls `put` with the decoder's start (batch, channels, steps), then with
    each step (batch * channels,): frames go to `emit` as soon as they are complete, by the
    engine's own `_complete_frames` rule."""

    def __init__(self, engine: DiaEngine, start: int, emit: Callable[[torch.Tensor], None]):
        self._engine, self._start, self._emit = engine, start, emit
        self._rows: list[torch.Tensor] = []
        self._sent = 0

    def put(self, value: torch.Tensor) -> None:
        channels = len(self._engine.delay)
        if value.ndim == 3:
            self._rows.extend(value[0].T)
        else:
            self._rows.append(value.reshape(-1, channels)[0])
        frames = self._engine._complete_frames(torch.stack(self._rows), self._start)
        for frame in frames[self._sent:]:
            self._emit(frame.clone())
        self._sent = max(self._sent, frames.shape[0])

    def end(self) -> None:
        """Nothing left: every complete frame was sent as it completed."""
