"""Benchmark-scale throughput: an AudioMarathon-shaped workload through the real runner, three ways,
in one run on one device.

    python scripts/bench_throughput.py --device cuda --out benchmarks/throughput_gpu.json
    python scripts/bench_throughput.py --device cpu --model amlib-reference-whisper-tiny-smollm2 \\
        --dtype bfloat16 --per-task 1 --projection-items 4 --grid-items 0 --decode-rows 4 --out benchmarks/throughput_cpu.json

The workload: the ten tasks with the item counts of the paper's Table 5, a stratified subset of
--per-task items per task with durations spread evenly over 90-300 s (seeded noise audio), answers
forced to their typical length (EOS off: choice answers CHOICE_TOKENS tokens, ASR answers
ASR_TOKENS_PER_SECOND tokens per second of audio, capped at the task's 1,100). The model defaults to
the published Qwen2.5-Omni-3B thinker sizes with random weights (no download).

Modes, each over the same items, in this order, after one warm-up pass (one item) each:
  (a) hf_batch1: what a user of the paper's code or lmms-eval's HF backend gets: one item at a time,
      transformers' generate, no fast paths;
  (b) fast_batch1: this project, one item at a time, fast paths on (chunked encoder, CUDA-graph decode);
  (c) batched_pipelined: this project, --batch-size rows decoded together (continuous batching),
      inputs prepared by --workers processes (--loader) ahead of the compute, transformers' modules in
      the decode step (the default on CUDA);
  (d) batched_fused: (c) with the fused decode step (`--decode-step compiled`: the lean step compiled,
      inside the CUDA graph; opt-in on CUDA).
Reported per mode: items/s on the common subset and answer agreement with (a) (and (c) with (b)).
The projected wall time of one vanilla pass over all 6,567 items is Table 5's count of each task times
the task's seconds per item: for (a) and (b) their rows' own prefill + decode (they run one after
another; the run's wall-clock overhead spread in proportion), for (c) the wall time of a batched run of
--projection-items items of that task alone (a mixed subset of a few items cannot fill a batch, so it
would measure the tail of its longest answer, not a full run's rate). The paper's 13-configuration
pruning grid (vanilla + 4 methods x 3 ratios at K = 2, encode-once sweep, batched, with the last
batched mode's decode step) runs on --grid-items items of each task alone, projected the same way; so
does the eviction grid (vanilla + the paper's 4 presses x 4 ratios, query-aware: one prefill per item
shared by the presses, amlib.eviction.shared) on --eviction-items items.
A batched-decode microbenchmark: --decode-rows rows of --decode-context tokens decoding
--decode-tokens tokens together, generated tokens/s, beside the batch-1 graph decoder.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import amlib.runner as runner
import amlib.sweep as sweep
from amlib.data.audio import SAMPLE_RATE, write_audio
from amlib.data.manifest import read_manifest, write_manifest
from amlib.efficiency import device_name
from amlib.pipeline import PipelineStats, default_loader
from amlib.runner import RunConfig, decode_step, evaluate
from amlib.tasks import TASKS, TASK_ORDER

TABLE5 = Path(__file__).parents[1] / "amlib" / "paper" / "tables" / "table5_composition.csv"
CHOICE_TOKENS = 3
ASR_TOKENS_PER_SECOND = 2.5
MODES = {"hf_batch1": dict(fast_paths=False, batch=False), "fast_batch1": dict(fast_paths=True, batch=False),
         "batched_pipelined": dict(fast_paths=True, batch=True, decode_step="auto"),
         "batched_fused": dict(fast_paths=True, batch=True, decode_step="compiled")}


def table5_counts() -> dict[str, int]:
    with TABLE5.open() as fh:
        return {row["task"]: int(row["questions"]) for row in csv.DictReader(fh)}


def forced_tokens(task: str, seconds: float) -> int:
    spec = TASKS[task]
    return min(spec.max_new_tokens, round(ASR_TOKENS_PER_SECOND * seconds)) if not spec.is_choice else \
        min(spec.max_new_tokens, CHOICE_TOKENS)


def make_workload(root: Path, per_task: int, seed: int = 0, tasks=TASK_ORDER) -> Path:
    """`per_task` items per task, durations evenly spread over 90-300 s, seeded noise."""
    rows = []
    for t, task in enumerate(TASK_ORDER):
        if task not in tasks:
            continue
        spec = TASKS[task]
        for j in range(per_task):
            seconds = round(90 + 210 * (j + 0.5) / per_task, 1)
            item = f"{task}-{j}"
            wave = 0.05 * np.random.default_rng([seed, t, j]).standard_normal(int(seconds * SAMPLE_RATE))
            write_audio(root / "audio" / f"{item}.wav", wave.astype(np.float32))
            choices = list(spec.fixed_choices or [f"option {k}" for k in range(spec.n_options)])
            rows.append({"id": item, "task": task, "audio": f"audio/{item}.wav", "duration_s": seconds,
                         "question": "" if not spec.is_choice else "Which option fits the audio?",
                         "choices": choices, "answer": "A" if spec.is_choice else "words",
                         "source": "synthetic", "split": "test", "meta": {}})
    return write_manifest(root / "manifest.jsonl", rows)


def force_answer_lengths(adapter) -> None:
    """EOS off; every prepared prompt carries its forced answer length, which generate() uses."""
    adapter.model.generation_config.eos_token_id = None
    original_prepare = runner.prepare_inputs

    def prepare(adapter_, sample):
        prepared = original_prepare(adapter_, sample)
        prepared.forced_tokens = forced_tokens(sample.task, sample.duration_s)
        return prepared

    runner.prepare_inputs = sweep.prepare_inputs = prepare
    generate = adapter.generate
    adapter.generate = lambda prepared, max_new_tokens, **kw: generate(prepared, prepared.forced_tokens, **kw)


def per_task_seconds(rows: list[dict]) -> dict[str, float]:
    """Seconds per item of each task in a one-row-at-a-time run: the rows' own prefill + decode."""
    by_task: dict[str, list[float]] = {}
    for row in rows:
        by_task.setdefault(row["task"], []).append(row["prefill_s"] + row["decode_s"])
    return {task: sum(v) / len(v) for task, v in by_task.items()}


def projected_minutes(seconds_per_item: dict[str, float], counts: dict[str, int], overhead: float = 1.0) -> float:
    """Table 5's items of every task at the task's measured seconds per item."""
    return sum(counts[t] * seconds_per_item[t] for t in counts) * overhead / 60


def run_mode(adapter, name: str, samples, out: Path, batch_size: int, workers: int, loader: str | None) -> dict:
    mode = MODES[name]
    adapter.set_fast_paths(mode["fast_paths"])
    stats = PipelineStats()
    sync = torch.cuda.synchronize if adapter.device.type == "cuda" else (lambda: None)
    with decode_step(adapter, mode.get("decode_step")):
        sync()
        start = time.perf_counter()
        rows = evaluate(adapter, samples, out, RunConfig(), progress=False, batch_size=batch_size if mode["batch"] else 1,
                        workers=workers if mode["batch"] else 0, stats=stats, loader=loader)
        sync()
        wall = time.perf_counter() - start
    errors = [r["id"] for r in rows if r["error"]]
    if errors:
        raise RuntimeError(f"{name}: rows with errors: {errors}: {rows[0]['error'] if rows[0]['error'] else ''}")
    return {"mode": name, "wall_s": wall, "items": len(rows), "items_per_s": len(rows) / wall,
            "generated_tokens": sum(r["new_tokens"] for r in rows), "fast_paths": adapter.fast_paths(),
            "batch_size": rows[0]["provenance"]["batch_size"], "pipeline": stats.as_dict() if mode["batch"] else None,
            "decode_step": mode.get("decode_step"), "rows": rows}



def agreement(rows: list[dict], reference: list[dict]) -> dict:
    ref = {r["id"]: r["prediction"] for r in reference}
    same = [r["id"] for r in rows if ref.get(r["id"]) == r["prediction"]]
    by_task = {}
    for r in rows:
        by_task.setdefault(r["task"], []).append(ref.get(r["id"]) == r["prediction"])
    return {"same": len(same), "of": len(rows), "by_task": {t: sum(v) / len(v) for t, v in by_task.items()}}


def decode_microbenchmark(adapter, rows: int, context_s: float, tokens: int) -> dict:
    """`rows` prompts of `context_s` seconds of audio decoding `tokens` tokens together (BatchedDecoder),
    and one of them alone through the batch-1 graph decoder: generated tokens/s."""
    from amlib.fastpath.batched_decode import deferred_decoding
    from amlib.tasks import TASKS as T

    adapter.set_fast_paths(True)
    sync = torch.cuda.synchronize if adapter.device.type == "cuda" else (lambda: None)
    audio = (0.05 * np.random.default_rng(7).standard_normal(int(context_s * SAMPLE_RATE))).astype(np.float32)
    prepared = adapter.build_inputs(audio, T["ASR"], "", [])
    prepared.forced_tokens = tokens + 1  # (force_answer_lengths' generate reads it)

    def prefilled():
        with deferred_decoding(adapter):
            return [adapter.generate(prepared, tokens + 1).pending for _ in range(rows)]

    def batched_run() -> tuple[float, float, int]:
        """(seconds, generated tokens/s, graph captures) of the rows decoded together, after a warm-up."""
        decoder = adapter.batched_decoder(rows)
        decoder.run(prefilled(), [])  # warm-up (graph capture; the fused step also compiles)
        batch = prefilled()
        sync()
        start = time.perf_counter()
        done = decoder.run(batch, [])
        sync()
        seconds = time.perf_counter() - start
        return seconds, sum(len(d.tokens) - 1 for d in done) / seconds, decoder.captures

    result = {"rows": rows, "context_tokens": prepared.prompt_tokens, "new_tokens": tokens}
    seconds, per_s, captures = batched_run()
    result.update(batched_s=seconds, batched_tokens_per_s=per_s, captures=captures)
    path = "graph_decode" if adapter.uses_graph_decode() else "hf_generate"
    gen = adapter.generate(prepared, tokens + 1)  # warm-up
    sync()
    start = time.perf_counter()
    gen = adapter.generate(prepared, tokens + 1)
    sync()
    seconds = time.perf_counter() - start - gen.timing.prefill_s
    result.update(batch1_decode_s=seconds, batch1_tokens_per_s=(gen.new_tokens - 1) / seconds,
                  batch1_path=path)
    result["speedup"] = result["batched_tokens_per_s"] / result["batch1_tokens_per_s"]
    if adapter.device.type == "cuda":  # the fused step (lean step compiled, in the CUDA graph), same rows
        with decode_step(adapter, "compiled"):
            seconds, per_s, _ = batched_run()
            result.update(fused_batched_s=seconds, fused_tokens_per_s=per_s)
    return result


def grid_projection(adapter, root: Path, configs, args, counts: dict, run_grid, step: str | None,
                    items: int | None = None) -> dict:
    """Every configuration of `configs` on `items` items of each task alone (`run_grid`: the sweep or
    `run_configs`, batched and pipelined, decode step `step`), timed by the wall clock and projected over
    Table 5."""
    items = items or args.grid_items
    adapter.set_fast_paths(True)
    per_item, runs = {}, {}
    for task in TASK_ORDER:
        data = make_workload(root / "data" / task, items, seed=2, tasks=(task,))
        stats = PipelineStats()
        with decode_step(adapter, step):
            start = time.perf_counter()
            files = run_grid(adapter, read_manifest(data), root / "runs" / task, configs, progress=False,
                             batch_size=args.batch_size, workers=args.workers, stats=stats, loader=args.loader)
            wall = time.perf_counter() - start
        rows = [r for rows in files.values() for r in rows]
        errors = [r["error"] for r in rows if r["error"]]
        if errors:
            raise RuntimeError(f"grid {root.name}, {task}: {len(errors)} rows with errors: {errors[0]}")
        per_item[task] = wall / items
        runs[task] = {"wall_s": wall, "items": items, "rows": len(rows), "pipeline": stats.as_dict()}
    return {"configurations": len(configs), "items_per_task": items, "decode_step": step, "per_task_runs": runs,
            "projection": {"seconds_per_item": per_item, "projected_min": projected_minutes(per_item, counts)}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="random-qwen2.5-omni-3b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--per-task", type=int, default=2, help="items per task of the three modes' common subset")
    ap.add_argument("--projection-items", type=int, default=16,
                    help="(c)'s projection: a batched run of this many items of each task alone")
    ap.add_argument("--grid-items", type=int, default=2, help="items per task of the pruning grid (0: skip)")
    ap.add_argument("--eviction-items", type=int, default=2,
                    help="items per task of the eviction grid (4 presses x 4 ratios, query-aware; 0: skip)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=4, help="loader processes (or threads) of the batched modes")
    ap.add_argument("--loader", default=None, choices=["process", "thread"], help="default: amlib.pipeline's")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--decode-rows", type=int, default=16)
    ap.add_argument("--decode-context-seconds", type=float, default=200.0)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import transformers

    from amlib.models import load_model
    from amlib.sweep import eviction_configs, run_configs, run_sweep, sweep_configs

    counts = table5_counts()
    work = Path(tempfile.mkdtemp(prefix="amlib-throughput-"))
    samples = read_manifest(make_workload(work / "data", args.per_task))
    load_start = time.perf_counter()
    adapter = load_model(args.model, device=args.device, dtype=args.dtype)
    result = {"model": args.model, "device": device_name(args.device), "dtype": args.dtype,
              "threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__,
              "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "load_s": time.perf_counter() - load_start,
              "workload": {"per_task": args.per_task, "items": len(samples), "durations_s": "90-300, even spread",
                           "choice_tokens": CHOICE_TOKENS, "asr_tokens_per_second": ASR_TOKENS_PER_SECOND,
                           "table5_items": sum(counts.values())},
              "batch_size": args.batch_size, "workers": args.workers, "loader": args.loader or default_loader(),
              "modes": []}
    force_answer_lengths(adapter)
    warm = [s for s in samples if s.task == "SGR"][:1]
    longest_asr = max((s for s in samples if s.task == "ASR"), key=lambda s: s.duration_s, default=None)
    for name in args.modes:  # one-time costs (kernels, graphs, compiling, allocator) fall into no measured mode
        batch_warm = warm + ([longest_asr] if MODES[name]["batch"] and longest_asr else [])  # 2 rows, the longest cache
        run_mode(adapter, name, batch_warm, work / "warm" / name / "run.jsonl", args.batch_size, args.workers, args.loader)

    def save():
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, default=str))

    rows_of = {}
    for name in args.modes:
        measured = run_mode(adapter, name, samples, work / name / "run.jsonl", args.batch_size, args.workers, args.loader)
        rows_of[name] = measured.pop("rows")
        if not MODES[name]["batch"]:  # rows run one after another: their own times add up to the wall time
            per_item = per_task_seconds(rows_of[name])
            overhead = measured["wall_s"] / sum(r["prefill_s"] + r["decode_s"] for r in rows_of[name])
            measured["projection_vanilla"] = {"seconds_per_item": per_item, "wall_over_rows": overhead,
                                              "projected_min": projected_minutes(per_item, counts, overhead),
                                              "from": "this subset's rows (prefill + decode per task)"}
        measured["agreement_with_first_mode"] = agreement(rows_of[name], rows_of[args.modes[0]])
        if MODES[name]["batch"] and "fast_batch1" in rows_of:
            measured["agreement_with_fast_batch1"] = agreement(rows_of[name], rows_of["fast_batch1"])
        result["modes"].append(measured)
        print(json.dumps({k: v for k, v in measured.items() if k != "projection_vanilla"}, default=str), flush=True)
        save()
    for name in [m for m in args.modes if MODES[m]["batch"]]:  # each task's own batch-filling run, wall clock
        per_item, runs = {}, {}
        for task in TASK_ORDER:
            data = make_workload(work / "projection" / task, args.projection_items, seed=1, tasks=(task,))
            measured = run_mode(adapter, name, read_manifest(data), work / "projection-runs" / name / task / "run.jsonl",
                                args.batch_size, args.workers, args.loader)
            measured.pop("rows")
            per_item[task] = measured["wall_s"] / measured["items"]
            runs[task] = {k: measured[k] for k in ("wall_s", "items", "items_per_s", "generated_tokens", "pipeline")}
        mode = next(m for m in result["modes"] if m["mode"] == name)
        mode["projection_vanilla"] = {"seconds_per_item": per_item, "per_task_runs": runs,
                                      "projected_min": projected_minutes(per_item, counts),
                                      "from": f"a batched run of {args.projection_items} items of each task alone"}
        save()
    for mode in result["modes"]:
        print(mode["mode"], "projected vanilla pass:", round(mode["projection_vanilla"]["projected_min"], 1), "min",
              flush=True)
    first, last = result["modes"][0], result["modes"][-1]
    result["speedup_last_over_first"] = last["items_per_s"] / first["items_per_s"]
    batched = [m for m in args.modes if MODES[m]["batch"]]
    grid_step = MODES[batched[-1]]["decode_step"] if batched else None
    if args.grid_items:  # the paper's 13-configuration pruning grid (encode-once sweep)
        configs = sweep_configs(["random", "fastv", "dart", "frame"], [0.3, 0.6, 0.9])
        result["pruning_grid"] = grid_projection(adapter, work / "grid", configs, args, counts, run_sweep, grid_step)
        print("pruning grid projected:", round(result["pruning_grid"]["projection"]["projected_min"], 1), "min", flush=True)
        save()
    if args.eviction_items:  # the paper's eviction grid: 4 presses x 4 ratios, query-aware, + vanilla
        configs = eviction_configs(["random", "knorm", "tova", "snapkv"], [0.3, 0.5, 0.7, 0.9], ["query_aware"])
        result["eviction_grid"] = grid_projection(adapter, work / "eviction", configs, args, counts, run_configs,
                                                  grid_step, items=args.eviction_items)
        print("eviction grid projected:", round(result["eviction_grid"]["projection"]["projected_min"], 1), "min",
              flush=True)
        save()
    if args.decode_rows:
        result["decode_microbenchmark"] = decode_microbenchmark(adapter, args.decode_rows, args.decode_context_seconds,
                                                                args.decode_tokens)
        print(json.dumps(result["decode_microbenchmark"]), flush=True)
    save()


if __name__ == "__main__":
    main()
