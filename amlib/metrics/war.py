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
- an empty reference (after normalisation, e.g. "..." ) -> WER 1.0 and an `EmptyReferenceWarning`
  naming it, as the paper specifies ("empty reference or hypothesis counts as 100 %"): a bad item
  must not crash a whole score table (the manifest reader already rejects such items);
- NO CAP by default, as in the paper: a WER above 1.0 (insertions, e.g. a model that loops) counts
  in full, so WAR = 100 - mean WER can fall below 0. `cap=True` caps each utterance's WER at 1.0
  (one runaway answer then costs that utterance at most 100 points); score tables show that value
  beside the primary one as "war_capped", never in its place.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import jiwer

_PREFIX = re.compile(r"^[\s*_#]*spoken\s+content\s*[*_]*\s*:[*_]*")
_TO_SPACE = re.compile(r"[.!?,;:\"()\[\]{}]")
_DELETE = re.compile(r"[-'’]")


class EmptyReferenceWarning(UserWarning):
    """A reference transcript is empty after normalisation; its utterance was scored WER 1.0."""


def normalize_transcript(text: str | None) -> str:
    """Normalise a transcript for WER (rules in the module docstring); None gives ""."""
    if text is None:
        return ""
    text = _PREFIX.sub("", text.lower(), count=1)
    text = _TO_SPACE.sub(" ", text)
    text = _DELETE.sub("", text)
    return " ".join(text.split())


def utterance_wer(ref: str, hyp: str | None, cap: bool = False) -> float:
    """WER of one utterance as a fraction (1.0 = 100 %), after normalising both sides.

    Empty hypothesis -> 1.0; empty reference -> 1.0 with an `EmptyReferenceWarning`; not capped
    (the paper's rule) unless `cap=True`, which caps it at 1.0.
    """
    ref_norm = normalize_transcript(ref)
    if not ref_norm:
        warnings.warn(f"empty reference transcript (after normalisation): {ref!r}; scored as WER 1.0",
                      EmptyReferenceWarning, stacklevel=2)
        return 1.0
    hyp_norm = normalize_transcript(hyp)
    if not hyp_norm:
        return 1.0
    wer = float(jiwer.wer(ref_norm, hyp_norm))
    return min(wer, 1.0) if cap else wer


def utterance_wers(
    refs: Sequence[str], hyps: Sequence[str | None], cap: bool = False
) -> list[float]:
    """Per-utterance WERs (see `utterance_wer`); lengths must match."""
    if len(refs) != len(hyps):
        raise ValueError(f"refs has {len(refs)} utterances but hyps has {len(hyps)}")
    if len(refs) == 0:
        raise ValueError("no utterances to score")
    return [utterance_wer(r, h, cap=cap) for r, h in zip(refs, hyps)]


def war_from_wers(wers: Sequence[float]) -> float:
    """WAR from per-utterance WER fractions: 100 - 100 * mean (below 0 possible when uncapped)."""
    if len(wers) == 0:
        raise ValueError("no utterances to score")
    return 100.0 - 100.0 * sum(wers) / len(wers)


def word_accuracy_rate(refs: Sequence[str], hyps: Sequence[str | None], cap: bool = False) -> float:
    """Corpus WAR = 100 - 100 * mean per-utterance WER: the paper's uncapped value by default.

    `cap=True` caps each utterance's WER at 1.0 (then WAR is in 0-100).
    """
    return war_from_wers(utterance_wers(refs, hyps, cap=cap))
