"""Scaling of `amlib eval` over processes launched by torchrun: items per second with 1 and with P
processes on the same synthetic items, and the scaling efficiency (throughput(P) / (P x throughput(1))).

    python scripts/bench_distributed.py --model random-qwen2.5-omni-3b --device cuda --dtype bfloat16 \\
        --procs 1 2 --out benchmarks/distributed_gpu.json

Each launch is timed twice, with N and with 2N items (fresh output folders): throughput is N divided
by the difference, so process start-up and model loading (the same in both) drop out. A throw-away
launch goes first, so that one-time costs of a fresh machine fall into neither. The items are
seeded noise of --seconds each (SGR, a two-way choice: a short answer, as most tasks). With P
processes on ONE GPU (the machine this ran on is named in the JSON, with its GPU count) the
processes share it: that measures overlap of host and device work, not multi-GPU scaling.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from amlib.data.audio import SAMPLE_RATE, write_audio
from amlib.data.manifest import write_manifest
from amlib.predictions import read_predictions


def make_items(root: Path, count: int, seconds: float) -> Path:
    rows = []
    for i in range(count):
        audio = f"audio/item{i:04d}.wav"
        wave = 0.05 * np.random.default_rng(i).standard_normal(int(seconds * SAMPLE_RATE))
        write_audio(root / audio, wave.astype(np.float32))
        rows.append({"id": f"item{i:04d}", "task": "SGR", "audio": audio, "duration_s": seconds,
                     "question": "Is the speaker male or female?", "choices": ["male", "female"], "answer": "A",
                     "source": "synthetic", "split": "test", "meta": {}})
    return write_manifest(root / "manifest.jsonl", rows)


def launch(procs: int, args, data: Path, out: Path) -> float:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
               "-m", "amlib", "eval", "--model", args.model, "--device", args.device, "--data", str(data),
               "--out", str(out)] + (["--dtype", args.dtype] if args.dtype else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // procs))}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="random-qwen2.5-omni-3b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--procs", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--items", type=int, default=24, help="N: launches run N and 2N items")
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import torch

    from amlib.efficiency import device_name

    work = Path(tempfile.mkdtemp(prefix="amlib-scaling-"))
    small, large = work / "small", work / "large"
    make_items(small, args.items, args.seconds)
    make_items(large, 2 * args.items, args.seconds)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    result = {"model": args.model, "device": device_name(args.device), "gpus_on_machine": gpus,
              "dtype": args.dtype, "items": args.items, "audio_seconds": args.seconds, "torch": torch.__version__,
              "note": ("processes share one GPU" if gpus == 1 and args.device.startswith("cuda") else
                       f"{gpus} GPUs" if gpus else "CPU processes (gloo)"),
              "rows": [], "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # one throw-away launch first: the first launch on a fresh machine also pays one-time costs (driver
    # start-up, file and kernel caches) that would otherwise fall into the N-item launch and not cancel
    warm = work / "warm"
    make_items(warm, 2, args.seconds)
    result["warm_up_launch_s"] = launch(1, args, warm, work / "out-warm")
    for procs in args.procs:
        wall_small = launch(procs, args, small, work / f"out-{procs}-small")
        wall_large = launch(procs, args, large, work / f"out-{procs}-large")
        if wall_large <= wall_small:
            raise RuntimeError(f"{procs} process(es): {2 * args.items} items took no longer than {args.items} "
                               f"({wall_large:.1f} s vs {wall_small:.1f} s): too few items to measure; raise --items")
        rows = read_predictions(next((work / f"out-{procs}-large").glob("*.jsonl")))
        errors = [r for r in rows if r.get("error")]
        if len(rows) != 2 * args.items or errors:
            raise RuntimeError(f"{procs} process(es): {len(rows)} rows, {len(errors)} errors "
                               f"(first: {errors[0]['error'] if errors else None})")
        result["rows"].append({"processes": procs, "wall_s_n": wall_small, "wall_s_2n": wall_large,
                               "items_per_s": args.items / (wall_large - wall_small),
                               "mean_prefill_s": sum(r["prefill_s"] for r in rows) / len(rows),
                               "mean_decode_s": sum(r["decode_s"] for r in rows) / len(rows),
                               "world_sizes_in_rows": sorted({r["provenance"]["world_size"] for r in rows})})
        base = result["rows"][0]["items_per_s"] / result["rows"][0]["processes"]
        for r in result["rows"]:
            r["scaling_efficiency"] = r["items_per_s"] / (r["processes"] * base)
        args.out.write_text(json.dumps(result, indent=1))  # what is measured so far survives a kill
        print(result["rows"][-1], flush=True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
