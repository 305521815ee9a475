"""amlib.plots: every value on its axes (negative WAR included), no legend entry without a drawn line,
coinciding lines told apart, no label outside the figure, a missing score marked, not drawn as 0."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from amlib.plots import (capability_radar, category_figure, drawn_legend_entries, eviction_memory_figure,
                         latency_tradeoff_figure, ratio_curve_figure, score_limits, task_scores_figure)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def shown_on(limits, value) -> bool:
    low, high = sorted(limits)
    return low < value < high


def reaches_beyond_the_figure(fig) -> bool:
    """True when something drawn (a title, tick or axis label, a legend) lies beyond the figure's edges,
    where the saved image cuts it."""
    fig.canvas.draw()
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # inches, every drawn artist
    return drawn.x0 < -0.01 or drawn.y0 < -0.01 or drawn.x1 > fig.get_figwidth() + 0.01 or drawn.y1 > fig.get_figheight() + 0.01


def task_scores(asr_score=-86.0):
    return pd.DataFrame({"score": [asr_score, 40.0], "ci_low": [-120.0, 20.0], "ci_high": [-50.0, 60.0],
                         "chance": [np.nan, 25.0]}, index=["ASR", "SGR"])


def test_a_negative_war_and_its_interval_are_on_the_axis():
    ax = task_scores_figure(task_scores(), "t").axes[0]
    assert shown_on(ax.get_ylim(), -86.0) and shown_on(ax.get_ylim(), -120.0) and shown_on(ax.get_ylim(), 60.0)
    assert not shown_on((0, 100), -86.0)  # the old fixed 0-100 axis: the bar was cut at 0
    assert score_limits([10.0, 90.0]) == (0.0, 100.0) and score_limits([np.nan, 20.0]) == (0.0, 100.0)


def test_no_legend_entry_for_a_chance_marker_that_is_not_drawn():
    asr_only = task_scores().loc[["ASR"]]
    labels = [t.get_text() for t in task_scores_figure(asr_only, "t").axes[0].get_legend().get_texts()]
    assert labels == ["score (95 % CI)"]
    assert "random choice" in [t.get_text() for t in task_scores_figure(task_scores(), "t").axes[0].get_legend().get_texts()]


def test_a_missing_score_is_marked_not_drawn_as_zero():
    fig = task_scores_figure(task_scores(asr_score=np.nan), "t")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["n/a"] and "no score" in fig.axes[0].get_title()
    assert [t.get_text() for t in task_scores_figure(task_scores(), "t").axes[0].texts] == []


def wide(rows):
    return pd.DataFrame({"Avg": [v for _, _, v in rows]}, index=pd.MultiIndex.from_tuples([(n, r) for n, r, _ in rows]))


def test_ratio_curves_list_only_drawn_lines_and_tell_coinciding_ones_apart():
    table = wide([("vanilla", 0.0, 50.0), ("frame", 0.5, 40.0), ("dart", 0.5, 40.0), ("fastv", 0.5, np.nan)])
    ax = ratio_curve_figure({"a": table}, "t").axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    drawn = {line.get_label() for line in ax.lines if np.isfinite(np.asarray(line.get_ydata(), float)).any()}
    assert set(labels) == drawn and "fastv" not in labels and "failed (no score)" in labels
    styles = {line.get_label(): (line.get_marker(), line.get_linestyle()) for line in ax.lines}
    assert styles["frame"] != styles["dart"]  # same values: apart by marker and line style
    # the wrong variant: a legend of every labelled artist lists a line that draws nothing
    fig, wrong = plt.subplots()
    wrong.plot([0.5], [np.nan], label="fastv")
    wrong.plot([0.5], [1.0], label="frame")
    assert wrong.get_legend_handles_labels()[1] == ["fastv", "frame"]
    assert drawn_legend_entries(wrong)[1] == ["frame"]


def test_coinciding_eviction_lines_are_told_apart():
    memory = pd.DataFrame({"press": ["vanilla", "knorm", "knorm", "snapkv", "snapkv"],
                           "ratio": [0.0, 0.5, 0.9, 0.5, 0.9], "kv_mb": [10.0, 5.0, 1.0, 5.0, 1.0]})
    ax = eviction_memory_figure(memory).axes[0]
    knorm, snapkv = (next(line for line in ax.lines if line.get_label() == p) for p in ("knorm", "snapkv"))
    assert list(knorm.get_ydata()) == list(snapkv.get_ydata())  # they coincide
    assert (knorm.get_marker(), knorm.get_linestyle()) != (snapkv.get_marker(), snapkv.get_linestyle())


def test_negative_capabilities_and_category_averages_stay_on_their_axes():
    caps = pd.DataFrame({"speech content": [-40.0, 30.0], "acoustic scene": [60.0, 55.0], "speaker": [20.0, 25.0]},
                        index=["vanilla", "frame"])
    radar = capability_radar(caps)
    assert radar.axes[0].get_ylim()[0] < -40.0
    averages = pd.DataFrame({"model": ["m", "m"], "group": ["this run", "this run"],
                             "category": ["Speech Content Reasoning", "Audio Event Understanding"],
                             "average": [-30.0, 50.0]})
    from amlib.tasks import CATEGORIES
    averages["category"] = [CATEGORIES[0], CATEGORIES[1]]
    assert category_figure(averages).axes[0].get_xlim()[0] < -30.0


def test_no_label_reaches_beyond_the_figure():
    caps = pd.DataFrame({"speech content": [40.0, 30.0], "acoustic scene": [60.0, 55.0], "speaker id": [20.0, 25.0]},
                        index=["vanilla", "frame"])
    scores = pd.DataFrame({"task": ["SGR"] * 3 + ["MC"] * 3, "method": ["vanilla", "frame", "frame"] * 2,
                           "prefill_s": [4.0, 2.0, 1.0] * 2, "score": [50.0, 45.0, -5.0] * 2})
    for fig in (capability_radar(caps), latency_tradeoff_figure(scores), task_scores_figure(task_scores(), "a title")):
        assert not reaches_beyond_the_figure(fig), fig.axes[0].get_title()
    # the wrong variant: without a layout engine, long tick labels run off the figure's left edge
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_yticks([0, 1], ["a long task category name", "another long name"])
    assert reaches_beyond_the_figure(fig)
