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

FAMILIES = ["tiny-random-qwen2-audio", "tiny-random-qwen2.5-omni", "tiny-random-phi-4-multimodal",
            "tiny-random-voxtral", "tiny-random-gemma3n", "tiny-random-audio-flamingo-3"]
STEPS = 4  # prefill + 3 decode steps


def prepare(adapter, seconds: float = 6.0):
    """An SGR prompt over `seconds` of seeded noise."""
    from conftest import noise  # here, not at the top: scripts/check_gpu_decode.py imports this file without pytest

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


def with_image_block(adapter, prepared, grid_thw=(1, 4, 4), seed: int = 0):
    """`prepared` (a Qwen2.5-Omni prompt) with a seeded random image inserted after the last audio
    item: `<|vision_bos|> <|IMAGE|> x t*h*w/merge^2 <|vision_eos|>`. M-RoPE gives the image tokens
    3-D (t, h, w) positions, so the prompt's positions end below its length (audio alone: 1-D, delta
    0). The default grid (1, 4, 4) with spatial merge 2 is 4 tokens on a 2 x 2 grid: they take 2
    positions (p, p+1 on the h and w axes, p on t), so rope_deltas = 2 - 4 = -2."""
    import dataclasses

    config = adapter.model.config
    vision = config.vision_config
    t, h, w = grid_thw
    n_image = t * h * w // vision.spatial_merge_size ** 2
    ids = prepared.tensors["input_ids"][0].tolist()
    cut = len(ids) - ids[::-1].index(config.audio_end_token_id)
    block = [config.vision_start_token_id] + [config.image_token_id] * n_image + [config.vision_end_token_id]
    ids = ids[:cut] + block + ids[cut:]
    generator = torch.Generator().manual_seed(seed)
    patch = vision.in_channels * vision.temporal_patch_size * vision.patch_size ** 2
    tensors = {**prepared.tensors, "input_ids": torch.tensor([ids]),
               "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
               "pixel_values": torch.randn(t * h * w, patch, generator=generator),
               "image_grid_thw": torch.tensor([list(grid_thw)])}
    return dataclasses.replace(prepared, tensors=tensors, prompt_tokens=len(ids))


# -- deliberately wrong static-KV decoders (tests/test_fastpath.py, scripts/check_gpu_decode.py) ---------

def wrong_decoders():
    """{name: GraphDecoder subclass}, each with one bug the per-step logits comparison must catch:
    decoding one position late, and each step's mask also opening the next step's (still empty) slot."""
    from amlib.fastpath.graph_decode import GraphDecoder, StaticKV

    class PositionPlusOne(GraphDecoder):
        def _rope_delta(self) -> int:
            return super()._rope_delta() + 1

    class EarlySlotKV(StaticKV):
        def open_slot(self, layer_idx: int) -> None:
            super().open_slot(layer_idx)
            mask = self.masks[layer_idx]
            mask.index_fill_(-1, (self.slot(layer_idx) + 1).clamp(max=mask.shape[-1] - 1), 0.0)

    class SlotOpenedEarly(GraphDecoder):
        cache_class = EarlySlotKV

    return {"position_plus_one": PositionPlusOne, "slot_opened_early": SlotOpenedEarly}


def static_decoder_logits(adapter, prepared, steps: int = STEPS, decoder_class=None) -> torch.Tensor:
    """Float32 logits of every step of `decoder_class` (default GraphDecoder: on a CPU, its static-KV
    step run eagerly) on the adapter's decode modules (those of its LM where it declares none)."""
    from amlib.fastpath.graph_decode import GraphDecoder
    from amlib.models.cache import preallocated_cache

    lm = adapter.language_model()
    modules = adapter.decode_modules() or (lm.model, lm.lm_head)
    decoder = (decoder_class or GraphDecoder)(adapter.model, *modules, adapter.decoder_layers())
    tensors = {k: v.to(adapter.device) for k, v in prepared.tensors.items()}
    logits = []
    tokens, _ = decoder.generate(tensors, steps, [], preallocated_cache(adapter.model.config, steps), logits_out=logits)
    if not len(tokens) == len(logits) == steps:
        raise AssertionError(f"{len(tokens)} tokens and {len(logits)} logits for {steps} steps")
    return torch.stack(logits)


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
