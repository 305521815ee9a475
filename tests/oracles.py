"""What the oracle tests of pruning, eviction, fast decoding and the sweep share.

Tiny random models attend almost uniformly, so a wrong position id or a wrong kept set could leave
their output unchanged: `sharpen` scales the query and key projections so attention is far from
uniform, and `generate_logits` gives the per-step logits that the oracles are compared on.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers import DynamicCache

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


# -- masked-prefix oracles (eviction): a prefill, its eager attention weights, per-head column masks --

def prefill_of(adapter, prepared, end: int):
    """(output, cache) of the plain prefill of the prompt's first `end` tokens."""
    part = {k: (v[..., :end] if k in ("input_ids", "attention_mask", "token_type_ids") else v)
            for k, v in prepared.tensors.items()}
    cache = DynamicCache(config=adapter.language_model().config.get_text_config())
    with torch.inference_mode():
        return adapter.model(**part, past_key_values=cache, use_cache=True), cache


def column_mask(columns: torch.Tensor, state: dict):
    """A pre-hook giving an attention module the mask of `q` new tokens over the prefilled columns
    `columns` (query heads, prefilled) and, causally, the tokens fed since (`state["seen"]` so far)."""

    def hook(module, args, kwargs):
        q = kwargs["hidden_states"].shape[-2]
        heads, prefilled = columns.shape
        seen = torch.ones(heads, q, state["seen"] + q, dtype=torch.bool)
        seen[:, :, :prefilled] = columns[:, None, :]
        seen[:, :, state["seen"]:] = torch.ones(q, q, dtype=torch.bool).tril()
        if module.config._attn_implementation == "eager":  # additive
            seen = torch.zeros(seen.shape).masked_fill(~seen, torch.finfo(torch.float32).min)
        kwargs["attention_mask"] = seen[None]
        return args, kwargs

    return hook


@contextmanager
def eager_attention(adapter):
    """The decoder under eager attention inside the block (its config only: audio encoders keep
    theirs; no second model to load)."""
    config = adapter.decoder_layers()[0].self_attn.config  # the decoder's (its masks read it too)
    before = config._attn_implementation
    config._attn_implementation = "eager"
    try:
        yield adapter
    finally:
        config._attn_implementation = before


def eager_prefill(adapter, prepared, end: int):
    """((output, cache), weights) of the prefill of the first `end` prompt tokens, under eager attention:
    weights[layer] = the layer's attention weights (query heads, end, end), float32."""
    weights, handles = {}, []

    def keep_weights(i):
        def hook(module, args, kwargs, output):
            weights[i] = output[1][0].float()
        return hook

    for i, layer in enumerate(adapter.decoder_layers()):
        handles.append(layer.self_attn.register_forward_hook(keep_weights(i), with_kwargs=True))
    try:
        with eager_attention(adapter):
            prefill = prefill_of(adapter, prepared, end)
    finally:
        for handle in handles:
            handle.remove()
    return prefill, weights
