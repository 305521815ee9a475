"""Token pruning benchmark: prefill time of vanilla and every method at 0.3/0.6/0.9 on 300 s of audio,
the encoder vs language-model split, LM speed-up against its FLOP bound, FastV's overhead over Frame,
peak memory, and the encode-once sweep against 13 separate prefills.

    python scripts/bench_pruning.py --model reference --out benchmarks/pruning_cpu.json          # CPU
    python scripts/bench_pruning.py --model qwen2.5-omni-3b --device cuda --dtype bfloat16 \\
        --out benchmarks/pruning_gpu.json                                                         # GPU

`reference`: the book's reference model with real inputs built by its adapter from 300 s of noise.
`qwen2.5-omni-3b`: the full-size thinker built from its published config with RANDOM weights (no
download), inputs laid out as the processor does (<|audio_bos|> <|AUDIO|> x 7,500 <|audio_eos|>).
Times are medians of --reps runs after one warm-up; ratios are within this one run, device named.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from amlib import bench_harness as harness
from amlib.efficiency import device_name, pruned_prefill_flops_ratio, text_config_of
from amlib.pruning import METHODS, make_method, n_keep
from amlib.pruning.mechanism import TokenPruner
from amlib.sweep import SharedPrefix, audio_encoder

RATIOS = (0.3, 0.6, 0.9)
LAYER = 2


def reference_inputs(seconds: float, device: str, dtype: str):
    """(model, bare adapter, tensors, audio spans, name) of the reference model on `seconds` of noise."""
    adapter, prepared = harness.reference_prompt(seconds, device, dtype)
    bare = harness.BareAdapter(adapter.model, adapter.decoder_layers(), adapter.model.language_model.model,
                               adapter.model_id, adapter.family)
    return adapter.model, bare, prepared.tensors, prepared.audio_spans, adapter.model_id


def omni_inputs(seconds: float, device: str, dtype: str, config_file: str):
    """The same for a full-size thinker with random weights and the synthetic prompt."""
    model = harness.omni_thinker(config_file, device, getattr(torch, dtype))
    tensors, spans = harness.omni_prompt(model.config, seconds, device, getattr(torch, dtype))
    name = f"Qwen2.5-Omni thinker ({config_file}, random weights)"
    return model, harness.omni_bare(model, name), tensors, spans, name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["reference", "qwen2.5-omni-3b", "qwen2.5-omni-7b"], default="reference")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--decode-tokens", type=int, default=0, help="also time this many forced decode steps")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model == "reference":
        model, bare, tensors, spans, name = reference_inputs(args.seconds, args.device, args.dtype)
    else:
        model, bare, tensors, spans, name = omni_inputs(args.seconds, args.device, args.dtype, f"{args.model}.json")
    clock = harness.Clock(args.device)
    layers = bare.decoder_layers()
    text_config = text_config_of(model)
    T = tensors["input_ids"].shape[1]
    L = sum(e - s for s, e in spans)
    cuda = torch.device(args.device).type == "cuda"

    def once(method, ratio):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        if method == "vanilla":
            total, enc = harness.time_prefill(model, tensors, layers, clock)
        else:
            with TokenPruner(bare, make_method(method), ratio, LAYER) as pruner:
                pruner.set_audio_spans(spans)
                total, enc = harness.time_prefill(model, tensors, layers, clock)
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
        return total, enc, peak

    def measure_all(configs):
        """Round robin over the configurations (rep by rep), so drifts of the machine hit all alike;
        medians (and minima) per configuration after one warm-up each."""
        for c in configs:
            once(*c)
        runs = {c: [] for c in configs}
        for _ in range(args.reps):
            for c in configs:
                runs[c].append(once(*c))
        rows = []
        for (method, ratio), rs in runs.items():
            kept = T - L + (n_keep(L, ratio) if method != "vanilla" else L)
            rows.append({
                "method": method, "ratio": ratio, "prefill_s": statistics.median(r[0] for r in rs),
                "prefill_min_s": min(r[0] for r in rs), "encoder_s": statistics.median(r[1] for r in rs),
                "lm_s": statistics.median(r[0] - r[1] for r in rs), "lm_min_s": min(r[0] - r[1] for r in rs),
                "kept_tokens": kept, "peak_memory_mb": max(r[2] for r in rs),
                "lm_flops_ratio": pruned_prefill_flops_ratio(text_config, T, kept, LAYER) if method != "vanilla" else 1.0})
        return rows

    def plain_lm(tokens):
        return harness.plain_lm_s(bare.text_model, tokens, clock, args.reps)

    rows = measure_all([("vanilla", 0.0)] + [(m, r) for r in RATIOS for m in METHODS])
    plain = {T: plain_lm(T)}
    for ratio in RATIOS:
        kept = T - L + n_keep(L, ratio)
        plain[kept] = plain_lm(kept)
    base = rows[0]
    for r in rows:
        r["lm_speedup"] = base["lm_s"] / r["lm_s"]
        r["lm_speedup_bound"] = 1.0 / r["lm_flops_ratio"]
        r["lm_fraction_of_bound"] = r["lm_speedup"] / r["lm_speedup_bound"]
        r["prefill_speedup"] = base["prefill_s"] / r["prefill_s"]
        r["plain_lm_s_at_kept_length"] = plain[r["kept_tokens"]]
    fastv_over_frame = {str(ratio): next(r for r in rows if r["method"] == "fastv" and r["ratio"] == ratio)["prefill_s"]
                        / next(r for r in rows if r["method"] == "frame" and r["ratio"] == ratio)["prefill_s"] - 1
                        for ratio in RATIOS}

    # the encode-once sweep (vanilla + 12 pruned prefills sharing encoder and layers < K) vs 13 separate prefills
    grid = [("vanilla", 0.0)] + [(m, r) for m in METHODS for r in RATIOS]

    def separate():
        start = clock.now()
        for method, ratio in grid:
            if method == "vanilla":
                harness.time_prefill(model, tensors, layers, clock)
            else:
                with TokenPruner(bare, make_method(method), ratio, LAYER) as pruner:
                    pruner.set_audio_spans(spans)
                    harness.time_prefill(model, tensors, layers, clock)
        return (clock.now() - start,)

    def swept():
        start = clock.now()
        with SharedPrefix(bare, LAYER) as prefix:
            for method, ratio in grid:
                if method == "vanilla":
                    harness.time_prefill(model, tensors, layers, clock)
                else:
                    with TokenPruner(bare, make_method(method), ratio, LAYER, prefix=prefix) as pruner:
                        pruner.set_audio_spans(spans)
                        harness.time_prefill(model, tensors, layers, clock)
        return (clock.now() - start,)

    separate(), swept()  # warm-up
    pairs = [(separate()[0], swept()[0]) for _ in range(max(1, args.reps // 2))]  # alternating
    sep, swp = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
    decode = None
    if args.decode_tokens:
        def gen_once():
            start = clock.now()
            with torch.inference_mode():
                model.generate(**tensors, max_new_tokens=args.decode_tokens, min_new_tokens=args.decode_tokens,
                               do_sample=False, pad_token_id=0)
            return (clock.now() - start,)
        whole, = harness.median_after_warmup(gen_once, 3)
        decode = {"new_tokens": args.decode_tokens, "generate_s": whole,
                  "per_token_s": (whole - base["prefill_s"]) / max(1, args.decode_tokens - 1)}
    result = {
        "model": name, "device": device_name(args.device), "dtype": args.dtype, "audio_seconds": args.seconds,
        "prompt_tokens": T, "audio_tokens": L, "layer": LAYER, "reps": args.reps, "torch": torch.__version__,
        "encoder_replayed_by_sweep": audio_encoder(bare) is not None,
        "rows": rows, "fastv_over_frame": fastv_over_frame,
        "sweep": {"configurations": len(grid), "separate_s": sep, "sweep_s": swp, "speedup": sep / swp},
        "decode": decode, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
