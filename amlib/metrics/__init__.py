"""Scoring for AudioMarathon: answer parsing, macro-F1/accuracy, WAR and bootstrap intervals.

- `parsing`: `parse_choice` turns a model answer into an option letter, with the paper's rules
  (parser="paper"), ours (parser="ours") or the paper's released scripts' per task (parser="released",
  `released`: also `released_score`, the scoring those scripts use); rules in their docstrings.
- `classification`: `macro_f1`, `accuracy`, `count_unparsed`; an unparsed answer (None) is wrong;
  SD, SGR and SAR are scored over label text (`LABEL_TEXT_TASKS`, `to_label_text`).
- `war`: `normalize_transcript`, `utterance_wer`, `word_accuracy_rate` (the paper's uncapped
  per-utterance WER by default; `cap=True` for the capped variant).
- `bootstrap`: `wilson_interval` (accuracy), `dirichlet_macro_f1_interval` and
  `dirichlet_war_interval` (smoothed Bayesian bootstrap), `bootstrap_ci` (plain percentile
  bootstrap) and `score_task` (one task's score + interval).
"""

from amlib.metrics.bootstrap import (
    bootstrap_ci,
    dirichlet_macro_f1_interval,
    dirichlet_war_interval,
    score_task,
    wilson_interval,
)
from amlib.metrics.classification import LABEL_TEXT_TASKS, accuracy, count_unparsed, macro_f1
from amlib.metrics.parsing import PARSER_VERSION, PARSERS, parse_choice, parse_choice_paper
from amlib.metrics.war import (
    normalize_transcript,
    utterance_wer,
    utterance_wers,
    war_from_wers,
    word_accuracy_rate,
)

__all__ = [
    "LABEL_TEXT_TASKS",
    "PARSERS",
    "PARSER_VERSION",
    "accuracy",
    "bootstrap_ci",
    "count_unparsed",
    "dirichlet_macro_f1_interval",
    "dirichlet_war_interval",
    "macro_f1",
    "normalize_transcript",
    "parse_choice",
    "parse_choice_paper",
    "score_task",
    "utterance_wer",
    "utterance_wers",
    "war_from_wers",
    "wilson_interval",
    "word_accuracy_rate",
]
