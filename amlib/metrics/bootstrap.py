"""Percentile-bootstrap confidence intervals, and one call that scores a task with its interval.

`bootstrap_ci` resamples rows (samples) with replacement, the same row indices for every column,
`n_resamples` times from `numpy.random.default_rng(seed)`, scores each resample with `score_fn`, and
returns the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of those scores (numpy's default
linear interpolation). Same inputs and seed -> same interval.

`score_task` scores one task's results: macro-F1 over `spec.letters` (unparsed = None counted wrong,
see `amlib.metrics.classification`) for choice tasks; WAR (capped per-utterance WER, see
`amlib.metrics.war`) for ASR, bootstrapping the per-utterance WERs so jiwer runs once per utterance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from amlib.metrics.classification import accuracy, count_unparsed, macro_f1
from amlib.metrics.war import normalize_transcript, utterance_wers, war_from_wers
from amlib.tasks import TaskSpec


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


def score_task(
    spec: TaskSpec,
    truth: Sequence[str],
    pred: Sequence[str | None],
    seed: int = 0,
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """Score one task with a bootstrap interval.

    Choice tasks: `truth` and `pred` are letters of `spec.letters` (None = unparsed). ASR: `truth`
    are reference transcripts, `pred` hypothesis texts (None or empty after normalisation counts as
    unparsed).
    Returns {"metric", "score", "ci_low", "ci_high", "accuracy" (None for ASR), "n", "unparsed"}.
    """
    if spec.is_choice:
        labels = list(spec.letters)
        score = macro_f1(truth, pred, labels)
        low, high = bootstrap_ci(
            lambda t, p: macro_f1(t, p, labels), truth, pred, n_resamples=n_resamples, seed=seed
        )
        acc: float | None = accuracy(truth, pred)
        unparsed = count_unparsed(pred)
    else:
        wers = utterance_wers(truth, pred)
        score = war_from_wers(wers)
        low, high = bootstrap_ci(war_from_wers, wers, n_resamples=n_resamples, seed=seed)
        acc = None
        unparsed = sum(not normalize_transcript(h) for h in pred)
    return {
        "metric": spec.metric,
        "score": score,
        "ci_low": low,
        "ci_high": high,
        "accuracy": acc,
        "n": len(truth),
        "unparsed": unparsed,
    }
