"""Latency and memory measurement of one generate() call.

Prefill and decode are separated inside ONE generate call: a logits processor runs right after
each forward pass, so its first call marks the end of prefill (audio encoder included). This avoids
the paper code's second full generate (prefill twice). On CUDA the clock waits for the device.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, LogitsProcessorList


@dataclass
class GenerationTiming:
    prefill_s: float
    decode_s: float
    peak_memory_mb: float
    memory_kind: str  # "cuda_max_allocated" (weights included) or "process_max_rss" on CPU


class _StepClock(LogitsProcessor):
    def __init__(self, sync):
        self.sync = sync
        self.stamps: list[float] = []

    def __call__(self, input_ids, scores):
        self.sync()
        self.stamps.append(time.perf_counter())
        return scores


def sync_for(device: torch.device):
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def timed_generate(model, tensors: dict, **generate_kwargs):
    device = tensors["input_ids"].device
    sync = sync_for(device)
    clock = _StepClock(sync)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync()
    start = time.perf_counter()
    out = model.generate(**tensors, logits_processor=LogitsProcessorList([clock]), **generate_kwargs)
    sync()
    end = time.perf_counter()
    first = clock.stamps[0] if clock.stamps else end
    return out, GenerationTiming(first - start, end - first, *peak_memory(device))


def peak_memory(device: torch.device) -> tuple[float, str]:
    """(MB, kind) since the last `torch.cuda.reset_peak_memory_stats` on CUDA; on a CPU the
    process-wide high-water mark: an upper bound for this call, not a per-call figure."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_max_rss"


def device_name(device: str | torch.device = "cpu") -> str:
    """A human name for the device results were measured on ("api:<host>" passes through)."""
    if isinstance(device, str) and device.startswith("api:"):
        return device
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


# ---------------------------------------------------------------------------------------------
# theoretical prefill FLOPs of the language model (what token pruning can save at best)


def _per_layer(value, layer: int):
    return value[layer] if isinstance(value, (list, tuple)) else value


def lm_layer_flops(text_config, tokens: int, layer: int = 0) -> float:
    """Multiply-add FLOPs (2 per MAC) of one decoder layer's prefill over `tokens` tokens, from the
    config: q/k/v/o projections (GQA: k and v have num_key_value_heads), causal attention (QK^T and
    AV over t(t+1)/2 query-key pairs) and a gated MLP (gate, up, down; every family here is gated).
    Norms, RoPE and softmax are left out (linear in t and small)."""
    d = text_config.hidden_size
    heads = text_config.num_attention_heads
    kv_heads = getattr(text_config, "num_key_value_heads", None) or heads
    head_dim = getattr(text_config, "head_dim", None) or d // heads
    ff = _per_layer(text_config.intermediate_size, layer)
    t = tokens
    projections = 2 * t * d * head_dim * (2 * heads + 2 * kv_heads)  # q, o: heads; k, v: kv_heads
    attention = 2 * 2 * heads * head_dim * t * (t + 1) / 2
    mlp = 3 * 2 * t * d * ff
    return float(projections + attention + mlp)


def pruned_prefill_flops_ratio(text_config, prompt_tokens: int, kept_tokens: int, layer: int) -> float:
    """LM prefill FLOPs with layers >= `layer` on `kept_tokens` tokens over those of the full prompt:
    the lower bound of the LM part's time ratio (its inverse bounds the speed-up)."""
    n = text_config.num_hidden_layers
    full = sum(lm_layer_flops(text_config, prompt_tokens, i) for i in range(n))
    pruned = sum(lm_layer_flops(text_config, prompt_tokens if i < layer else kept_tokens, i) for i in range(n))
    return pruned / full


def text_config_of(model) -> object:
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config
