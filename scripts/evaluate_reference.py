"""The reference model's record on a test split: every item with the audio, the choice items again with
the audio replaced by silence (blind baseline), and ASR split into TTS and real-speech items.

    python scripts/evaluate_reference.py --data data/built/offline-test-20 --out results/reference-test \\
        --dtype bfloat16 [--tasks SCR SER ...]

`--tasks SCR SER ...` evaluates those tasks only (the prediction folders are resumable: a later run with
more tasks, or none named, computes only what is missing; e.g. the choice tasks first, then the costly
ASR items). Writes and prints `<out>/summary.json` (score, 95 % CI, chance, score / chance, blind score)
beside the two resumable prediction folders. Run it once per set of weights, after they are committed:
it decides nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from amlib.data import read_manifest
from amlib.data.blind import silent_copy
from amlib.metrics.war import word_accuracy_rate as war
from amlib.report import score_table
from amlib.runner import run_eval
from amlib.reference.model import REFERENCE_MODEL


def real_speech_ids(samples) -> set[str]:
    """ASR items read by a real (recorded) speaker: the builders list them in meta["assets"]["real_speakers"]."""
    return {s.id for s in samples if s.task == "ASR" and s.meta.get("assets", {}).get("real_speakers")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tasks", nargs="*", default=None, help="task codes (default: all ten)")
    args = ap.parse_args()
    every = read_manifest(args.data)
    samples = [s for s in every if args.tasks is None or s.task in args.tasks]
    rows = run_eval(REFERENCE_MODEL, args.data, args.out / "audio", tasks=args.tasks, dtype=args.dtype,
                    device=args.device)
    choice = [s for s in every if s.task != "ASR"]  # the silent copy: always all of them
    silent_copy(choice, args.out / "blind-data")
    blind_tasks = None if args.tasks is None else [t for t in args.tasks if t != "ASR"]
    blind_rows = run_eval(REFERENCE_MODEL, args.out / "blind-data", args.out / "blind", tasks=blind_tasks,
                          dtype=args.dtype, device=args.device) if blind_tasks != [] else []
    table = score_table(rows)  # indexed by task
    blind = score_table(blind_rows) if blind_rows else pd.DataFrame()
    real = real_speech_ids(samples)
    asr = [r for r in rows if r["task"] == "ASR"]
    per_item = {r["id"]: war([r["answer"]], [r["prediction"] or ""]) for r in asr}
    out = {"model": REFERENCE_MODEL, "revision": rows[0]["provenance"]["model_revision"], "dtype": args.dtype,
           "device": rows[0]["provenance"].get("device"), "data": str(args.data), "items": len(rows), "tasks": {}}
    for task, row in table.iterrows():
        entry = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.to_dict().items()}
        if task in blind.index:
            entry["blind_score"] = float(blind.loc[task, "score"])
            entry["blind_ci"] = [float(blind.loc[task, "ci_low"]), float(blind.loc[task, "ci_high"])]
        out["tasks"][task] = entry
    tts = [r for r in asr if r["id"] not in real]
    spoken = [r for r in asr if r["id"] in real]
    out["asr_tts_war"] = war([r["answer"] for r in tts], [r["prediction"] or "" for r in tts]) if tts else None
    out["asr_real_war"] = war([r["answer"] for r in spoken], [r["prediction"] or "" for r in spoken]) if spoken else None
    out["asr_per_item_war"] = per_item
    out["asr_real_ids"] = sorted(real)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(out, indent=1, default=float))
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
