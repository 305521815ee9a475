"""Aero-1-Audio (lmms-lab/Aero-1-Audio-1.5B): Whisper-style audio encoder -> projector -> Qwen2.5-1.5B.

Remote code, loaded from a local snapshot (see `amlib.models.remote_code`). Facts used here and
where they come from (public sources, read only):
- Loading with AutoProcessor / AutoModelForCausalLM and trust_remote_code; the code targets
  transformers 4.51.3 (EvolvingLMMs-Lab/Aero-1: tutorial.ipynb, aero_timestamp_asr pyproject.toml).
- Long audio is cut into consecutive 30 s (480,000-sample) chunks, one audio entry per chunk in the
  user message, then the text (Aero-1 `split_audio` / `prepare_messages`, the lmms-lab demo Space).
- The processor pads each chunk to 30 s with a Whisper feature extractor (`padding="max_length"`,
  which would CUT a longer chunk) and expands the audio token of each entry to
  ((frames - 1) // 2 + 1 - 2) // 2 + 1 copies, frames = valid mel frames (lmms-engine
  `AeroProcessor`): 750 tokens per 30 s, 25 tokens/s. Its default chat template is ChatML with the
  audio token followed by a newline per audio entry. Generation stops at <|im_end|> (tutorial).
- The LM is `model.language_model` (AutoModelForCausalLM of the Qwen2 text config), decoder layers
  `model.language_model.model.layers` (lmms-engine `AeroForConditionalGeneration`).
- Maximum duration 15 min / 22,500 tokens: the model card and the paper's Table 11.
- The paper's code uses audio placeholder id 151667; here the id is read from the snapshot's
  processor and checked against its config's `audio_token_index`.
NOT verified here (no access to the hub snapshot): that the snapshot's remote code is identical to
the lmms-engine sources above (same authors); a user with the snapshot checks it by running
tests/test_remote_code_models.py's glue checks against the real processor (docs/remote-code-models.md).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from amlib.data.audio import SAMPLE_RATE
from amlib.models.base import PreparedInputs
from amlib.models.common import token_runs
from amlib.models.remote_code import (
    RemoteCodeAdapter, SnapshotSpec, dtype_kwargs, refuse_online, snapshot_revision,
    warn_if_other_transformers,
)
from amlib.tasks import TaskSpec

CHUNK_SAMPLES = 480_000  # 30 s at 16 kHz, the authors' split
MIN_LAST_CHUNK_SAMPLES = SAMPLE_RATE // 2  # a shorter last chunk is zero-padded to 0.5 s
HOP_SAMPLES = 160  # Whisper feature extractor: 100 mel frames per second
MAX_AUDIO_SECONDS = 15 * 60.0  # model card and paper Table 11


def split_chunks(audio: np.ndarray) -> list[np.ndarray]:
    """Consecutive 30 s chunks; a last chunk under 0.5 s is zero-padded (under 3 mel frames it
    would get no audio token at all). Every sample is kept."""
    chunks = [audio[i : i + CHUNK_SAMPLES] for i in range(0, len(audio), CHUNK_SAMPLES)] or [audio]
    if len(chunks[-1]) < MIN_LAST_CHUNK_SAMPLES:
        chunks[-1] = np.pad(chunks[-1], (0, MIN_LAST_CHUNK_SAMPLES - len(chunks[-1])))
    return chunks


def tokens_for_chunk(n_samples: int) -> int:
    """Audio tokens the processor places for one chunk: valid mel frames -> conv stride 2 -> pool 2."""
    frames = math.ceil(n_samples / HOP_SAMPLES)  # the feature extractor's attention mask length
    after_conv = (frames - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1


class AeroAudioAdapter(RemoteCodeAdapter):
    family = "aero-1-audio"
    snapshot = SnapshotSpec(
        "lmms-lab/Aero-1-Audio-1.5B", required=("config.json",), transformers_version="4.51.3",
    )
    tokens_per_second = tokens_for_chunk(CHUNK_SAMPLES) / (CHUNK_SAMPLES / SAMPLE_RATE)
    max_audio_seconds = MAX_AUDIO_SECONDS

    def __init__(self, model, processor, model_id: str, revision: str = "unknown"):
        super().__init__(model, processor, model_id, revision)
        self.audio_token_id = self._audio_token_id()
        self._check_feature_extractor()

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "cpu", dtype: str | None = None,
                        attn_implementation: str | None = None, local_files_only: bool | None = None):
        from transformers import AutoModelForCausalLM, AutoProcessor

        refuse_online(local_files_only, cls.family)
        root = cls.locate(name_or_path)
        warn_if_other_transformers(cls.snapshot, cls.family)
        processor = AutoProcessor.from_pretrained(root, trust_remote_code=True, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            root, trust_remote_code=True, local_files_only=True, attn_implementation=attn_implementation,
            **dtype_kwargs(dtype),
        ).to(device)
        return cls(model, processor, model_id=str(name_or_path), revision=snapshot_revision(root))

    @classmethod
    def encoding_granularity(cls, config=None) -> dict:
        """From the chunk rule above; the maximum duration is the model card's (not a config field)."""
        return {"max_audio_seconds": MAX_AUDIO_SECONDS,
                "max_audio_tokens": cls.tokens_for_duration(MAX_AUDIO_SECONDS),
                "tokens_per_second": cls.tokens_per_second}

    @staticmethod
    def tokens_for_duration(duration_s: float) -> int:
        n = int(round(duration_s * SAMPLE_RATE))
        return sum(tokens_for_chunk(len(c)) for c in split_chunks(np.zeros(n, np.float32)))

    def expected_audio_tokens(self, duration_s: float) -> int:
        return self.tokens_for_duration(duration_s)

    def _audio_token_id(self) -> int:
        token_id = self.processor.tokenizer.convert_tokens_to_ids(self.processor.audio_token)
        config_id = getattr(getattr(self.model, "config", None), "audio_token_index", None)
        if config_id is not None and config_id != token_id:
            raise ValueError(f"{self.family}: processor audio token {self.processor.audio_token!r} has id "
                             f"{token_id} but the model config says audio_token_index={config_id}")
        return token_id

    def _check_feature_extractor(self) -> None:
        n_samples = getattr(getattr(self.processor, "audio_processor", None), "n_samples", None)
        if n_samples is not None and n_samples < CHUNK_SAMPLES:
            raise ValueError(f"{self.family}: the feature extractor pads/cuts to {n_samples} samples, "
                             f"shorter than the {CHUNK_SAMPLES}-sample chunks: audio would be cut")

    def messages(self, spec: TaskSpec, question: str, choices: list[str], n_chunks: int) -> list[dict]:
        audio = [{"type": "audio_url", "audio": "placeholder"} for _ in range(n_chunks)]
        return [{"role": "system", "content": spec.system_prompt},
                {"role": "user", "content": audio + [{"type": "text", "text": spec.user_prompt(question, choices)}]}]

    def build_inputs(self, audio: np.ndarray, spec: TaskSpec, question: str, choices: list[str]) -> PreparedInputs:
        self.check_duration(len(audio) / SAMPLE_RATE)
        chunks = split_chunks(audio)
        proc = self.processor
        text = proc.apply_chat_template(self.messages(spec, question, choices, len(chunks)),
                                        add_generation_prompt=True, tokenize=False)
        tensors = dict(proc(text=text, audios=chunks, sampling_rate=SAMPLE_RATE, return_tensors="pt"))
        spans = token_runs(tensors["input_ids"][0], self.audio_token_id)
        expected = [tokens_for_chunk(len(c)) for c in chunks]
        if [end - start for start, end in spans] != expected:
            raise RuntimeError(f"{self.family}: audio placeholder runs {spans} do not match the "
                               f"expected per-chunk token counts {expected}")
        return PreparedInputs(tensors, spans, len(chunks), int(tensors["input_ids"].shape[1]))

    def generate_kwargs(self) -> dict:
        return {"eos_token_id": self.processor.tokenizer.convert_tokens_to_ids("<|im_end|>")}

    def language_model(self) -> torch.nn.Module:
        return self.model.language_model

    def decoder_layers(self) -> torch.nn.ModuleList:
        return self.model.language_model.model.layers
