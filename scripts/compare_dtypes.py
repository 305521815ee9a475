"""float32 against bfloat16 for one model on one data set: do the scores move beyond their intervals?

The book evaluates in bfloat16 where the CPU computes it natively (prefill several times faster);
this script is the check behind that choice. It evaluates the same items in both dtypes (each into its
own predictions folder, resumable) and writes, per task, both scores with their 95 % intervals, whether
the intervals overlap, the share of identical answers and the mean prefill / decode seconds
(`amlib.report.compare_runs`), plus the run's provenance, to a JSON file the baseline page shows.

    .venv/bin/python scripts/compare_dtypes.py --data data/built/offline-test --limit '{"ASR": 5}' \
        --out results/dtype-check --json benchmarks/dtype_reference_cpu.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from amlib.efficiency import device_name
from amlib.reference.model import REFERENCE_MODEL
from amlib.report import compare_runs
from amlib.runner import run_eval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=REFERENCE_MODEL)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--limit", type=json.loads, default=None, help='items per task: 10, or {"ASR": 5} (JSON)')
    parser.add_argument("--out", type=Path, required=True, help="predictions folder (one subfolder per dtype)")
    parser.add_argument("--json", type=Path, required=True, help="where the comparison is written")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows, seconds = {}, {}
    for dtype in ("float32", "bfloat16"):
        start = time.perf_counter()
        rows[dtype] = run_eval(args.model, args.data, args.out / dtype, tasks=args.tasks, limit=args.limit,
                               seed=args.seed, dtype=dtype, progress=True)
        seconds[dtype] = time.perf_counter() - start
    table = compare_runs(rows["float32"], rows["bfloat16"], labels=("float32", "bfloat16"), seed=args.seed)
    prov = rows["bfloat16"][0]["provenance"]
    result = {
        "model": args.model, "model_revision": prov.get("model_revision"), "data": str(args.data),
        "limit": args.limit, "items": len(rows["bfloat16"]), "device": device_name("cpu"),
        "amlib_version": prov.get("amlib_version"), "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "wall_s_this_run": {k: round(v, 1) for k, v in seconds.items()},  # resumed rows cost nothing
        "tasks": json.loads(table.reset_index().to_json(orient="records")),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(table.to_string())


if __name__ == "__main__":
    main()
