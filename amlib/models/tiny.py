"""Tiny random-weight instances of the real classes, built from a config: no download.

They exercise the real code paths (processor, audio encoder, projector, decoder, generate) in tests
and in the skeleton run. Their answers are noise: scores at chance level are expected.
"""

from __future__ import annotations

import torch

TINY_QWEN2_AUDIO = "tiny-random-qwen2-audio"
AUDIO_SPECIAL_TOKENS = ["<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>"]


def qwen2_audio_processor(tokenizer):
    """A Qwen2AudioProcessor around `tokenizer` with Qwen2-Audio's 128-bin Whisper front end."""
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor

    tokenizer.add_special_tokens({"additional_special_tokens": AUDIO_SPECIAL_TOKENS})
    features = WhisperFeatureExtractor(feature_size=128, sampling_rate=16_000, hop_length=160, chunk_length=30)
    return Qwen2AudioProcessor(feature_extractor=features, tokenizer=tokenizer)


def tiny_qwen2_audio(seed: int = 0, hidden: int = 64, layers: int = 4):
    """(model, processor) of a random Qwen2-Audio with the SmolLM2 tokenizer; seeded weights."""
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

    from amlib.models.assets import smollm2_tokenizer

    processor = qwen2_audio_processor(smollm2_tokenizer())
    tok = processor.tokenizer
    config = Qwen2AudioConfig(
        audio_config=dict(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
                          num_mel_bins=128, max_source_positions=1500),
        text_config=dict(model_type="qwen2", vocab_size=len(tok), hidden_size=hidden,
                         intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=16384,
                         eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), pad_token_id=tok.pad_token_id),
        audio_token_index=processor.audio_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(config).eval()
    return model, processor
