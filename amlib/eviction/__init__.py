"""KV-cache eviction with kvpress presses (paper §4.2): compress the prefill's cache, decode against it.

    from amlib.eviction import PRESSES, eviction
    with eviction(adapter, "snapkv", ratio=0.5, protocol="query_agnostic"):
        generation = adapter.generate(prepared, max_new_tokens=5)
    generation.efficiency  # KV bytes before/after, tokens kept per layer, press time, ...

`presses.py` names the kvpress presses and their settings; `install.py` puts a press's own hook on
every decoder layer and makes it exact on every family (attention rows from the layer's real
queries, M-RoPE merged to 1-D, layers a press must not touch left alone); `generate.py` prefills
under the press and decodes at the original positions, under either protocol:
`query_aware` (the paper's: question compressed too) or `query_agnostic` (question after compression).
"""

from __future__ import annotations

from contextlib import contextmanager

from amlib.eviction.generate import PROTOCOLS, context_end, evicted_generate
from amlib.eviction.install import PressInstallation, merge_mrope
from amlib.eviction.presses import PAPER_PRESSES, PRESS_SPECS, PRESSES, make_press, press_spec
from amlib.models.base import AudioLMAdapter


def check_supported(adapter) -> None:
    """Eviction runs the adapter's transformers forward with a cache; adapters that generate through
    their own code (remote-code generate loops, APIs) cannot host it."""
    if not isinstance(adapter, AudioLMAdapter):
        raise NotImplementedError(f"{type(adapter).__name__} is not a local model: no KV cache to evict")
    if type(adapter).generate is not AudioLMAdapter.generate:
        raise NotImplementedError(f"{adapter.family}: generates through its own generate() (remote code), so amlib "
                                  "cannot run the prefill and decode steps with a compressed cache")


@contextmanager
def eviction(adapter, press: str, ratio: float, protocol: str = "query_aware", seed: int = 0, prefix=None):
    """Inside the block, `adapter.generate(prepared, ...)` compresses the prefill's KV cache with the
    kvpress press `press` at `ratio` (the share of KV pairs evicted) under `protocol`. Yields the
    PressInstallation (its `skipped` names the layers left alone and why). `prefix`: the sample's
    `amlib.sweep.SharedPrefix`, where its prefill is recorded once for every press (`shared.py`)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    check_supported(adapter)
    spec = press_spec(press)
    installation = PressInstallation(adapter, make_press(spec.name, ratio, seed), spec)

    def evicted(prepared, max_new_tokens, **kwargs):
        gen = evicted_generate(adapter, prepared, max_new_tokens, installation, protocol, prefix=prefix)
        gen.efficiency.update(ratio=ratio, protocol=protocol)
        return gen

    own = adapter.__dict__.get("generate")
    with installation:
        adapter.generate = evicted
        try:
            yield installation
        finally:
            if own is None:
                del adapter.generate
            else:
                adapter.generate = own


__all__ = ["PAPER_PRESSES", "PRESSES", "PRESS_SPECS", "PROTOCOLS", "PressInstallation", "context_end",
           "eviction", "evicted_generate", "make_press", "merge_mrope", "press_spec"]
