"""Baichuan-Omni-1.5 (baichuan-inc/Baichuan-Omni-1d5): Baichuan-Audio-Tokenizer (12.5 Hz RVQ) -> 7B LM.

Remote code, loaded from a local snapshot (see `amlib.models.remote_code`). Facts used here come
from the authors' GitHub repository baichuan-inc/Baichuan-Omni-1.5, whose `baichuan-omni/model/`
folder holds the same remote code and config.json (read only, nothing copied):
- Loading: AutoTokenizer + AutoModelForCausalLM with trust_remote_code, then
  `model.bind_processor(tokenizer, training=False, relative_path="/")`; the demos set
  `model.config.use_cache = True` (the released config disables the KV cache). The code targets
  transformers 4.45.0 and imports flash_attn and deepspeed at import time (requirements, README).
- Prompt: `<B_SYS>{system}<C_Q>{user}<C_A>` (web_demo/constants.py role prefixes). Audio is a tag
  `<audio_start_baichuan>{"path": ...}<audio_end_baichuan>` inside the text; the processor loads
  the file. Audio before the question follows this project's convention; the demos show both an
  instruction before the audio (ASR) and audio-only turns, so the order is not verifiable.
- The processor (processor_omni.py) splits audio into consecutive `max_audio_seconds` (30 s)
  pieces with `split_overlap` 0, DROPS a piece shorter than n_fft (400) samples or one that yields no
  token, and writes ONE run `<audio_start> <audio_pad> x sum(bridge_length) <audio_end>`:
  frames = min(3000, samples // hop + 1), conv (k3, s1) then conv (k3, s2), average pool 4:
  375 tokens per 30 s, 12.5 tokens/s. This adapter zero-pads a short last piece to 0.5 s so that
  nothing is dropped.
- Decoder layers: `model.model.layers` (OmniForCausalLM.model = OmniModel). Its attention and
  KV cache are its own (legacy tuple cache, no attention weights returned): kvpress presses and
  attention-score pruning written for transformers' Cache API do not apply as they are.
- The LM's `max_position_embeddings` is 8192 in the released config; its rotary cache grows past it
  silently, so inputs longer than that are refused rather than run at untrained positions
  (~650 s of audio). The paper gives no maximum duration for this model.
- Generation stops at <|endoftext|> (generation_config.json eos 151643; the demos' stop string).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from amlib.data.audio import SAMPLE_RATE
from amlib.models.base import PreparedInputs
from amlib.models.common import token_runs
from amlib.models.remote_code import (
    RemoteCodeAdapter, SnapshotSpec, dtype_kwargs, refuse_online, snapshot_revision,
    warn_if_other_transformers,
)
from amlib.tasks import TaskSpec

MIN_LAST_PIECE_SAMPLES = SAMPLE_RATE // 2  # a shorter last piece is zero-padded to 0.5 s
ROLE_PREFIX = {"system": "<B_SYS>", "user": "<C_Q>", "assistant": "<C_A>"}


def frontend(config) -> dict:
    """The audio front-end numbers of a Baichuan-Omni config (its `audio_config`)."""
    audio = config.audio_config
    if float(audio.split_overlap) != 0.0:
        raise ValueError(f"baichuan-omni-1.5: split_overlap={audio.split_overlap}; this adapter's piece "
                         "rule assumes the released config's 0.0")
    return {"piece_samples": int(audio.max_audio_seconds * audio.sampling_rate), "hop": audio.hop_length,
            "n_fft": audio.n_fft, "kernel": audio.kernel_size, "stride": audio.stride_size,
            "pool": audio.avg_pooler, "max_frames": audio.max_audio_seconds * audio.sampling_rate // audio.hop_length}


def split_pieces(audio: np.ndarray, fe: dict) -> list[np.ndarray]:
    size = fe["piece_samples"]
    pieces = [audio[i : i + size] for i in range(0, len(audio), size)] or [audio]
    if len(pieces[-1]) < MIN_LAST_PIECE_SAMPLES:
        pieces[-1] = np.pad(pieces[-1], (0, MIN_LAST_PIECE_SAMPLES - len(pieces[-1])))
    return pieces


def tokens_for_piece(n_samples: int, fe: dict) -> int:
    frames = min(fe["max_frames"], n_samples // fe["hop"] + 1)
    pad = fe["kernel"] // 2
    after_conv1 = frames + 2 * pad - fe["kernel"] + 1
    after_conv2 = (after_conv1 + 2 * pad - fe["kernel"]) // fe["stride"] + 1
    return after_conv2 // fe["pool"]


class BaichuanOmniAdapter(RemoteCodeAdapter):
    family = "baichuan-omni-1.5"
    snapshot = SnapshotSpec(
        "baichuan-inc/Baichuan-Omni-1d5", required=("config.json", "modeling_omni.py", "processor_omni.py"),
        transformers_version="4.45.0",
        note="It also needs a CUDA GPU with flash_attn==2.6.3 and deepspeed==0.14.4 (imported by its code).",
    )

    def __init__(self, model, processor, model_id: str, revision: str = "unknown"):
        super().__init__(model, processor, model_id, revision)
        self.fe = frontend(model.config)
        granularity = self.encoding_granularity(model.config)
        self.tokens_per_second = granularity["tokens_per_second"]
        self.max_audio_seconds = granularity["max_audio_seconds"]
        self.max_positions = int(model.config.max_position_embeddings)
        tok = processor.tokenizer
        audio = model.config.audio_config
        self.audio_tags = [tok.convert_ids_to_tokens(audio.audio_start_token_id),
                           tok.convert_ids_to_tokens(audio.audio_end_token_id)]
        self.audio_pad_id = audio.audio_pad_token_id

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "cuda", dtype: str | None = "bfloat16",
                        attn_implementation: str | None = None, local_files_only: bool | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        refuse_online(local_files_only, cls.family)
        if attn_implementation is not None:
            raise ValueError(f"{cls.family}: its remote code has its own attention; "
                             f"attn_implementation={attn_implementation!r} cannot be applied")
        root = cls.locate(name_or_path)
        warn_if_other_transformers(cls.snapshot, cls.family)
        tokenizer = AutoTokenizer.from_pretrained(root, trust_remote_code=True, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            root, trust_remote_code=True, local_files_only=True, **dtype_kwargs(dtype)).to(device)
        model.config.use_cache = True  # off in the released config; the authors' demos enable it
        processor = model.bind_processor(tokenizer, training=False, relative_path="/")
        return cls(model, processor, model_id=str(name_or_path), revision=snapshot_revision(root))

    @classmethod
    def encoding_granularity(cls, config) -> dict:
        fe = frontend(config)
        piece_seconds = fe["piece_samples"] / config.audio_config.sampling_rate
        rate = tokens_for_piece(fe["piece_samples"], fe) / piece_seconds
        max_tokens = int(config.max_position_embeddings)  # an upper bound: the prompt text shares it
        return {"max_audio_seconds": max_tokens / rate, "max_audio_tokens": max_tokens, "tokens_per_second": rate}

    def expected_audio_tokens(self, duration_s: float) -> int:
        n = int(round(duration_s * SAMPLE_RATE))
        return sum(tokens_for_piece(len(p), self.fe) for p in split_pieces(np.zeros(n, np.float32), self.fe))

    def prompt(self, spec: TaskSpec, question: str, choices: list[str], audio_path: Path) -> str:
        audio = self.audio_tags[0] + json.dumps({"path": str(audio_path)}) + self.audio_tags[1]
        return (ROLE_PREFIX["system"] + spec.system_prompt + ROLE_PREFIX["user"] + audio
                + spec.user_prompt(question, choices) + ROLE_PREFIX["assistant"])

    def build_inputs(self, audio: np.ndarray, spec: TaskSpec, question: str, choices: list[str]) -> PreparedInputs:
        self.check_duration(len(audio) / SAMPLE_RATE)
        pieces = split_pieces(audio, self.fe)
        with tempfile.TemporaryDirectory(prefix="amlib-baichuan-") as tmp:
            wav = Path(tmp) / "audio.wav"  # its processor reads audio from a file; float WAV is lossless
            sf.write(str(wav), np.concatenate(pieces).astype(np.float32), SAMPLE_RATE, subtype="FLOAT")
            out = self.processor([self.prompt(spec, question, choices, wav)])
        tensors = {name: getattr(out, name) for name in
                   ("input_ids", "attention_mask", "audios", "encoder_length", "bridge_length")
                   if getattr(out, name, None) is not None}
        spans = token_runs(tensors["input_ids"][0], self.audio_pad_id)
        expected = sum(tokens_for_piece(len(p), self.fe) for p in pieces)
        if len(spans) != 1 or spans[0][1] - spans[0][0] != expected:
            raise RuntimeError(f"{self.family}: expected one run of {expected} audio pad tokens, found {spans}")
        prompt_tokens = int(tensors["input_ids"].shape[1])
        if prompt_tokens > self.max_positions:
            raise ValueError(f"{self.family}: {prompt_tokens} input tokens exceed the model's "
                             f"max_position_embeddings={self.max_positions}")
        return PreparedInputs(tensors, spans, len(pieces), prompt_tokens)

    def generate_kwargs(self) -> dict:
        return {"eos_token_id": self.processor.tokenizer.eos_token_id}

    def language_model(self) -> torch.nn.Module:
        return self.model

    def decoder_layers(self) -> torch.nn.ModuleList:
        return self.model.model.layers
