"""Greedy decoding with static KV buffers, replayed as one CUDA graph per token.

transformers' `generate` spends a decode step mostly in Python and kernel launches: on an H200, the
Qwen2.5-Omni-3B thinker takes ~29 ms per token at a 7,600-token context although reading its weights
and cache once takes ~1.5 ms (issue 17). `GraphDecoder` runs the prefill exactly as before (HF
forward, any pruning or eviction hooks active), then decodes with:

- static per-layer KV buffers: each layer's prefill cache copied into a buffer with room for the new
  tokens, written in place at that layer's own next slot (after token pruning, layers >= K hold fewer
  tokens than layers < K, so every layer keeps its own write position);
- one additive mask row per layer (0 on filled slots, -inf elsewhere), opened one slot per step;
- attention of the one new query computed per KV head group (`gqa_decode_attention`: eager
  attention's arithmetic without expanding the KV heads, which SDPA does whenever a mask is given:
  a 62 MB copy per layer and step for the 3B at a 7,600-token context);
- positions continuing at the original prompt length (+ the family's rope delta), as HF does;
- on CUDA, the whole step (embedding, decoder, norm, lm_head, argmax, advancing the positions)
  captured once as a CUDA graph and replayed per token; elsewhere the same step runs eagerly.

It is greedy decoding only: `supports()` refuses a generation config whose processors would change
greedy choices (repetition penalty, n-gram bans, suppressed tokens, ...), and callers then use HF's
`generate`. Equality with HF's `generate` is tested step by step on logits (`logits_out`) on tiny
instances (CPU, float32, sharpened attention, vanilla and pruned, a nonzero M-RoPE delta), and at
full size on a GPU, graph replay included, by scripts/check_gpu_decode.py.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch

from amlib.efficiency import GenerationTiming, peak_memory, sync_for

# generation-config fields that make greedy decoding differ from a plain argmax
_PROCESSORS = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "encoder_no_repeat_ngram_size": 0,
               "bad_words_ids": None, "suppress_tokens": None, "begin_suppress_tokens": None,
               "forced_bos_token_id": None, "forced_eos_token_id": None, "sequence_bias": None,
               "min_length": 0, "min_new_tokens": None, "exponential_decay_length_penalty": None}


def supports(generation_config) -> str | None:
    """None when greedy decoding under `generation_config` is a plain argmax, else the reason not."""
    for name, neutral in _PROCESSORS.items():
        value = getattr(generation_config, name, neutral)
        if value not in (neutral, None):
            return f"generation config sets {name}={value!r}"
    return None


DECODE_ATTENTION = "amlib_gqa_decode"


def gqa_decode_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """One query token: softmax(q k^T * scaling + mask) v per KV group, softmax in float32 (as
    transformers' eager attention). query (B, H, 1, d), key/value (B, KV, L, d) -> (B, 1, H, d)."""
    batch, heads, q_len, dim = query.shape
    if q_len != 1:
        raise ValueError(f"gqa_decode_attention is for one query token, got {q_len}")
    grouped = query.reshape(batch, key.shape[1], heads // key.shape[1], dim)  # heads are KV-major
    scores = torch.matmul(grouped, key.transpose(-1, -2)) * (scaling if scaling is not None else dim ** -0.5)
    if attention_mask is not None:
        scores = scores + attention_mask[..., -1:, :]
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    return torch.matmul(probs, value).reshape(batch, heads, 1, dim).transpose(1, 2), None


def _register_decode_attention() -> None:
    from transformers import AttentionInterface

    if DECODE_ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(DECODE_ATTENTION, gqa_decode_attention)


@contextmanager
def decode_attention(text_model, layers, open_mask):
    """Inside the block, every decoder layer attends through `gqa_decode_attention` under the mask
    `open_mask(i)` returns for layer i (after opening the slot that layer writes this step)."""
    def per_layer_mask(i):
        def hook(module, args, kwargs):
            return args, {**kwargs, "attention_mask": open_mask(i)}
        return hook

    handles = [layer.register_forward_pre_hook(per_layer_mask(i), with_kwargs=True) for i, layer in enumerate(layers)]
    _register_decode_attention()
    config = text_model.config
    implementation, config._attn_implementation = config._attn_implementation, DECODE_ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = implementation
        for handle in handles:
            handle.remove()


class StaticKV:
    """Per-layer KV buffers with room for `new_tokens` more tokens, written at each layer's own slot."""

    def __init__(self, prefill_cache, new_tokens: int, mask_dtype: torch.dtype):
        self.keys, self.values, self.masks = [], [], []
        lengths = []
        for layer in prefill_cache.layers:
            k, v = layer.keys, layer.values
            length, reserve = k.shape[-2], new_tokens
            keys = k.new_zeros(*k.shape[:-2], length + reserve, k.shape[-1])
            values = v.new_zeros(*v.shape[:-2], length + reserve, v.shape[-1])
            keys[..., :length, :].copy_(k)
            values[..., :length, :].copy_(v)
            self.keys.append(keys)
            self.values.append(values)
            self.masks.append(torch.full((1, 1, 1, length + reserve), torch.finfo(mask_dtype).min,
                                         dtype=mask_dtype, device=k.device))
            lengths.append(length)
        self.start = torch.tensor(lengths, dtype=torch.long, device=self.keys[0].device)
        self.positions = self.start.clone()  # next slot per layer
        self.reset()

    def reset(self) -> None:
        """Back to the prefill state: slots beyond it masked, whatever a warm-up wrote there."""
        self.positions.copy_(self.start)
        for mask, length in zip(self.masks, self.start.tolist()):
            mask.fill_(torch.finfo(mask.dtype).min)
            mask[..., :length] = 0

    def slot(self, layer_idx: int) -> torch.Tensor:
        return self.positions[layer_idx:layer_idx + 1]

    def open_slot(self, layer_idx: int) -> None:
        """The slot this step writes becomes visible to this step's query (and every later one)."""
        self.masks[layer_idx].index_fill_(-1, self.slot(layer_idx), 0.0)

    # the interface transformers' attention calls
    def update(self, key_states, value_states, layer_idx: int, cache_kwargs=None):
        slot = self.slot(layer_idx)
        self.keys[layer_idx].index_copy_(-2, slot, key_states)
        self.values[layer_idx].index_copy_(-2, slot, value_states)
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        raise RuntimeError("StaticKV: positions are passed explicitly (cache_position), not read from the cache")


class GraphDecoder:
    """Greedy generation for a causal LM `model` whose decoder is `text_model` (embedding, layers,
    final norm) followed by `lm_head`; `layers` are the decoder layers (attention modules read the
    per-layer mask through a forward pre-hook). `use_graph` None: a CUDA graph on CUDA only."""

    cache_class = StaticKV

    def __init__(self, model, text_model, lm_head, layers, use_graph: bool | None = None,
                 min_graph_tokens: int = 16):
        self.model, self.text_model, self.lm_head, self.layers = model, text_model, lm_head, list(layers)
        self.use_graph = use_graph
        self.min_graph_tokens = min_graph_tokens  # fewer new tokens than this: capturing costs more than it saves
        self.last_capture_s = 0.0

    def _rope_delta(self) -> int:
        delta = getattr(self.model, "rope_deltas", None)
        return int(delta.flatten()[0]) if isinstance(delta, torch.Tensor) else 0

    @torch.inference_mode()
    def generate(self, tensors: dict, max_new_tokens: int, eos_token_ids: list[int], prefill_cache,
                 logits_out: list | None = None):
        """(new token ids, GenerationTiming) for one prompt (batch 1). `prefill_cache` is the empty
        transformers cache the prefill fills (e.g. `amlib.models.cache.preallocated_cache`). A list
        `logits_out` receives each step's float32 logits (1, vocab), as `generate(output_logits=True)`
        gives them (checks only: one extra copy per step)."""
        device = tensors["input_ids"].device
        sync = sync_for(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sync()
        start = time.perf_counter()
        out = self.model(**tensors, past_key_values=prefill_cache, use_cache=True, logits_to_keep=1)
        first = out.logits[:, -1].argmax(-1)
        token = int(first)
        if logits_out is not None:
            logits_out.append(out.logits[:, -1].float().clone())
        sync()
        prefill_end = time.perf_counter()
        tokens = [token]
        if max_new_tokens > 1 and token not in eos_token_ids:
            tokens += self._decode(first, out.past_key_values, tensors["input_ids"].shape[1], max_new_tokens - 1,
                                   set(eos_token_ids), device, logits_out)
        sync()
        end = time.perf_counter()
        return tokens, GenerationTiming(prefill_end - start, end - prefill_end, *peak_memory(device))

    def _decode(self, first, prefill_cache, prompt_len: int, steps: int, eos: set[int], device,
                logits_out: list | None = None) -> list[int]:
        dtype = self.lm_head.weight.dtype
        cache = self.cache_class(prefill_cache, steps, dtype)
        del prefill_cache
        ids = first.view(1, 1).clone()
        position = torch.tensor([prompt_len + self._rope_delta()], dtype=torch.long, device=device)
        placeholder = torch.zeros(1, 1, 1, 1, dtype=dtype, device=device)  # replaced per layer by the hooks
        # the step's logits, kept only when asked for (a static buffer: a graph replay overwrites it)
        logits = None if logits_out is None else torch.empty(1, self.lm_head.weight.shape[0], dtype=dtype, device=device)

        def open_mask(i):
            cache.open_slot(i)
            return cache.masks[i]

        def step():
            hidden = self.text_model(input_ids=ids, position_ids=position.view(1, 1), past_key_values=cache,
                                     attention_mask=placeholder, cache_position=position, use_cache=True).last_hidden_state
            step_logits = self.lm_head(hidden[:, -1:])
            ids.copy_(step_logits.argmax(-1))
            if logits is not None:
                logits.copy_(step_logits[:, -1])
            cache.positions.add_(1)
            position.add_(1)

        with decode_attention(self.text_model, self.layers, open_mask):
            run = self._graph(step, cache, ids, position) if self._wants_graph(device, steps) else step
            tokens = []
            for _ in range(steps):
                run()
                token = int(ids)
                tokens.append(token)
                if logits is not None:
                    logits_out.append(logits.float().clone())
                if token in eos:
                    break
            return tokens

    def _wants_graph(self, device, steps: int) -> bool:
        if self.use_graph is None:
            return device.type == "cuda" and steps >= self.min_graph_tokens
        return self.use_graph

    def _graph(self, step, cache: StaticKV, ids, position):
        """`step` captured as a CUDA graph (after a warm-up on a side stream, undone)."""
        begin = time.perf_counter()
        saved = (ids.clone(), position.clone())
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            step()  # warm-up: allocations and library handles happen outside the capture
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        ids.copy_(saved[0])
        position.copy_(saved[1])
        cache.reset()
        torch.cuda.synchronize()
        self.last_capture_s = time.perf_counter() - begin
        return graph.replay
