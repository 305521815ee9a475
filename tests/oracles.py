"""What the oracle tests of pruning, eviction, fast decoding and the sweep share.

Tiny random models attend almost uniformly, so a wrong position id or a wrong kept set could leave
their output unchanged: `sharpen` scales the query and key projections so attention is far from
uniform, and `generate_logits` gives the per-step logits that the oracles are compared on.
"""

from __future__ import annotations

import torch

from amlib.tasks import TASKS

from conftest import noise

FAMILIES = ["tiny-random-qwen2-audio", "tiny-random-qwen2.5-omni", "tiny-random-phi-4-multimodal",
            "tiny-random-voxtral", "tiny-random-gemma3n", "tiny-random-audio-flamingo-3"]
STEPS = 4  # prefill + 3 decode steps


def prepare(adapter, seconds: float = 6.0):
    """An SGR prompt over `seconds` of seeded noise."""
    return adapter.build_inputs(noise(seconds), TASKS["SGR"], "Is the speaker male or female?", ["male", "female"])


def sharpen(adapter, factor: float = 6.0) -> None:
    """Scale every layer's query and key projections (also a fused qkv's q and k rows): attention
    logits x factor^2, far from uniform."""
    with torch.no_grad():
        for layer in adapter.decoder_layers():
            attn = layer.self_attn
            if hasattr(attn, "qkv_proj"):
                rows = attn.config.num_attention_heads * attn.head_dim + attn.num_key_value_heads * attn.head_dim
                attn.qkv_proj.weight[:rows].mul_(factor)
                continue
            for name in ("q_proj", "k_proj"):
                proj = getattr(attn, name)
                proj.weight.mul_(factor)
                if proj.bias is not None:
                    proj.bias.mul_(factor)


def generate_logits(adapter, prepared, steps: int = STEPS) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, float32 logits of every step) of a forced `steps`-token greedy HF generate() (EOS not
    allowed to stop)."""
    tensors = {k: v.to(adapter.device) for k, v in prepared.tensors.items()}
    with torch.inference_mode():
        out = adapter.model.generate(**tensors, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                                     output_logits=True, return_dict_in_generate=True,
                                     pad_token_id=adapter.pad_token_id)
    return out.sequences[0, tensors["input_ids"].shape[1]:], torch.stack(out.logits).float()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())
