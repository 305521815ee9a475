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
