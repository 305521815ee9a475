"""The results overview (paper Tables 3 and Figure 8): every vanilla run of a predictions folder
scored beside the paper's rows, and the blind baseline (the audio replaced by silence)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from amlib.report.paper import paper_table
from amlib.report.runs import run_files
from amlib.report.scores import BESIDE_PAPER, random_baseline, score_table
from amlib.tasks import TASK_ORDER, get_task


PAPER_DATA = "the paper's data (AudioMarathon)"


def read_vanilla_runs(results_dir, samples=None, seed: int | None = 0) -> dict[str, list[dict]]:
    """The rows of every vanilla run in `results_dir` (`amlib.report.runs.run_files`: told apart by
    provenance, any model), keyed by run label (the model's name; "<model> seed<k>" when `seed` is
    None). With `samples`, each run keeps the rows of their ids only, and those rows must have been
    made from the same inputs (audio bytes, question, choices, answer: `amlib.runner.check_same_inputs`
    raises ValueError naming the file); runs left without rows are dropped."""
    from amlib.runner import check_same_inputs

    ids = {s.id for s in samples} if samples is not None else None
    runs = {}
    for path, rows in run_files(results_dir, kind="vanilla", seed=seed):
        prov = rows[0]["provenance"]
        if ids is not None:
            rows = [r for r in rows if r["id"] in ids]
            check_same_inputs(rows, list(samples), path)
        if rows:
            name = Path(str(prov.get("model"))).name
            runs[name if seed is not None else f"{name} seed{prov.get('seed')}"] = rows
    return runs


def overview_scores(runs: dict[str, list[dict]], seed: int = 0, n_resamples: int = 1000) -> pd.DataFrame:
    """Long table, one row per (run, task): the task's category, the score by our parser with its 95 %
    interval and method, n, unparsed answers, errors, chance, the score by the paper's parser
    (`score_released`: the paper's released parser and scoring, for Table 3 beside the paper's rows),
    and the run's model, device and dtype from its provenance."""
    parts = []
    for label, rows in runs.items():
        ours = score_table(rows, seed=seed, n_resamples=n_resamples, parser="ours")
        released = score_table(rows, seed=seed, n_resamples=n_resamples, parser="released", scoring="released")
        prov = rows[0]["provenance"]
        part = ours[["metric", "score", "ci_low", "ci_high", "ci_method", "n", "unparsed", "errors", "chance",
                     "error"]].copy()
        part.insert(0, "run", label)
        part.insert(1, "category", [get_task(t).category for t in part.index])
        part["score_released"] = released["score"]
        part["unparsed_released"] = released["unparsed"]  # why a released score of 0 is 0
        part = part.assign(model=prov.get("model"), device=prov.get("device"), dtype=prov.get("dtype"))
        parts.append(part.reset_index())
    if not parts:
        raise ValueError("no runs to score")
    return pd.concat(parts, ignore_index=True)


def table3_overview(scores: pd.DataFrame, data_label: str) -> pd.DataFrame:
    """Table 3's layout: one row per run of `overview_scores` (on `data_label`) above the paper's rows
    (on its data), both parsed and scored as the paper's released scripts do ("score_released"), the ten tasks as columns in paper order (NaN where
    a row has no score; a task whose rows all failed is NaN too), Avg = mean over the tasks the row
    has (NaN for a run with a failed task: it would average unlike sets), n_tasks = how many;
    `attrs["failed_tasks"]`: run -> its failed tasks."""
    tasks = list(TASK_ORDER)
    runs = list(dict.fromkeys(scores["run"]))
    ours = scores.pivot(index="run", columns="task", values="score_released").reindex(index=runs, columns=tasks)
    ours = ours.assign(group="this run", data=data_label, parser=BESIDE_PAPER)
    paper = paper_table("table3_baseline").set_index("model")
    paper = paper[tasks].assign(group="paper: " + paper["group"], data=PAPER_DATA, parser=BESIDE_PAPER)
    table = pd.concat([ours, paper])
    failed = scores[scores["errors"] == scores["n"]].groupby("run")["task"].agg(list).to_dict()
    table["Avg"] = table[tasks].mean(axis=1).where([model not in failed for model in table.index])
    table["n_tasks"] = table[tasks].notna().sum(axis=1)
    table.attrs["failed_tasks"] = failed  # read by category_averages
    table.index.name = "model"
    return table[["group", "data", "parser", *tasks, "Avg", "n_tasks"]]


def interval_cells(scores: pd.DataFrame) -> pd.DataFrame:
    """`overview_scores` as text cells "score [ci_low, ci_high] n=N", runs as rows, tasks as columns."""
    cells = scores.assign(cell=[f"{s:.1f} [{lo:.1f}, {hi:.1f}] n={n}" for s, lo, hi, n in
                                zip(scores["score"], scores["ci_low"], scores["ci_high"], scores["n"])])
    wide = cells.pivot(index="run", columns="task", values="cell")
    return wide.reindex(index=list(dict.fromkeys(scores["run"])), columns=[t for t in TASK_ORDER if t in wide.columns])


def category_averages(table: pd.DataFrame) -> pd.DataFrame:
    """Figure 8: for each row of a table with task columns (e.g. `table3_overview`), the mean score of
    each category's tasks (`amlib.tasks.CATEGORY_TASKS`) that the row has (the paper's human row has
    no ASR; NaN where a task of the category failed, `table.attrs["failed_tasks"]`); long: model,
    group, category, average, tasks (those averaged), n_tasks."""
    from amlib.tasks import CATEGORY_TASKS

    failed = table.attrs.get("failed_tasks", {})
    out = []
    for model, row in table.iterrows():
        for category, tasks in CATEGORY_TASKS.items():
            have = [t for t in tasks if t in table.columns and pd.notna(row[t])]
            if set(tasks) & set(failed.get(model, ())):  # a failed task: no average, not the others'
                have = []
            out.append({"model": model, "group": row.get("group"), "category": category,
                        "average": float(np.mean([row[t] for t in have])) if have else np.nan,
                        "tasks": " ".join(have), "n_tasks": len(have)})
    return pd.DataFrame(out)


def blind_flags(table: pd.DataFrame) -> pd.DataFrame:
    """Add the blind baseline's flags to a table with audio_/blind_ score intervals and `chance`:
    blind_above_chance (the blind interval lies above chance: the question, options or the model's
    prior give answers away; None where the task has no chance level: ASR) and audio_above_blind (the
    audio interval lies above the blind one: the audio helped)."""
    no_chance = table["chance"].isna()
    table = table.copy()
    table["blind_above_chance"] = (table["blind_ci_low"] > table["chance"]).astype(object).where(~no_chance, None)
    table["audio_above_blind"] = (table["audio_ci_low"] > table["blind_ci_high"]).astype(object)
    return table


def _paired_rows(audio_rows: list[dict], blind_rows: list[dict]) -> list[dict]:
    """The audio run's rows of the blind run's items, in the blind run's order; the two rows of an id
    must share task, question, choices and answer (their audio differs by design)."""
    real = {r["id"]: r for r in audio_rows}
    missing = [r["id"] for r in blind_rows if r["id"] not in real]
    if missing:
        raise ValueError(f"{len(missing)} item(s) of the blind run have no row in the audio run, e.g. {missing[:3]}")
    keys = ("task", "question_sha256", "choices_sha256", "answer_sha256")
    for row in blind_rows:
        a, b = real[row["id"]].get("input_fingerprint") or {}, row.get("input_fingerprint") or {}
        differs = [k for k in keys if a.get(k) != b.get(k)]
        if differs:
            raise ValueError(f"item {row['id']!r}: the blind and the audio rows differ in {', '.join(differs)}")
    return [real[r["id"]] for r in blind_rows]


def _check_same_model(audio_rows: list[dict], blind_rows: list[dict]) -> None:
    """The blind run must be the audio run's model with its prompts and parser (ValueError otherwise);
    another dtype is allowed (e.g. a float32 baseline file, a bfloat16 blind run) but warned about."""
    import warnings

    def settings(rows, keys):
        return {key: sorted({str((r.get("provenance") or {}).get(key)) for r in rows}) for key in keys}

    keys = ("model", "model_revision", "prompt_version", "parser_version")
    audio, blind = settings(audio_rows, keys + ("dtype",)), settings(blind_rows, keys + ("dtype",))
    differs = [f"{k} {audio[k]} vs {blind[k]}" for k in keys if audio[k] != blind[k]]
    if differs:
        raise ValueError(f"the audio and blind runs differ in {'; '.join(differs)}: compare one model with itself")
    if audio["dtype"] != blind["dtype"]:
        warnings.warn(f"the audio run was made in {audio['dtype']}, the blind run in {blind['dtype']}: "
                      "part of a score difference may come from the dtype", stacklevel=3)


def blind_report(audio_rows: list[dict], blind_rows: list[dict], blind_samples, seed: int = 0,
                 guessers: int = 100, n_resamples: int = 1000) -> pd.DataFrame:
    """Per task, on the items of the blind run (the audio replaced by silence of the same length,
    `amlib.data.blind.silent_copy`): the score with the audio and without (our parser, 95 % intervals),
    n, unparsed blind answers, the chance level (`random_baseline` on these items: mean and sd of
    `guessers` seeded guessers' macro-F1), audio minus blind, the flags of `blind_flags`, and the share
    of items whose blind prompt had exactly as many audio tokens as the real one (`same_audio_tokens_pct`).
    Both runs must come from one model with the same prompts and parser (ValueError otherwise)."""
    paired = _paired_rows(audio_rows, blind_rows)
    _check_same_model(paired, blind_rows)
    audio = score_table(paired, seed=seed, n_resamples=n_resamples)
    blind = score_table(blind_rows, seed=seed, n_resamples=n_resamples)
    ids = {r["id"] for r in blind_rows}
    chance = random_baseline([s for s in blind_samples if s.id in ids], guessers=guessers, seed=seed)
    chance = chance.set_index("task").reindex(blind.index)
    table = pd.DataFrame({
        "metric": blind["metric"], "n": blind["n"],
        "audio_score": audio["score"], "audio_ci_low": audio["ci_low"], "audio_ci_high": audio["ci_high"],
        "blind_score": blind["score"], "blind_ci_low": blind["ci_low"], "blind_ci_high": blind["ci_high"],
        "blind_unparsed": blind["unparsed"], "blind_errors": blind["errors"],
        "chance": chance["macro_f1_mean"], "chance_sd": chance["macro_f1_sd"],
    })
    table["audio_minus_blind"] = table["audio_score"] - table["blind_score"]
    tokens = pd.DataFrame({"task": [r["task"] for r in blind_rows],
                           "same": [a.get("audio_tokens") is not None and a.get("audio_tokens") == b.get("audio_tokens")
                                    for a, b in zip(paired, blind_rows)]})
    table["same_audio_tokens_pct"] = 100 * tokens.groupby("task")["same"].mean().reindex(table.index)
    return blind_flags(table)
