"""Installs a kvpress press on an adapter's decoder layers, exact on every family.

The press's own hook (`press.forward_hook`, the one kvpress installs) runs after each attention layer
during prefill and replaces that layer's cache by the kept keys and values. Before it, one amlib hook
per layer fixes what kvpress assumes about the model:

* **Attention rows.** Presses that read attention weights (SnapKV's last 64 rows, TOVA's last row)
  recompute them under SDPA with kvpress's `get_prerope_query_states` + 1-D RoPE, which is wrong or
  fails on M-RoPE (Qwen2.5-Omni), fused qkv with partial rotary (Phi-4) and q_norm (Gemma 3n). amlib
  instead records the layer's own post-RoPE queries where the attention function receives them
  (`AttentionCapture`) and computes those rows with the family's eager attention: the press then
  scores exactly what it scores under eager attention, whatever the implementation.
* **M-RoPE.** Qwen2.5-Omni's rotary tables are (3, B, T, d), one row per M-RoPE axis; presses that
  rotate queries themselves expect (B, T, d). The hook hands them the 1-D table the attention really
  applied (the three rows merged by `mrope_section`), and `module.rotary_emb` becomes a 1-D view of
  the model's rotary embedding. For audio + text inputs the three position rows are identical.
* **Layers a press must not touch** are left alone and reported: Gemma 3n's KV-shared layers (they
  read another layer's cache) and sliding-window layers (their cache is a rolling window already).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from amlib.eviction.presses import PressSpec
from amlib.pruning.mechanism import AttentionCapture


def merge_mrope(table: torch.Tensor, mrope_section: list[int]) -> torch.Tensor:
    """(3, B, T, d) M-RoPE cos or sin -> the (B, T, d) table the attention applies: the head dimension
    split in sections (mrope_section twice), section i taken from axis i % 3."""
    parts = table.split(list(mrope_section) * 2, dim=-1)
    return torch.cat([part[i % 3] for i, part in enumerate(parts)], dim=-1)


class OneDimRotary(torch.nn.Module):
    """A 1-D view of an M-RoPE rotary embedding: (x, position_ids (B, T)) -> merged (B, T, d) cos, sin."""

    def __init__(self, rotary: torch.nn.Module, mrope_section: list[int]):
        super().__init__()
        self.rotary, self.mrope_section = rotary, list(mrope_section)

    @property
    def inv_freq(self):  # presses that re-rotate keys read it
        return self.rotary.inv_freq

    def forward(self, x, position_ids):
        if position_ids.dim() == 2:
            position_ids = position_ids[None].expand(3, *position_ids.shape)
        cos, sin = self.rotary(x, position_ids)
        return merge_mrope(cos, self.mrope_section), merge_mrope(sin, self.mrope_section)


def mrope_section_of(attention: torch.nn.Module) -> list[int] | None:
    config = getattr(attention, "config", None)
    for name in ("rope_parameters", "rope_scaling"):
        params = getattr(config, name, None)
        if isinstance(params, dict) and params.get("mrope_section"):
            return list(params["mrope_section"])
    return None


def text_model_of(adapter) -> torch.nn.Module:
    """The module that owns the decoder layers (its `rotary_emb` is the model's rotary embedding)."""
    layers = adapter.decoder_layers()
    for module in adapter.model.modules():
        if getattr(module, "layers", None) is layers:
            return module
    raise NotImplementedError(f"{adapter.family}: no module owns the decoder layers")


def skip_reason(attention: torch.nn.Module) -> str | None:
    if getattr(attention, "is_kv_shared_layer", False):
        return "reads another layer's KV cache (KV sharing)"
    if getattr(attention, "sliding_window", None) or getattr(attention, "is_sliding", False):
        return "sliding-window layer (its cache is a rolling window)"
    return None


def check_prerope_queries(attention: torch.nn.Module, press_name: str) -> None:
    """kvpress's get_prerope_query_states projects queries for Llama-like layers (q_proj), applying
    q_norm only for Qwen3 and Gemma3 and the full-width rotation; anything else would be scored wrong."""
    from transformers.models.gemma3.modeling_gemma3 import Gemma3Attention
    from transformers.models.qwen3.modeling_qwen3 import Qwen3Attention

    cls = type(attention).__name__
    if not hasattr(attention, "q_proj"):
        raise NotImplementedError(f"press {press_name!r} projects queries itself (kvpress get_prerope_query_states), "
                                  f"which does not know {cls}'s fused qkv projection")
    if hasattr(attention, "q_norm") and not isinstance(attention, (Qwen3Attention, Gemma3Attention)):
        raise NotImplementedError(f"press {press_name!r} projects queries itself (kvpress get_prerope_query_states), "
                                  f"which would skip {cls}'s q_norm: its scores would be wrong")
    factor = getattr(attention.config, "partial_rotary_factor", 1.0) or 1.0
    if factor != 1.0:
        raise NotImplementedError(f"press {press_name!r} rotates its query statistics over the whole head, but {cls} "
                                  f"rotates only {factor:g} of it (partial rotary)")


@dataclass
class LayerRecord:
    tokens_before: int
    bytes_before: int


@dataclass
class PressInstallation:
    """Hooks `press` on `adapter`'s decoder layers while entered; compression happens only while
    `armed` (the prefill forward of `amlib.eviction.generate`)."""

    adapter: object
    press: object
    spec: PressSpec
    armed: bool = False
    press_seconds: float = 0.0  # time spent in the press's hook during the last prefill
    layers: dict[int, LayerRecord] = field(default_factory=dict)  # cache layer idx -> before compression
    skipped: dict[int, str] = field(default_factory=dict)  # decoder layer -> why the press leaves it
    # query-agnostic question over caches of different lengths: one forward with per-layer masks
    # (False: token by token; also where layers were left alone, whose masks the model builds)
    question_in_one_forward: bool = True

    def __post_init__(self):
        self.attentions = []
        for i, layer in enumerate(self.adapter.decoder_layers()):
            attention = getattr(layer, "self_attn", None)
            if attention is None or not hasattr(attention, "layer_idx"):
                raise NotImplementedError(f"{self.adapter.family}: decoder layer {i} has no self_attn with a layer_idx "
                                          "for kvpress to find its cache")
            reason = skip_reason(attention)
            if reason:
                self.skipped[i] = reason
                continue
            if self.spec.prerope_queries:
                check_prerope_queries(attention, self.spec.name)
            self.attentions.append(attention)
        if not self.attentions:
            raise NotImplementedError(f"{self.adapter.family}: no decoder layer's cache can be compressed")
        self._handles, self._rotary_set = [], []
        self._capture = AttentionCapture(self.attentions, rows=self.spec.attention_rows) \
            if self.spec.attention_rows else None

    def __enter__(self):
        text_model = text_model_of(self.adapter)
        self.press.post_init_from_model(self.adapter.language_model())
        rotary = getattr(text_model, "rotary_emb", None)
        for attention in self.attentions:
            section = mrope_section_of(attention)
            if rotary is not None:  # kvpress's presses read module.rotary_emb
                self._rotary_set.append((attention, attention._modules.get("rotary_emb")))
                attention.rotary_emb = OneDimRotary(rotary, section) if section else rotary
            self._handles.append(attention.register_forward_hook(self._view, with_kwargs=True, prepend=True))
            self._handles.append(attention.register_forward_hook(self._compress, with_kwargs=True))
        if self._capture is not None:
            self._capture.__enter__()
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        for attention, previous in self._rotary_set:
            del attention.rotary_emb
            if previous is not None:
                attention.rotary_emb = previous
        self._handles, self._rotary_set = [], []
        if self._capture is not None:
            self._capture.__exit__(*exc)
            self._capture.by_module.clear()
        return False

    def start_prefill(self) -> None:
        self.armed, self.press_seconds, self.layers = True, 0.0, {}

    # -- hooks ----------------------------------------------------------------------------------
    def _view(self, module, args, kwargs, output):
        """Before the press: record the layer's cache size, merge M-RoPE tables, supply attention rows."""
        recorded = self._capture.by_module.pop(module, None) if self._capture is not None else None
        if not self.armed:
            return None
        cache = kwargs["past_key_values"].layers[module.layer_idx]
        self.layers[module.layer_idx] = LayerRecord(
            cache.keys.shape[-2], cache.keys.numel() * cache.keys.element_size()
            + cache.values.numel() * cache.values.element_size())
        embeddings = kwargs.get("position_embeddings")
        if embeddings is not None and embeddings[0].dim() == 4:
            section = mrope_section_of(module)
            kwargs["position_embeddings"] = tuple(merge_mrope(t, section) for t in embeddings)
        if self.spec.attention_rows and (len(output) < 2 or output[1] is None):
            if recorded is None:
                raise RuntimeError(f"layer {module.layer_idx}: its attention inputs were not captured")
            return (output[0], recorded.rows_weights(), *output[2:])
        return None

    def _compress(self, module, args, kwargs, output):
        if not self.armed:
            return None
        sync = torch.cuda.synchronize if kwargs["hidden_states"].is_cuda else (lambda: None)
        sync()
        start = time.perf_counter()
        layer = kwargs["past_key_values"].layers[module.layer_idx]
        window = getattr(layer, "sliding_window", None)
        if window is not None and layer.cumulative_length >= window:
            raise NotImplementedError(f"layer {module.layer_idx}: the prompt ({layer.cumulative_length} tokens) fills its "
                                      f"sliding window of {window}; its cache is a rolling window kvpress cannot compress")
        self.press.forward_hook(module, args, kwargs, output)
        if window is not None:  # a window larger than the prompt (Phi-4's): the layer is a full one, re-count it
            layer.cumulative_length = layer.keys.shape[-2]
        sync()
        self.press_seconds += time.perf_counter() - start
        return (output[0], None, *output[2:])  # attention rows served the press only
