"""Figures for the notebooks (matplotlib/seaborn); each returns the Figure so it can be glued."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd


def task_scores_figure(scores: pd.DataFrame, title: str) -> plt.Figure:
    """Per-task score with its 95 % CI, and the chance level of each choice task."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = range(len(scores))
    err = [scores["score"] - scores["ci_low"], scores["ci_high"] - scores["score"]]
    ax.bar(x, scores["score"], yerr=err, capsize=4, color="#4c72b0", label="score (95 % CI)")
    ax.scatter(x, scores["chance"], marker="_", s=600, color="#c44e52", zorder=3, label="random choice")
    ax.set_xticks(list(x), scores.index)
    ax.set_ylim(0, 100)
    ax.set_ylabel("macro-F1 / WAR (0-100)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def durations_figure(frame: pd.DataFrame, title: str = "Duration per subset") -> plt.Figure:
    """The paper's Figure 3: total duration (bars) and mean item length (dots) per task."""
    from amlib.tasks import TASK_ORDER

    tasks = [t for t in TASK_ORDER if t in set(frame["task"])]
    per = frame.groupby("task")["duration_s"].agg(["sum", "mean"]).reindex(tasks)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(tasks, per["sum"] / 60, color="#55a868", label="total (min)")
    ax.set_ylabel("total duration (min)")
    twin = ax.twinx()
    twin.plot(tasks, per["mean"], "o", color="#c44e52", label="mean item (s)")
    twin.set_ylabel("mean item length (s)")
    twin.set_ylim(0, max(320, float(per["mean"].max()) * 1.1))
    ax.set_title(title)
    fig.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def composition_figure(counts: pd.Series, title: str = "Task composition") -> plt.Figure:
    """The paper's Figure 4: share of questions per task, grouped by category (nested donut).

    `counts` is indexed by (category, task), e.g. `frame.groupby(["category", "task"]).size()`."""
    from amlib.tasks import CATEGORIES, TASK_ORDER

    cats = [c for c in CATEGORIES if c in counts.index.get_level_values(0)]
    inner = [counts[c].sum() for c in cats]
    outer_labels, outer = [], []
    for c in cats:
        for t in [t for t in TASK_ORDER if t in counts[c].index]:
            outer_labels.append(f"{t} {counts[c][t] / counts.sum():.0%}")
            outer.append(counts[c][t])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.pie(outer, labels=outer_labels, radius=1.0, wedgeprops=dict(width=0.3, edgecolor="w"), textprops={"fontsize": 8})
    ax.pie(inner, labels=[c.replace(" ", "\n") for c in cats], radius=0.7, labeldistance=0.45,
           wedgeprops=dict(width=0.3, edgecolor="w"), textprops={"fontsize": 7})
    ax.set_title(title)
    fig.tight_layout()
    return fig
