"""One prefill for every press: the eviction configurations of a prompt share its prefill exactly.

A kvpress press acts AFTER each attention layer of the prefill: it replaces the layer's cache by the
kept keys and values, while the layer's output (what the next layer reads) was computed over all of
them. So the prefill's hidden states, keys and values are the same under every press and ratio; only
what each press keeps differs. `PrefillRecord.record` runs the prompt's prefill once, with no press,
and keeps per compressible layer what a press's hook reads there (the attention call's keyword
arguments, hidden states included; the full keys and values; the last query rows for presses that
read attention weights); `replay` then hands a fresh copy of those keys and values to one press's
hooks, layer by layer, in the prefill's order. The press sees exactly the tensors it would have seen
inside the prefill, so the compressed cache, and everything decoded from it, is the same as a
separate prefill's (tested for every press in float32). The prefill's first-token logits and
position ids are kept too: under `query_aware` the first answer token comes from them.

Where it applies: every decoder layer compressible (no sliding-window or KV-shared layers, whose
caches are not plain appends) — elsewhere `amlib.eviction.generate` prefills per configuration.
The records of one sample live in `amlib.sweep.SharedPrefix.evictions`, one per protocol.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch
from transformers.cache_utils import DynamicLayer

from amlib.eviction.presses import PRESS_SPECS
from amlib.pruning.base import LayerAttentionInputs
from amlib.pruning.mechanism import AttentionCapture

# query rows recorded per layer: enough for any press (SnapKV's window); each press takes its last r
MAX_ATTENTION_ROWS = max(spec.attention_rows for spec in PRESS_SPECS.values())


def shareable(installation, cache) -> bool:
    """Whether a prefill of this model can be recorded for other presses: every layer compressible and
    every cache layer a plain (appending) one."""
    return not installation.skipped and all(isinstance(layer, DynamicLayer) and type(layer).__name__ in
                                            ("DynamicLayer", "PreallocatedLayer") for layer in cache.layers)


@dataclass
class LayerCall:
    """One attention layer's prefill call as the press hooks receive it, and its full cache after it."""

    args: tuple
    kwargs: dict  # without past_key_values (the replay passes its own cache)
    keys: torch.Tensor
    values: torch.Tensor
    attention: LayerAttentionInputs | None = None


@dataclass
class PrefillRecord:
    """A prompt part's prefill, recorded once for every press (see the module docstring)."""

    input_ids: torch.Tensor
    layers: dict[int, LayerCall]  # cache layer index -> its call
    last_logits: torch.Tensor  # the prefill's last position
    positions: torch.Tensor  # the position ids the language model used
    seconds: float  # wall time of the recording prefill
    replays: int = field(default=0)

    @classmethod
    def record(cls, model, attentions: list, tensors: dict, cache, forward_kwargs: dict, text_model,
               sync) -> "PrefillRecord":
        """Prefill `tensors` into `cache` (no press armed), recording what every press would read."""
        from amlib.eviction.generate import PositionProbe

        calls: dict[int, LayerCall] = {}

        def keep(module, args, kwargs, output):
            layer = kwargs["past_key_values"].layers[module.layer_idx]
            calls[module.layer_idx] = LayerCall(
                args, {k: v for k, v in kwargs.items() if k != "past_key_values"}, layer.keys, layer.values)

        probe = PositionProbe(text_model)
        handles = [a.register_forward_hook(keep, with_kwargs=True, prepend=True) for a in attentions]
        try:
            with AttentionCapture(attentions, rows=MAX_ATTENTION_ROWS) as capture:
                sync()
                start = time.perf_counter()
                out = model(**tensors, past_key_values=cache, use_cache=True, **forward_kwargs)
                sync()
                seconds = time.perf_counter() - start
        finally:
            for handle in handles:
                handle.remove()
            probe.handle.remove()
        for attention in attentions:
            calls[attention.layer_idx].attention = capture.by_module.pop(attention, None)
        return cls(tensors["input_ids"], calls, out.logits[0, -1], probe.positions, seconds)

    def check_same(self, input_ids: torch.Tensor) -> None:
        if input_ids.shape != self.input_ids.shape or not torch.equal(input_ids, self.input_ids):
            raise RuntimeError("a recorded eviction prefill is replayed only for the prompt it was recorded on "
                               "(one amlib.sweep.SharedPrefix per sample)")

    def replay(self, installation, cache) -> None:
        """Fill `cache` with the recorded keys and values, layer by layer, each compressed by
        `installation`'s press hooks (armed) exactly as inside the prefill."""
        wanted = installation.spec.attention_rows
        for attention in installation.attentions:
            call = self.layers[attention.layer_idx]
            cache.update(call.keys, call.values, attention.layer_idx)  # a copy: the record stays intact
            kwargs = {**call.kwargs, "past_key_values": cache}
            if wanted:
                if call.attention is None:
                    raise RuntimeError(f"layer {attention.layer_idx}: its attention inputs were not recorded")
                installation._capture.by_module[attention] = rows_of(call.attention, wanted)
            output = (None, None)  # the layer's output is not needed: presses read its cache
            output = installation._view(attention, call.args, kwargs, output) or output
            installation._compress(attention, call.args, kwargs, output)
        self.replays += 1


def rows_of(recorded: LayerAttentionInputs, rows: int) -> LayerAttentionInputs:
    """The record of the last `rows` query rows, as a capture of `rows` rows would have made it."""
    rows = min(rows, recorded.last_query.shape[-2])
    mask = recorded.last_mask_row[..., -rows:, :] if recorded.last_mask_row is not None else None
    return replace(recorded, last_query=recorded.last_query[..., -rows:, :], last_mask_row=mask)
