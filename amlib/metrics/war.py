"""Word Accuracy Rate (WAR) for the ASR task: 100 - 100 * mean per-utterance WER.

Normalisation (`normalize_transcript`), applied to reference and hypothesis alike, in this order:
1. lower-case;
2. strip a leading "spoken content:" (the ASR prompt asks the model to start its answer with
   "Spoken Content:"), allowing whitespace around it and markdown `*`, `_`, `#` before it, so that
   the prefix goes before ':' becomes a space;
3. . ! ? , ; : " ( ) [ ] { } -> space;
4. "-", "'" and the typographic apostrophe "’" deleted ("don’t" and "don't" both become "dont");
5. whitespace collapsed and trimmed.

Per utterance (`utterance_wer`), WER is jiwer's word error rate on the normalised strings, with:
- an empty (or None) hypothesis -> WER 1.0, i.e. 0 % word accuracy for that utterance;
- an empty reference -> ValueError (a benchmark item without a transcript is a data error);
- CAPPING (our choice, on by default): a WER above 1.0, which many insertions cause (a model that
  loops and repeats words), is capped at 1.0, so one runaway hallucination costs that utterance at
  most 100 points and cannot push the corpus WAR below 0. The paper defines WAR as
  100 - mean WER, which is unbounded below; `cap=False` gives that uncapped value.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import jiwer

_PREFIX = re.compile(r"^[\s*_#]*spoken\s+content\s*[*_]*\s*:[*_]*")
_TO_SPACE = re.compile(r"[.!?,;:\"()\[\]{}]")
_DELETE = re.compile(r"[-'’]")


def normalize_transcript(text: str | None) -> str:
    """Normalise a transcript for WER (rules in the module docstring); None gives ""."""
    if text is None:
        return ""
    text = _PREFIX.sub("", text.lower(), count=1)
    text = _TO_SPACE.sub(" ", text)
    text = _DELETE.sub("", text)
    return " ".join(text.split())


def utterance_wer(ref: str, hyp: str | None, cap: bool = True) -> float:
    """WER of one utterance as a fraction (1.0 = 100 %), after normalising both sides.

    Empty hypothesis -> 1.0; empty reference -> ValueError; above 1.0 capped to 1.0 unless
    `cap=False`.
    """
    ref_norm = normalize_transcript(ref)
    if not ref_norm:
        raise ValueError(f"empty reference transcript (after normalisation): {ref!r}")
    hyp_norm = normalize_transcript(hyp)
    if not hyp_norm:
        return 1.0
    wer = float(jiwer.wer(ref_norm, hyp_norm))
    return min(wer, 1.0) if cap else wer


def utterance_wers(
    refs: Sequence[str], hyps: Sequence[str | None], cap: bool = True
) -> list[float]:
    """Per-utterance WERs (see `utterance_wer`); lengths must match."""
    if len(refs) != len(hyps):
        raise ValueError(f"refs has {len(refs)} utterances but hyps has {len(hyps)}")
    if len(refs) == 0:
        raise ValueError("no utterances to score")
    return [utterance_wer(r, h, cap=cap) for r, h in zip(refs, hyps)]


def war_from_wers(wers: Sequence[float]) -> float:
    """WAR (0-100 when capped) from per-utterance WER fractions: 100 - 100 * mean."""
    if len(wers) == 0:
        raise ValueError("no utterances to score")
    return 100.0 - 100.0 * sum(wers) / len(wers)


def word_accuracy_rate(refs: Sequence[str], hyps: Sequence[str | None], cap: bool = True) -> float:
    """Corpus WAR = 100 - 100 * mean per-utterance WER (0-100 when capped).

    `cap=False` gives the paper's uncapped value, which can fall below 0.
    """
    return war_from_wers(utterance_wers(refs, hyps, cap=cap))
