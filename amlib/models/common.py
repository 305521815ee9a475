"""Helpers every model family shares: published configs, tiny copies of them, context guards, spans."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

CONFIG_DIR = Path(__file__).with_name("configs")


def real_config_dict(filename: str) -> dict:
    """A published checkpoint's architecture numbers (amlib/models/configs/<filename>), without the
    provenance keys (those starting with '_'), in the form its transformers config class accepts."""
    with (CONFIG_DIR / filename).open(encoding="utf-8") as fh:
        return {k: v for k, v in json.load(fh).items() if not k.startswith("_")}


def scaled_down(config: dict, overrides: dict) -> dict:
    """A copy of `config` with `overrides` merged in, nested dicts key by key (tiny test instances:
    only widths, depths and vocabularies are overridden, the audio front end stays as published)."""
    merged = copy.deepcopy(config)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = scaled_down(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def check_fits_context(family: str, prompt_tokens: int, max_new_tokens: int, context_tokens: int) -> None:
    """Raise when the prompt plus the answer budget exceeds what the language model was built for."""
    if prompt_tokens + max_new_tokens > context_tokens:
        raise ValueError(
            f"{family}: {prompt_tokens} prompt tokens + {max_new_tokens} new tokens exceed the language "
            f"model's context of {context_tokens} tokens; use shorter audio"
        )


def token_runs(ids: torch.Tensor, token_id: int) -> list[tuple[int, int]]:
    """Half-open [start, end) runs of `token_id` in a 1-D id sequence."""
    hit = (ids == token_id).to(torch.int8)
    edges = torch.diff(torch.cat([hit.new_zeros(1), hit, hit.new_zeros(1)]))
    starts = torch.nonzero(edges == 1).flatten().tolist()
    ends = torch.nonzero(edges == -1).flatten().tolist()
    return list(zip(starts, ends))
