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


def _sync_for(device: torch.device):
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def timed_generate(model, tensors: dict, **generate_kwargs):
    device = tensors["input_ids"].device
    sync = _sync_for(device)
    clock = _StepClock(sync)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync()
    start = time.perf_counter()
    out = model.generate(**tensors, logits_processor=LogitsProcessorList([clock]), **generate_kwargs)
    sync()
    end = time.perf_counter()
    first = clock.stamps[0] if clock.stamps else end
    if device.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    else:  # the process-wide high-water mark: an upper bound for this call, not a per-call figure
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_max_rss"
    return out, GenerationTiming(first - start, end - first, peak, kind)


def device_name(device: str | torch.device = "cpu") -> str:
    """A human name for the device results were measured on ("api:<host>" passes through)."""
    if isinstance(device, str) and device.startswith("api:"):
        return device
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
