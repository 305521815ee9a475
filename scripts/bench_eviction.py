"""KV-cache eviction benchmark: per press and ratio on 300 s of audio, the KV-cache bytes after prefill
against (1 - ratio) x vanilla's, peak memory, prefill time and the press's share of it, and the
per-token decode time against the compressed cache.

    python scripts/bench_eviction.py --model qwen2.5-omni-3b --device cuda --dtype bfloat16 \\
        --out benchmarks/eviction_gpu.json                                                     # GPU
    python scripts/bench_eviction.py --model reference --presses knorm snapkv --ratios 0.5 \\
        --reps 1 --out /tmp/eviction_cpu.json                                                  # CPU

`qwen2.5-omni-3b`: the full-size thinker from its published config with RANDOM weights (no download),
inputs laid out as its processor does (`amlib.bench_harness`, as the other benchmarks).
`reference`: the book's reference model through its adapter. Generation runs through
`amlib.eviction.evicted_generate` for every configuration, vanilla included (the same loop with
KNorm at ratio 0, which evicts nothing), so the press's overhead is the only difference; EOS does
not stop decoding (every run decodes --decode-tokens tokens). Times are medians of --reps
round-robin repetitions after one warm-up; ratios are within this one run, device named.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from amlib import bench_harness as harness
from amlib.efficiency import device_name
from amlib.eviction import PRESS_SPECS, evicted_generate
from amlib.eviction.install import PressInstallation
from amlib.eviction.presses import make_press
from amlib.models.base import PreparedInputs

PRESSES = ("random", "knorm", "tova", "snapkv", "streaming_llm", "expected_attention", "keydiff", "pyramidkv")
RATIOS = (0.3, 0.5, 0.7, 0.9)


def build(name: str, seconds: float, device: str, dtype: str):
    """(adapter, prepared inputs); EOS off, so every run decodes the same number of tokens."""
    if name == "reference":
        adapter, prepared = harness.reference_prompt(seconds, device, dtype)
    else:
        model = harness.omni_thinker("qwen2.5-omni-3b.json", device, getattr(torch, dtype))
        tensors, spans = harness.omni_prompt(model.config, seconds, device, getattr(torch, dtype))
        adapter = harness.omni_bare(model, "Qwen2.5-Omni-3B thinker (qwen2.5-omni-3b.json, random weights)")
        prepared = PreparedInputs(tensors, spans, 1, tensors["input_ids"].shape[-1])
    adapter.model.generation_config.eos_token_id = None
    return adapter, prepared


def run_once(adapter, prepared, press: str, ratio: float, protocol: str, tokens: int) -> dict:
    installation = PressInstallation(adapter, make_press(press, ratio), PRESS_SPECS[press])
    with installation:
        gen = evicted_generate(adapter, prepared, tokens, installation, protocol)
    fx = gen.efficiency
    return {"prefill_s": gen.timing.prefill_s, "decode_s": gen.timing.decode_s, "new_tokens": gen.new_tokens,
            "peak_memory_mb": gen.timing.peak_memory_mb, "kv_bytes": fx["kv_bytes"],
            "kv_bytes_uncompressed": fx["kv_bytes_uncompressed"], "press_s": fx["press_s"],
            "kv_tokens_per_layer": fx["kv_tokens_per_layer"], "prefilled_tokens": fx["prefilled_tokens"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["qwen2.5-omni-3b", "reference"], default="qwen2.5-omni-3b")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--presses", nargs="+", default=list(PRESSES))
    parser.add_argument("--ratios", nargs="+", type=float, default=list(RATIOS))
    parser.add_argument("--protocols", nargs="+", default=["query_aware", "query_agnostic"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--decode-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    adapter, prepared = build(args.model, args.seconds, args.device, args.dtype)
    weights_mb = torch.cuda.memory_allocated() / 2**20 if args.device.startswith("cuda") else None
    results = {}
    for protocol in args.protocols:
        configs = [("vanilla", 0.0)] + [(p, r) for p in args.presses for r in args.ratios]
        runs = {c: [] for c in configs}
        for rep in range(args.reps + 1):  # round robin; rep 0 is the warm-up
            for press, ratio in configs:
                result = run_once(adapter, prepared, "knorm" if press == "vanilla" else press, ratio, protocol,
                                  args.decode_tokens)
                if rep:
                    runs[(press, ratio)].append(result)
            print(f"{protocol}: rep {rep} done", flush=True)
        vanilla = runs[("vanilla", 0.0)]
        v_prefill = statistics.median(r["prefill_s"] for r in vanilla)
        v_kv = vanilla[0]["kv_bytes"]
        rows = []
        for (press, ratio), reps in runs.items():
            med = lambda key: statistics.median(r[key] for r in reps)  # noqa: E731
            kv = reps[0]["kv_bytes"]
            target = (1 - ratio) * v_kv
            prefill = med("prefill_s")
            rows.append({
                "press": press, "ratio": ratio, "kv_mb": kv / 2**20, "kv_target_mb": target / 2**20,
                "kv_vs_target_pct": 100 * (kv / target - 1), "peak_memory_mb": max(r["peak_memory_mb"] for r in reps),
                "prefill_ms": 1000 * prefill, "press_ms": 1000 * med("press_s"),
                "press_overhead_pct": 100 * (prefill / v_prefill - 1),
                "decode_ms_per_token": 1000 * med("decode_s") / max(1, reps[0]["new_tokens"] - 1),
                "kv_tokens_min": min(reps[0]["kv_tokens_per_layer"]), "kv_tokens_max": max(reps[0]["kv_tokens_per_layer"]),
                "prefilled_tokens": reps[0]["prefilled_tokens"],
            })
        results[protocol] = rows
    out = {
        "model": adapter.model_id, "device": device_name(adapter.device), "dtype": args.dtype,
        "prompt_tokens": prepared.prompt_tokens, "audio_tokens": prepared.audio_tokens, "seconds": args.seconds,
        "reps": args.reps, "decode_tokens": args.decode_tokens, "weights_mb": weights_mb,
        "torch": torch.__version__, "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": results.get("query_aware", next(iter(results.values()))), "by_protocol": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    for protocol, rows in results.items():
        print(protocol)
        for r in rows:
            print(f"  {r['press']:>18} {r['ratio']:.1f}  kv {r['kv_mb']:8.1f} MB ({r['kv_vs_target_pct']:+.2f} % of target)  "
                  f"peak {r['peak_memory_mb']:8.0f} MB  prefill {r['prefill_ms']:7.1f} ms (press {r['press_ms']:6.1f}, "
                  f"{r['press_overhead_pct']:+5.1f} %)  decode {r['decode_ms_per_token']:6.2f} ms/token")


if __name__ == "__main__":
    main()
