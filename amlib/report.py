"""Scores per task from prediction rows, and the paper's own tables for side-by-side comparison.

The paper's tables (transcribed to CSV, shipped in `amlib/paper/tables/`) are comparison material
only, never results of this project.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from amlib.metrics import macro_f1, score_task
from amlib.tasks import TASK_ORDER, get_task


def paper_table(name: str) -> pd.DataFrame:
    """One of the paper's tables, e.g. "table3_baseline" (see amlib/paper/tables/)."""
    path = resources.files("amlib.paper") / "tables" / f"{name}.csv"
    if not path.is_file():
        known = sorted(p.name[:-4] for p in (resources.files("amlib.paper") / "tables").iterdir())
        raise FileNotFoundError(f"no paper table {name!r}; known: {', '.join(known)}")
    with path.open() as fh:
        return pd.read_csv(fh)


def chance_macro_f1(truth: list[str], labels: list[str], seed: int = 0, draws: int = 200) -> float:
    """Expected macro-F1 of a uniform random guesser on these very labels (Monte Carlo, seeded)."""
    rng = np.random.default_rng(seed)
    guesses = rng.choice(labels, size=(draws, len(truth)))
    return float(np.mean([macro_f1(truth, list(g), labels) for g in guesses]))


def score_table(rows: list[dict], seed: int = 0, n_resamples: int = 1000) -> pd.DataFrame:
    """One row per task: score, 95 % CI, accuracy, n, unparsed answers, errors and chance level."""
    frame = pd.DataFrame(rows)
    out = []
    for task in [t for t in TASK_ORDER if t in set(frame["task"])]:
        spec, part = get_task(task), frame[frame["task"] == task]
        truth, pred = part["answer"].tolist(), [p if isinstance(p, str) else None for p in part["parsed"]]
        scored = score_task(spec, truth, pred, seed=seed, n_resamples=n_resamples)
        chance = chance_macro_f1(truth, list(spec.letters), seed) if spec.is_choice else np.nan
        out.append({"task": task, **scored, "errors": int(part["error"].notna().sum()), "chance": chance})
    return pd.DataFrame(out).set_index("task")


def beside_paper(scores: pd.DataFrame, label: str, paper: str = "table3_baseline") -> pd.DataFrame:
    """Our per-task scores as one row on top of the paper's rows (tasks as columns, paper order)."""
    table = paper_table(paper).set_index("model")
    tasks = [t for t in TASK_ORDER if t in table.columns]
    ours = pd.DataFrame([scores["score"].reindex(tasks)], index=[label])
    return pd.concat([ours, table[tasks]]).round(1)


def manifest_frame(samples) -> pd.DataFrame:
    """Samples (from read_manifest) as a frame with the task's category and domain added."""
    frame = pd.DataFrame([s.to_json() for s in samples])
    frame["category"] = [get_task(t).category for t in frame["task"]]
    frame["domain"] = [get_task(t).domain for t in frame["task"]]
    return frame


def composition_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Table 5's shape: questions per task and source, with hours and durations, ours beside the paper's."""
    ours = (frame.groupby(["task", "category", "source"])["duration_s"]
            .agg(questions="count", hours=lambda d: d.sum() / 3600, mean_s="mean", min_s="min", max_s="max")
            .reset_index())
    paper = paper_table("table5_composition").rename(columns={"source": "paper_source", "questions": "paper_questions"})
    table = ours.merge(paper[["task", "paper_source", "paper_questions"]], on="task", how="left")
    order = {t: i for i, t in enumerate(TASK_ORDER)}
    return table.sort_values("task", key=lambda s: s.map(order)).reset_index(drop=True)


def benchmark_row(frame: pd.DataFrame, name: str) -> dict:
    """Our data set as a row of the paper's Table 1 (hours, size, domains covered, mean duration)."""
    domains = set(frame["domain"])
    return {"benchmark": name, "hours": round(frame["duration_s"].sum() / 3600, 2), "size": str(len(frame)),
            "speech": int("speech" in domains), "sound": int("sound" in domains), "music": int("music" in domains),
            "avg_duration_s": round(float(frame["duration_s"].mean()), 1)}


def benchmarks_table(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The paper's Table 1 with our row appended."""
    paper = paper_table("table1_benchmarks")
    return pd.concat([paper, pd.DataFrame([benchmark_row(frame, name)])], ignore_index=True)
