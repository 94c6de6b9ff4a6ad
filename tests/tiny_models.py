"""Tiny random transformers TTS models built from their Config classes, saved like hub checkpoints.

There is no model hub on test machines: these go through exactly the `from_pretrained`
path the app uses for `facebook/mms-tts-eng` and friends, in well under a second.
"""

from __future__ import annotations

import json
from pathlib import Path

# MMS-TTS English's alphabet: lowercase letters, space, apostrophe and hyphen; no digits.
MMS_CHARACTERS = list(" abcdefghijklmnopqrstuvwxyz'-")
TINY_VITS_RATE = 16000


def make_tiny_vits(folder: Path, num_speakers: int = 1, seed: int = 0) -> Path:
    """Save a ~37k-parameter VitsModel and its character tokenizer to `folder`."""
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0} | {ch: i + 1 for i, ch in enumerate(MMS_CHARACTERS)}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = VitsTokenizer(str(folder / "vocab.json"), pad_token="<pad>", unk_token="<unk>",
                              language="eng", phonemize=False)
    config = VitsConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        ffn_dim=32, flow_size=16, spectrogram_bins=33, upsample_initial_channel=16,
        upsample_rates=[8, 8], upsample_kernel_sizes=[16, 16], resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]], prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1, duration_predictor_filter_channels=16,
        depth_separable_num_layers=1, sampling_rate=TINY_VITS_RATE, num_speakers=num_speakers,
        speaker_embedding_size=8 if num_speakers > 1 else 0,
    )
    torch.manual_seed(seed)
    VitsModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
