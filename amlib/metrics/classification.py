"""Accuracy and macro-F1 for multiple-choice tasks, with unparsed answers counted as wrong.

Rules:
- `pred[i] is None` means the answer could not be parsed. It is a WRONG answer for sample i: the
  sample stays in the denominator (a false negative of its true class) but adds no class of its own
  to the average. (The paper's released code drops such samples, which inflates scores.)
- Macro-F1 equals scikit-learn
  `f1_score(truth, pred', labels=present, average="macro", zero_division=0) * 100`, where `pred'`
  replaces None by a sentinel label outside `labels` and `present` are the labels of `labels` that
  occur in `truth` or among the parsed predictions, in the order of `labels`. A class with neither a
  true sample nor a prediction is left out of the average, as scikit-learn does by default: counting
  it as F1 = 0 would penalise a model for a class a (small or bootstrap-resampled) set happens to
  lack. Computed here from counts with numpy (fast enough to bootstrap); tests check it against
  scikit-learn.
- Label text (`LABEL_TEXT_TASKS` = SD, SGR, SAR, as the paper specifies): macro-F1 is computed over
  the chosen option's text, not its letter (`to_label_text`). SD's options are shuffled per item,
  so a letter names no class: a model that always answers "fake" scores about 50 over letters but
  33 over labels on a balanced set. SGR's and SAR's options are fixed, so there both views agree.
  Accuracy is the same either way.
- Scores are in 0-100. Mismatched lengths, empty input, a truth label outside `labels` or a
  prediction that is neither None nor in `labels` raise ValueError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from amlib.tasks import TaskSpec

# Tasks whose macro-F1 runs over the options' label text (paper's scoring specification).
LABEL_TEXT_TASKS = ("SD", "SGR", "SAR")


def _validate(
    truth: Sequence[str], pred: Sequence[str | None], labels: Sequence[str] | None
) -> None:
    if len(truth) != len(pred):
        raise ValueError(f"truth has {len(truth)} samples but pred has {len(pred)}")
    if len(truth) == 0:
        raise ValueError("no samples to score")
    if labels is None:
        return
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels contain duplicates: {list(labels)}")
    allowed = set(labels)
    bad_truth = sorted({t for t in truth if t not in allowed}, key=str)
    if bad_truth:
        raise ValueError(f"truth label(s) {bad_truth} not in labels {list(labels)}")
    bad_pred = sorted({p for p in pred if p is not None and p not in allowed}, key=str)
    if bad_pred:
        raise ValueError(f"predicted label(s) {bad_pred} not in labels {list(labels)} (use None "
                         "for an unparsed answer)")


def count_unparsed(pred: Sequence[str | None]) -> int:
    """Number of answers that could not be parsed (None)."""
    return sum(p is None for p in pred)


def accuracy(truth: Sequence[str], pred: Sequence[str | None]) -> float:
    """Percentage (0-100) of samples whose prediction equals the truth; None is wrong."""
    _validate(truth, pred, None)
    return 100.0 * sum(p is not None and p == t for t, p in zip(truth, pred)) / len(truth)


def macro_f1(truth: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]) -> float:
    """Macro-averaged F1 in 0-100 over `labels`, an unparsed prediction (None) counting as wrong.

    See the module docstring for the exact rule and its scikit-learn equivalent.
    """
    _validate(truth, pred, labels)
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    t = np.fromiter((index[x] for x in truth), dtype=np.int64, count=len(truth))
    # Unparsed -> code k, a class outside `labels` that never enters the average.
    p = np.fromiter((k if x is None else index[x] for x in pred), dtype=np.int64, count=len(pred))
    true_count = np.bincount(t, minlength=k + 1)[:k]
    pred_count = np.bincount(p, minlength=k + 1)[:k]
    hits = np.bincount(t[t == p], minlength=k + 1)[:k]
    present = (true_count > 0) | (pred_count > 0)
    denom = true_count + pred_count  # F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (|true| + |pred|)
    f1 = np.divide(2.0 * hits, denom, out=np.zeros(k), where=denom > 0)
    return float(100.0 * f1[present].mean())


def label_text(option: str) -> str:
    """An option's text as a class label: lower-case, whitespace collapsed."""
    return " ".join(option.lower().split())


def to_label_text(
    spec: TaskSpec, truth: Sequence[str], pred: Sequence[str | None],
    choices: Sequence[Sequence[str]] | None,
) -> tuple[list[str], list[str | None], list[str]]:
    """Letters -> the chosen options' label text, per item; returns (truth, pred, sorted labels).

    `choices` holds each item's option texts in letter order; where it is None the task's fixed
    options are used (SGR, SAR), and a task whose options move (SD) raises ValueError.
    """
    if len(truth) != len(pred):
        raise ValueError(f"truth has {len(truth)} samples but pred has {len(pred)}")
    if choices is None:
        if spec.fixed_choices is None:
            raise ValueError(f"{spec.code} is scored over label text and its options move between "
                             "items: the items' choices are needed")
        choices = [spec.fixed_choices] * len(truth)
    if len(choices) != len(truth):
        raise ValueError(f"{len(truth)} samples but {len(choices)} choice lists")
    letters = spec.letters

    def text(letter: str | None, options: Sequence[str]) -> str | None:
        if letter is None:
            return None
        if letter not in letters or len(options) != len(letters):
            raise ValueError(f"{spec.code}: letter {letter!r} / options {list(options)} do not match "
                             f"the letters {', '.join(letters)}")
        return label_text(options[letters.index(letter)])

    t = [text(x, c) for x, c in zip(truth, choices)]
    p = [text(x, c) for x, c in zip(pred, choices)]
    labels = sorted({label_text(o) for c in choices for o in c})
    return t, p, labels  # type: ignore[return-value]
