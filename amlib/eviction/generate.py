"""Greedy generation with a compressed KV cache, at the ORIGINAL positions, under two protocols.

* `query_aware` (the paper's): the whole prompt, question included, is prefilled and compressed.
  The first answer token comes out of that prefill, whose attention still saw every token: eviction
  can only act from the second generated token on (single-letter answers barely move).
* `query_agnostic` (kvpress's own): the context (everything up to the last audio token: system
  prompt, instruction, audio) is prefilled and compressed; the question and options are then fed
  against the compressed cache, and the answer decoded. Every answer token sees the evicted cache.

Positions: after eviction the cache is shorter than the prompt, and transformers 5.2's Qwen2.5-Omni
`generate()` would place the next token at the cache length (shifted back by the evicted count).
Here every token after the prefill gets an explicit position id: the prefill's largest position + 1,
+ 2, ... (per M-RoPE axis on Qwen2.5-Omni, whose text positions continue from the audio's). At ratio 0
the output is vanilla's.
"""

from __future__ import annotations

import inspect
import time

import torch

from amlib.efficiency import GenerationTiming, peak_memory, sync_for
from amlib.eviction.install import PressInstallation, text_model_of
from amlib.eviction.shared import PrefillRecord, shareable
from amlib.models.base import Generation, PreparedInputs

PROTOCOLS = ("query_aware", "query_agnostic")
PROMPT_KEYS = ("input_ids", "attention_mask", "token_type_ids")  # tensors that run along the prompt


def context_end(prepared: PreparedInputs) -> int:
    """Where the query-agnostic context ends: after the last audio token."""
    if not prepared.audio_spans:
        raise ValueError("the prompt has no audio tokens: no context to compress before the question")
    return max(end for _, end in prepared.audio_spans)


def prompt_part(tensors: dict, end: int) -> dict:
    """The model inputs for the prompt's first `end` tokens (audio features unchanged)."""
    length = tensors["input_ids"].shape[-1]
    part = {}
    for key, value in tensors.items():
        if key in PROMPT_KEYS:
            part[key] = value[..., :end]
        elif isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[-1] == length and \
                not value.is_floating_point():
            raise ValueError(f"input {key!r} runs along the prompt ({tuple(value.shape)}) and amlib does not "
                             "know how to cut it for the query-agnostic protocol")
        else:
            part[key] = value
    return part


class PositionProbe:
    """Records the position ids the language model used in its next forward (the prefill)."""

    def __init__(self, text_model: torch.nn.Module):
        self.positions: torch.Tensor | None = None
        self.handle = text_model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):
        embeds = kwargs.get("inputs_embeds")
        given = embeds if embeds is not None else kwargs["input_ids"]
        length = embeds.shape[-2] if embeds is not None else given.shape[-1]
        positions = kwargs.get("position_ids")
        if positions is None:  # on the inputs' device: the decode steps' position ids are made from these
            start = kwargs.get("cache_position")
            start = int(start[0]) if start is not None else 0
            positions = torch.arange(start, start + length, device=given.device)[None]
        self.positions = positions.detach()
        self.handle.remove()  # the prefill's positions only

    def next_positions(self, count: int, offset: int = 0) -> torch.Tensor:
        return next_positions(self.positions, count, offset)


def next_positions(positions: torch.Tensor, count: int, offset: int = 0) -> torch.Tensor:
    """Positions of `count` tokens following a forward at `positions` (+ offset), shaped like its ids."""
    first = int(positions.max()) + 1 + offset
    steps = torch.arange(first, first + count, device=positions.device)
    return steps.expand(*positions.shape[:-1], count).clone()


def cache_lengths(cache) -> list[int]:
    return [layer.keys.shape[-2] for layer in cache.layers if getattr(layer, "keys", None) is not None
            and layer.keys.dim() == 4]


def cache_bytes(cache) -> int:
    return sum(layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
               for layer in cache.layers if getattr(layer, "keys", None) is not None and layer.keys.dim() == 4)


def _forward_kwargs(model) -> dict:
    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}


def _new_cache(adapter, max_new_tokens: int):
    """transformers' DynamicCache layout; appends in place (amlib.models.cache) unless the adapter opts out."""
    from transformers import DynamicCache

    from amlib.models.cache import preallocated_cache

    config = adapter.language_model().config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    if getattr(adapter, "preallocate_cache", False):
        return preallocated_cache(config, max_new_tokens)
    return DynamicCache(config=config)


def _feed(model, ids: torch.Tensor, positions: torch.Tensor, cache, extra: dict, token_by_token: bool):
    """Forward the question `ids` after the compressed cache at `positions`: in one forward (with an
    explicit all-ones mask when every layer's cache has one length, so no packed sequence is guessed
    from the positions), or token by token."""
    if not token_by_token:
        lengths = set(cache_lengths(cache))
        mask = None if len(lengths) > 1 else torch.ones(1, lengths.pop() + ids.shape[-1], dtype=torch.long,
                                                        device=ids.device)
        return model(input_ids=ids, position_ids=positions, attention_mask=mask, past_key_values=cache,
                     use_cache=True, **extra)
    out = None
    for t in range(ids.shape[-1]):
        out = model(input_ids=ids[..., t:t + 1], position_ids=positions[..., t:t + 1], past_key_values=cache,
                    use_cache=True, **extra)
    return out


def _layer_mask(cache):
    """A pre-hook giving an attention module a mask over ITS cache + the new tokens (causal among them),
    for caches whose length differs by layer (PyramidKV): the model builds its mask for one length."""

    def hook(module, args, kwargs):
        if "attention_mask" not in kwargs or "hidden_states" not in kwargs:
            raise NotImplementedError(f"{type(module).__name__} receives its mask positionally: no per-layer mask")
        incoming, hidden = kwargs["attention_mask"], kwargs["hidden_states"]
        q = hidden.shape[-2]
        if incoming is None and q == 1:  # SDPA decoding step: no mask needed
            return None
        past = cache.layers[module.layer_idx].keys.shape[-2]
        seen = torch.ones(q, past + q, dtype=torch.bool, device=hidden.device)
        seen[:, past:] = torch.ones(q, q, dtype=torch.bool, device=hidden.device).tril()
        if incoming is not None and incoming.dtype != torch.bool:  # eager: additive
            mask = torch.zeros(seen.shape, dtype=incoming.dtype, device=hidden.device).masked_fill(
                ~seen, torch.finfo(incoming.dtype).min)
        else:
            mask = seen
        kwargs["attention_mask"] = mask[None, None]
        return args, kwargs

    return hook


def stop_ids(adapter) -> set[int]:
    eos = adapter.model.generation_config.eos_token_id
    eos = eos if isinstance(eos, (list, tuple)) else [eos]
    return {int(e) for e in eos if e is not None}


@torch.inference_mode()
def evicted_generate(adapter, prepared: PreparedInputs, max_new_tokens: int, installation: PressInstallation,
                     protocol: str = "query_aware", logits_out: list | None = None, prefix=None) -> Generation:
    """Greedy decoding of `prepared` with `installation`'s press compressing the prefill's cache.
    `logits_out`: a list that receives each step's last-position logits (float32, for tests).
    `prefix`: an `amlib.sweep.SharedPrefix` of this sample: the prompt part's prefill is recorded there
    once and replayed for every press (`amlib.eviction.shared`; same caches as a prefill of its own)."""
    logits_out = [] if logits_out is None else logits_out
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    model, device = adapter.model, adapter.device
    tensors = {k: v.to(device) for k, v in prepared.tensors.items()}
    if tensors["input_ids"].shape[0] != 1:
        raise ValueError("KV eviction runs at batch size 1")
    length = tensors["input_ids"].shape[-1]
    end = length if protocol == "query_aware" else context_end(prepared)
    extra, sync, stops = _forward_kwargs(model), sync_for(device), stop_ids(adapter)
    records = getattr(prefix, "evictions", None)
    shared = None  # (replayed, seconds of the shared part) where this row replayed a recorded prefill
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync()
    start = time.perf_counter()
    cache = _new_cache(adapter, max_new_tokens)
    part = prompt_part(tensors, end)
    if records is not None and shareable(installation, cache):
        record = records.get((protocol, end))
        if record is None:
            encoder_replayed = bool(prefix.recorded)
            record = PrefillRecord.record(model, installation.attentions, part, _new_cache(adapter, 0), extra,
                                          text_model_of(adapter), sync)
            record.encoder_replayed = encoder_replayed
            records[(protocol, end)] = record
        else:
            record.check_same(part["input_ids"])
            start = time.perf_counter()  # (the record's own check is no part of this row's work)
            shared = (True, record.seconds + (prefix.prefix_seconds if record.encoder_replayed else 0.0))
        installation.start_prefill()
        try:
            record.replay(installation, cache)
        finally:
            installation.armed = False
        last_logits, positions = record.last_logits, record.positions
    else:
        probe = PositionProbe(text_model_of(adapter))
        installation.start_prefill()
        try:
            out = model(**part, past_key_values=cache, use_cache=True, **extra)
        finally:
            installation.armed = False
            probe.handle.remove()
        last_logits, positions = out.logits[0, -1], probe.positions
    fields = eviction_fields(installation, cache, end, length - end)
    offset = 0
    # caches of different lengths by layer: each compressed layer gets its own mask (where layers
    # were left alone their masks are the model's, so the question goes token by token instead)
    uneven = len(set(cache_lengths(cache))) > 1
    own_masks = uneven and installation.question_in_one_forward and not installation.skipped
    handles = [a.register_forward_pre_hook(_layer_mask(cache), with_kwargs=True)
               for a in installation.attentions] if own_masks else []
    try:
        if end < length:  # query-agnostic: the question against the compressed cache
            question = tensors["input_ids"][..., end:]
            out = _feed(model, question, next_positions(positions, length - end), cache, extra,
                        token_by_token=uneven and not own_masks)
            last_logits = out.logits[0, -1]
            offset = length - end
        token = last_logits.argmax(-1)[None]
        logits_out.append(last_logits.float())
        sync()
        first = time.perf_counter()
        if getattr(adapter, "deferred", None) is not None:  # decoded later, batched (amlib.fastpath)
            gen = _deferred(adapter, prepared, cache, token, last_logits, next_positions(positions, 1, offset),
                            max_new_tokens, GenerationTiming(first - start, 0.0, *peak_memory(device)), fields)
            gen.shared_prefix = shared
            return gen
        new = [token]
        for step in range(1, max_new_tokens):
            if int(token) in stops:
                break
            out = model(input_ids=token[:, None], position_ids=next_positions(positions, 1, offset + step - 1),
                        past_key_values=cache, use_cache=True, **extra)
            token = out.logits[:, -1].argmax(-1)
            logits_out.append(out.logits[0, -1].float())
            new.append(token)
    finally:
        for handle in handles:
            handle.remove()
    sync()
    end_time = time.perf_counter()
    ids = torch.stack(new, dim=-1)[0]
    text = adapter.processor.tokenizer.decode(ids, skip_special_tokens=True).strip()
    timing = GenerationTiming(first - start, end_time - first, *peak_memory(device))
    return Generation(text=text, new_tokens=int(ids.numel()), timing=timing, inputs=prepared, efficiency=fields,
                      shared_prefix=shared)


def _deferred(adapter, prepared, cache, token, last_logits, next_positions, max_new_tokens, timing,
              fields) -> Generation:
    """The prefilled (and compressed) prompt as a pending Generation for `BatchedDecoder`: its next
    token continues at the original positions (every M-RoPE axis equal after the prompt's text)."""
    from amlib.fastpath.batched_decode import Prefilled

    logits = last_logits.float().clone() if adapter.deferred.keep_logits else None
    prefilled = Prefilled(cache, int(token), int(next_positions.max()), max_new_tokens, first_logits=logits)
    return Generation(text=None, new_tokens=0, timing=timing, inputs=prepared, efficiency=fields, pending=prefilled)


def eviction_fields(installation: PressInstallation, cache, prefilled: int, question_tokens: int) -> dict:
    """What the prefill's compression did: cache bytes and tokens per layer before and after."""
    kept = cache_lengths(cache)
    after = cache_bytes(cache)
    before_extra = sum(rec.bytes_before for rec in installation.layers.values())
    compressed_now = sum(cache.layers[i].keys.numel() * cache.layers[i].keys.element_size()
                         + cache.layers[i].values.numel() * cache.layers[i].values.element_size()
                         for i in installation.layers)
    before = after - compressed_now + before_extra
    return {
        "press": installation.spec.name, "prefilled_tokens": prefilled, "question_tokens_after": question_tokens,
        "kv_bytes": after, "kv_bytes_uncompressed": before,
        "kv_tokens_per_layer": kept, "kv_compression": 1.0 - after / before if before else 0.0,
        "press_s": installation.press_seconds,
        "layers_not_compressed": {str(i): why for i, why in installation.skipped.items()},
    }
