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


# --- intervals used by the score tables ------------------------------------------------------

from amlib.metrics.bootstrap import (  # noqa: E402
    dirichlet_macro_f1_interval,
    dirichlet_war_interval,
    wilson_interval,
)


def test_wilson_interval_closed_form_and_no_collapse():
    # p = 1: lower bound n / (n + z^2); p = 0: upper bound z^2 / (n + z^2)
    z2 = 1.959963984540054 ** 2
    assert wilson_interval(20, 20) == pytest.approx((100 * 20 / (20 + z2), 100.0))
    assert wilson_interval(0, 20) == pytest.approx((0.0, 100 * z2 / (20 + z2)))
    low, high = wilson_interval(10, 20)
    assert low == pytest.approx(100 - high) and 29 < low < 31
    with pytest.raises(ValueError):
        wilson_interval(21, 20)


LETTERS = list("ABCD")


def test_macro_f1_interval_does_not_collapse_at_100_or_0_with_20_items():
    truth = list("ABCD") * 5
    low, high = dirichlet_macro_f1_interval(truth, truth, LETTERS)
    assert high == 100.0 and 70.0 < low < 97.0
    wrong = [LETTERS[(LETTERS.index(t) + 1) % 4] for t in truth]
    low, high = dirichlet_macro_f1_interval(truth, wrong, LETTERS)
    assert low == 0.0 and 3.0 < high < 30.0
    low, high = dirichlet_macro_f1_interval(truth, [None] * 20, LETTERS)  # all unparsed
    assert low == 0.0 and 0.0 < high < 30.0
    # the plain percentile bootstrap collapses in the same case (why it is not used)
    assert bootstrap_ci(lambda t, p: macro_f1(t, p, LETTERS), truth, list(truth)) == (100.0, 100.0)


def test_war_interval_does_not_collapse_and_allows_negative_war():
    low, high = dirichlet_war_interval([0.0] * 20)
    assert high == 100.0 and 70.0 < low < 97.0
    low, high = dirichlet_war_interval([1.0] * 20)
    assert low == 0.0 and 3.0 < high < 30.0
    low, high = dirichlet_war_interval([2.0] * 10 + [0.5] * 10)  # uncapped: WAR -25
    assert low < -25.0 < high


def test_smoothed_intervals_are_seeded_and_agree_with_the_bootstrap_away_from_the_edges():
    rng = np.random.default_rng(3)
    truth = list(rng.choice(LETTERS, 200))
    pred = [t if rng.random() < 0.6 else rng.choice(LETTERS + [None]) for t in truth]
    first = dirichlet_macro_f1_interval(truth, pred, LETTERS, seed=5)
    assert first == dirichlet_macro_f1_interval(truth, pred, LETTERS, seed=5)
    assert first != dirichlet_macro_f1_interval(truth, pred, LETTERS, seed=6)
    plain = bootstrap_ci(lambda t, p: macro_f1(t, p, LETTERS), truth, pred, seed=5)
    assert first[0] == pytest.approx(plain[0], abs=2.5) and first[1] == pytest.approx(plain[1], abs=2.5)
    wers = list(rng.uniform(0, 1.5, 200))
    war = dirichlet_war_interval(wers, seed=1)
    plain = bootstrap_ci(lambda w: 100 - 100 * float(np.mean(w)), wers, seed=1)
    assert war[0] == pytest.approx(plain[0], abs=2.0) and war[1] == pytest.approx(plain[1], abs=2.0)


def test_war_interval_covers_the_true_mean_about_95_percent_of_the_time():
    # 300 simulated data sets of 20 utterances with a known population WAR (WER ~ Beta(2, 5): 71.4)
    rng = np.random.default_rng(0)
    hits = sum(
        low <= 100 - 100 * 2 / 7 <= high
        for low, high in (dirichlet_war_interval(list(rng.beta(2, 5, 20)), seed=i, n_draws=400)
                          for i in range(300))
    )
    assert 0.88 <= hits / 300 <= 0.99


def test_score_task_reports_methods_and_perfect_scores_have_open_intervals():
    truth = list("AB") * 10
    result = score_task(TASKS["SCR"], list("ABCD") * 5, list("ABCD") * 5, n_resamples=300)
    assert result["score"] == 100.0 and result["ci_low"] < 100.0 == result["ci_high"]
    assert result["accuracy_ci_low"] < 100.0 == result["accuracy_ci_high"]
    assert "Bayesian bootstrap" in result["ci_method"] and result["f1_over"] == "letters"
    sgr = score_task(TASKS["SGR"], truth, truth, n_resamples=300)
    assert sgr["f1_over"] == "label text" and sgr["score"] == 100.0


def test_score_task_asr_is_uncapped_with_capped_beside():
    refs = ["a b", "the cat sat down"]
    hyps = ["a b c d e f", "the cat sat down"]  # WER 2.0 and 0.0
    result = score_task(TASKS["ASR"], refs, hyps, n_resamples=200)
    assert result["score"] == pytest.approx(0.0)  # 100 - 100 * mean(2.0, 0.0)
    assert result["war_capped"] == pytest.approx(50.0)
    assert result["ci_low"] <= result["score"] <= result["ci_high"]
