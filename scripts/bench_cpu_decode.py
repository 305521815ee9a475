"""Per-token greedy decode on the CPU: transformers' generate, the batched decoder through transformers'
modules, and the lean step (amlib.fastpath.lean_step) with the model's weights (eager and with each
layer's body compiled by torch.compile) and with int8 weights,
at 1 and at --rows rows, beside the bound of reading the weights and the KV cache once per step.

    python scripts/bench_cpu_decode.py --out benchmarks/cpu_decode.json

One prompt of --seconds of seeded noise (an ASR prompt: the reference model transcribes), --tokens
forced tokens (EOS off). Every mode decodes copies of the same prefilled row; tokens are compared with the
module path's. The bound: bytes read per step (the decoder's weight products and lm_head in their
format, the KV cache at the context length) over the machine's streaming read rate, measured here
(sum over a 512 MB tensor). Times are medians of --reps runs after a warm-up; one device, one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from amlib.data.audio import SAMPLE_RATE
from amlib.efficiency import device_name
from amlib.fastpath.batched_decode import deferred_decoding
from amlib.tasks import TASKS


def read_rate() -> float:
    """Bytes per second of a streaming read (sum of a 512 MB float32 tensor), best of 5."""
    data = torch.randn(128 * 2**20)
    data.sum()
    best = min(_timed(data.sum) for _ in range(5))
    return data.numel() * 4 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_bytes(adapter, context: int, fmt: str) -> int:
    """Bytes a decode step reads: every weight product once (int8: one byte a weight + its row scales)
    and the KV cache of `context` tokens."""
    text_model, lm_head = adapter.decode_modules()
    per_weight = 1 if fmt == "int8" else lm_head.weight.element_size()
    products = sum(p.numel() for layer in adapter.decoder_layers() for name, p in layer.named_parameters()
                   if p.dim() == 2) + lm_head.weight.numel()
    config = text_model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * context * lm_head.weight.element_size()
    return products * per_weight + kv


def copy_row(row):
    """A Prefilled with its own copy of the prefill's cache (a decode run may not share buffers)."""
    import copy

    return copy.deepcopy(row)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="amlib-reference-whisper-tiny-smollm2")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--seconds", type=float, default=290.0, help="audio length (290 s: ~3,700 prompt tokens)")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from amlib.models import load_model

    adapter = load_model(args.model, device="cpu", dtype=args.dtype)
    adapter.set_fast_paths(True)
    adapter.model.generation_config.eos_token_id = None
    audio = (0.05 * np.random.default_rng(0).standard_normal(int(args.seconds * SAMPLE_RATE))).astype(np.float32)
    prepared = adapter.build_inputs(audio, TASKS["ASR"], "", [])
    budget = args.tokens + 1

    with deferred_decoding(adapter):
        prefilled = adapter.generate(prepared, budget).pending  # one prefill; each run decodes copies of it

    def rows(n):
        return [copy_row(prefilled) for _ in range(n)]

    def batched(fmt, n):
        adapter.lean_decode = fmt
        decoder = adapter.batched_decoder(n)
        decoder.run(rows(n), [])  # warm-up
        times, tokens = [], None
        for _ in range(args.reps):
            batch = rows(n)
            start = time.perf_counter()
            done = decoder.run(batch, [])
            times.append(time.perf_counter() - start)
            tokens = done[0].tokens
        return statistics.median(times) / args.tokens, tokens

    result = {"model": args.model, "device": device_name("cpu"), "dtype": args.dtype, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
              "context_tokens": prepared.prompt_tokens, "new_tokens": args.tokens, "modes": []}
    rate = read_rate()
    result["read_rate_gb_s"] = rate / 1e9
    adapter.lean_decode = None
    adapter.generate(prepared, budget)  # warm-up: transformers' generate (batch 1)
    hf = statistics.median((g := adapter.generate(prepared, budget)).timing.decode_s / (g.new_tokens - 1)
                           for _ in range(args.reps))
    result["modes"].append({"mode": "hf_generate", "rows": 1, "ms_per_token": hf * 1e3})
    reference = None
    for fmt, name in ((None, "modules"), ("model", "lean"), ("compiled", "lean_compiled"), ("int8", "lean_int8")):
        for n in (1, args.rows):
            seconds, tokens = batched(fmt, n)
            reference = tokens if (fmt is None and n == 1) else reference
            bound = step_bytes(adapter, prepared.prompt_tokens, "int8" if fmt == "int8" else "model") / rate
            result["modes"].append({"mode": name, "rows": n, "ms_per_token": seconds * 1e3,
                                    "ms_per_row_token": seconds * 1e3 / n, "bound_ms": bound * 1e3,
                                    "same_tokens_as_modules": sum(a == b for a, b in zip(tokens, reference)),
                                    "of": len(reference)})
            print(json.dumps(result["modes"][-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
