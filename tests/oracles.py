"""What the oracle tests of pruning, eviction, fast decoding and the sweep share.

Tiny random models attend almost uniformly, so a wrong position id or a wrong kept set could leave
their output unchanged: `sharpen` scales the query and key projections so attention is far from
uniform, and `generate_logits` gives the per-step logits that the oracles are compared on.
"""

from __future__ import annotations

from contextlib import contextmanager

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


# -- the masked-columns oracle of pruning at layer K ----------------------------------------------------

def dropped_columns_mask(hidden: torch.Tensor, cache_position: torch.Tensor, dropped: torch.Tensor,
                         existing: torch.Tensor | None = None) -> torch.Tensor:
    """Additive (1, 1, q, kv) mask for queries at `cache_position` over every key seen so far: causal,
    and the `dropped` key positions hidden. Combined with a mask the layer already had (sliding
    window, padding) when there is one."""
    device, dtype = hidden.device, hidden.dtype
    rows = cache_position.to(device)
    cols = torch.arange(int(rows[-1]) + 1, device=device)
    hide = (cols[None, :] > rows[:, None]) | torch.isin(cols, dropped.to(device))[None, :]
    mask = torch.zeros(hide.shape, dtype=dtype, device=device).masked_fill(hide, torch.finfo(dtype).min)[None, None]
    if existing is None:
        return mask
    if existing.shape[-2:] != mask.shape[-2:]:
        raise NotImplementedError(f"the layer's own mask {tuple(existing.shape)} does not cover every key seen "
                                  f"{tuple(mask.shape)} (a rolled-over sliding window?)")
    if existing.dtype == torch.bool:
        existing = torch.zeros(existing.shape, dtype=dtype, device=device).masked_fill(~existing, torch.finfo(dtype).min)
    return torch.minimum(mask, existing)


@contextmanager
def columns_masked_from(layers, first: int, dropped: torch.Tensor):
    """Forward pre-hooks on `layers[first:]` that give each layer `dropped_columns_mask` as its
    attention mask, in prefill and in every decode step: a full, unpruned forward in which the
    layers >= `first` never see the dropped tokens. Every family's decoder layer takes
    `attention_mask` and `cache_position` as keywords; SDPA's causal fast path (no mask) gets one."""
    def hook(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        mask = dropped_columns_mask(hidden, kwargs["cache_position"], dropped, kwargs.get("attention_mask"))
        return args, {**kwargs, "attention_mask": mask}

    handles = [layer.register_forward_pre_hook(hook, with_kwargs=True) for layer in list(layers)[first:]]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def masked_oracle_logits(adapter, prepared, layer: int, kept: torch.Tensor, steps: int = STEPS):
    """(tokens, logits) of what pruning at `layer` down to the sequence positions `kept` must give:
    the unpruned model with the other positions masked out of the attention of layers >= `layer`."""
    dropped = torch.ones(prepared.prompt_tokens, dtype=torch.bool)
    dropped[kept.cpu()] = False
    with columns_masked_from(adapter.decoder_layers(), layer, torch.nonzero(dropped)[:, 0]):
        return generate_logits(adapter, prepared, steps)
