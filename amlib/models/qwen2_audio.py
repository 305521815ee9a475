"""Qwen2-Audio (`Qwen2AudioForConditionalGeneration`): Whisper-style encoder -> projector -> LM.

Its encoder sees at most 30 s (1,500 positions after the conv stride; the processor pads or CUTS
to 30 s). Longer audio is split here into consecutive 30 s windows, each encoded separately; their
tokens are laid out back to back as one audio stream, `Audio 1: <bos><AUDIO>*n<eos><bos>...<eos>`.
Results record the number of windows. Nothing is truncated.
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


def tokens_for_samples(n_samples: int) -> int:
    """Audio tokens for one window: mel frames -> conv stride 2 -> average pool 2."""
    frames = n_samples // HOP_SAMPLES
    after_conv = (frames - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1


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

    @classmethod
    def encoding_granularity(cls, config) -> dict:
        """The checkpoint's native limits (the paper's Table 11: one 30 s window, 750 tokens, 25 tokens/s),
        from the encoder's positions and the Whisper front end, plus this adapter's windowing beyond them."""
        window_samples = config.audio_config.max_source_positions * CONV_STRIDE * HOP_SAMPLES
        window_s = window_samples / SAMPLE_RATE
        window_tokens = tokens_for_samples(window_samples)
        return {
            "max_audio_seconds": window_s, "max_audio_tokens": window_tokens,
            "tokens_per_second": window_tokens / window_s, "window_seconds": window_s,
            "window_tokens": window_tokens, "adapter_windows_longer_audio": True,
            "adapter_max_audio_seconds": cls.max_audio_seconds,
            "context_tokens": config.text_config.max_position_embeddings,
        }

    def expected_audio_tokens(self, duration_s: float) -> int:
        n = int(round(duration_s * SAMPLE_RATE))
        return sum(tokens_for_samples(len(w)) for w in split_windows(np.zeros(n, np.float32)))

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

    def decoder_layers(self) -> torch.nn.ModuleList:
        return self.model.language_model.model.layers
