"""amlib.models.cache: the in-place KV cache gives exactly what transformers' DynamicCache gives."""

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from amlib.models import load_model
from amlib.models.cache import PreallocatedLayer, preallocated_cache
from amlib.pruning import pruning
from amlib.tasks import TASKS

from conftest import noise

# one family per cache layout: plain full attention, M-RoPE (Qwen2.5-Omni), sliding + KV-shared (Gemma 3n)
FAMILIES = ["tiny-random-qwen2-audio", "tiny-random-qwen2.5-omni", "tiny-random-gemma3n"]


def kv(length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, 2, length, 4, generator=gen), torch.randn(1, 2, length, 4, generator=gen)


def test_layer_matches_dynamic_layer_through_growth_and_replacement():
    ours, theirs = PreallocatedLayer(reserve=2), DynamicLayer()
    steps = [kv(5, 0), kv(1, 1), kv(1, 2), kv(3, 3), kv(1, 4)]  # the 3-token step outgrows the reserve
    for i, (k, v) in enumerate(steps):
        got, want = ours.update(k, v), theirs.update(k, v)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        assert ours.get_seq_length() == theirs.get_seq_length()
        if i == 1:  # a press replaces the cache (keeps 3 of 6 positions): the next update adopts it
            keep = torch.tensor([0, 2, 5])
            for layer in (ours, theirs):
                layer.keys, layer.values = layer.keys[:, :, keep], layer.values[:, :, keep]
    assert ours.get_seq_length() == 3 + 1 + 3 + 1


def test_layer_writes_in_place_within_its_reserve():
    layer = PreallocatedLayer(reserve=8)
    layer.update(*kv(4, 0))
    before = layer.keys.untyped_storage().data_ptr()
    for step in range(8):
        layer.update(*kv(1, step + 1))
        assert layer.keys.untyped_storage().data_ptr() == before  # no reallocation, no copy of the past
    layer.update(*kv(1, 99))  # past the reserve: a new buffer, same values
    assert layer.keys.untyped_storage().data_ptr() != before and layer.get_seq_length() == 13


def test_cache_keeps_sliding_layers_and_replaces_full_ones():
    adapter = load_model("tiny-random-gemma3n", seed=0)
    cache = preallocated_cache(adapter.model.config, 4)
    kinds = {type(layer).__name__ for layer in cache.layers}
    assert "PreallocatedLayer" in kinds and "DynamicSlidingWindowLayer" in kinds


def _generate(adapter, prepared, preallocate: bool, steps: int = 6):
    adapter.preallocate_cache = preallocate
    try:
        return adapter.generate(prepared, max_new_tokens=steps)
    finally:
        del adapter.preallocate_cache  # the class default again


@pytest.mark.parametrize("name", FAMILIES)
def test_generate_equals_dynamic_cache(name):
    """Greedy answers with and without the in-place cache are identical, vanilla and pruned (shorter
    caches after layer K). A forced min length makes every run decode all steps."""
    adapter = load_model(name, seed=0)
    spec = TASKS["SCR"]
    prepared = adapter.build_inputs(noise(6.0, seed=1), spec, "Who came?", ["a", "b", "c", "d"])
    for context in (None, "frame"):
        texts = []
        for preallocate in (False, True):
            if context is None:
                texts.append(_generate(adapter, prepared, preallocate).text)
            else:
                with pruning(adapter, context, 0.5, layer=1):
                    texts.append(_generate(adapter, prepared, preallocate).text)
        assert texts[0] == texts[1], (name, context, texts)
