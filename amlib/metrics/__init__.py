"""Scoring for AudioMarathon: answer parsing, macro-F1/accuracy, WAR and bootstrap intervals.

- `parsing`: `parse_choice` turns a model answer into an option letter (rules in its docstring).
- `classification`: `macro_f1`, `accuracy`, `count_unparsed`; an unparsed answer (None) is wrong.
- `war`: `normalize_transcript`, `utterance_wer`, `word_accuracy_rate` (per-utterance WER capped
  at 1.0 by default).
- `bootstrap`: `bootstrap_ci` (percentile bootstrap) and `score_task` (one task's score + interval).
"""

from amlib.metrics.bootstrap import bootstrap_ci, score_task
from amlib.metrics.classification import accuracy, count_unparsed, macro_f1
from amlib.metrics.parsing import PARSER_VERSION, parse_choice
from amlib.metrics.war import (
    normalize_transcript,
    utterance_wer,
    utterance_wers,
    war_from_wers,
    word_accuracy_rate,
)

__all__ = [
    "PARSER_VERSION",
    "accuracy",
    "bootstrap_ci",
    "count_unparsed",
    "macro_f1",
    "normalize_transcript",
    "parse_choice",
    "score_task",
    "utterance_wer",
    "utterance_wers",
    "war_from_wers",
    "word_accuracy_rate",
]
