"""A KV cache that appends in place: what makes greedy decoding of long answers affordable on a CPU.

transformers' `DynamicLayer` appends each new token with `torch.cat`, which copies the whole cache
of every layer at every step. On a 3,846-token prompt of the reference model that copy was 44 % of a
decode step (profiled, 2-core CPU, float32). `PreallocatedLayer` keeps the cache in a buffer with
room for `reserve` more tokens and hands out views of its filled part, so a step writes only the new
token. Keys and values are the same tensors as with `DynamicLayer` (same shapes, values and order);
only where they live differs, so attention, token pruning (shorter caches after layer K) and
anything that reads `layer.keys` see no difference.

Whoever replaces `layer.keys` / `layer.values` (a kvpress press after compressing the prefill) is
honoured: the next update adopts the new tensors into a fresh buffer (so do DynamicLayer's batch
reordering methods, which also assign new tensors).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values are views of a buffer with `reserve` spare positions."""

    def __init__(self, reserve: int):
        super().__init__()
        self.reserve = max(int(reserve), 1)
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None
        self._views: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key_states, value_states, cache_kwargs=None):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length, new = self.get_seq_length(), key_states.shape[-2]
        if not self._owns_current() or length + new > self._buffers[0].shape[-2]:
            self._move_to_buffers(length, length + new + self.reserve, key_states, value_states)
        keys, values = self._buffers
        keys[..., length:length + new, :].copy_(key_states)
        values[..., length:length + new, :].copy_(value_states)
        self.keys, self.values = keys[..., :length + new, :], values[..., :length + new, :]
        self._views = (self.keys, self.values)
        return self.keys, self.values

    def _owns_current(self) -> bool:
        return self._views is not None and self.keys is self._views[0] and self.values is self._views[1]

    def _move_to_buffers(self, length: int, capacity: int, key_states, value_states) -> None:
        """New buffers of `capacity` positions holding the current `length` cached positions."""
        buffers = []
        for current, like in ((self.keys, key_states), (self.values, value_states)):
            shape = (*like.shape[:-2], capacity, like.shape[-1])
            buffer = torch.empty(shape, dtype=like.dtype, device=like.device)
            if length:
                buffer[..., :length, :].copy_(current)
            buffers.append(buffer)
        self._buffers = (buffers[0], buffers[1])

    def crop(self, max_length: int) -> None:
        super().crop(max_length)
        self._views = (self.keys, self.values)  # a prefix view of the same buffers


def preallocated_cache(config, reserve: int) -> DynamicCache:
    """transformers' `DynamicCache(config=config)` (sliding-window and KV-shared layers as it builds
    them) with every plain full-attention layer a `PreallocatedLayer` with room for `reserve` tokens
    beyond the prompt (the generation's `max_new_tokens`)."""
    cache = DynamicCache(config=config)
    cache.layers = [PreallocatedLayer(reserve) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
