"""Tests for amlib.metrics.bootstrap."""

import numpy as np
import pytest

from amlib.metrics.bootstrap import bootstrap_ci, score_task
from amlib.metrics.classification import macro_f1
from amlib.tasks import TASKS


def mean_pct(values):
    return 100.0 * float(np.mean(values))


def coin_flips(n, seed=1):
    return list(np.random.default_rng(seed).integers(0, 2, size=n))


def test_same_seed_same_interval_and_other_seed_differs():
    data = coin_flips(100)
    first = bootstrap_ci(mean_pct, data, n_resamples=300, seed=7)
    assert first == bootstrap_ci(mean_pct, data, n_resamples=300, seed=7)
    assert first != bootstrap_ci(mean_pct, data, n_resamples=300, seed=8)


def test_interval_contains_point_estimate_and_is_nontrivial():
    data = coin_flips(200)
    low, high = bootstrap_ci(mean_pct, data, n_resamples=500)
    assert low < mean_pct(data) < high
    # Normal approximation: half-width about 1.96 * sqrt(p(1-p)/n) = 6.9 points for n = 200.
    assert 4.0 < (high - low) / 2 < 10.0


def test_width_shrinks_with_more_samples():
    small = bootstrap_ci(mean_pct, coin_flips(50), n_resamples=300)
    large = bootstrap_ci(mean_pct, coin_flips(2000), n_resamples=300)
    assert (large[1] - large[0]) < 0.5 * (small[1] - small[0])


def test_rows_are_resampled_jointly():
    # Prediction always equals truth, so every joint resample scores 100; independent resampling
    # of the two columns would not.
    truth = list("ABCDABCDAB")
    low, high = bootstrap_ci(lambda t, p: macro_f1(t, p, list("ABCD")), truth, list(truth),
                             n_resamples=200)
    assert (low, high) == (100.0, 100.0)


def test_confidence_level_widens_interval():
    data = coin_flips(100)
    narrow = bootstrap_ci(mean_pct, data, n_resamples=500, confidence=0.5)
    wide = bootstrap_ci(mean_pct, data, n_resamples=500, confidence=0.99)
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


def test_bad_input_raises():
    with pytest.raises(ValueError, match="differ in length"):
        bootstrap_ci(lambda a, b: 0.0, [1, 2], [1])
    with pytest.raises(ValueError, match="zero samples"):
        bootstrap_ci(mean_pct, [])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(mean_pct, [1], confidence=95)


def test_score_task_choice():
    truth = ["A", "A", "B", "B"] * 10
    pred = ["A", None, "B", "A"] * 10
    result = score_task(TASKS["SCR"], truth, pred, n_resamples=200)
    assert result["metric"] == "macro_f1"
    assert result["score"] == pytest.approx(700 / 12)  # the hand-computed case, repeated
    assert result["accuracy"] == pytest.approx(50.0)
    assert result["n"] == 40 and result["unparsed"] == 10
    assert result["ci_low"] < result["score"] < result["ci_high"]
    assert result == score_task(TASKS["SCR"], truth, pred, n_resamples=200)


def test_score_task_asr():
    refs = ["the cat sat down", "hello world", "good morning to you"]
    hyps = ["Spoken Content: the dog sat down", None, "good morning to you"]
    result = score_task(TASKS["ASR"], refs, hyps, n_resamples=200)
    assert result["metric"] == "war"
    assert result["score"] == pytest.approx(100 - 100 * (0.25 + 1.0 + 0.0) / 3)
    assert result["accuracy"] is None
    assert result["n"] == 3 and result["unparsed"] == 1
    assert 0.0 <= result["ci_low"] <= result["score"] <= result["ci_high"] <= 100.0
