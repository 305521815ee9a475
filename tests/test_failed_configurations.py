"""A configuration that could not run is "failed" (NaN with its error named), never a score of 0;
a partly failed one shows its error count beside its score. Expected values are worked out by hand
in the comments; each test also runs a wrong variant (errors read as unparsed answers, scoring 0)
through the same check and shows it failing."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from amlib.plots import FAILED_LABEL, ratio_curve_figure
from amlib.report import (capability_scores, category_averages, eviction_scores, eviction_table, pruning_scores,
                          pruning_table, score_table, table3_overview)

OOM = "CUDA out of memory"
CHOICES = ["rock", "jazz", "pop", "folk"]


def mc_row(i, method="vanilla", ratio=None, press=None, error=None, prediction=None):
    answer = "ABCD"[i % 4]
    return {"id": f"MC-{i}", "task": "MC", "answer": answer, "choices": CHOICES, "error": error,
            "prediction": None if error else (prediction or answer), "prefill_s": 1.0, "decode_s": 0.1,
            "audio_tokens": 100, "new_tokens": 1, "peak_memory_mb": 10.0,
            "provenance": {"model": "m", "method": method, "ratio": ratio, "press": press, "seed": 0,
                           "protocol": "query_aware" if press else None, "layer": 2}}


def grid():
    """vanilla: 4 right answers; frame 0.5: every row failed; frame 0.9: rows 2 and 3 failed."""
    vanilla = [mc_row(i) for i in range(4)]
    dead = [mc_row(i, "frame", 0.5, error=OOM) for i in range(4)]
    partly = [mc_row(i, "frame", 0.9, error=OOM if i >= 2 else None) for i in range(4)]
    return [vanilla, dead, partly]


def errors_as_unparsed(runs):
    """The wrong variant: error rows kept as unparsed answers and scored (what amlib did before)."""
    rows = [[{**r, "error": None} for r in run] for run in runs]
    return pruning_scores(rows)


def problems(scores: pd.DataFrame) -> list[str]:
    """What a correct long table must show for `grid()` (worked out by hand)."""
    by = scores.set_index(["method", "ratio"])
    found = []
    if not np.isnan(by.loc[("frame", 0.5), "score"]):
        found.append(f"a failed configuration scored {by.loc[('frame', 0.5), 'score']}")
    if by.loc[("frame", 0.5), "error"] != OOM if "error" in by else True:
        found.append("the failed configuration's error is not named")
    # frame 0.9: truth A B C D, answers A B + two errors (wrong): F1 per class 1, 1, 0, 0 -> 50
    if by.loc[("frame", 0.9), "score"] != pytest.approx(50.0):
        found.append(f"partly failed score {by.loc[('frame', 0.9), 'score']} != 50")
    if by.loc[("frame", 0.9), "errors"] != 2 if "errors" in by else True:
        found.append("the error count of the partly failed configuration is missing")
    return found


def test_a_configuration_whose_rows_all_failed_has_no_score_and_names_its_error():
    scores = pruning_scores(grid())
    assert problems(scores) == []
    assert scores.set_index(["method", "ratio"]).loc[("frame", 0.5), "failed"]
    assert not scores.set_index(["method", "ratio"]).loc[("frame", 0.9), "failed"]
    wrong = errors_as_unparsed(grid())
    assert wrong.set_index(["method", "ratio"]).loc[("frame", 0.5), "score"] == 0.0  # the old reading
    assert problems(wrong) != []


def test_score_table_leaves_a_task_that_never_ran_without_score():
    rows = [mc_row(i, error=OOM) for i in range(4)]
    table = score_table(rows, n_resamples=50)
    assert np.isnan(table.loc["MC", ["score", "ci_low", "ci_high", "accuracy"]].astype(float)).all()
    assert (table.loc["MC", "errors"], table.loc["MC", "error"]) == (4, OOM)
    wrong = score_table([{**r, "error": None} for r in rows], n_resamples=50)
    assert wrong.loc["MC", "score"] == 0.0 and wrong.loc["MC", "error"] is None


def test_pruning_table_average_and_capabilities_show_the_failure():
    table = pruning_table(pruning_scores(grid()))
    assert np.isnan(table.loc[("frame", 0.5), "MC"]) and np.isnan(table.loc[("frame", 0.5), "Avg"])
    assert table.loc[("frame", 0.5), "failed"] == f"MC: {OOM}"
    assert table.loc[("frame", 0.9), ["MC", "Avg", "errors", "failed"]].tolist() == [50.0, 50.0, 2, ""]
    assert table.loc[("vanilla", 0.0), ["MC", "errors"]].tolist() == [100.0, 0]
    # the capability of MC (with SED) is unknown at 0.5, and frame's best ratio is 0.9's 50
    caps = capability_scores(table, best_over_ratios=False)
    assert np.isnan(caps.loc[("frame", 0.5), "Multi-Domain Classification"])
    assert capability_scores(table).loc["frame", "Multi-Domain Classification"] == 50.0
    wrong = pruning_table(errors_as_unparsed(grid()))
    assert wrong.loc[("frame", 0.5), "Avg"] == 0.0 and "failed" not in wrong
    assert capability_scores(wrong, best_over_ratios=False).loc[("frame", 0.5), "Multi-Domain Classification"] == 0.0


def test_a_table_without_errors_keeps_its_columns():
    table = pruning_table(pruning_scores([grid()[0]]))
    assert list(table.columns) == ["MC", "Avg"]


def test_eviction_tables_share_the_rule():
    runs = [[mc_row(i) for i in range(4)], [mc_row(i, press="snapkv", ratio=0.5, error=OOM) for i in range(4)]]
    scores = eviction_scores(runs)
    failed = scores[scores["press"] == "snapkv"].iloc[0]
    assert np.isnan(failed["score"]) and failed["failed"] and failed["error"] == OOM
    table = eviction_table(scores)
    assert np.isnan(table.loc[("snapkv", 0.5), "Avg"]) and table.loc[("snapkv", 0.5), "failed"] == f"MC: {OOM}"
    wrong = eviction_scores([[{**r, "error": None} for r in run] for run in runs])
    assert wrong.loc[wrong["press"] == "snapkv", "score"].iloc[0] == 0.0


def test_the_curve_marks_a_failed_configuration_instead_of_drawing_zero():
    def lowest_point(fig):
        ys = [y for line in fig.axes[0].lines if line.get_label() not in ("vanilla", FAILED_LABEL)
              for y in line.get_ydata()]
        return np.nanmin(ys)

    fig = ratio_curve_figure({"grid": pruning_table(pruning_scores(grid()))}, "t")
    marks = [line for line in fig.axes[0].lines if line.get_label() == FAILED_LABEL]
    assert [list(m.get_xdata()) for m in marks] == [[0.5]]
    assert lowest_point(fig) == 50.0  # the frame line runs 100 (vanilla at 0) -> gap at 0.5 -> 50
    wrong = ratio_curve_figure({"grid": pruning_table(errors_as_unparsed(grid()))}, "t")
    assert lowest_point(wrong) == 0.0
    assert not [line for line in wrong.axes[0].lines if line.get_label() == FAILED_LABEL]


def test_overview_average_and_categories_of_a_run_with_a_failed_task():
    from amlib.report import overview_scores

    sed = [{**mc_row(i), "id": f"SED-{i}", "task": "SED", "choices": ["dog", "cat", "car", "bell"]} for i in range(4)]
    dead = [{**mc_row(i), "error": OOM, "prediction": None} for i in range(4)]
    scores = overview_scores({"run": sed + dead}, n_resamples=50)
    table = table3_overview(scores, "data")
    assert table.loc["run", "SED"] == 100.0 and np.isnan(table.loc["run", "MC"]) and np.isnan(table.loc["run", "Avg"])
    cats = category_averages(table).set_index(["model", "category"])
    # SED and MC are both Audio Classification: no average while MC failed (not SED's 100)
    assert np.isnan(cats.loc[("run", "Audio Classification"), "average"])
    wrong = table3_overview(overview_scores({"run": sed + [{**r, "error": None} for r in dead]}, n_resamples=50), "d")
    assert wrong.loc["run", "Avg"] == 50.0  # (100 + 0) / 2: the failure read as a result
