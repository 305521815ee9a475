"""Step 6: balanced counts per task and class, the manifest, stats.json and the review sheet.

Builders put each item's class name in `meta["label"]` (the true option's text); balancing
downsamples every class of a task to the same count (seeded) and reports what it removed. What a
"class" is comes from the task (`TaskSpec.balance_by`): the label, the answer letter (tasks whose
options are free text, SCR and SER), or nothing (ASR).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from amlib.data.manifest import write_manifest
from amlib.data.review import write_review_sheet
from amlib.tasks import get_task


def _class_of(row: dict) -> str:
    how = get_task(row["task"]).balance_by
    if how == "label":
        return str(row["meta"].get("label", ""))
    return row["answer"] if how == "answer" else ""


def balance(rows: list[dict], per_task: int | None, seed: int = 0) -> tuple[list[dict], dict]:
    """Keep up to `per_task` items per task with equal counts per class; return (rows, removed counts)."""
    rng = np.random.default_rng(seed)
    by_task: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_task[row["task"]].append(row)
    kept, removed = [], {}
    for task, items in by_task.items():
        classes: dict[str, list[dict]] = defaultdict(list)
        for row in items:
            classes[_class_of(row)].append(row)
        k = len(classes)
        cap = min(len(c) for c in classes.values())
        if per_task is not None:
            if per_task < k:
                raise ValueError(f"{task}: per_task={per_task} is below its {k} classes; balancing would keep nothing")
            cap = min(cap, per_task // k)
        chosen = []
        for label in sorted(classes):
            group = classes[label]
            idx = sorted(rng.choice(len(group), size=cap, replace=False))
            chosen += [group[i] for i in idx]
        chosen.sort(key=lambda r: r["id"])
        kept += chosen
        removed[task] = len(items) - len(chosen)
    return kept, removed


def dataset_stats(rows: list[dict]) -> dict:
    frame = pd.DataFrame([{"task": r["task"], "source": r["source"], "duration_s": r["duration_s"]} for r in rows])

    def describe(part: pd.DataFrame) -> dict:
        d = part["duration_s"]
        return {"items": int(len(d)), "hours": round(float(d.sum()) / 3600, 4), "mean_s": round(float(d.mean()), 2),
                "min_s": round(float(d.min()), 2), "max_s": round(float(d.max()), 2)}

    return {
        "total": describe(frame),
        "per_task": {t: describe(p) for t, p in frame.groupby("task")},
        "per_source": {s: describe(p) for s, p in frame.groupby("source")},
    }


def finalize(out_dir: str | Path, rows: list[dict], per_task: int | None = None, seed: int = 0,
             balance_classes: bool = True, review: bool = True) -> dict:
    """Balance, write manifest.jsonl (validated), stats.json and review.html; return the stats."""
    out_dir = Path(out_dir)
    removed: dict = {}
    if balance_classes:
        kept, removed = balance(rows, per_task, seed)
        kept_ids = {r["id"] for r in kept}
        for row in rows:  # audio of items left out by balancing is not kept on disk
            if row["id"] not in kept_ids:
                (out_dir / row["audio"]).unlink(missing_ok=True)
        rows = kept
    write_manifest(out_dir / "manifest.jsonl", rows)
    stats = {**dataset_stats(rows), "removed_by_balancing": removed}
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=1))
    if review:
        write_review_sheet(out_dir, seed=seed)
    return stats
