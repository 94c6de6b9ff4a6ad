"""Sesame CSM (sesame/csm-1b): text (and a voice's context turn) -> Mimi codes -> Mimi, 24 kHz.

A cloned voice is a context turn: the clip's transcript and its Mimi codes, spoken by the
same speaker id as the new text (csm-mlx #21: the ids must match). The codes are computed
once, by `encode_voice`; each request embeds them straight into the prompt (the processor's
own path would run the Mimi encoder on the clip for every request). The built-in voice
"default" has no context: without a seed CSM picks a different speaker each time.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch
from transformers import CsmForConditionalGeneration, CsmProcessor

from ..config import ModelSpec
from .base import SynthesisParams
from .codec_lm import CodecLMEngine, max_frames
from .torch_util import dtype_name, weights_bytes

logger = logging.getLogger(__name__)

SPEAKER = "0"  # one speaker id for the context turn and the new text
# sesame/csm-1b ships this template; a folder without one gets it (same prompt layout).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ bos_token }}[{{ message['role'] }}]"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ item['text'] }}{% endfor %}"
    "{{ eos_token }}{% for item in message['content'] if item['type'] == 'audio' %}"
    "<|AUDIO|><|audio_eos|>{% endfor %}{% endfor %}")
MIMI_SLIDING_WINDOW = 250  # frames Mimi's decoder transformer attends to (20 s at 12.5 Hz)


class CsmEngine(CodecLMEngine):
    family = "csm"
    supports_batching = True  # left-padded prompts in one generate; rows cut at their own end
    max_chunk_chars = 300  # about 20 s of speech: what CSM says well after a context turn
    # Mimi is causal: a window of the newest frames re-decoded after the frames before it (up to
    # its transformer's window) gives the whole decode's samples; one frame is held back for
    # the up-sampling convolution's overlap into the next frame. Checked at warm-up.
    lookahead = 1
    first_window_frames = 3  # 240 ms of audio before the first piece leaves
    clip_min_s, clip_max_s, clip_needs_transcript = 2.0, 10.0, True

    def __init__(self, spec: ModelSpec, device: str, cpu_threads: int | None = None):
        super().__init__(spec, device, cpu_threads)
        # bfloat16 on CUDA: Sesame's own generator runs csm-1b in bfloat16, and the backbone is
        # a Llama whose activations fit bfloat16's range (float16's they may not); it could
        # not be measured on a GPU here (no GPU on the build machine).
        dtype = self._load_pretrained(
            spec, CsmProcessor, CsmForConditionalGeneration, "bfloat16", "CSM",
            "Give a hub id such as sesame/csm-1b or a folder made by save_pretrained "
            "(model and CsmProcessor).")
        if self.processor.chat_template is None:
            self.processor.chat_template = CHAT_TEMPLATE
        config = self.model.config
        codec = self.model.codec_model.config
        self.frame_rate = float(codec.frame_rate)
        self.sample_rate = int(codec.sampling_rate)
        self.samples_per_frame = round(self.sample_rate / self.frame_rate)
        self.left_context = min(MIMI_SLIDING_WINDOW, int(getattr(codec, "sliding_window", 0) or
                                                         MIMI_SLIDING_WINDOW))
        self.tokenizer = self.processor.tokenizer
        self.audio_token = self.processor.audio_token
        self.eos_id = int(config.codebook_eos_token_id)
        gen_max = getattr(self.model.generation_config, "max_new_tokens", None)
        self.frames_ceiling = int(gen_max) if gen_max else None
        self.language_tag = "en"
        self.torch_dtype = dtype
        self.dtype, self.memory_bytes = dtype_name(dtype), weights_bytes(self.model)
        self.note = ("CSM clones a voice from a 2-10 s clip and its transcript (a context turn). "
                     "'default' has no context: without a seed it is a different speaker each "
                     "time. No speed control; a seed repeats the audio exactly.")

    # --- prompt ---------------------------------------------------------------------------

    def _prepare(self, text: str, voice: dict | None) -> dict:
        """Token ids of the chat-template prompt, the voice's codes where its audio goes."""
        turns = []
        if voice is not None:
            turns.append({"role": SPEAKER, "content": [{"type": "text", "text": voice["text"]},
                                                       {"type": "audio", "path": ""}]})
        turns.append({"role": SPEAKER, "content": [{"type": "text", "text": text}]})
        prompt = self.processor.apply_chat_template(turns, tokenize=False)
        if voice is not None:
            prompt = prompt.replace(self.audio_token, self.audio_token * voice["codes"].shape[0], 1)
        ids = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
        return {"ids": ids, "codes": None if voice is None else voice["codes"],
                "max_frames": max_frames(text, self.frame_rate, self.frames_ceiling)}

    def _embed(self, item: dict) -> torch.Tensor:
        """The prompt as the model's input embeddings (what its forward makes of ids + audio)."""
        config = self.model.config
        ids = item["ids"].to(self.device)
        embeds = self.model.embed_text_tokens(ids)
        if item["codes"] is not None:
            audio = self.model.backbone_model.embed_tokens(item["codes"][None])[0]
            embeds[ids == config.audio_token_id] = audio.to(embeds.dtype)
            eos = torch.full((1, 1, config.num_codebooks), self.eos_id, device=self.device)
            embeds[ids == config.audio_eos_token_id] = self.model.backbone_model.embed_tokens(
                eos)[0].to(embeds.dtype)
        return embeds

    # --- generation -----------------------------------------------------------------------

    def generate_frames(self, prepared: list[dict], params: SynthesisParams,
                        emit: Callable[[torch.Tensor], None] | None = None) -> list[torch.Tensor]:
        with torch.inference_mode():
            embeds = [self._embed(item) for item in prepared]
            width = max(e.shape[0] for e in embeds)
            batch = embeds[0].new_zeros((len(embeds), width, embeds[0].shape[-1]))
            mask = torch.zeros((len(embeds), width), dtype=torch.long, device=self.device)
            for row, e in enumerate(embeds):  # left padding: every prompt ends where generation starts
                batch[row, width - e.shape[0]:] = e
                mask[row, width - e.shape[0]:] = 1
            streamer = _FrameStreamer(emit, self.eos_id) if emit is not None else None
            codes = self.model.generate(inputs_embeds=batch, attention_mask=mask,
                                        max_new_tokens=max(p["max_frames"] for p in prepared),
                                        streamer=streamer)
        return [self._until_end(row) for row in codes]

    def _until_end(self, codes: torch.Tensor) -> torch.Tensor:
        """A row's frames before its end frame (CSM's own rule: every codebook but the last
        the end id); padding after it goes too."""
        ends = (codes[:, :-1] == self.eos_id).all(dim=-1).nonzero()
        return codes[:int(ends[0])] if ends.numel() else codes

    def decode_frames(self, frames: torch.Tensor) -> np.ndarray:
        if frames.shape[0] == 0:
            return np.zeros(0, np.float32)
        with torch.inference_mode():
            audio = self.model.codec_model.decode(frames.T[None].to(self.device)).audio_values
        return np.clip(audio.float().cpu().numpy().reshape(-1), -1.0, 1.0)

    # --- voices ---------------------------------------------------------------------------

    def codec_encoder(self) -> torch.nn.Module:
        """The module whose `encode` turns a clip into conditioning (only `encode_voice` calls it)."""
        return self.model.codec_model

    def _encode(self, audio: np.ndarray, transcript: str | None) -> dict[str, np.ndarray]:
        """The clip's Mimi codes (frames, codebooks) and its transcript."""
        values = torch.from_numpy(audio)[None, None].to(self.device, self.model.codec_model.dtype)
        codes = self.model.codec_model.encode(values).audio_codes[0].T
        return {"codes": codes.cpu().numpy().astype(np.int64),
                "transcript": np.array((transcript or "").strip())}

    def _voice_from(self, conditioning: dict[str, np.ndarray]) -> dict:
        codes = np.asarray(conditioning["codes"])
        books = self.model.config.num_codebooks
        if codes.ndim != 2 or codes.shape[1] != books or codes.shape[0] == 0:
            raise ValueError(f"codes of shape {codes.shape}, not (frames, {books})")
        if codes.min() < 0 or codes.max() >= self.model.config.vocab_size:
            raise ValueError("codes outside the model's codebooks")
        text = str(np.asarray(conditioning["transcript"]))
        if not text:
            raise ValueError("no transcript")
        return {"codes": torch.from_numpy(codes.astype(np.int64)).to(self.device), "text": text}


class _FrameStreamer:
    """CSM's generate calls `put` with each new frame (batch, codebooks); frames go to `emit`
    until the end frame. (Its first call is the empty prompt.)"""

    def __init__(self, emit: Callable[[torch.Tensor], None], eos_id: int):
        self._emit, self._eos_id, self._ended = emit, eos_id, False

    def put(self, value: torch.Tensor) -> None:
        if value.ndim != 2 or value.shape[-1] == 0 or self._ended:
            return
        frame = value[0]
        if bool((frame[:-1] == self._eos_id).all()):
            self._ended = True
            return
        self._emit(frame.clone())

    def end(self) -> None:
        """Nothing left: the utterance sees its generation end."""
