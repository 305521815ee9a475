"""Audio Flamingo 2 (nvidia/audio-flamingo-2): AF-CLAP windows -> audio transformer -> gated
cross-attention into Qwen2.5-3B (a Flamingo-style model; the 1.5B / 0.5B variants swap the LM).

Not a transformers model: its code is NVIDIA's own (GitHub NVIDIA/audio-flamingo, branch
`audio_flamingo_2`, folder `inference_HF_pretrained/`), its weights the hub snapshot. Facts used
here (read only, nothing copied):
- The model is built by `src.factory.create_model_and_transforms(**model_config, clap_config=...)`
  from `configs/inference.yaml`, then the state dict in `safe_ckpt/*.safetensors` (listed in
  `safe_ckpt/metadata.json`) is loaded; AF-CLAP's checkpoint is `clap_ckpt/epoch_16.pt`; the LM and
  tokenizer are Qwen/Qwen2.5-3B (a second snapshot). Pinned: transformers 4.46.3, torch 2.0.1. Its
  CLAP wrapper calls torch.cuda.current_device(): a CUDA GPU is required.
- Audio: peak-normalised, quantised through int16, zero-padded to whole 10 s windows (no overlap),
  one CLAP clip per window, `audio_x` of shape (1, windows, 160000) with `audio_x_mask` ones.
  The released inference.yaml sets max_num_window 12 (2 min) and its reader silently CUTS longer
  audio; the model card states a 5-minute maximum, so this adapter feeds up to 30 windows (300 s)
  and refuses longer audio.
- Prompt: `<audio>{prompt.lower().strip()}<SEP>` (no chat template, no system role; the official
  script lowercases the prompt and truncates it at 512 tokens, which this adapter refuses to do).
  The system prompt is put before the user prompt, on its own line: an adapter choice.
- Generation: `model.generate(audio_x=, audio_x_mask=, lang_x=, eos_token_id=tokenizer.eos_token_id)`.
- Audio does NOT enter the LM's token sequence: the LM input holds ONE `<audio>` token (its span),
  and the audio features are read by gated cross-attention in every decoder layer. Token pruning and
  KV eviction of audio tokens therefore do not apply to this family.
- Decoder layers: `model.lang_encoder.model.layers`, each a FlamingoLayer wrapping
  (gated_cross_attn_layer_sound, decoder_layer) after `init_flamingo`.
NOT verified here: that the hub snapshot ships `my_laion_clap/` (the official script downloads the
snapshot into the code folder and imports it from there; the GitHub branch has it under
`audio_flamingo_2/my_laion_clap`).
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from types import SimpleNamespace

import numpy as np
import torch

from amlib.data.audio import SAMPLE_RATE
from amlib.efficiency import timed_generate
from amlib.models.base import Generation, PreparedInputs
from amlib.models.common import token_runs
from amlib.models.remote_code import (
    RemoteCodeAdapter, SnapshotSpec, refuse_online, resolve_snapshot, snapshot_revision,
)
from amlib.tasks import TaskSpec

WINDOW_SECONDS = 10.0  # clap_config.window_length in the released inference.yaml
WINDOW_SAMPLES = int(WINDOW_SECONDS * SAMPLE_RATE)
MAX_WINDOWS = 30  # model card: 5 minutes (the released inference.yaml would stop at 12)
MAX_PROMPT_TOKENS = 512  # model card: maximum text input length
AUDIO_TOKEN, SEP_TOKEN = "<audio>", "<SEP>"
LM_SNAPSHOT = SnapshotSpec("Qwen/Qwen2.5-3B", required=("config.json",), transformers_version="4.46.3")


def n_windows(n_samples: int) -> int:
    return max(1, math.ceil(n_samples / WINDOW_SAMPLES))


def audio_windows(audio: np.ndarray) -> np.ndarray:
    """(windows, 160000) float32 as the official reader prepares them (peak normalisation, int16
    rounding, zero padding to whole windows)."""
    wave = audio.astype(np.float64)
    if len(wave) and wave.min() >= 0 and wave.max() > 0:  # the official reader's rule for one-signed audio
        wave = 2 * wave / wave.max() - 1.0
    elif len(wave) and np.abs(wave).max() > 0:
        wave = wave / np.abs(wave).max()
    wave = (np.clip(wave, -1.0, 1.0) * 32767.0).astype(np.int16) / 32767.0
    padded = np.zeros(n_windows(len(wave)) * WINDOW_SAMPLES, np.float32)
    padded[: len(wave)] = wave
    return padded.reshape(-1, WINDOW_SAMPLES)


class _FlamingoGenerate:
    """Maps the input_ids convention of `timed_generate` onto Flamingo.generate(lang_x=...)."""

    def __init__(self, flamingo):
        self.flamingo = flamingo

    def generate(self, input_ids, audio_x, audio_x_mask, attention_mask=None, **kwargs):
        return self.flamingo.generate(audio_x=audio_x, audio_x_mask=audio_x_mask, lang_x=input_ids,
                                      attention_mask=attention_mask, **kwargs)


class AudioFlamingo2Adapter(RemoteCodeAdapter):
    family = "audio-flamingo-2"
    snapshot = SnapshotSpec(
        "nvidia/audio-flamingo-2",
        required=("src/factory.py", "configs/inference.yaml", "my_laion_clap", "safe_ckpt/metadata.json",
                  "clap_ckpt/epoch_16.pt"),
        transformers_version="4.46.3",
        note="Assemble the folder as the official script does: copy inference_HF_pretrained/ of "
             "github.com/NVIDIA/audio-flamingo (branch audio_flamingo_2), then run "
             "`hf download nvidia/audio-flamingo-2 --local-dir <that folder>`; add my_laion_clap/ from "
             "the branch's audio_flamingo_2/ if the snapshot lacks it. The LM comes from a second "
             "snapshot: `hf download Qwen/Qwen2.5-3B --local-dir <dir>`.",
    )
    tokens_per_second = 0.0  # audio is cross-attended, not placed in the LM sequence
    max_audio_seconds = MAX_WINDOWS * WINDOW_SECONDS

    def __init__(self, model, tokenizer, model_id: str, revision: str = "unknown"):
        super().__init__(model, SimpleNamespace(tokenizer=tokenizer), model_id, revision)
        self.audio_token_id = tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "cuda", dtype: str | None = None,
                        attn_implementation: str | None = None, local_files_only: bool | None = None,
                        language_model: str = LM_SNAPSHOT.repo_id):
        refuse_online(local_files_only, cls.family)
        if attn_implementation is not None:
            raise ValueError(f"{cls.family}: its factory loads the LM itself; "
                             f"attn_implementation={attn_implementation!r} cannot be applied")
        root = cls.locate(name_or_path)
        lm_root = resolve_snapshot(language_model, LM_SNAPSHOT, cls.family)
        model, tokenizer = _build(root, lm_root)
        model = model.to(device)
        if dtype:
            model = model.to(getattr(torch, dtype))
        revision = snapshot_revision(root, "safe_ckpt/metadata.json")
        return cls(model, tokenizer, model_id=str(name_or_path), revision=revision)

    @classmethod
    def encoding_granularity(cls, config=None) -> dict:
        """LM-input tokens: one `<audio>` marker whatever the duration; windows are cross-attended."""
        return {"max_audio_seconds": cls.max_audio_seconds, "max_audio_tokens": 1, "tokens_per_second": 0.0,
                "window_seconds": WINDOW_SECONDS, "max_windows": MAX_WINDOWS}

    def expected_audio_tokens(self, duration_s: float) -> int:
        return 1

    def prompt(self, spec: TaskSpec, question: str, choices: list[str]) -> str:
        text = f"{spec.system_prompt}\n{spec.user_prompt(question, choices)}"
        return f"{AUDIO_TOKEN}{text.lower().strip()}{self.processor.tokenizer.sep_token}"

    def build_inputs(self, audio: np.ndarray, spec: TaskSpec, question: str, choices: list[str]) -> PreparedInputs:
        self.check_duration(len(audio) / SAMPLE_RATE)
        windows = torch.from_numpy(audio_windows(audio))
        text = self.processor.tokenizer(self.prompt(spec, question, choices), return_tensors="pt")
        if text["input_ids"].shape[1] > MAX_PROMPT_TOKENS:
            raise ValueError(f"{self.family}: prompt of {text['input_ids'].shape[1]} tokens exceeds "
                             f"the model's {MAX_PROMPT_TOKENS}-token text input")
        tensors = {"input_ids": text["input_ids"], "attention_mask": text["attention_mask"],
                   "audio_x": windows.unsqueeze(0), "audio_x_mask": torch.ones(1, len(windows))}
        spans = token_runs(tensors["input_ids"][0], self.audio_token_id)
        if len(spans) != 1 or spans[0][1] - spans[0][0] != 1:
            raise RuntimeError(f"{self.family}: expected exactly one {AUDIO_TOKEN} token, found runs {spans}")
        return PreparedInputs(tensors, spans, len(windows), int(tensors["input_ids"].shape[1]))

    @torch.inference_mode()
    def generate(self, prepared: PreparedInputs, max_new_tokens: int) -> Generation:
        dtype = next(self.model.parameters()).dtype
        tensors = {k: v.to(self.device, dtype=dtype if v.is_floating_point() else None)
                   for k, v in prepared.tensors.items()}
        tok = self.processor.tokenizer
        out, timing = timed_generate(
            _FlamingoGenerate(self.model), tensors, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=self.pad_token_id, eos_token_id=tok.eos_token_id,
        )
        new = out[0, tensors["input_ids"].shape[1]:]
        text = tok.decode(new, skip_special_tokens=True)
        return Generation(text=text.strip(), new_tokens=int(new.numel()), timing=timing, inputs=prepared)

    def language_model(self) -> torch.nn.Module:
        return self.model.lang_encoder

    def decoder_layers(self) -> torch.nn.ModuleList:
        return self.model.lang_encoder.model.layers


def _build(root, lm_root):
    """Build the model with the snapshot's own factory and load its checkpoint (CUDA required)."""
    import yaml
    from safetensors.torch import load_file

    config = yaml.safe_load((root / "configs" / "inference.yaml").read_text())
    model_config = {**config["model_config"], "lang_encoder_path": str(lm_root), "tokenizer_path": str(lm_root)}
    clap_config = {**config["clap_config"], "checkpoint": str(root / "clap_ckpt" / "epoch_16.pt")}
    sys.path.insert(0, str(root))  # its factory imports `src.*` and `my_laion_clap.*` from there
    factory = importlib.import_module("src.factory")
    model, tokenizer = factory.create_model_and_transforms(
        **model_config, clap_config=clap_config, use_local_files=True,
        gradient_checkpointing=False, freeze_lm_embeddings=False)
    state = {}
    for chunk in json.loads((root / "safe_ckpt" / "metadata.json").read_text()):
        state.update(load_file(str(root / "safe_ckpt" / f"{chunk}.safetensors")))
    missing, unexpected = model.load_state_dict(state, strict=False)
    check_loaded_keys(missing, unexpected)
    return model, tokenizer


def check_loaded_keys(missing: list[str], unexpected: list[str]) -> None:
    """The checkpoint must provide every audio-side weight (the LM's come from Qwen2.5 otherwise)."""
    audio_missing = [k for k in missing if "gated_cross_attn" in k or "audio_transformer" in k]
    if unexpected or audio_missing:
        raise RuntimeError(f"audio-flamingo-2: checkpoint does not match the model: "
                           f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]}), "
                           f"{len(audio_missing)} missing audio keys (e.g. {audio_missing[:3]})")
