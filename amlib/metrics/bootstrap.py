"""Confidence intervals, and one call that scores a task with its interval.

Interval methods (all seeded where random; same inputs and seed -> same interval):

- `wilson_interval`: the Wilson score interval for a proportion (accuracy). Closed form; at 0 % or
  100 % it does not collapse (20/20 correct -> [83.9, 100]).
- `dirichlet_macro_f1_interval` and `dirichlet_war_interval`: a Bayesian bootstrap (Rubin 1981)
  SMOOTHED BY ONE PRIOR ITEM, i.e. the posterior of a Dirichlet process with concentration
  `prior_items` (default 1) whose base measure is a "know-nothing" item. Each draw gives the n
  observed items and the prior's atoms Dirichlet weights (1 per observed item, `prior_items` split
  evenly over the atoms) and computes the weighted statistic; the interval is the equal-tailed
  (1 - confidence) quantile pair of `n_draws` draws. Atoms: for macro-F1, a uniform random guesser
  (every true class seen in the data x every option, the same mass each); for WAR, an utterance
  that is entirely right (WER 0) or entirely wrong (WER 1), half the mass each. Without the prior
  item a perfect (or all-wrong) set of 20 items gives the point interval [100, 100] under any
  bootstrap; with it the interval reflects that 20 items cannot prove perfection. Away from the
  boundaries it behaves like the ordinary bootstrap. The reported interval is widened, where
  needed, to contain the point estimate (the posterior of a continuous statistic puts no mass
  exactly on 100, so the upper quantile of a perfect score is 99.9...; the table shows 100).
- `bootstrap_ci`: the plain percentile bootstrap (rows resampled jointly), kept as a utility; the
  score tables no longer use it because it collapses to a point at 0 and 100.

`score_task` scores one task: macro-F1 (unparsed = None counted wrong, see
`amlib.metrics.classification`) over option letters, or over the options' LABEL TEXT for the tasks
in `LABEL_TEXT_TASKS` (SD, SGR, SAR, as the paper specifies; SD's options are shuffled per item, so
its letters do not name a class); WAR for ASR as the paper computes it (uncapped) with the capped
value beside it as "war_capped". Its "ci_method" names the interval method.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from amlib.metrics.classification import (LABEL_TEXT_TASKS, accuracy, count_unparsed, macro_f1,
                                          to_label_text)
from amlib.metrics.war import normalize_transcript, utterance_wers, war_from_wers
from amlib.tasks import TaskSpec

CI_METHOD = "Bayesian bootstrap + 1 prior item (Dirichlet process), 95 %"
ACCURACY_CI_METHOD = "Wilson score, 95 %"


def bootstrap_ci(
    score_fn: Callable[..., float],
    *columns: Sequence[Any],
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """(low, high) percentile-bootstrap interval of `score_fn(*columns)`; rows resampled jointly.

    `score_fn` receives one list per column, each resampled with the same row indices.
    """
    if not columns:
        raise ValueError("bootstrap_ci needs at least one column")
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise ValueError(f"columns differ in length: {[len(c) for c in columns]}")
    if n == 0:
        raise ValueError("cannot bootstrap zero samples")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, n, size=(n_resamples, n))
    scores = np.array(
        [score_fn(*([column[i] for i in rows] for column in columns))
         for rows in indices.tolist()],
        dtype=float,
    )
    alpha = 1.0 - confidence
    low, high = np.quantile(scores, [alpha / 2, 1.0 - alpha / 2])
    return float(low), float(high)


def _check_confidence(confidence: float, n_draws: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion successes / n, in percent (0-100)."""
    if n <= 0:
        raise ValueError("cannot compute an interval for zero samples")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..{n}, got {successes}")
    _check_confidence(confidence, 1)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(100 * max(0.0, centre - half)), float(100 * min(1.0, centre + half))


def _dirichlet_weights(n: int, atoms: int, prior_items: float, n_draws: int, seed: int) -> np.ndarray:
    """(n_draws, n + atoms) Dirichlet(1,...,1, prior/atoms, ...) weights, via normalised gammas."""
    if prior_items <= 0:
        raise ValueError(f"prior_items must be > 0, got {prior_items}")
    shape = np.concatenate([np.ones(n), np.full(atoms, prior_items / atoms)])
    rng = np.random.default_rng(seed)
    gammas = rng.standard_gamma(shape, size=(n_draws, n + atoms))
    return gammas / gammas.sum(axis=1, keepdims=True)


def _equal_tailed(draws: np.ndarray, point: float, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.quantile(draws, [alpha / 2, 1.0 - alpha / 2])
    return float(min(low, point)), float(max(high, point))


def dirichlet_macro_f1_interval(
    truth: Sequence[str], pred: Sequence[str | None], labels: Sequence[str], seed: int = 0,
    n_draws: int = 1000, confidence: float = 0.95, prior_items: float = 1.0,
) -> tuple[float, float]:
    """Interval of macro-F1 (0-100): smoothed Bayesian bootstrap (see the module docstring).

    Same F1 rule as `macro_f1` (None = wrong; the average runs over the labels seen in the truth or
    the parsed predictions), applied to weighted counts.
    """
    point = macro_f1(truth, pred, labels)
    _check_confidence(confidence, n_draws)
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    t = np.array([index[x] for x in truth])
    p = np.array([k if x is None else index[x] for x in pred])
    present = np.zeros(k, dtype=bool)
    present[t] = True
    present[p[p < k]] = True
    seen_truth = np.unique(t)
    # prior atoms: a uniform guesser's answer (every option) to an item of every class in the truth
    t_all = np.concatenate([t, np.repeat(seen_truth, k)])
    p_all = np.concatenate([p, np.tile(np.arange(k), len(seen_truth))])
    w = _dirichlet_weights(len(t), len(t_all) - len(t), prior_items, n_draws, seed)
    onehot_t = np.eye(k + 1)[t_all][:, :k]
    onehot_p = np.eye(k + 1)[p_all][:, :k]
    true_mass, pred_mass = w @ onehot_t, w @ onehot_p
    hits = w @ (onehot_t * onehot_p)
    denom = true_mass + pred_mass
    f1 = np.divide(2.0 * hits, denom, out=np.zeros_like(hits), where=denom > 0)
    draws = 100.0 * f1[:, present].mean(axis=1)
    return _equal_tailed(draws, point, confidence)


def dirichlet_war_interval(
    wers: Sequence[float], seed: int = 0, n_draws: int = 1000, confidence: float = 0.95,
    prior_items: float = 1.0,
) -> tuple[float, float]:
    """Interval of WAR = 100 - 100 * mean WER: smoothed Bayesian bootstrap (module docstring)."""
    point = war_from_wers(wers)
    _check_confidence(confidence, n_draws)
    values = np.concatenate([np.asarray(wers, dtype=float), [0.0, 1.0]])  # prior: all right / all wrong
    w = _dirichlet_weights(len(wers), 2, prior_items, n_draws, seed)
    return _equal_tailed(100.0 - 100.0 * (w @ values), point, confidence)


def score_task(
    spec: TaskSpec,
    truth: Sequence[str],
    pred: Sequence[str | None],
    seed: int = 0,
    n_resamples: int = 1000,
    choices: Sequence[Sequence[str]] | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Score one task with its interval.

    Choice tasks: `truth` and `pred` are letters of `spec.letters` (None = unparsed); `choices` are
    each item's option texts (needed for SD, whose options move; SGR and SAR fall back to the
    task's fixed options). ASR: `truth` are reference transcripts, `pred` hypothesis texts (None or
    empty after normalisation counts as unparsed). `n_resamples` is the number of posterior draws.
    Returns {"metric", "f1_over", "score", "ci_low", "ci_high", "ci_method", "accuracy",
    "accuracy_ci_low", "accuracy_ci_high", "war_capped", "n", "unparsed"}; entries that do not
    apply to the task are None.
    """
    out: dict[str, Any] = {"metric": spec.metric, "f1_over": None}
    if spec.is_choice:
        if spec.code in LABEL_TEXT_TASKS:
            t_lab, p_lab, labels = to_label_text(spec, truth, pred, choices)
            out["f1_over"] = "label text"
        else:
            t_lab, p_lab, labels = list(truth), list(pred), list(spec.letters)
            out["f1_over"] = "letters"
        score = macro_f1(t_lab, p_lab, labels)
        low, high = dirichlet_macro_f1_interval(t_lab, p_lab, labels, seed=seed, n_draws=n_resamples,
                                                confidence=confidence)
        acc: float | None = accuracy(truth, pred)
        correct = sum(p is not None and p == t for t, p in zip(truth, pred))
        acc_low, acc_high = wilson_interval(correct, len(truth), confidence)
        unparsed = count_unparsed(pred)
        capped = None
    else:
        wers = utterance_wers(truth, pred)
        score = war_from_wers(wers)
        low, high = dirichlet_war_interval(wers, seed=seed, n_draws=n_resamples, confidence=confidence)
        capped = war_from_wers([min(w, 1.0) for w in wers])
        acc = acc_low = acc_high = None
        unparsed = sum(not normalize_transcript(h) for h in pred)
    return {
        **out,
        "score": score,
        "ci_low": low,
        "ci_high": high,
        "ci_method": CI_METHOD.replace("95 %", f"{100 * confidence:g} %"),
        "accuracy": acc,
        "accuracy_ci_low": acc_low,
        "accuracy_ci_high": acc_high,
        "war_capped": capped,
        "n": len(truth),
        "unparsed": unparsed,
    }
