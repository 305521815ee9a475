"""Where one prefill's time goes: the front end (CPU), the audio encoder, the language model, and the
top operators of each (torch.profiler), vanilla and under a pruning configuration, one device.

    python scripts/profile_prefill.py --device cuda --seconds 195 --out benchmarks/prefill_profile_gpu.json
    python scripts/profile_prefill.py --device cpu --model amlib-reference-whisper-tiny-smollm2 --seconds 195 \\
        --out /tmp/prefill_profile_cpu.json

Timings are medians of --repeats runs after one warm-up, each bracketed by device synchronisation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from amlib.data.audio import SAMPLE_RATE
from amlib.efficiency import device_name, sync_for
from amlib.pruning import pruning
from amlib.sweep import audio_encoder
from amlib.tasks import TASKS


def timed(fn, sync, repeats: int) -> tuple[float, object]:
    fn()
    times, out = [], None
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


class EncoderClock:
    """Wall time of the audio encoder's forward inside a prefill (synchronised on entry and exit)."""

    def __init__(self, encoder, sync):
        self.encoder, self.sync, self.seconds = encoder, sync, []
        self.original = encoder.forward

    def __enter__(self):
        def forward(*args, **kwargs):
            self.sync()
            start = time.perf_counter()
            out = self.original(*args, **kwargs)
            self.sync()
            self.seconds.append(time.perf_counter() - start)
            return out

        self.encoder.forward = forward
        return self

    def __exit__(self, *exc):
        self.encoder.__dict__.pop("forward", None)


def top_ops(adapter, prepared, device: str, rows: int) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        adapter.prefill(prepared, 1)
    key = "device_time_total" if device == "cuda" else "cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0), reverse=True)[:rows]
    return [{"op": e.key, "calls": e.count, "cpu_total_ms": e.cpu_time_total / 1e3,
             "self_cpu_ms": e.self_cpu_time_total / 1e3,
             "device_total_ms": getattr(e, "device_time_total", 0) / 1e3,
             "self_device_ms": getattr(e, "self_device_time_total", 0) / 1e3} for e in events]


def with_loading(adapter, audio, workers: int, loader: str, sync, repeats: int) -> float:
    """Median vanilla prefill while `workers` threads or forked processes (`loader`, as amlib.pipeline's
    load stage) keep preparing inputs (feature extraction)."""
    import multiprocessing
    import threading

    prepared = adapter.build_inputs(audio, TASKS["SGR"], "Which option fits the audio?", ["male", "female"])
    if loader == "process":
        stop = multiprocessing.get_context("fork").Event()
        make = lambda: multiprocessing.get_context("fork").Process(target=load, daemon=True)  # noqa: E731
    else:
        stop = threading.Event()
        make = lambda: threading.Thread(target=load, daemon=True)  # noqa: E731

    def load():
        if loader == "process":
            torch.set_num_threads(1)  # as amlib.pipeline's workers
        while not stop.is_set():
            adapter.build_inputs(audio, TASKS["SGR"], "Which option fits the audio?", ["male", "female"])

    workers_ = [make() for _ in range(workers)]
    for worker in workers_:
        worker.start()
    try:
        seconds, _ = timed(lambda: adapter.prefill(prepared, 1), sync, repeats)
    finally:
        stop.set()
        for worker in workers_:
            worker.join()
    return seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="random-qwen2.5-omni-3b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--seconds", type=float, default=195.0)
    ap.add_argument("--configs", nargs="+", default=["vanilla", "frame:0.6", "fastv:0.6"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--contention-workers", type=int, default=0,
                    help="also time the vanilla prefill while this many threads, and then as many processes, "
                         "prepare inputs (the pipeline's load stage)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from amlib.models import load_model

    adapter = load_model(args.model, device=args.device, dtype=args.dtype)
    adapter.set_fast_paths(True)
    sync = sync_for(adapter.device)
    audio = (0.05 * np.random.default_rng(0).standard_normal(int(args.seconds * SAMPLE_RATE))).astype(np.float32)
    front_s, prepared = timed(lambda: adapter.build_inputs(audio, TASKS["SGR"], "Which option fits the audio?",
                                                           ["male", "female"]), lambda: None, args.repeats)
    encoder = audio_encoder(adapter)
    result = {"model": args.model, "device": device_name(args.device), "dtype": args.dtype,
              "threads": torch.get_num_threads(), "torch": torch.__version__, "seconds": args.seconds,
              "prompt_tokens": prepared.prompt_tokens, "audio_tokens": prepared.audio_tokens,
              "fast_paths": adapter.fast_paths(), "front_end_s": front_s, "configs": {}}
    for name in args.configs:
        method, _, ratio = name.partition(":")
        block = (lambda: pruning(adapter, method, float(ratio))) if ratio else nullcontext
        with block() as pruner:
            if pruner is not None:  # adapter.prefill bypasses the pruned generate() that sets them
                pruner.set_audio_spans(prepared.audio_spans)
            prefill_s, _ = timed(lambda: adapter.prefill(prepared, 1), sync, args.repeats)
            entry = {"prefill_s": prefill_s}
            if encoder is not None:
                with EncoderClock(encoder, sync) as clock:
                    adapter.prefill(prepared, 1)
                entry["encoder_s"] = clock.seconds[-1]
            entry["top_ops"] = top_ops(adapter, prepared, adapter.device.type, args.top)
        result["configs"][name] = entry
        print(name, {k: v for k, v in entry.items() if k != "top_ops"}, flush=True)
        for op in entry["top_ops"][:12]:
            print(f"   {op['op'][:60]:60s} n={op['calls']:5d} dev={op['device_total_ms']:8.2f} "
                  f"selfdev={op['self_device_ms']:8.2f} cpu={op['cpu_total_ms']:8.2f}", flush=True)
    if args.contention_workers:
        for loader, plural in (("thread", "threads"), ("process", "processes")):
            key = f"vanilla_prefill_with_loading_{plural}"
            result[key] = {"workers": args.contention_workers,
                           "prefill_s": with_loading(adapter, audio, args.contention_workers, loader, sync, args.repeats)}
            print(f"vanilla prefill while {plural} prepare inputs:", result[key], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
