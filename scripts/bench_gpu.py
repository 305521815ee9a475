"""Full-size GPU efficiency of the Qwen2.5-Omni thinkers: prefill (encoder HF vs chunked fast path, LM
vanilla and pruned against its FLOP bound), per-token decode (HF generate vs the CUDA-graph decoder),
peak memory, and where the pruned LM's time goes (a profile).

    python scripts/bench_gpu.py --out benchmarks/bench_gpu.json                      # 3B and 7B, 90 s and 300 s
    python scripts/bench_gpu.py --models qwen2.5-omni-3b --seconds 90 --reps 2 --out /tmp/smoke.json

Models are the published thinker configs with RANDOM weights (no download; timing does not depend on
the values), inputs laid out as the processor lays them out (<|audio_bos|> <|AUDIO|> x N <|audio_eos|>).
Times are medians over --reps rounds (configurations interleaved round by round, one warm-up each);
ratios are within one run on the one device named in the JSON. Random weights make greedy tokens
meaningless but still comparable: the decoder's tokens are checked against HF's on the same prompt.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from amlib import bench_harness as harness
from amlib.efficiency import device_name, lm_layer_flops, pruned_prefill_flops_ratio, text_config_of
from amlib.fastpath import ChunkedEncoderAttention, GraphDecoder
from amlib.models.cache import preallocated_cache
from amlib.pruning import METHODS, make_method, n_keep
from amlib.pruning.mechanism import TokenPruner

RATIOS = (0.3, 0.6, 0.9)
LAYER = 2
CLOCK = harness.Clock("cuda")


def now() -> float:
    return CLOCK.now()


def prefill(model, tensors) -> tuple[float, float]:
    """(whole prefill s, s until decoder layer 0 starts = encoder + merge)."""
    return harness.time_prefill(model, tensors, model.model.layers, CLOCK)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def encoder_agreement(model, tensors, fast: ChunkedEncoderAttention) -> dict:
    """The encoder's output, fast path vs HF in bfloat16, set against HF bfloat16 vs HF float32."""
    def encode(features):
        return model.get_audio_features(features, tensors["feature_attention_mask"]).last_hidden_state

    dtype = model.dtype  # (model.dtype reads the first parameter: the audio tower's)
    with torch.inference_mode():
        fast.remove()
        hf = encode(tensors["input_features"])
        fast.install()
        quick = encode(tensors["input_features"])
        fast.remove()
        model.audio_tower.float()
        reference = encode(tensors["input_features"].float())
        model.audio_tower.to(dtype)
        fast.install()
    return {"fast_vs_hf_bf16": relative_error(quick, hf), "hf_bf16_vs_hf_fp32": relative_error(hf, reference),
            "fast_bf16_vs_hf_fp32": relative_error(quick, reference), "metric": "relative L2 error of encoder outputs"}


def measure_prefills(model, tensors, spans, fast: ChunkedEncoderAttention, reps: int) -> list[dict]:
    # the last configuration waits for the device at layer K, as the selection did before it was made
    # asynchronous: what that wait costs, measured in the same run
    configs = ([("vanilla", 0.0, False, False), ("vanilla", 0.0, True, False)]
               + [(m, r, True, False) for r in RATIOS for m in METHODS] + [("frame", 0.9, True, True)])
    bare = harness.omni_bare(model, "bench")

    def once(method, ratio, fast_encoder, sync_at_k):
        fast.install() if fast_encoder else fast.remove()
        torch.cuda.reset_peak_memory_stats()
        waits = model.model.layers[LAYER].register_forward_pre_hook(lambda *_: torch.cuda.synchronize()) if sync_at_k else None
        try:
            if method == "vanilla":
                total, enc = prefill(model, tensors)
            else:
                with TokenPruner(bare, make_method(method), ratio, LAYER) as pruner:
                    pruner.set_audio_spans(spans)
                    total, enc = prefill(model, tensors)
        finally:
            if waits is not None:
                waits.remove()
        return total, enc, torch.cuda.max_memory_allocated() / 2**20

    for c in configs:
        once(*c)
    runs = {c: [] for c in configs}
    for _ in range(reps):
        for c in configs:
            runs[c].append(once(*c))
    fast.install()
    T = tensors["input_ids"].shape[1]
    L = sum(e - s for s, e in spans)
    text_config = text_config_of(model)
    rows = []
    for (method, ratio, fast_encoder, sync_at_k), rs in runs.items():
        kept = T - L + (n_keep(L, ratio) if method != "vanilla" else L)
        rows.append({"method": method, "ratio": ratio, "encoder": "chunked" if fast_encoder else "hf",
                     "host_waits_at_layer_k": sync_at_k,
                     "prefill_s": statistics.median(r[0] for r in rs), "encoder_s": statistics.median(r[1] for r in rs),
                     "lm_s": statistics.median(r[0] - r[1] for r in rs), "kept_tokens": kept,
                     "peak_memory_mb": max(r[2] for r in rs),
                     "lm_flops_ratio": pruned_prefill_flops_ratio(text_config, T, kept, LAYER) if method != "vanilla" else 1.0})
    hf_vanilla, fast_vanilla = rows[0], rows[1]
    for r in rows:
        r["prefill_speedup_vs_hf"] = hf_vanilla["prefill_s"] / r["prefill_s"]
        r["lm_speedup"] = fast_vanilla["lm_s"] / r["lm_s"]
        r["lm_speedup_bound"] = 1.0 / r["lm_flops_ratio"]
        r["lm_fraction_of_bound"] = r["lm_speedup"] / r["lm_speedup_bound"]
    return rows


def lm_tflops(model, tokens: int, seconds: float) -> float:
    config = text_config_of(model)
    flops = sum(lm_layer_flops(config, tokens, i) for i in range(config.num_hidden_layers))
    return flops / seconds / 1e12


def profile_lm(model, tensors, spans, method: str, ratio: float) -> dict:
    """Kernel time on the GPU vs wall time of the LM part of one pruned prefill: a GPU busy far less
    than the wall time is waiting for the host (Python and kernel launches), not computing."""
    from torch.profiler import ProfilerActivity, profile

    bare = harness.omni_bare(model, "bench")
    marks = {}
    hook = harness.mark_lm_start(model.model.layers, marks, CLOCK)
    try:
        with TokenPruner(bare, make_method(method), ratio, LAYER) as pruner:
            pruner.set_audio_spans(spans)
            with torch.inference_mode():
                model(**tensors, use_cache=True, logits_to_keep=1)  # warm-up
                marks.clear()
                with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                    start = now()
                    model(**tensors, use_cache=True, logits_to_keep=1)
                    end = now()
    finally:
        hook.remove()
    events = prof.key_averages()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    lm_start_us = (marks["lm"] - start) * 1e6
    t0 = min(e.time_range.start for e in kernels) if kernels else 0
    lm_kernels = [e for e in kernels if e.time_range.start - t0 >= lm_start_us * 0.98]
    top = sorted(events, key=lambda e: e.device_time_total, reverse=True)[:8]
    return {"method": method, "ratio": ratio, "prefill_wall_s (profiled)": end - start, "lm_wall_s (profiled)": end - marks["lm"],
            "lm_kernel_busy_s": sum(e.time_range.elapsed_us() for e in lm_kernels) / 1e6, "lm_kernels": len(lm_kernels),
            "all_kernels": len(kernels), "top_device_ops": [{"name": e.key[:60], "device_ms": e.device_time_total / 1e3,
                                                             "calls": e.count} for e in top]}


def decode_compare(model, tensors, spans, new_tokens: int, method: str | None) -> dict:
    """Per-token decode: HF generate (its own cache, then amlib's in-place cache) vs GraphDecoder (CUDA
    graph), same prompt, and how many of their greedy tokens agree."""
    bare = harness.omni_bare(model, "bench")

    @contextmanager
    def pruned():
        if method is None:
            yield
            return
        with TokenPruner(bare, make_method(method), 0.9, LAYER) as pruner:
            pruner.set_audio_spans(spans)
            yield

    def hf_once(in_place_cache: bool):
        cache = {"past_key_values": preallocated_cache(model.config, new_tokens)} if in_place_cache else {}
        with pruned():
            start = now()
            with torch.inference_mode():
                out = model.generate(**tensors, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                     pad_token_id=0, **cache)
            whole = now() - start
            start = now()
            prefill(model, tensors)
            pre = now() - start
        return (whole - pre) / (new_tokens - 1), out[0, tensors["input_ids"].shape[1]:].tolist()

    decoder = GraphDecoder(model, model.model, model.lm_head, model.model.layers)

    def graph_once():
        with pruned():
            tokens, timing = decoder.generate(tensors, new_tokens, [], preallocated_cache(model.config, new_tokens))
        return (timing.decode_s - decoder.last_capture_s) / (new_tokens - 1), tokens

    results, tokens = {}, {}
    for name, fn in (("hf_generate", lambda: hf_once(False)), ("hf_generate_preallocated", lambda: hf_once(True)),
                     ("graph", graph_once)):
        fn()  # warm-up
        runs = [fn() for _ in range(2)]
        results[name] = {"per_token_s": min(t for t, _ in runs)}
        tokens[name] = runs[-1][1]
    hf_tokens, graph_tokens = tokens["hf_generate"], tokens["graph"]
    same = next((i for i, (a, b) in enumerate(zip(hf_tokens, graph_tokens)) if a != b), len(hf_tokens))
    return {"pruning": f"{method} 0.9 K{LAYER}" if method else "none", "new_tokens": new_tokens,
            "context_tokens": tensors["input_ids"].shape[1], **results, "graph_capture_s": decoder.last_capture_s,
            "graph_tokens_equal_hf_prefix": same,
            "speedup_vs_hf": results["hf_generate"]["per_token_s"] / results["graph"]["per_token_s"]}


def weights_read_s(model, context: int, bandwidth: float) -> float:
    """Lower bound of one decode step: reading the LM's weights and KV cache once at `bandwidth`
    (bytes/s: the GPU's published HBM bandwidth, stated, not measured)."""
    config = text_config_of(model)
    lm_params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(("audio_tower", "visual")))
    kv = 2 * config.num_hidden_layers * config.num_key_value_heads * (config.hidden_size // config.num_attention_heads) * context
    return (lm_params + kv) * model.dtype.itemsize / bandwidth


def compiled_layers_experiment(model, tensors, spans, reps: int) -> dict:
    """Not a product path: the same prefills with every decoder layer's forward compiled by
    torch.compile (dynamic shapes), to show how much of the pruned LM's gap to its FLOP bound is host
    overhead (Python, unfused elementwise kernels) rather than arithmetic."""
    layers = model.model.layers
    originals = [layer.forward for layer in layers]
    bare = harness.omni_bare(model, "bench")
    begin = time.perf_counter()
    try:
        for layer in layers:
            layer.forward = torch.compile(layer.forward, dynamic=True)

        def once(ratio):
            if ratio == 0.0:
                return prefill(model, tensors)
            with TokenPruner(bare, make_method("frame"), ratio, LAYER) as pruner:
                pruner.set_audio_spans(spans)
                return prefill(model, tensors)
        for ratio in (0.0,) + RATIOS:
            once(ratio)
        compile_s = time.perf_counter() - begin
        runs = {ratio: [once(ratio) for _ in range(reps)] for ratio in (0.0,) + RATIOS}
    except Exception as err:  # an experiment: its failure is reported, the rest of the run stands
        return {"error": f"{type(err).__name__}: {err}"[:500]}
    finally:
        for layer, forward in zip(layers, originals):
            layer.forward = forward
    lm = {ratio: statistics.median(t - e for t, e in rs) for ratio, rs in runs.items()}
    T = tensors["input_ids"].shape[1]
    L = sum(e - s for s, e in spans)
    config = text_config_of(model)
    return {"compile_and_warmup_s": compile_s, "rows": [
        {"method": "vanilla" if ratio == 0.0 else "frame", "ratio": ratio, "lm_s": lm[ratio],
         "prefill_s": statistics.median(t for t, _ in runs[ratio]), "lm_speedup": lm[0.0] / lm[ratio],
         "lm_speedup_bound": 1.0 / pruned_prefill_flops_ratio(config, T, T - L + n_keep(L, ratio), LAYER) if ratio else 1.0}
        for ratio in lm]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["qwen2.5-omni-3b", "qwen2.5-omni-7b"])
    ap.add_argument("--seconds", nargs="+", type=float, default=[90.0, 300.0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--compile-experiment", action="store_true",
                    help="also time torch.compile'd decoder layers (first model, longest audio; slow to compile)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    result = {"device": device_name("cuda"), "torch": torch.__version__, "dtype": "bfloat16", "layer": LAYER,
              "reps": args.reps, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": []}
    import transformers

    result["transformers"] = transformers.__version__
    result["hbm_bandwidth_bytes_s"], result["hbm_bandwidth_of"] = harness.hbm_bandwidth(result["device"])
    for name in args.models:
        model = harness.omni_thinker(f"{name}.json", "cuda", torch.bfloat16)
        fast = ChunkedEncoderAttention(model).install()
        for seconds in args.seconds:
            begin = time.perf_counter()
            tensors, spans = harness.omni_prompt(model.config, seconds, "cuda", model.dtype)
            rows = measure_prefills(model, tensors, spans, fast, args.reps)
            T = tensors["input_ids"].shape[1]
            kept_lengths = sorted({r["kept_tokens"] for r in rows})
            plain = {k: harness.plain_lm_s(model.model, k, CLOCK, args.reps) for k in kept_lengths}
            for r in rows:
                r["plain_lm_s_at_kept_length"] = plain[r["kept_tokens"]]
                r["lm_tflops"] = lm_tflops(model, r["kept_tokens"], r["lm_s"]) if r["method"] == "vanilla" else None
            frame = {r["ratio"]: r for r in rows if r["method"] == "frame" and not r["host_waits_at_layer_k"]}
            run = {"model": f"{name} thinker (published config, random weights)", "audio_seconds": seconds,
                   "prompt_tokens": T, "audio_tokens": sum(e - s for s, e in spans), "rows": rows,
                   "fastv_over_frame": {str(q): r["prefill_s"] / frame[q]["prefill_s"] - 1
                                        for q in RATIOS for r in rows if r["method"] == "fastv" and r["ratio"] == q},
                   "dart_over_frame": {str(q): r["prefill_s"] / frame[q]["prefill_s"] - 1
                                       for q in RATIOS for r in rows if r["method"] == "dart" and r["ratio"] == q},
                   "encoder_agreement": encoder_agreement(model, tensors, fast),
                   "profile_frame_0.9": profile_lm(model, tensors, spans, "frame", 0.9),
                   "decode": [decode_compare(model, tensors, spans, args.decode_tokens, None)]}
            if seconds == max(args.seconds):
                run["decode"].append(decode_compare(model, tensors, spans, args.decode_tokens, "frame"))
            run["decode_lower_bound_s"] = weights_read_s(model, T, result["hbm_bandwidth_bytes_s"])
            run["wall_s"] = time.perf_counter() - begin
            result["runs"].append(run)
            print(json.dumps({k: v for k, v in run.items() if k != "rows"}, indent=1, default=str), flush=True)
            for r in rows:
                print(f"{r['method']:8s} {r['ratio']:.1f} {r['encoder']:7s} {'wait' if r['host_waits_at_layer_k'] else '    '} prefill {r['prefill_s']*1e3:7.1f} ms "
                      f"enc {r['encoder_s']*1e3:6.1f} lm {r['lm_s']*1e3:6.1f} bound x{r['lm_speedup_bound']:.2f} "
                      f"got x{r['lm_speedup']:.2f} ({r['lm_fraction_of_bound']:.0%}) plain {r['plain_lm_s_at_kept_length']*1e3:.1f}", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1))
            if args.compile_experiment and name == args.models[0] and seconds == max(args.seconds):
                run["compiled_layers_experiment"] = compiled_layers_experiment(model, tensors, spans, args.reps)
                print(json.dumps(run["compiled_layers_experiment"], indent=1), flush=True)
                args.out.write_text(json.dumps(result, indent=1))
        del model, fast
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
