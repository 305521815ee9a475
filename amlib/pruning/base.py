"""What every pruning method shares: the token budget and the inputs a method may look at.

A method sees one prompt at decoder layer K and returns which of its L audio tokens to keep
(`n_keep(L, ratio)` of them). It never touches the model: `amlib.pruning.mechanism` installs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch


def n_keep(n_audio: int, ratio: float) -> int:
    """Audio tokens kept at pruning ratio `ratio`: max(1, floor(L * (1 - r))) (the paper's budget).
    A 1e-9 tolerance absorbs float rounding, so 7,500 tokens at r = 0.9 keep 750, not 749."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"pruning ratio must be in [0, 1], got {ratio}")
    if n_audio < 1:
        raise ValueError("no audio tokens to prune")
    return max(1, math.floor(n_audio * (1.0 - ratio) + 1e-9))


@dataclass
class LayerAttentionInputs:
    """A layer's attention inputs during prefill, as its attention function received them: the LAST
    prompt tokens' queries (B, heads, r, d; r = 1 for pruning) and every token's key (B, kv_heads, T, d),
    both after RoPE, plus what the family's eager attention needs to turn them into weights."""

    module: torch.nn.Module
    last_query: torch.Tensor
    keys: torch.Tensor
    last_mask_row: torch.Tensor | None  # (B, 1, r, T) additive/boolean mask rows of those queries, or None
    scaling: float
    extra: dict  # other keyword arguments of the attention call (sliding_window, softcap, ...)

    def rows_weights(self) -> torch.Tensor:
        """Attention weights of the last r queries over all T keys, (B, heads, r, T), computed by the
        family's own eager attention function on those rows only: they equal the eager attention
        weights' last r rows whatever implementation (SDPA, flash, eager) ran the layer. Without a
        mask (SDPA's causal fast path) the rows get the causal mask SDPA applied."""
        eager = eager_attention_function(self.module)
        query, mask = self.last_query, self.last_mask_row
        rows, total = query.shape[-2], self.keys.shape[-2]
        if mask is None and rows > 1:
            seen = torch.arange(total, device=query.device)[None, :] <= torch.arange(
                total - rows, total, device=query.device)[:, None]
            mask = seen[None, None]
        if mask is not None and mask.dtype == torch.bool:  # SDPA's boolean mask -> eager's additive one
            mask = torch.zeros(mask.shape, dtype=query.dtype, device=mask.device).masked_fill(
                ~mask, torch.finfo(query.dtype).min)
        value = torch.zeros_like(self.keys[..., :1]).expand(*self.keys.shape[:-1], 1)  # weights only
        _, weights = eager(self.module, query, self.keys, value, mask, scaling=self.scaling, dropout=0.0,
                           **self.extra)
        return weights

    def last_row_weights(self) -> torch.Tensor:
        """Attention weights of the last query over all T keys, (heads, T), float32."""
        return self.rows_weights()[0, :, -1, :].float()


def eager_attention_function(module: torch.nn.Module):
    """The `eager_attention_forward` of the modeling file that defines `module`'s class."""
    import sys

    fn = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
    if fn is None:
        raise NotImplementedError(f"{type(module).__name__}: its modeling file has no eager_attention_forward "
                                  "to compute attention weights with")
    return fn


@dataclass
class PruningInputs:
    """One prompt at layer K, as a method sees it."""

    audio_index: torch.Tensor  # (L,) sorted sequence positions of the prunable audio tokens
    n_keep: int
    seq_len: int  # T, the prompt length
    hidden_states: torch.Tensor  # input of layer K, (..., T, d)
    attention: LayerAttentionInputs | None  # layer K-1, for methods with needs_attention

    @property
    def n_audio(self) -> int:
        return int(self.audio_index.numel())


@dataclass
class PruningMethod:
    """One token pruning method: `select` returns the kept audio tokens as indices into
    `inputs.audio_index` (any order; exactly `inputs.n_keep` distinct values)."""

    name: ClassVar[str] = ""
    needs_attention: ClassVar[bool] = False  # reads layer K-1's query/keys (so K >= 1)

    def select(self, inputs: PruningInputs) -> torch.Tensor:
        raise NotImplementedError
