"""Tables of the GPU benchmark JSON that scripts/bench_gpu.py writes (benchmarks/bench_gpu.json):
prefill per configuration against the FLOP bound, decode per token, the fast encoder's agreement,
where the pruned LM's time goes, and the efficiency targets the GPU fast paths were built to (3B thinker, 300 s) with what was measured."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

TARGET_MODEL, TARGET_SECONDS = "qwen2.5-omni-3b", 300.0


def read_gpu_bench(path: str | Path) -> dict:
    result = json.loads(Path(path).read_text(encoding="utf-8"))
    if "runs" not in result:
        raise ValueError(f"{path}: not a scripts/bench_gpu.py result (no 'runs')")
    return result


def _name(run: dict) -> str:
    return run["model"].split(" ")[0]


def _config(row: dict) -> str:
    if row["method"] == "vanilla":
        return f"vanilla, {'HF' if row['encoder'] == 'hf' else 'chunked'} encoder"
    return f"{row['method']} {row['ratio']:g}" + (" (host waits at K)" if row.get("host_waits_at_layer_k") else "")


def gpu_prefill_table(result: dict) -> pd.DataFrame:
    """One row per model, audio length and configuration: milliseconds and the LM's speed-up against
    its FLOP bound (vanilla with the chunked encoder is the LM's reference)."""
    rows = []
    for run in result["runs"]:
        for r in run["rows"]:
            rows.append({"model": _name(run), "audio s": run["audio_seconds"], "configuration": _config(r),
                         "prefill ms": 1e3 * r["prefill_s"], "encoder ms": 1e3 * r["encoder_s"], "LM ms": 1e3 * r["lm_s"],
                         "plain LM at kept length ms": 1e3 * r["plain_lm_s_at_kept_length"],
                         "LM speed-up": r["lm_speedup"], "FLOP bound": r["lm_speedup_bound"],
                         "of bound": r["lm_fraction_of_bound"], "vs HF vanilla": r["prefill_speedup_vs_hf"],
                         "peak GB": r["peak_memory_mb"] / 1024})
    return pd.DataFrame(rows).set_index(["model", "audio s", "configuration"])


def gpu_speedup_rows(result: dict) -> dict[tuple[str, float], pd.DataFrame]:
    """Per (model, audio seconds): each pruned configuration's LM speed-up and its FLOP bound, in the
    columns `amlib.plots.speedup_figure` draws (method, ratio, speedup, bound); the same-run A/B row
    whose host waits at layer K is left out."""
    return {(_name(run), run["audio_seconds"]): pd.DataFrame(
        [{"method": r["method"], "ratio": r["ratio"], "speedup": r["lm_speedup"], "bound": r["lm_speedup_bound"]}
         for r in run["rows"] if r["method"] != "vanilla" and not r.get("host_waits_at_layer_k")])
        for run in result["runs"]}


def gpu_decode_table(result: dict) -> pd.DataFrame:
    rows = []
    for run in result["runs"]:
        for d in run["decode"]:
            rows.append({"model": _name(run), "context tokens": d["context_tokens"], "pruning": d["pruning"],
                         "HF generate ms/token": 1e3 * d["hf_generate"]["per_token_s"],
                         "HF, in-place cache ms/token": 1e3 * d["hf_generate_preallocated"]["per_token_s"],
                         "CUDA graph ms/token": 1e3 * d["graph"]["per_token_s"], "speed-up": d["speedup_vs_hf"],
                         "weights+cache read ms (bound)": 1e3 * run["decode_lower_bound_s"],
                         "graph capture ms": 1e3 * d["graph_capture_s"],
                         "tokens equal to HF's": f"{d['graph_tokens_equal_hf_prefix']} of {d['new_tokens']}"})
    return pd.DataFrame(rows).set_index(["model", "context tokens", "pruning"])


def gpu_encoder_agreement(result: dict) -> pd.DataFrame:
    return pd.DataFrame([{"model": _name(run), "audio s": run["audio_seconds"],
                          "chunked vs HF (bf16)": run["encoder_agreement"]["fast_vs_hf_bf16"],
                          "HF bf16 vs HF fp32": run["encoder_agreement"]["hf_bf16_vs_hf_fp32"],
                          "chunked bf16 vs HF fp32": run["encoder_agreement"]["fast_bf16_vs_hf_fp32"]}
                         for run in result["runs"]]).set_index(["model", "audio s"])


def gpu_profile_table(result: dict) -> pd.DataFrame:
    rows = []
    for run in result["runs"]:
        p = run["profile_frame_0.9"]
        rows.append({"model": _name(run), "audio s": run["audio_seconds"],
                     "LM wall ms (profiled)": 1e3 * p["lm_wall_s (profiled)"],
                     "LM kernels busy ms": 1e3 * p["lm_kernel_busy_s"], "GPU busy share": p["lm_kernel_busy_s"] / p["lm_wall_s (profiled)"],
                     "LM kernels": p["lm_kernels"]})
    return pd.DataFrame(rows).set_index(["model", "audio s"])


def _run(result: dict, model: str, seconds: float) -> dict:
    for run in result["runs"]:
        if _name(run) == model and run["audio_seconds"] == seconds:
            return run
    raise ValueError(f"the benchmark has no run of {model} at {seconds:g} s")


def gpu_targets(result: dict, model: str = TARGET_MODEL, seconds: float = TARGET_SECONDS) -> pd.DataFrame:
    """The fast paths' efficiency targets (3B thinker, 300 s, bfloat16, one H100/H200) against this run."""
    run = _run(result, model, seconds)
    rows = {(r["method"], r["ratio"], r["encoder"], bool(r.get("host_waits_at_layer_k"))): r for r in run["rows"]}
    hf, fast = rows[("vanilla", 0.0, "hf", False)], rows[("vanilla", 0.0, "chunked", False)]
    frame90 = rows[("frame", 0.9, "chunked", False)]
    pruned = [r for (m, _, _, waits), r in rows.items() if m != "vanilla" and not waits]
    vanilla_decode = next(d for d in run["decode"] if d["pruning"] == "none")
    out = [("whole prefill at Frame 0.9", frame90["prefill_s"], "<=", 0.08, "s"),
           ("Frame 0.9 faster than HF vanilla", hf["prefill_s"] / frame90["prefill_s"], ">=", 4.0, "x"),
           ("vanilla prefill, chunked encoder", fast["prefill_s"], "<=", 0.17, "s")]
    for ratio in sorted({r["ratio"] for r in pruned}):
        worst = min((r for r in pruned if r["ratio"] == ratio), key=lambda r: r["lm_fraction_of_bound"])
        out.append((f"LM speed-up / FLOP bound at {ratio:g} (worst: {worst['method']})",
                    worst["lm_fraction_of_bound"], ">=", 0.8, "share"))
    for ratio, over in sorted(run["fastv_over_frame"].items()):
        out.append((f"FastV over Frame at {ratio}", over, "<=", 0.05, "share"))
    out.append((f"decode per token at {vanilla_decode['context_tokens']} tokens", vanilla_decode["graph"]["per_token_s"] * 1e3,
                "<=", 8.0, "ms"))
    table = pd.DataFrame(out, columns=["target", "measured", "must be", "limit", "unit"])
    table["met"] = [m <= lim if op == "<=" else m >= lim for m, op, lim in zip(table["measured"], table["must be"], table["limit"])]
    return table


# -- the readings of the benchmark pages, computed (no figure of a reading is typed by hand) ----------

def _config_name(run: dict) -> str:
    return f"{_name(run).removeprefix('qwen2.5-omni-').upper()} at {run['audio_seconds']:g} s"


def encoder_speedups(result: dict) -> str:
    """Vanilla prefill with transformers' encoder over the chunked one, per model and length:
    '3B at 90 s: 1.30x; 3B at 300 s: 2.09x; ...'."""
    parts = []
    for run in result["runs"]:
        rows = {r["encoder"]: r for r in run["rows"] if r["method"] == "vanilla" and not r.get("host_waits_at_layer_k")}
        parts.append(f"{_config_name(run)}: {rows['hf']['prefill_s'] / rows['chunked']['prefill_s']:.2f}x")
    return "; ".join(parts)


def decode_against_bound(result: dict) -> str:
    """The CUDA-graph decoder's ms per token against the weight-and-cache read bound, unpruned, per model
    and context: '3B at 7575 tokens: 7.30 ms, 5.0x the bound of 1.47 ms; ...'."""
    parts = []
    for run in result["runs"]:
        bound = run["decode_lower_bound_s"]
        for d in run["decode"]:
            if d["pruning"] != "none":
                continue
            graph = d["graph"]["per_token_s"]
            parts.append(f"{_name(run).removeprefix('qwen2.5-omni-').upper()} at {d['context_tokens']} tokens: "
                         f"{1e3 * graph:.2f} ms, {graph / bound:.1f}x the bound of {1e3 * bound:.2f} ms")
    return "; ".join(parts)


def pruning_bench_reading(result: dict) -> dict[str, str]:
    """What the pruning benchmark (scripts/bench_pruning.py's JSON) shows, as glue-ready text: the share
    of the FLOP bound the pruned LM reaches per ratio (worst and best method), and at the highest ratio
    Frame's kept tokens, its LM speed-up against its bound, a plain decoder's time on the kept tokens
    and the encoder's share of the whole prefill."""
    rows = pd.DataFrame(result["rows"])
    pruned = rows[rows["method"] != "vanilla"]
    shares = []
    for ratio, group in pruned.groupby("ratio"):
        worst, best = group.loc[group["lm_fraction_of_bound"].idxmin()], group.loc[group["lm_fraction_of_bound"].idxmax()]
        shares.append(f"{ratio:g}: {worst['lm_fraction_of_bound']:.2f} ({worst['method']}) to "
                      f"{best['lm_fraction_of_bound']:.2f} ({best['method']})")
    top = pruned["ratio"].max()
    frame = pruned[(pruned["method"] == "frame") & (pruned["ratio"] == top)].iloc[0]
    return {"bound_shares": "; ".join(shares), "top_ratio": f"{top:g}", "kept_tokens": f"{int(frame['kept_tokens']):,}",
            "speedup": f"{frame['lm_speedup']:.1f}x", "bound": f"{frame['lm_speedup_bound']:.1f}x",
            "plain_lm_ms": f"{1e3 * frame['plain_lm_s_at_kept_length']:.1f}",
            "encoder_share": f"{100 * frame['encoder_s'] / frame['prefill_s']:.0f} %"}


def gpu_bound_shares(result: dict) -> str:
    """Per model and length, the share of its FLOP bound the pruned LM reaches at each ratio (the worst
    method; the same-run A/B row whose host waits is left out): '3B at 300 s: 0.3 0.91, 0.6 0.86, ...'."""
    parts = []
    for run in result["runs"]:
        pruned = [r for r in run["rows"] if r["method"] != "vanilla" and not r.get("host_waits_at_layer_k")]
        worst = {ratio: min(r["lm_fraction_of_bound"] for r in pruned if r["ratio"] == ratio)
                 for ratio in sorted({r["ratio"] for r in pruned})}
        parts.append(f"{_config_name(run)}: " + ", ".join(f"{ratio:g} {share:.2f}" for ratio, share in worst.items()))
    return "; ".join(parts)


def decode_check_summary(check: dict) -> str:
    """scripts/check_gpu_decode.py's JSON in one sentence: agreement of the graph replay and the eager
    static path with HF generate, and which wrong decoders the check detected."""
    runs = check["runs"]
    worst = max(max(r["graph_vs_hf"]["max_logit_diff"], r["eager_static_vs_hf"]["max_logit_diff"]) for r in runs)
    tokens = all(r["graph_vs_hf"]["tokens_equal"] and r["eager_static_vs_hf"]["tokens_equal"] for r in runs)
    controls = {}
    for r in runs:
        for name, found in r["negative_controls_detected"].items():
            controls.setdefault(name, []).append(found)
    detected = "; ".join(f"{name.replace('_', ' ')} detected in {sum(f)} of {len(f)} runs" for name, f in controls.items())
    return (f"{check['device']}, {check['dtype']}, {len(runs)} runs of {check['new_tokens']} tokens: graph replay and "
            f"eager static path {'equal' if tokens else 'NOT equal'} to HF's tokens, largest logit difference "
            f"{worst:.1e} (tolerance {check['tolerance']:g}); wrong decoders: {detected}")


# -- benchmark-scale throughput (scripts/bench_throughput.py) ------------------------------------------

THROUGHPUT_MODES = {"hf_batch1": "(a) HF generate, batch 1, no fast paths",
                    "fast_batch1": "(b) amlib, batch 1, fast paths",
                    "batched_pipelined": "(c) amlib, batched and pipelined",
                    "batched_fused": "(d) amlib, batched and pipelined, fused decode step"}


def read_throughput(path: str | Path) -> dict:
    result = json.loads(Path(path).read_text(encoding="utf-8"))
    if "modes" not in result or "workload" not in result:
        raise ValueError(f"{path}: not a scripts/bench_throughput.py result (no 'modes' and 'workload')")
    return result


def throughput_table(result: dict) -> pd.DataFrame:
    """One row per mode: items/s on the run's subset, its factor over the first mode, the projected wall
    time of one vanilla pass over Table 5's items, answers identical to the first mode's, and (batched)
    the share of wall time the compute waited for inputs."""
    first = result["modes"][0]
    rows = []
    for mode in result["modes"]:
        agree = mode["agreement_with_first_mode"]
        pipeline = mode.get("pipeline") or {}
        rows.append({"mode": THROUGHPUT_MODES.get(mode["mode"], mode["mode"]), "batch": mode["batch_size"],
                     "items/s": mode["items_per_s"], "x over (a)": mode["items_per_s"] / first["items_per_s"],
                     "vanilla pass, projected min": mode["projection_vanilla"]["projected_min"],
                     "same answer as (a)": f"{agree['same']} of {agree['of']}",
                     "waiting for input": pipeline.get("input_wait_share")})
    return pd.DataFrame(rows).set_index("mode")


def best_batched(result: dict) -> dict:
    """The batched mode with the shortest projected vanilla pass ((c), or (d) with the fused step)."""
    batched = [m for m in result["modes"] if m.get("pipeline") is not None]
    if not batched:
        raise ValueError("the throughput benchmark has no batched mode")
    return min(batched, key=lambda m: m["projection_vanilla"]["projected_min"])


def mode_letter(mode: dict) -> str:
    return THROUGHPUT_MODES.get(mode["mode"], mode["mode"]).split(" ")[0]


def throughput_targets(result: dict) -> pd.DataFrame:
    """The throughput issue's GPU targets (3B thinker, one H100/H200) against this run, each from the
    batched mode with the shortest projected pass (named); a target whose part did not run is left out."""
    batched, first = best_batched(result), result["modes"][0]
    letter = mode_letter(batched)
    out = [(f"vanilla pass over the 6,567 items, projected, {letter}", batched["projection_vanilla"]["projected_min"],
            "<=", 10.0, "min"),
           (f"{letter} items/s over (a)", batched["items_per_s"] / first["items_per_s"], ">=", 10.0, "x"),
           (f"not waiting for input, {letter}", 1 - batched["pipeline"]["input_wait_share"], ">=", 0.85, "share")]
    if "pruning_grid" in result:
        step = result["pruning_grid"].get("decode_step")
        out.insert(1, ("13-configuration pruning grid, projected" + (f" (decode step: {step})" if step else ""),
                       result["pruning_grid"]["projection"]["projected_min"], "<=", 60.0, "min"))
    if "decode_microbenchmark" in result:
        micro = result["decode_microbenchmark"]
        out.append((f"batched decode, {micro['rows']} rows at {micro['context_tokens']} tokens, modules",
                    micro["batched_tokens_per_s"], ">=", 2000.0, "tokens/s"))
        if "fused_tokens_per_s" in micro:
            out.append((f"batched decode, {micro['rows']} rows at {micro['context_tokens']} tokens, fused step",
                        micro["fused_tokens_per_s"], ">=", 2000.0, "tokens/s"))
    table = pd.DataFrame(out, columns=["target", "measured", "must be", "limit", "unit"])
    table["met"] = [m <= lim if op == "<=" else m >= lim for m, op, lim in zip(table["measured"], table["must be"], table["limit"])]
    return table


def throughput_reading(result: dict) -> dict[str, str]:
    """The sentences page 04 says about a throughput run, computed from it: the batched mode's factor
    over the first mode on the common subset, the projected vanilla pass of each mode, and where the
    batched runs' time went (prefill, the rest: decode and bookkeeping; input waits)."""
    first, batched = result["modes"][0], best_batched(result)
    runs = batched["projection_vanilla"].get("per_task_runs", {})
    wall = sum(r["wall_s"] for r in runs.values())
    prefill = sum(r["pipeline"]["prefill_s"] for r in runs.values())
    waits = sum(r["pipeline"]["input_wait_s"] for r in runs.values())
    projected = "; ".join(f"{THROUGHPUT_MODES.get(m['mode'], m['mode'])}: {m['projection_vanilla']['projected_min']:.1f} min"
                          for m in result["modes"])
    where = (f"prefill {prefill / wall:.0%} of the batched per-task runs' wall time, decoding and the rest "
             f"{(wall - prefill - waits) / wall:.0%}, waiting for input {waits / wall:.0%}") if wall else "no per-task runs"
    return {"speedup": f"{mode_letter(batched)}: {batched['items_per_s'] / first['items_per_s']:.1f}x the items/s of "
                       f"{THROUGHPUT_MODES.get(first['mode'], first['mode'])} on the same {first['items']} items",
            "projected": projected, "where": where}


# -- the fused decode step (scripts/bench_fused_decode.py) and the CPU decode paths (scripts/bench_cpu_decode.py)

FUSED_MODES = {"hf_generate": "HF generate", "graph": "CUDA graph, transformers' modules (batch 1)",
               "batched_modules": "batched decoder, transformers' modules", "lean": "lean step, eager kernels",
               "fused": "fused step (lean, compiled)"}
DECODE_TARGETS_MS = {"qwen2.5-omni-3b": 3.0, "qwen2.5-omni-7b": 6.0}  # per token, batch 1 (issue 30)


def read_fused_decode(path: str | Path) -> dict:
    result = json.loads(Path(path).read_text(encoding="utf-8"))
    if "runs" not in result or not all("modes" in r or "error" in r for r in result["runs"]):
        raise ValueError(f"{path}: not a scripts/bench_fused_decode.py result (runs without 'modes')")
    return result


def fused_decode_table(result: dict) -> pd.DataFrame:
    """One row per model, mode and row count: milliseconds per step and per row-token, tokens/s, the
    factor over HF generate at batch 1, the bound, and whether the answer text equals the graph decoder's."""
    rows = []
    for run in result["runs"]:
        if "error" in run:
            continue
        hf = next(m for m in run["modes"] if m["mode"] == "hf_generate")
        for m in run["modes"]:
            rows.append({"model": run["model"].removeprefix("random-"), "mode": FUSED_MODES.get(m["mode"], m["mode"]),
                         "rows": m["rows"], "ms/step": m["ms_per_step"], "ms/row-token": m["ms_per_row_token"],
                         "tokens/s": m["tokens_per_s"], "x over HF": hf["ms_per_step"] / m["ms_per_row_token"],
                         "bound ms (batch 1)": run.get("bound_ms"),
                         "text equals graph's": {None: "(reference)", True: "yes", False: "no"}[m["text_equals_graph"]],
                         # token ids (random weights' texts may decode to nothing): the first differing step
                         "tokens equal to modules'": (f"{m['tokens_equal_batched_modules_prefix']} of {run['new_tokens'] + 1}"
                                                      if "tokens_equal_batched_modules_prefix" in m else "")})
    return pd.DataFrame(rows).set_index(["model", "mode", "rows"])


def fused_decode_targets(result: dict) -> pd.DataFrame:
    """Issue 30's GPU targets (batch-1 ms per token of the fused step, 3B and 7B) against this run."""
    out = []
    for run in result["runs"]:
        size = run["model"].removeprefix("random-")
        if "error" in run or size not in DECODE_TARGETS_MS:
            continue
        fused = next(m for m in run["modes"] if m["mode"] == "fused" and m["rows"] == 1)
        out.append((f"{size}, {run['context_tokens']} tokens, batch 1", fused["ms_per_step"], DECODE_TARGETS_MS[size]))
    table = pd.DataFrame(out, columns=["target", "measured ms/token", "limit ms/token"])
    table["met"] = table["measured ms/token"] <= table["limit ms/token"]
    return table


def fused_profile_table(result: dict, model: str) -> pd.DataFrame:
    """The top CUDA kernels of an eager decode run of `model` (what it covers: the JSON's "covers"), the
    module path beside the fused step."""
    run = next(r for r in result["runs"] if r["model"] == model)
    rows = []
    for key, path in (("profile_modules_step", "modules"), ("profile_fused_step", "fused")):
        prof = run[key]
        for k in prof["top"]:
            rows.append({"path": f"{path} ({prof['kernels_per_step']} kernels, {prof['kernel_time_ms']:.2f} ms in all)",
                         "kernel": k["name"], "ms": k["ms"], "calls": k["calls"], "share": k["share"]})
    return pd.DataFrame(rows).set_index(["path", "kernel"])


CPU_DECODE_MODES = {"hf_generate": "HF generate", "modules": "batched decoder, transformers' modules",
                    "lean": "lean step, eager", "lean_compiled": "lean step, compiled",
                    "lean_int8": "lean step, int8 weights"}


def cpu_decode_table(result: dict) -> pd.DataFrame:
    """The CPU decode paths (scripts/bench_cpu_decode.py): ms per step and per row-token against the bound
    of reading the weights and the cache once, and the tokens equal to the module path's."""
    rows = [{"mode": CPU_DECODE_MODES.get(m["mode"], m["mode"]), "rows": m["rows"], "ms/step": m["ms_per_token"],
             "ms/row-token": m.get("ms_per_row_token", m["ms_per_token"]), "bound ms": m.get("bound_ms"),
             "same tokens as modules": f"{m['same_tokens_as_modules']} of {m['of']}" if "of" in m else ""}
            for m in result["modes"]]
    return pd.DataFrame(rows).set_index(["mode", "rows"])
