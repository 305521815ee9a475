"""Tests for amlib.metrics.classification (macro-F1 with unparsed answers counted as wrong)."""

import random

import pytest
from sklearn.metrics import f1_score

from amlib.metrics.classification import accuracy, count_unparsed, macro_f1

SENTINEL = "__unparsed__"


def sklearn_reference(truth, pred, labels):
    """The documented rule, written with scikit-learn."""
    filled = [SENTINEL if p is None else p for p in pred]
    present = [lab for lab in labels if lab in truth or lab in filled]
    return 100 * f1_score(truth, filled, labels=present, average="macro", zero_division=0)


def test_hand_computed_four_samples_unparsed_stays_in_denominator():
    truth = ["A", "A", "B", "B"]
    pred = ["A", None, "B", "A"]
    # Class A: TP = 1 (sample 0), predicted A twice (0, 3), true A twice -> F1 = 2*1/(2+2) = 0.5
    # Class B: TP = 1 (sample 2), predicted B once, true B twice         -> F1 = 2*1/(1+2) = 2/3
    # Macro = (1/2 + 2/3) / 2 = 7/12 = 58.33 %
    assert macro_f1(truth, pred, ["A", "B"]) == pytest.approx(700 / 12)
    # Defect 1: dropping the unparsed sample 1 gives A: 2/(2+1) = 2/3, B: 2/3 -> 66.67 %.
    assert macro_f1(["A", "B", "B"], ["A", "B", "A"], ["A", "B"]) == pytest.approx(200 / 3)
    # Defect 2: letting the sentinel be a class averages in its F1 = 0:
    # (1/2 + 2/3 + 0) / 3 = 38.89 %.
    filled = [p or SENTINEL for p in pred]
    as_class = 100 * f1_score(truth, filled, average="macro", zero_division=0)
    assert as_class == pytest.approx(700 / 18)
    score = macro_f1(truth, pred, ["A", "B"])
    assert score not in (pytest.approx(200 / 3), pytest.approx(700 / 18))


@pytest.mark.parametrize(
    "truth, pred",
    [
        (["A", "B", "C", "D"], ["A", "B", "C", "D"]),
        (["A", "B", "C", "D"], [None, None, None, None]),
        (["A", "A", "A", "B"], ["A", None, "B", "B"]),
        (["A", "B", "C", "D", "A", "B"], ["B", "B", None, "D", "A", None]),
        (["C", "C", "C"], ["A", "A", None]),  # predicted-only class A enters the average
    ],
)
def test_matches_sklearn_on_hand_made_cases(truth, pred):
    assert macro_f1(truth, pred, ["A", "B", "C", "D"]) == pytest.approx(
        sklearn_reference(truth, pred, ["A", "B", "C", "D"]))


def test_matches_sklearn_on_random_cases():
    rng = random.Random(0)
    labels = ["A", "B", "C", "D", "E"]
    for _ in range(200):
        n = rng.randint(1, 30)
        truth = [rng.choice(labels) for _ in range(n)]
        pred = [rng.choice(labels + [None]) for _ in range(n)]
        expected = sklearn_reference(truth, pred, labels)
        assert macro_f1(truth, pred, labels) == pytest.approx(expected)


def test_all_unparsed_scores_zero_and_perfect_scores_100():
    assert macro_f1(["A", "B"], [None, None], ["A", "B"]) == 0.0
    assert macro_f1(["A", "B"], ["A", "B"], ["A", "B", "C", "D"]) == 100.0


def test_class_absent_from_truth_and_pred_is_not_averaged():
    # C and D never occur: averaging over all four letters would halve the score to 50.
    assert macro_f1(["A", "B"], ["A", "B"], ["A", "B", "C", "D"]) == 100.0
    assert 100 * f1_score(["A", "B"], ["A", "B"], labels=["A", "B", "C", "D"], average="macro",
                          zero_division=0) == pytest.approx(50.0)


def test_label_text_labels_work():
    # male: F1 = 1; female: its only sample is unparsed -> F1 = 0; macro = 50
    assert macro_f1(["male", "female"], ["male", None], ["male", "female"]) == 50.0


def test_accuracy_counts_none_as_wrong():
    assert accuracy(["A", "B", "C", "D"], ["A", None, "C", "A"]) == 50.0
    assert accuracy(["A"], [None]) == 0.0


def test_count_unparsed():
    assert count_unparsed(["A", None, "B", None]) == 2
    assert count_unparsed([]) == 0


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="truth has 2 samples but pred has 1"):
        macro_f1(["A", "B"], ["A"], ["A", "B"])
    with pytest.raises(ValueError, match=r"truth label\(s\) \['E'\] not in labels"):
        macro_f1(["A", "E"], ["A", "B"], ["A", "B"])
    with pytest.raises(ValueError, match=r"predicted label\(s\) \['Z'\]"):
        macro_f1(["A", "B"], ["A", "Z"], ["A", "B"])
    with pytest.raises(ValueError, match="no samples"):
        macro_f1([], [], ["A"])
    with pytest.raises(ValueError, match="truth has 1 samples but pred has 2"):
        accuracy(["A"], ["A", "B"])


# --- label text for SD, SGR, SAR --------------------------------------------------------------

from amlib.metrics.bootstrap import score_task  # noqa: E402
from amlib.metrics.classification import LABEL_TEXT_TASKS, to_label_text  # noqa: E402
from amlib.tasks import TASKS  # noqa: E402
import numpy as np  # noqa: E402


def _always_fake(n=200, seed=0):
    """A balanced SD set with shuffled options and a model that always answers "fake"."""
    rng = np.random.default_rng(seed)
    truth, pred, choices = [], [], []
    for i in range(n):
        options = ["real", "fake"] if rng.random() < 0.5 else ["fake", "real"]
        truth.append("AB"[options.index(["real", "fake"][i % 2])])
        pred.append("AB"[options.index("fake")])
        choices.append(options)
    return truth, pred, choices


def test_always_fake_scores_33_over_labels_but_about_50_over_letters():
    truth, pred, choices = _always_fake()
    over_letters = macro_f1(truth, pred, ["A", "B"])
    assert 40.0 < over_letters < 60.0
    result = score_task(TASKS["SD"], truth, pred, choices=choices, n_resamples=200)
    assert result["f1_over"] == "label text"
    assert result["score"] == pytest.approx(100 / 3)  # F1 "fake" 2/3, "real" 0
    assert result["accuracy"] == pytest.approx(50.0)  # accuracy does not depend on the view


def test_label_text_tasks_and_conversion():
    assert set(LABEL_TEXT_TASKS) == {"SD", "SGR", "SAR"}
    t, p, labels = to_label_text(TASKS["SD"], ["A", "B"], ["B", None],
                                 [["Real", "fake"], ["fake", "real"]])
    assert t == ["real", "real"] and p == ["fake", None] and labels == ["fake", "real"]
    # SGR falls back to its fixed options; SD's options move, so it needs them
    assert to_label_text(TASKS["SGR"], ["A"], ["B"], None)[:2] == (["male"], ["female"])
    with pytest.raises(ValueError, match="choices are needed"):
        to_label_text(TASKS["SD"], ["A"], ["B"], None)
    with pytest.raises(ValueError, match="do not match"):
        to_label_text(TASKS["SD"], ["A"], ["C"], [["real", "fake"]])
