"""Tiny random transformers TTS models built from their Config classes, saved like hub checkpoints.

There is no model hub on test machines: these go through exactly the `from_pretrained`
path the app uses for `facebook/mms-tts-eng`, `microsoft/speecht5_tts`, `suno/bark-small`
and `sesame/csm-1b`, each built in a second or two, tokenizers and processors included.
"""

from __future__ import annotations

import json
from pathlib import Path

# MMS-TTS English's alphabet: lowercase letters, space, apostrophe and hyphen; no digits.
MMS_CHARACTERS = list(" abcdefghijklmnopqrstuvwxyz'-")
TINY_VITS_RATE = 16000


def make_tiny_vits(folder: Path, num_speakers: int = 1, seed: int = 0,
                   uroman: bool = False) -> Path:
    """Save a ~37k-parameter VitsModel and its character tokenizer to `folder`."""
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0} | {ch: i + 1 for i, ch in enumerate(MMS_CHARACTERS)}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = VitsTokenizer(str(folder / "vocab.json"), pad_token="<pad>", unk_token="<unk>",
                              language="hin" if uroman else "eng", phonemize=False,
                              is_uroman=uroman)
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


SPEECHT5_CHARACTERS = ("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                       "0123456789", " .,!?'\"-:;()")
TINY_SPEECHT5_RATE = 16000


def make_tiny_speecht5(folder: Path, seed: int = 0, stop_logit: float | None = -10.0) -> Path:
    """Save a ~35k-parameter SpeechT5 TTS model + processor to `folder`, a ~11k HiFi-GAN to `folder/vocoder`.

    With random weights the stop head gives sum(sigmoid) ~= 1.0 >= threshold 0.5, so generate_speech
    stops after one step: 2 frames = 512 samples whatever the text. `stop_logit` (e.g. -10.0) pins the
    stop head to a constant: negative never stops, so audio runs to the maxlenratio bound,
    2 * int(T * maxlenratio / 2) * 256 samples for T input ids (5120 * T at the defaults).
    """
    import io
    import tempfile

    import sentencepiece as spm
    import torch
    from transformers import (SpeechT5Config, SpeechT5FeatureExtractor, SpeechT5ForTextToSpeech,
                              SpeechT5HifiGan, SpeechT5HifiGanConfig, SpeechT5Processor,
                              SpeechT5Tokenizer)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Character-level sentencepiece with the hub model's special ids: <s>=0 <pad>=1 </s>=2 <unk>=3.
    sentences = list(SPEECHT5_CHARACTERS) * 4 + ["Hello there, this is a test. 42!"]
    model_bytes = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model_bytes, model_type="char",
        vocab_size=200, hard_vocab_limit=False, character_coverage=1.0,
        bos_id=0, pad_id=1, eos_id=2, unk_id=3, minloglevel=2, num_threads=1,
    )
    with tempfile.TemporaryDirectory() as tmp:
        spm_file = Path(tmp) / "spm_char.model"
        spm_file.write_bytes(model_bytes.getvalue())
        tokenizer = SpeechT5Tokenizer(str(spm_file))
        processor = SpeechT5Processor(feature_extractor=SpeechT5FeatureExtractor(), tokenizer=tokenizer)
        processor.save_pretrained(folder)

    config = SpeechT5Config(
        vocab_size=len(tokenizer), hidden_size=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        encoder_layerdrop=0.0, decoder_layerdrop=0.0, num_mel_bins=80, reduction_factor=2,
        speaker_embedding_dim=512, speech_decoder_prenet_units=16, speech_decoder_postnet_layers=2,
        speech_decoder_postnet_units=16, encoder_max_relative_position=16,
        conv_dim=(8,), conv_stride=(5,), conv_kernel=(10,), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, use_guided_attention_loss=False,
    )
    vocoder_config = SpeechT5HifiGanConfig(
        model_in_dim=config.num_mel_bins, sampling_rate=TINY_SPEECHT5_RATE, upsample_initial_channel=16,
        upsample_rates=[4, 4, 4, 4], upsample_kernel_sizes=[8, 8, 8, 8],
        resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1]], initializer_range=0.25,
    )  # initializer_range 0.25 (default 0.01 gives ~1e-9 peak audio): peak ~0.1-0.7, rms ~0.01-0.07
    torch.manual_seed(seed)
    model = SpeechT5ForTextToSpeech(config)
    if stop_logit is not None:
        with torch.no_grad():
            model.speech_decoder_postnet.prob_out.weight.zero_()
            model.speech_decoder_postnet.prob_out.bias.fill_(stop_logit)
    model.save_pretrained(folder)
    SpeechT5HifiGan(vocoder_config).save_pretrained(folder / "vocoder")
    return folder


TINY_BARK_RATE = 24000
TINY_BARK_PRESETS = ("v2/en_speaker_0", "v2/en_speaker_1")
TINY_BARK_SEMANTIC_TOKENS = 24  # the checkpoint's own per-chunk limit: short, so tests are quick


def make_tiny_bark(folder: Path, presets: bool = True, seed: int = 0) -> Path:
    """Save a ~3M-param random Bark (suno/bark-small layout) into `folder` and return it.

    Loads offline with BarkModel.from_pretrained(folder) and
    BarkProcessor.from_pretrained(folder, speaker_embeddings_dict_path="speaker_embeddings_path.json").
    Real Bark token ids / generation configs / 24 kHz, 75 Hz (hop 320) EnCodec geometry are kept;
    only widths/depths shrink. With `presets`, saves voices "v2/en_speaker_0" and "v2/en_speaker_1".
    """
    import string
    import tempfile

    import numpy as np
    import torch
    from transformers import (BarkCoarseConfig, BarkConfig, BarkFineConfig, BarkModel, BarkProcessor,
                              BarkSemanticConfig, BertTokenizer, EncodecConfig, GenerationConfig)
    from transformers.models.bark.generation_configuration_bark import (
        BarkCoarseGenerationConfig, BarkFineGenerationConfig, BarkGenerationConfig, BarkSemanticGenerationConfig)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    # block_size 1024 like the real model: semantic needs 257 + semantic_max_new_tokens positions,
    # coarse up to 256 + 1 + 630 + 60, fine always runs on max_fine_input_length=1024 frames.
    tiny = dict(block_size=1024, num_layers=1, num_heads=2, hidden_size=16, dropout=0.0)
    semantic = BarkSemanticConfig(input_vocab_size=129_600, output_vocab_size=10_048, **tiny)
    coarse = BarkCoarseConfig(input_vocab_size=12_096, output_vocab_size=12_096, **tiny)
    fine = BarkFineConfig(input_vocab_size=1_056, output_vocab_size=1_056, n_codes_total=8, n_codes_given=1, **tiny)
    # 24 kHz, hop = prod(upsampling_ratios) = 320 -> frame_rate 75 Hz; max bandwidth 6 kbps -> 8 quantizers.
    codec = EncodecConfig(sampling_rate=24_000, upsampling_ratios=[8, 5, 4, 2], target_bandwidths=[1.5, 3.0, 6.0],
                          codebook_size=1024, hidden_size=16, num_filters=2, num_lstm_layers=1)
    config = BarkConfig(semantic_config=semantic.to_dict(), coarse_acoustics_config=coarse.to_dict(),
                        fine_acoustics_config=fine.to_dict(), codec_config=codec.to_dict())
    model = BarkModel(config).eval()
    # EnCodec codebooks init to zeros (audio would ignore the codes) and decoder biases give a DC offset:
    # randomise codebooks (std 100) and zero biases -> zero-mean audio, std ~0.05, peaks ~0.3, code-dependent.
    with torch.no_grad():
        # Random output heads give near-uniform logits, where temperature changes nothing;
        # peaked logits, like a trained model's, make it matter.
        for sub in (model.semantic, model.coarse_acoustics):
            sub.lm_head.weight.normal_(0.0, 1.0)
        for layer in model.codec_model.quantizer.layers:
            layer.codebook.embed.normal_(0.0, 100.0)
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
        for mod in model.codec_model.decoder.modules():
            if isinstance(mod, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)) and mod.bias is not None:
                mod.bias.zero_()
    # Plain GenerationConfig holding the nested dicts, exactly what suno's generation_config.json loads as
    # (a BarkGenerationConfig instance fails GenerationConfig.validate() in save_pretrained).
    model.generation_config = GenerationConfig.from_dict(BarkGenerationConfig.from_sub_model_configs(
        BarkSemanticGenerationConfig(max_new_tokens=TINY_BARK_SEMANTIC_TOKENS),
        BarkCoarseGenerationConfig(), BarkFineGenerationConfig(),
        sample_rate=24_000, codebook_size=1024).to_dict())
    model.save_pretrained(folder)

    # Cased WordPiece vocab (suno uses bert-base-multilingual-cased): ids << 119_548, so
    # text_encoding_offset (10_048) + max id stays below semantic input_vocab_size (129_600).
    chars = string.ascii_letters + string.digits
    words = ["hello", "there", "the", "a", "is", "and"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *("##" + c for c in chars),
             *string.punctuation, *words]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tokenizer = BertTokenizer.from_pretrained(str(tmp), do_lower_case=False, model_max_length=512)
        speaker_embeddings = None
        if presets:
            speaker_embeddings = {"repo_or_path": str(tmp)}
            for name in TINY_BARK_PRESETS:
                n_sem = int(rng.integers(40, 80))
                n_ac = int(round(n_sem * 75 / 49.9))
                arrays = {"semantic_prompt": rng.integers(0, 10_000, n_sem),
                          "coarse_prompt": rng.integers(0, 1024, (2, n_ac)),
                          "fine_prompt": rng.integers(0, 1024, (8, n_ac))}
                speaker_embeddings[name] = {}
                for key, arr in arrays.items():
                    rel = f"{name}_{key}.npy"
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    np.save(tmp / rel, arr.astype(np.int64))
                    speaker_embeddings[name][key] = rel
        processor = BarkProcessor(tokenizer=tokenizer, speaker_embeddings=speaker_embeddings)
        # copies the presets into folder/speaker_embeddings/ and writes speaker_embeddings_path.json
        processor.save_pretrained(str(folder), speaker_embeddings_dict_path="speaker_embeddings_path.json",
                                  speaker_embeddings_directory="speaker_embeddings")
    return folder


# Sesame CSM stands for "any model transformers' text-to-audio pipeline runs".
# The Mimi codec decodes 12.5 frames/s at 24 kHz: one generated frame = 1920 samples (80 ms).
TINY_TEXT_TO_AUDIO_SAMPLE_RATE = 24000
TINY_TEXT_TO_AUDIO_MAX_NEW_TOKENS = 12  # frames per call by default -> 12 * 1920 = 23040 samples (0.96 s)


def make_tiny_text_to_audio(folder: Path, seed: int = 0) -> Path:
    """Build and save a tiny random CSM text-to-speech model + processor into ``folder``.

    About 150k parameters, ~0.6 MB on disk; one pipeline call takes a few tens of ms on CPU.
    The saved generation config samples (do_sample=True, so ``torch.manual_seed`` before the
    call makes the output reproducible) and stops after TINY_TEXT_TO_AUDIO_MAX_NEW_TOKENS
    frames. The weights depend only on ``seed``. Returns ``folder``.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import (CsmConfig, CsmDepthDecoderConfig, CsmForConditionalGeneration, CsmProcessor,
                              EncodecFeatureExtractor, GenerationConfig, MimiConfig, PreTrainedTokenizerFast)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    # Byte-level BPE with no merges: every UTF-8 byte is a token, so any text is encodable.
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|AUDIO|>", "<|audio_eos|>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{specials[0]} $A {specials[1]}", special_tokens=[(specials[0], 0), (specials[1], 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=specials[0], eos_token=specials[1],
                                        pad_token=specials[1], additional_special_tokens=specials[2:],
                                        padding_side="left")  # the pipeline's batch collation pads with this

    n_codebooks, codebook_size = 4, 64
    codec = MimiConfig(  # keeps the real 24 kHz / [8, 6, 5, 4] up-sampling geometry, tiny widths
        sampling_rate=TINY_TEXT_TO_AUDIO_SAMPLE_RATE, hidden_size=16, num_filters=4, codebook_size=codebook_size,
        codebook_dim=16, num_quantizers=n_codebooks, num_semantic_quantizers=1,
        vector_quantization_hidden_dimension=16, upsample_groups=16, num_hidden_layers=1, intermediate_size=32,
        num_attention_heads=2, num_key_value_heads=2, sliding_window=16, max_position_embeddings=256)
    depth = CsmDepthDecoderConfig(
        num_codebooks=n_codebooks, backbone_hidden_size=32, vocab_size=codebook_size, hidden_size=32,
        intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        max_position_embeddings=n_codebooks + 1)
    config = CsmConfig(
        num_codebooks=n_codebooks, vocab_size=codebook_size, text_vocab_size=len(vocab), hidden_size=32,
        intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        max_position_embeddings=512, bos_token_id=0, pad_token_id=1, eos_token_id=None,
        audio_token_id=2, audio_eos_token_id=3,
        # codebook vocab == codec codebook size, so no sampled id can fall outside the Mimi codebooks
        codebook_pad_token_id=codebook_size - 1, codebook_eos_token_id=0,
        depth_decoder_config=depth.to_dict(), codec_config=codec.to_dict())

    torch.manual_seed(seed)
    model = CsmForConditionalGeneration(config).eval()
    with torch.no_grad():  # Mimi inits its codebooks to zeros, which would make the audio ignore the codes
        for name, buf in model.codec_model.named_buffers():
            if name.endswith("codebook.embed_sum"):
                buf.normal_()
        for module in model.codec_model.modules():
            if hasattr(module, "_embed"):
                module._embed = None
        # Random convs give |audio| ~5-30; rescale the last conv so waveforms stay well inside [-1, 1].
        peak = model.codec_model.decode(torch.randint(codebook_size, (1, n_codebooks, 25))).audio_values.abs().max()
        last_conv = model.codec_model.decoder.decoder_seanet.layers[-1].conv
        last_conv.weight.mul_(0.25 / peak)
        last_conv.bias.mul_(0.25 / peak)
    sampling = dict(do_sample=True, temperature=0.9, top_k=50)
    model.generation_config = GenerationConfig(max_new_tokens=TINY_TEXT_TO_AUDIO_MAX_NEW_TOKENS, **sampling)
    # CSM requires the depth decoder to emit exactly n_codebooks - 1 tokens per frame.
    model.depth_decoder.generation_config = GenerationConfig(
        min_new_tokens=n_codebooks - 1, max_new_tokens=n_codebooks - 1, **sampling)
    model.save_pretrained(folder)  # also writes the depth_decoder_* keys into generation_config.json

    feature_extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=TINY_TEXT_TO_AUDIO_SAMPLE_RATE)
    CsmProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


# The CSM family's tiny model: the text-to-audio one above with CSM's chat template (what
# sesame/csm-1b ships), so the context turn of a cloned voice goes through the real template.
CSM_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ bos_token }}[{{ message['role'] }}]"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ item['text'] }}{% endfor %}"
    "{{ eos_token }}{% for item in message['content'] if item['type'] == 'audio' %}"
    "<|AUDIO|><|audio_eos|>{% endfor %}{% endfor %}")


def make_tiny_csm(folder: Path, seed: int = 0) -> Path:
    """A tiny random CSM (model, CsmProcessor with a byte-level tokenizer and chat template,
    tiny Mimi) saved to `folder`, for `csm:FOLDER`; 12 frames (0.96 s) at most per call."""
    from transformers import CsmProcessor

    folder = make_tiny_text_to_audio(Path(folder), seed)
    processor = CsmProcessor.from_pretrained(folder)
    processor.chat_template = CSM_CHAT_TEMPLATE
    processor.save_pretrained(folder)
    return folder


POCKET_AUDIO_TOKENS = ("[AUDIO_PROMPT]", "[AUDIO_LATENT]", "[AUDIO_PROMPT_BOS]", "[AUDIO_BOS]")
# The prompt layout Pocket TTS's processor expects: voice placeholder, text, first audio position.
POCKET_CHAT_TEMPLATE = (
    "{% for message in messages %}{% for item in message['content'] if item['type'] == 'audio' %}"
    "[AUDIO_PROMPT_BOS][AUDIO_PROMPT]{% endfor %}"
    "{% for item in message['content'] if item['type'] == 'text' %}{{ item['text'] }}{% endfor %}"
    "{% endfor %}[AUDIO_BOS]")


def make_tiny_pocket(folder: Path, seed: int = 0) -> Path:
    """A tiny random Pocket TTS saved to `folder`, for `pocket:FOLDER`: the model, a byte-level
    tokenizer with the four audio placeholders, a chat template, and a tiny audio tokenizer in
    `folder/audio_tokenizer` (the processor names it by that path, as the hub's names its repo).
    The real 24 kHz / 12.5 frames-per-second geometry (1,920 samples a latent); the end-of-speech
    threshold is out of reach, so every call runs to its frame budget."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (EncodecFeatureExtractor, GenerationConfig, PocketTTSAudioTokenizerConfig,
                              PocketTTSAudioTokenizerModel, PocketTTSConfig,
                              PocketTTSForConditionalGeneration, PocketTTSProcessor,
                              PreTrainedTokenizerFast)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet())
                                        + list(POCKET_AUDIO_TOKENS))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    names = ("audio_prompt_token", "audio_latent_token", "audio_prompt_bos_token", "audio_bos_token")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                        padding_side="left",
                                        extra_special_tokens=dict(zip(names, POCKET_AUDIO_TOKENS)))
    ids = [vocab[t] for t in POCKET_AUDIO_TOKENS]
    latent_dim = 8
    config = PocketTTSConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, latent_dim=latent_dim, pad_token_id=3, audio_prompt_token_id=ids[0],
        audio_latent_token_id=ids[1], audio_prompt_bos_token_id=ids[2], audio_bos_token_id=ids[3],
        max_position_embeddings=512,
        flow_head_config=dict(hidden_size=32, num_hidden_layers=1, latent_dim=latent_dim,
                              condition_dim=32, frequency_embedding_size=16,
                              loss_weighting_hidden_size=8))
    torch.manual_seed(seed)
    model = PocketTTSForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(do_sample=True, temperature=0.7, num_flow_steps=1,
                                               eos_threshold=1e9, min_frames_before_eos=6,
                                               return_dict_in_generate=True)
    model.save_pretrained(folder)
    codec = PocketTTSAudioTokenizerConfig(
        hidden_size=16, num_filters=4, upsampling_ratios=[8, 6, 5, 4], latent_stride=2,
        upsample_groups=16, num_hidden_layers=1, intermediate_size=32, num_attention_heads=2,
        num_key_value_heads=2, sliding_window=16, max_position_embeddings=256, latent_dim=latent_dim)
    audio_tokenizer = PocketTTSAudioTokenizerModel(codec).eval()
    with torch.no_grad():  # random convs are loud: scale the last one so audio stays inside [-1, 1]
        peak = audio_tokenizer.decode(torch.randn(1, 25, latent_dim)).audio_values.abs().max()
        last = [m for m in audio_tokenizer.decoder.modules() if isinstance(m, torch.nn.Conv1d)][-1]
        last.weight.mul_(0.25 / peak)
        if last.bias is not None:
            last.bias.mul_(0.25 / peak)
    audio_tokenizer.save_pretrained(folder / "audio_tokenizer")
    audio_tokenizer = PocketTTSAudioTokenizerModel.from_pretrained(folder / "audio_tokenizer")
    PocketTTSProcessor(feature_extractor=EncodecFeatureExtractor(feature_size=1, sampling_rate=24000),
                       tokenizer=tokenizer, audio_tokenizer=audio_tokenizer,
                       chat_template=POCKET_CHAT_TEMPLATE).save_pretrained(folder)
    return folder


TINY_DIA_MAX_STEPS = 60  # generation steps per call by default: 44 complete frames of 512 samples


def make_tiny_dia(folder: Path, seed: int = 0) -> Path:
    """A tiny random Dia saved to `folder`, for `dia:FOLDER`: the model (the real 9 channels,
    delay pattern and special ids), DiaProcessor with its byte tokenizer, and a tiny DAC
    (44.1 kHz, 512 samples a frame, decoder_hidden_size 16) saved to `folder/audio_tokenizer`,
    which the processor names by that path instead of descript/dac_44khz."""
    import torch
    from transformers import (DacConfig, DacModel, DiaConfig, DiaDecoderConfig, DiaEncoderConfig,
                              DiaFeatureExtractor, DiaForConditionalGeneration, DiaProcessor,
                              DiaTokenizer, GenerationConfig)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    dac = DacConfig(encoder_hidden_size=8, decoder_hidden_size=16, n_codebooks=9,
                    codebook_size=1024, codebook_dim=4, downsampling_ratios=[2, 4, 8, 8],
                    upsampling_ratios=[8, 8, 4, 2], sampling_rate=44100)
    DacModel(dac).save_pretrained(folder / "audio_tokenizer")
    codec = DacModel.from_pretrained(folder / "audio_tokenizer").eval()
    encoder = DiaEncoderConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2,
                               num_key_value_heads=2, head_dim=16, intermediate_size=64,
                               vocab_size=256, max_position_embeddings=512)
    decoder = DiaDecoderConfig(num_hidden_layers=1, hidden_size=32, intermediate_size=64,
                               num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                               cross_num_attention_heads=2, cross_head_dim=16,
                               cross_num_key_value_heads=2, cross_hidden_size=32, vocab_size=1028,
                               num_channels=9, max_position_embeddings=2048)
    model = DiaForConditionalGeneration(DiaConfig(encoder_config=encoder, decoder_config=decoder))
    # Nari Labs' sampling settings (classifier-free guidance doubles the batch inside generate).
    model.generation_config = GenerationConfig(
        do_sample=True, temperature=1.8, top_p=0.9, top_k=45, guidance_scale=3.0,
        max_new_tokens=TINY_DIA_MAX_STEPS, pad_token_id=1025, eos_token_id=1024, bos_token_id=1026,
        decoder_start_token_id=1026)
    model.eval().save_pretrained(folder)
    DiaProcessor(feature_extractor=DiaFeatureExtractor(sampling_rate=44100, hop_length=512),
                 tokenizer=DiaTokenizer(), audio_tokenizer=codec).save_pretrained(folder)
    return folder


def write_xvectors(folder: Path, names=("alice", "bob")) -> Path:
    """SpeechT5 voices as a person keeps them: one 512-value x-vector .npy file per voice."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        np.save(folder / f"{name}.npy", (rng.standard_normal(512) * 0.05).astype(np.float32))
    return folder


# `python tests/tiny_models.py FAMILY DIR`: one cloning family's tiny model written to DIR.
CLONING_BUILDERS = {"csm": make_tiny_csm, "dia": make_tiny_dia, "pocket": make_tiny_pocket}


def main(argv: list[str] | None = None) -> None:
    """`python tests/tiny_models.py DIR`: build one tiny model of each transformers family in DIR
    (with two x-vector voices for SpeechT5) and print the TTS_MODELS line that loads them.
    `python tests/tiny_models.py FAMILY DIR` (csm, dia, pocket): that family's tiny model in DIR,
    for `FAMILY:DIR`; prints the spec."""
    import sys

    args = argv or sys.argv[1:]
    if len(args) == 2 and args[0] in CLONING_BUILDERS:
        folder = CLONING_BUILDERS[args[0]](Path(args[1]).resolve())
        print(f"{args[0]}:{folder}?name={args[0]}")
        return
    root = Path((args or ["tiny-models"])[0]).resolve()
    voices = write_xvectors(root / "xvectors")
    specs = [f"vits:{make_tiny_vits(root / 'tiny-vits')}?name=tiny-vits",
             f"speecht5:{make_tiny_speecht5(root / 'tiny-speecht5')}?name=tiny-speecht5"
             f"&voices={voices}",
             f"bark:{make_tiny_bark(root / 'tiny-bark')}?name=tiny-bark",
             f"transformers:{make_tiny_text_to_audio(root / 'tiny-csm')}?name=tiny-csm"]
    print(",".join(specs))


if __name__ == "__main__":
    main()
