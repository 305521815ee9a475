"""Qwen2-Audio (`Qwen2AudioForConditionalGeneration`): Whisper-style encoder -> projector -> LM.

Its encoder sees at most 30 s (1,500 positions after the conv stride; the processor pads or CUTS
to 30 s). Longer audio is split here into consecutive 30 s windows, each encoded separately; their
tokens are laid out back to back as one audio stream, `Audio 1: <bos><AUDIO>*n<eos><bos>...<eos>`.
Results record the number of windows. Nothing is truncated.

Audio pool: Qwen2-Audio averages pairs of encoder positions (50 -> 25 tokens/s). A checkpoint whose
`audio_config.pool_stride` says otherwise (the project's small reference model: 4, 12.5 tokens/s)
gets the same parameter-free average pool with that stride, in the model and in the processor's
token count (`use_audio_pool`); everything else is the unchanged transformers code.
"""

from __future__ import annotations

import numpy as np
import torch

from amlib.data.audio import SAMPLE_RATE
from amlib.models.base import AudioLMAdapter, PreparedInputs
from amlib.models.common import check_fits_context, real_config_dict, token_runs
from amlib.tasks import TaskSpec

WINDOW_SECONDS = 30.0
MIN_WINDOW_SECONDS = 0.5  # a shorter last window is zero-padded to this (keeps >= 1 frame of context)
HOP_SAMPLES = 160  # Whisper feature extractor: 100 mel frames per second
CONV_STRIDE = 2  # the Whisper encoder's conv2: mel frames per encoder position
REAL_CONFIG = "qwen2-audio-7b-instruct.json"


def split_windows(audio: np.ndarray, window_s: float = WINDOW_SECONDS) -> list[np.ndarray]:
    size = int(window_s * SAMPLE_RATE)
    windows = [audio[i : i + size] for i in range(0, len(audio), size)] or [audio]
    min_len = int(MIN_WINDOW_SECONDS * SAMPLE_RATE)
    if len(windows[-1]) < min_len:
        windows[-1] = np.pad(windows[-1], (0, min_len - len(windows[-1])))
    return windows


DEFAULT_POOL = 2  # Qwen2-Audio's average pool over encoder positions


def pooled_length(after_conv: int, pool: int = DEFAULT_POOL) -> int:
    """Encoder positions -> audio tokens under a non-overlapping average pool (transformers' formula
    for pool 2: (n - 2) // 2 + 1)."""
    return (after_conv - pool) // pool + 1


def tokens_for_samples(n_samples: int, pool: int = DEFAULT_POOL) -> int:
    """Audio tokens for one window: mel frames -> conv stride 2 -> average pool."""
    frames = n_samples // HOP_SAMPLES
    after_conv = (frames - 1) // 2 + 1
    return pooled_length(after_conv, pool)


def pool_stride(config) -> int:
    """The checkpoint's audio pool (2 unless its audio config says otherwise)."""
    return int(getattr(config.audio_config, "pool_stride", DEFAULT_POOL))


def _pooled_encoder_class(base):
    class PooledQwen2AudioEncoder(base):
        """Qwen2-Audio's encoder with `config.pool_stride` instead of 2 in its pool and lengths."""

        def _get_feat_extract_output_lengths(self, input_lengths):
            after_conv = (input_lengths - 1) // 2 + 1
            return after_conv, pooled_length(after_conv, self.config.pool_stride)

    return PooledQwen2AudioEncoder


def _pooled_processor_class(base):
    class PooledQwen2AudioProcessor(base):
        """Qwen2AudioProcessor whose audio placeholders expand to the pooled token count."""

        pool_stride = DEFAULT_POOL

        def __call__(self, text=None, audio=None, sampling_rate=None, return_tensors=None, **kwargs):
            if audio is None or self.pool_stride == DEFAULT_POOL:
                return super().__call__(text=text, audio=audio, sampling_rate=sampling_rate,
                                        return_tensors=return_tensors, **kwargs)
            from transformers import BatchFeature

            texts = [text] if isinstance(text, str) else list(text)
            audios = [audio] if isinstance(audio, np.ndarray) else list(audio)
            if sum(t.count(self.audio_token) for t in texts) != len(audios):
                raise ValueError(f"{len(audios)} audios for {sum(t.count(self.audio_token) for t in texts)} "
                                 f"{self.audio_token} placeholders")
            features = self.feature_extractor(audios, sampling_rate=sampling_rate, return_attention_mask=True,
                                              padding="max_length", return_tensors=return_tensors)
            lengths = iter(features["attention_mask"].sum(-1).tolist())
            expanded = []
            for t in texts:
                parts = t.split(self.audio_token)
                out = parts[0]
                for part in parts[1:]:
                    after_conv = (int(next(lengths)) - 1) // 2 + 1
                    out += self.audio_token * pooled_length(after_conv, self.pool_stride) + part
                expanded.append(out)
            tokens = self.tokenizer(expanded, return_tensors=return_tensors, **kwargs)
            return BatchFeature({**tokens, "input_features": features["input_features"],
                                 "feature_attention_mask": features["attention_mask"]})

    return PooledQwen2AudioProcessor


def use_audio_pool(model, processor, stride: int) -> None:
    """Give `model` (Qwen2AudioForConditionalGeneration) and `processor` an average pool of `stride`
    encoder positions per audio token, and record it in the config (saved with the model)."""
    tower = model.audio_tower
    model.config.audio_config.pool_stride = tower.config.pool_stride = stride
    if stride == DEFAULT_POOL:
        return
    tower.avg_pooler = torch.nn.AvgPool1d(stride, stride=stride)
    if not type(tower).__name__.startswith("Pooled"):
        tower.__class__ = _pooled_encoder_class(type(tower))
    if not type(processor).__name__.startswith("Pooled"):
        processor.__class__ = _pooled_processor_class(type(processor))
    processor.pool_stride = stride


def chatml_prompt(system: str, n_audio_windows: int, user: str, audio_token: str, bos: str, eos: str) -> str:
    audio = "".join(f"{bos}{audio_token}{eos}" for _ in range(n_audio_windows))
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n"
        f"<|im_start|>user\nAudio 1: {audio}\n{user}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


class Qwen2AudioAdapter(AudioLMAdapter):
    family = "qwen2-audio"
    model_class = "Qwen2AudioForConditionalGeneration"
    tokens_per_second = 25.0
    max_audio_seconds = None  # windowed; the encoder itself sees 30 s at a time

    def __init__(self, model, processor, model_id: str, revision: str = "unknown"):
        pool = pool_stride(model.config)
        if pool != DEFAULT_POOL:  # a checkpoint saved with another pool: rebuild it on load
            use_audio_pool(model, processor, pool)
        super().__init__(model, processor, model_id, revision)
        self.tokens_per_second = self.encoding_granularity(model.config)["tokens_per_second"]

    @classmethod
    def encoding_granularity(cls, config) -> dict:
        """The checkpoint's native limits (the paper's Table 11: one 30 s window, 750 tokens, 25 tokens/s),
        from the encoder's positions and the Whisper front end, plus this adapter's windowing beyond them."""
        window_samples = config.audio_config.max_source_positions * CONV_STRIDE * HOP_SAMPLES
        window_s = window_samples / SAMPLE_RATE
        window_tokens = tokens_for_samples(window_samples, pool_stride(config))
        return {
            "max_audio_seconds": window_s, "max_audio_tokens": window_tokens,
            "tokens_per_second": window_tokens / window_s, "window_seconds": window_s,
            "window_tokens": window_tokens, "adapter_windows_longer_audio": True,
            "adapter_max_audio_seconds": cls.max_audio_seconds,
            "context_tokens": config.text_config.max_position_embeddings,
        }

    def expected_audio_tokens(self, duration_s: float) -> int:
        n = int(round(duration_s * SAMPLE_RATE))
        pool = pool_stride(self.model.config)
        return sum(tokens_for_samples(len(w), pool) for w in split_windows(np.zeros(n, np.float32)))

    def build_inputs(self, audio: np.ndarray, spec: TaskSpec, question: str, choices: list[str]) -> PreparedInputs:
        self.check_duration(len(audio) / SAMPLE_RATE)
        windows = split_windows(audio)
        proc = self.processor
        text = chatml_prompt(spec.system_prompt, len(windows), spec.user_prompt(question, choices),
                             proc.audio_token, proc.audio_bos_token, proc.audio_eos_token)
        tensors = dict(proc(text=text, audio=windows, sampling_rate=SAMPLE_RATE, return_tensors="pt"))
        check_fits_context(self.family, int(tensors["input_ids"].shape[1]), spec.max_new_tokens,
                           self.model.config.text_config.max_position_embeddings)
        spans = token_runs(tensors["input_ids"][0], proc.audio_token_id)
        if len(spans) != len(windows):
            raise RuntimeError(f"expected {len(windows)} audio spans, found {len(spans)}")
        return PreparedInputs(tensors, spans, len(windows), int(tensors["input_ids"].shape[1]))

    def language_model(self) -> torch.nn.Module:
        return self.model.language_model

    def decode_modules(self):
        return self.model.language_model.model, self.model.language_model.lm_head

    def decoder_layers(self) -> torch.nn.ModuleList:
        return self.model.language_model.model.layers
