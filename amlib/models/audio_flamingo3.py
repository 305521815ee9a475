"""Audio Flamingo 3 (`AudioFlamingo3ForConditionalGeneration`): AF-Whisper encoder -> projector -> Qwen2 LM.

Front end (`AudioFlamingo3Processor`): the processor itself splits the audio into consecutive 30 s
windows (3,000 mel frames; the last one shorter and masked), encodes each with the Whisper encoder
(conv stride 2) and an average pool of 2: 750 tokens per full window, 25 tokens/s. One `<sound>`
placeholder expands to the tokens of all windows, so the audio is ONE span in the LM input.

Limit: the processor takes at most `max_audio_len` = 600 s (20 windows, 15,000 tokens) and TRUNCATES
longer audio with only a warning; this adapter raises instead. Note on transformers 5.2: for a
partial last window the model keeps about twice as many embeddings as the processor reserves
tokens; `masked_scatter` fills the placeholders with the first ones, which are the valid frames.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from amlib.data.audio import SAMPLE_RATE
from amlib.models.base import AudioLMAdapter, PreparedInputs
from amlib.models.common import real_config_dict, scaled_down, token_runs
from amlib.models.qwen2_audio import CONV_STRIDE, HOP_SAMPLES
from amlib.tasks import TaskSpec

REAL_CONFIG = "audio-flamingo-3.json"
TINY_AUDIO_FLAMINGO3 = "tiny-random-audio-flamingo-3"
AUDIO_TOKEN = "<sound>"
# ChatML with the audio placeholder before the text of the user turn, as the real processor's template
# lays it out (the real checkpoint ships its own template; this one serves tiny instances).
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] if c['type'] == 'audio' %}<sound>{% endfor %}"
    "{% for c in m['content'] if c['type'] == 'text' %}{{ c['text'] }}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TINY_OVERRIDES = {  # widths and depths only: 128 mel bins and 1500 positions stay as published
    "audio_config": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
    "text_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "num_key_value_heads": 2},
}


def frames_to_tokens(frames: int) -> int:
    """The processor's count: conv stride 2, then average pool 2, over the valid mel frames."""
    after_conv = (frames - 1) // CONV_STRIDE + 1
    return (after_conv - 2) // 2 + 1


def window_frames(n_samples: int, window_samples: int) -> list[int]:
    """Valid mel frames of each window (the Whisper mask keeps one frame per started hop)."""
    starts = range(0, max(n_samples, 1), window_samples)
    return [-(-min(window_samples, n_samples - start) // HOP_SAMPLES) for start in starts]


def processor_limits() -> tuple[float, float]:
    """(window seconds, maximum seconds) of AudioFlamingo3Processor's defaults."""
    from transformers import AudioFlamingo3Processor
    from transformers.models.audioflamingo3.processing_audioflamingo3 import AudioFlamingo3ProcessorKwargs

    chunk_s = AudioFlamingo3ProcessorKwargs._defaults["audio_kwargs"]["chunk_length"]
    max_s = inspect.signature(AudioFlamingo3Processor.__init__).parameters["max_audio_len"].default
    return float(chunk_s), float(max_s)


class AudioFlamingo3Adapter(AudioLMAdapter):
    family = "audio-flamingo-3"
    model_class = "AudioFlamingo3ForConditionalGeneration"

    def __init__(self, model: torch.nn.Module, processor, model_id: str, revision: str = "unknown"):
        super().__init__(model, processor, model_id, revision)
        granularity = self.encoding_granularity(model.config)
        self.tokens_per_second = granularity["tokens_per_second"]
        self.window_samples = int(granularity["window_seconds"] * SAMPLE_RATE)
        self.max_audio_seconds = float(processor.max_audio_len)  # what this processor instance keeps
        self.audio_token_id = model.config.audio_token_id
        if processor.audio_token_id != self.audio_token_id:
            raise ValueError(f"audio-flamingo-3: processor audio token {processor.audio_token_id} != "
                             f"model audio token {self.audio_token_id}")

    @classmethod
    def encoding_granularity(cls, config) -> dict:
        """30 s windows of 750 tokens (25 tokens/s), at most the processor's 600 s (15,000 tokens)."""
        frames = config.audio_config.max_source_positions * CONV_STRIDE
        window_s = frames * HOP_SAMPLES / SAMPLE_RATE
        chunk_s, max_s = processor_limits()
        if chunk_s != window_s:
            raise ValueError(f"audio-flamingo-3: processor windows of {chunk_s} s, encoder windows of {window_s} s")
        window_tokens = frames_to_tokens(frames)
        max_windows = int(max_s // window_s)
        return {
            "max_audio_seconds": max_s, "max_audio_tokens": max_windows * window_tokens,
            "tokens_per_second": window_tokens / window_s, "window_seconds": window_s,
            "window_tokens": window_tokens, "adapter_windows_longer_audio": False,
            "context_tokens": config.text_config.max_position_embeddings,
        }

    def expected_audio_tokens(self, duration_s: float) -> int:
        n_samples = int(round(duration_s * SAMPLE_RATE))
        return frames_to_tokens(sum(window_frames(n_samples, self.window_samples)))

    def build_inputs(self, audio: np.ndarray, spec: TaskSpec, question: str, choices: list[str]) -> PreparedInputs:
        seconds = len(audio) / SAMPLE_RATE
        self.check_duration(seconds)
        expected = self.expected_audio_tokens(seconds)
        if expected < 1:
            raise ValueError(f"{self.family}: audio of {seconds:.3f} s is too short to give one audio token")
        messages = [
            {"role": "system", "content": spec.system_prompt},
            {"role": "user", "content": [{"type": "audio"},
                                         {"type": "text", "text": spec.user_prompt(question, choices)}]},
        ]
        prompt = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        bos = self.processor.tokenizer.bos_token  # no second <bos> after a template that has one
        tensors = dict(self.processor(text=prompt, audio=audio, return_tensors="pt",
                                      add_special_tokens=not (bos and prompt.startswith(bos))))
        ids = tensors["input_ids"][0]
        spans = token_runs(ids, self.audio_token_id)
        if len(spans) != 1 or spans[0][1] - spans[0][0] != expected:
            raise RuntimeError(f"audio-flamingo-3: expected one span of {expected} audio tokens, found {spans}")
        return PreparedInputs(tensors, spans, int(tensors["input_features"].shape[0]), len(ids))

    def language_model(self) -> torch.nn.Module:
        return self.model.language_model

    def decoder_layers(self) -> torch.nn.ModuleList:
        return self.model.language_model.model.layers


def tiny_audio_flamingo3(seed: int = 0):
    """(model, processor): a random Audio Flamingo 3 from a scaled-down copy of the real config, around
    the SmolLM2 tokenizer with `<sound>` added (AF3's Qwen2 tokenizer is not available offline)."""
    from transformers import (
        AudioFlamingo3Config, AudioFlamingo3ForConditionalGeneration, AudioFlamingo3Processor,
        WhisperFeatureExtractor,
    )

    from amlib.models.assets import smollm2_tokenizer

    tok = smollm2_tokenizer()
    tok.add_special_tokens({"extra_special_tokens": [AUDIO_TOKEN]})
    features = WhisperFeatureExtractor(feature_size=128, return_attention_mask=True)
    processor = AudioFlamingo3Processor(feature_extractor=features, tokenizer=tok, chat_template=TINY_CHAT_TEMPLATE)
    overrides = scaled_down(TINY_OVERRIDES, {
        "audio_token_id": processor.audio_token_id,
        "text_config": {"vocab_size": len(tok), "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
                        "pad_token_id": tok.pad_token_id},
    })
    config = AudioFlamingo3Config(**scaled_down(real_config_dict(REAL_CONFIG), overrides))
    torch.manual_seed(seed)
    return AudioFlamingo3ForConditionalGeneration(config).eval(), processor
