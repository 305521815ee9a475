"""Figures for the notebooks (matplotlib/seaborn); each returns the Figure so it can be glued."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd

# lines that coincide (methods or presses with the same values) stay apart by marker and line style
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
LINESTYLES = ("-", "--", "-.", ":")
NO_SCORE_LABEL = "no score (every item failed)"


def line_style(k: int) -> dict:
    """The k-th series' marker and line style: distinct for up to 10 series, marker sizes shrinking so
    coinciding markers show one inside the other."""
    return {"marker": MARKERS[k % len(MARKERS)], "linestyle": LINESTYLES[k % len(LINESTYLES)],
            "ms": 8 - 0.5 * (k % 6)}


def score_limits(values, top: float = 100.0, margin: float = 5.0) -> tuple[float, float]:
    """Axis limits for scores on 0-100 that show every value: below 0 where one is (WAR is negative when
    a model inserts more words than the reference has), above `top` where one is. NaN ignored."""
    finite = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    low = min([0.0] + finite)
    high = max([top] + finite)
    return (low - margin if low < 0 else 0.0), (high + margin if high > top else top)


def drawn_legend_entries(ax: plt.Axes) -> tuple[list, list]:
    """The axes' legend handles and labels, without those of artists that draw nothing (all NaN)."""
    import numpy as np

    handles, labels = [], []
    for handle, label in zip(*ax.get_legend_handles_labels()):
        data = handle.get_ydata() if hasattr(handle, "get_ydata") else None
        if data is not None and not np.isfinite(np.asarray(data, dtype=float)).any():
            continue
        handles.append(handle)
        labels.append(label)
    return handles, labels


def task_scores_figure(scores: pd.DataFrame, title: str) -> plt.Figure:
    """Per-task score with its 95 % CI, and the chance level of each choice task."""
    fig, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
    x = list(range(len(scores)))
    err = [scores["score"] - scores["ci_low"], scores["ci_high"] - scores["score"]]
    ax.bar(x, scores["score"], yerr=err, capsize=4, color="#4c72b0", label="score (95 % CI)")
    if scores["chance"].notna().any():  # no legend entry for a marker that is not drawn
        ax.scatter(x, scores["chance"], marker="_", s=600, color="#c44e52", zorder=3, label="random choice")
    low, high = score_limits(list(scores["score"]) + list(scores["ci_low"]) + list(scores["ci_high"]))
    ax.set_ylim(low, high)
    if low < 0:
        ax.axhline(0, color="#999999", lw=0.8)
    failed = [i for i, v in zip(x, scores["score"]) if pd.isna(v)]
    for i in failed:  # a missing bar is not a zero
        ax.text(i, 0.02, "n/a", ha="center", va="bottom", fontsize=8, transform=ax.get_xaxis_transform())
    ax.set_xticks(x, scores.index)
    ax.set_ylabel("macro-F1 / WAR (0-100)")
    ax.set_title(title + (f"\nn/a: {NO_SCORE_LABEL}" if failed else ""))
    ax.legend(*drawn_legend_entries(ax), loc="upper right", fontsize=8)
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


METHOD_COLORS = {"vanilla": "#333333", "random": "#8172b3", "fastv": "#dd8452", "dart": "#55a868", "frame": "#4c72b0"}


def latency_tradeoff_figure(scores: pd.DataFrame, title: str = "Score vs prefill latency") -> plt.Figure:
    """The paper's Figures 5, 10 and 11: per task, score against mean prefill seconds; one line per
    method through its ratios, vanilla as a black star."""
    tasks = list(dict.fromkeys(scores["task"]))
    cols = min(4, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows + 0.5), squeeze=False, layout="constrained")
    methods = [m for m in dict.fromkeys(scores["method"]) if m != "vanilla"]
    legend: dict[str, object] = {}
    for ax, task in zip(axes.flat, tasks):
        part = scores[scores["task"] == task]
        for method, m in part.groupby("method"):
            m = m.sort_values("prefill_s")
            if method == "vanilla":
                ax.scatter(m["prefill_s"], m["score"], marker="*", s=120, color=METHOD_COLORS["vanilla"], label="vanilla", zorder=3)
            else:
                ax.plot(m["prefill_s"], m["score"], color=METHOD_COLORS.get(method), label=method,
                        **line_style(methods.index(method)))
        ax.set_title(task)
        ax.set_xlabel("prefill (s)")
        ax.set_ylabel("score")
        legend.update({label: handle for handle, label in zip(*drawn_legend_entries(ax))})
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle(title)
    return fig


def speedup_figure(speedups: pd.DataFrame, title: str = "Prefill speed-up over vanilla") -> plt.Figure:
    """The paper's Figures 6, 12 and 13: prefill speed-up (vanilla / method) per method and ratio,
    `speedups` with columns method, ratio, speedup (and optionally bound: the LM FLOP bound)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ratios = sorted(speedups["ratio"].unique())
    methods = [m for m in METHOD_COLORS if m in set(speedups["method"]) and m != "vanilla"]
    width = 0.8 / max(1, len(methods))
    for j, method in enumerate(methods):
        part = speedups[speedups["method"] == method].set_index("ratio").reindex(ratios)
        ax.bar([i + j * width for i in range(len(ratios))], part["speedup"], width, color=METHOD_COLORS[method], label=method)
    if "bound" in speedups:
        bound = speedups.groupby("ratio")["bound"].first().reindex(ratios)
        ax.scatter([i + 0.4 - width / 2 for i in range(len(ratios))], bound, marker="_", s=900, color="#c44e52",
                   label="LM FLOP bound", zorder=3)
    ax.axhline(1.0, color="#999999", lw=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(ratios))], [f"{r:g}" for r in ratios])
    ax.set_xlabel("pruning ratio")
    ax.set_ylabel("speed-up (x)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def capability_radar(caps: pd.DataFrame, title: str = "Six capabilities") -> plt.Figure:
    """The paper's Figure 9: one polygon per method over the capabilities (0-100)."""
    import numpy as np

    labels = list(caps.columns)
    angles = np.linspace(0, 2 * np.pi, len(labels), endpoint=False).tolist()
    fig, ax = plt.subplots(figsize=(5.6, 5), subplot_kw={"polar": True}, layout="constrained")
    for k, (method, row) in enumerate(caps.iterrows()):
        values = row.tolist()
        ax.plot(angles + angles[:1], values + values[:1], color=METHOD_COLORS.get(method), label=method, **line_style(k))
        ax.fill(angles + angles[:1], values + values[:1], color=METHOD_COLORS.get(method), alpha=0.08)
    ax.set_xticks(angles, [label.replace(" ", "\n") for label in labels], fontsize=7)
    ax.set_ylim(*score_limits(caps.to_numpy().ravel()))  # a negative capability (WAR) stays on the chart
    ax.set_title(title)
    fig.legend(*drawn_legend_entries(ax), loc="outside right upper", fontsize=7)
    return fig


def eviction_memory_figure(memory: pd.DataFrame, value: str = "kv_mb", title: str = "KV cache after prefill",
                           ylabel: str = "KV cache (MB)") -> plt.Figure:
    """Figure 7: `value` (KV-cache MB, or peak memory) per press against the compression ratio,
    vanilla as a dashed line. `memory`: rows with press, ratio and `value` (one protocol)."""
    fig, ax = plt.subplots(figsize=(6, 3.4), layout="constrained")
    vanilla = memory[memory["press"] == "vanilla"]
    for k, (press, part) in enumerate(memory[memory["press"] != "vanilla"].groupby("press")):
        part = part.sort_values("ratio")
        ax.plot(part["ratio"], part[value], label=press, **line_style(k))  # presses often coincide
    if not vanilla.empty:
        ax.axhline(float(vanilla[value].iloc[0]), color="grey", linestyle="--", label="vanilla")
    ax.set_xlabel("compression ratio (share of KV pairs evicted)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(*drawn_legend_entries(ax), fontsize=8)
    return fig


def category_figure(averages: pd.DataFrame, title: str = "Average score per task category") -> plt.Figure:
    """The paper's Figure 8: one group of bars per model, one bar per task category, from
    `amlib.report.category_averages` (columns model, group, category, average). Rows of this run
    (group "this run") are labelled in bold; when they come first, a dashed line parts them from the rest."""
    import seaborn as sns

    from amlib.tasks import CATEGORIES

    models = list(dict.fromkeys(averages["model"]))
    ours = set(averages.loc[averages["group"] == "this run", "model"])
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.42 * len(models)))
    sns.barplot(data=averages, y="model", x="average", hue="category", order=models, orient="h", ax=ax,
                hue_order=[c for c in CATEGORIES if c in set(averages["category"])],
                palette=dict(zip(CATEGORIES, ["#4c72b0", "#55a868", "#c44e52"])))
    for label in ax.get_yticklabels():
        if label.get_text() in ours:
            label.set_fontweight("bold")
    if ours and len(ours) < len(models) and set(models[:len(ours)]) == ours:  # this run's rows come first
        ax.axhline(len(ours) - 0.5, color="#999999", linestyle="--", lw=0.8)
    low, high = score_limits(averages["average"])
    ax.set_xlim(low, high)  # a negative average (WAR below 0) keeps its bar
    if low < 0:
        ax.axvline(0, color="#999999", lw=0.8)
    ax.set_xlabel("mean score of the category's tasks (macro-F1; WAR for ASR)")
    ax.set_ylabel("")
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    ax.get_legend().remove()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1))  # room for the legend below
    return fig


FAILED_LABEL = "failed (no score)"


def _mark_failed(ax: plt.Axes, ratios: list[float], color: str | None) -> None:
    """Configurations without a score (every row of a task failed; NaN, never 0): an "x" at their
    ratio on the bottom edge of the panel, labelled once per panel."""
    if not ratios:
        return
    labelled = FAILED_LABEL in ax.get_legend_handles_labels()[1]
    ax.plot(ratios, [0.02] * len(ratios), "x", ms=7, mew=2, color=color, transform=ax.get_xaxis_transform(),
            clip_on=False, label=None if labelled else FAILED_LABEL)


def ratio_curve_figure(tables: dict[str, pd.DataFrame], title: str, xlabel: str = "ratio removed") -> plt.Figure:
    """The headline curves of a pruning or eviction grid, one panel per table: the average score over
    tasks ("Avg") against the ratio, one line per method or press starting from vanilla's score at 0,
    vanilla dashed. A configuration without an average (a task failed: NaN) is left out of its
    line and marked by an "x" on the panel's bottom edge, "failed (no score)", never drawn as 0.
    `tables`: panel title -> `pruning_table` or `eviction_table` (index (name, ratio))."""
    fig, axes = plt.subplots(1, len(tables), figsize=(5.2 * len(tables), 3.4), squeeze=False, sharey=True,
                             layout="constrained")
    for ax, (panel, wide) in zip(axes.flat, tables.items()):
        names = list(dict.fromkeys(wide.index.get_level_values(0)))
        vanilla = float(wide.loc["vanilla", "Avg"].iloc[0]) if "vanilla" in names else None
        if vanilla is not None and pd.notna(vanilla):
            ax.axhline(vanilla, color=METHOD_COLORS["vanilla"], ls="--", lw=1, label="vanilla")
        elif vanilla is not None:  # vanilla failed: no line to start from
            _mark_failed(ax, [0.0], METHOD_COLORS["vanilla"])
            vanilla = None
        for k, name in enumerate(n for n in names if n != "vanilla"):
            part = wide.loc[name, "Avg"].sort_index()
            x, y = list(part.index), list(part.values)
            _mark_failed(ax, [r for r, v in zip(x, y) if pd.isna(v)], METHOD_COLORS.get(name))
            if part.isna().all():  # nothing to draw: its failures are marked, no empty legend entry
                continue
            if vanilla is not None:
                x, y = [0.0] + x, [vanilla] + y
            ax.plot(x, y, color=METHOD_COLORS.get(name), label=name, **line_style(k))
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.legend(*drawn_legend_entries(ax), fontsize=7, ncol=2)
    axes.flat[0].set_ylabel("average score over tasks")
    fig.suptitle(title, fontsize=10)
    return fig
