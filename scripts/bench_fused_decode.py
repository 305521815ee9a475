"""Per-token greedy decode on a GPU: the fused step (amlib.fastpath.lean_step, compiled, inside the
batched decoder's CUDA graph) beside the paths it replaces, in one run on one device.

    python scripts/bench_fused_decode.py --out benchmarks/fused_decode_gpu.json
    python scripts/bench_fused_decode.py --models random-qwen2.5-omni-3b --seconds 90 --out /tmp/smoke.json

Modes, batch 1 (one 300 s ASR prompt, ~7,600 tokens; random weights with the published sizes, EOS off):
- `hf_generate`: transformers' generate (fast paths off);
- `graph`: the batch-1 CUDA-graph decoder through transformers' modules (`GraphDecoder`);
- `batched_modules`: the batched decoder at 1 row, transformers' modules, one CUDA graph;
- `lean`: the lean step (no modules), eager kernels inside the CUDA graph;
- `fused`: the lean step with each layer's body compiled by torch.compile, inside the CUDA graph;
and `batched_modules` and `fused` again at --rows rows (the same prompt prefilled per row).

Per-token time is (T(long) - T(short)) / (long - short) over two runs of --tokens and --tokens/4 new
tokens (capture, compile and prefill cancel out), the median of --reps. Every mode's tokens are
compared with `graph`'s (bfloat16: the first divergence is reported, not assumed away), and the fused
step's per-step logits with the batched modules' (max relative difference). One step of the module
path and of the fused step run eagerly under the profiler: their top CUDA kernels and shares. The
bound: the decoder's weights and the KV cache read once at the GPU's published bandwidth.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from amlib import bench_harness as harness
from amlib.data.audio import SAMPLE_RATE
from amlib.efficiency import device_name
from amlib.fastpath.batched_decode import deferred_decoding
from amlib.tasks import TASKS


def first_divergence(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


class Bench:
    def __init__(self, adapter, prepared, tokens: int, reps: int):
        self.adapter, self.prepared, self.tokens, self.reps = adapter, prepared, tokens, reps
        self.sync = harness.Clock(adapter.device).sync
        with deferred_decoding(adapter, keep_logits=True):
            self.row = adapter.generate(prepared, tokens + 1).pending  # one prefill, copied per row and run

    def rows(self, n: int, tokens: int):
        rows = [copy.deepcopy(self.row) for _ in range(n)]
        for row in rows:
            row.max_new_tokens = tokens + 1
        return rows

    def batched(self, lean: str | None, n: int, keep_logits: bool = False):
        """(seconds per step, tokens of row 0, logits of row 0 or None) for `n` rows."""
        self.adapter.lean_decode = lean
        decoder = self.adapter.batched_decoder(n)
        short = max(self.tokens // 4, 2)

        def timed(tokens):
            rows = self.rows(n, tokens)
            self.sync()
            start = time.perf_counter()
            done = decoder.run(rows, [], keep_logits=keep_logits)
            self.sync()
            return time.perf_counter() - start, done

        timed(short), timed(self.tokens)  # warm-up: compile and capture at both buffer sizes
        longs, shorts = [], []
        for _ in range(self.reps):
            longs.append(timed(self.tokens))
            shorts.append(timed(short)[0])
        per_step = (statistics.median(t for t, _ in longs) - statistics.median(shorts)) / (self.tokens - short)
        done = longs[-1][1][0]
        return per_step, done.tokens, (torch.stack(done.logits) if keep_logits else None)

    def generate(self, fast: bool):
        self.adapter.set_fast_paths(fast)
        self.adapter.lean_decode = None
        short = max(self.tokens // 4, 2)

        def timed(tokens):
            gen = self.adapter.generate(self.prepared, tokens + 1)
            return gen.timing.decode_s, gen

        timed(short), timed(self.tokens)
        longs = [timed(self.tokens) for _ in range(self.reps)]
        shorts = [timed(short)[0] for _ in range(self.reps)]
        self.adapter.set_fast_paths(True)
        per_step = (statistics.median(t for t, _ in longs) - statistics.median(shorts)) / (self.tokens - short)
        return per_step, longs[-1][1].text

    def text(self, tokens: list[int]) -> str:
        return self.adapter.processor.tokenizer.decode(tokens, skip_special_tokens=True).strip()

    def profile(self, lean: str | None, top: int) -> dict:
        """One eager decode step (no CUDA graph) of 1 row under the profiler: its CUDA kernels."""
        from torch.profiler import ProfilerActivity, profile

        cuda = self.adapter.device.type == "cuda"

        self.adapter.lean_decode = lean
        decoder = self.adapter.batched_decoder(1)
        decoder.use_graph = False
        decoder.run(self.rows(1, 4), [])  # warm-up (compile)
        with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
            decoder.run(self.rows(1, 1), [])  # 2 new tokens, the first from the prefill: the join and one step
        def spent(e):  # on CUDA the kernels' device time; on a CPU (a smoke run) the ops' own time
            return e.device_time_total if cuda else e.self_cpu_time_total

        events = [e for e in prof.key_averages() if spent(e) > 0]
        total = sum(spent(e) for e in events)
        calls = sum(e.count for e in events)
        events.sort(key=lambda e: -spent(e))
        return {"kernels_per_step": calls, "kernel_time_ms": total / 1e3,
                "covers": "the row's join (its cache copied into the decoder's buffers) and one decode step",
                "top": [{"name": e.key[:80], "ms": spent(e) / 1e3, "calls": e.count, "share": spent(e) / total}
                        for e in events[:top]]}


def decode_bytes(adapter, context: int) -> int:
    """Bytes one decode step reads at least: the decoder's weight products and lm_head once, and the KV
    cache of `context` tokens."""
    text_model, lm_head = adapter.decode_modules()
    config = text_model.config
    products = sum(p.numel() for layer in adapter.decoder_layers() for p in layer.parameters()) + lm_head.weight.numel()
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * context
    return (products + kv) * lm_head.weight.element_size()


def run_model(name: str, args) -> dict:
    from amlib.models import load_model

    begin = time.perf_counter()
    adapter = load_model(name, device=args.device, dtype=args.dtype)
    adapter.model.generation_config.eos_token_id = None
    audio = (0.05 * np.random.default_rng(0).standard_normal(int(args.seconds * SAMPLE_RATE))).astype(np.float32)
    prepared = adapter.build_inputs(audio, TASKS["ASR"], "", [])
    bench = Bench(adapter, prepared, args.tokens, args.reps)
    out = {"model": name, "context_tokens": prepared.prompt_tokens, "new_tokens": args.tokens, "modes": []}
    if args.device == "cuda":
        bandwidth, of = harness.hbm_bandwidth(device_name("cuda"))
        out["bound_ms"] = decode_bytes(adapter, prepared.prompt_tokens) / bandwidth * 1e3
        out["bound_bandwidth_of"] = of

    def add(mode, rows, per_step, answer):
        """`answer`: the text (generate paths) or the token ids (batched paths) of the mode's row 0."""
        text = answer if isinstance(answer, str) else bench.text(answer)
        row = {"mode": mode, "rows": rows, "ms_per_step": per_step * 1e3, "ms_per_row_token": per_step * 1e3 / rows,
               "tokens_per_s": rows / per_step, "text_equals_graph": None if mode == "graph" else text == graph_text,
               "chars_equal_graph_prefix": None if mode == "graph" else first_divergence(list(text), list(graph_text))}
        if not isinstance(answer, str) and modules_tokens:
            row["tokens_equal_batched_modules_prefix"] = first_divergence(answer, modules_tokens)
        out["modes"].append(row)
        print(json.dumps(row), flush=True)

    modules_tokens: list[int] = []
    graph_s, graph_text = bench.generate(True)
    add("graph", 1, graph_s, graph_text)
    hf_s, hf_text = bench.generate(False)
    add("hf_generate", 1, hf_s, hf_text)
    modules_s, tokens, modules_logits = bench.batched(None, 1, keep_logits=True)
    add("batched_modules", 1, modules_s, tokens)
    modules_tokens = tokens
    lean_s, lean_tokens, _ = bench.batched("model", 1)
    add("lean", 1, lean_s, lean_tokens)
    begin_compile = time.perf_counter()
    fused_s, fused_tokens, fused_logits = bench.batched("compiled", 1, keep_logits=True)
    out["fused_first_run_s"] = time.perf_counter() - begin_compile
    add("fused", 1, fused_s, fused_tokens)
    steps = min(len(modules_logits), len(fused_logits), first_divergence(modules_tokens, fused_tokens) + 1)
    diff = (fused_logits[:steps] - modules_logits[:steps]).abs().amax() / modules_logits[:steps].abs().amax()
    out["fused_vs_modules_logits_max_rel_diff"] = float(diff)
    out["fused_vs_modules_steps_compared"] = steps
    for lean, mode in ((None, "batched_modules"), ("compiled", "fused")):
        s, tokens, _ = bench.batched(lean, args.rows)
        add(mode, args.rows, s, tokens)
    out["speedup_fused_over_graph"] = graph_s / fused_s
    out["speedup_fused_over_hf"] = hf_s / fused_s
    out["profile_modules_step"] = bench.profile(None, args.top)
    out["profile_fused_step"] = bench.profile("compiled", args.top)
    out["wall_s"] = time.perf_counter() - begin
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["random-qwen2.5-omni-3b", "random-qwen2.5-omni-7b"])
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--device", default="cuda", help="cpu: a smoke run of the script itself (e.g. a tiny model)")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--merge", nargs="+", type=Path, default=None,
                    help="no run: one file with the runs of these result files (same device), written to --out")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.merge:
        parts = [json.loads(path.read_text()) for path in args.merge]
        if len({part["device"] for part in parts}) != 1:
            raise SystemExit(f"--merge: results from different devices: {sorted({p['device'] for p in parts})}")
        merged = {**parts[0], "runs": [run for part in parts for run in part["runs"]],
                  "measured_at": ", ".join(part["measured_at"] for part in parts)}
        args.out.write_text(json.dumps(merged, indent=1))
        return
    import transformers

    result = {"device": device_name(args.device), "torch": torch.__version__, "transformers": transformers.__version__,
              "dtype": args.dtype, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": []}
    for name in args.models:
        try:
            result["runs"].append(run_model(name, args))
        except Exception as err:  # one model's failure is reported; the others' numbers stand
            result["runs"].append({"model": name, "error": f"{type(err).__name__}: {err}"[:2000]})
            import traceback
            traceback.print_exc()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        if args.device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
