"""ASR error patterns (the paper's Tables 9-10): which words a model inserts, deletes and substitutes,
the WER split into substitution / deletion / insertion rates, and two failure modes of long answers
(repetition loops, answers cut off by the token budget).

Transcripts are normalised as for WAR (`amlib.metrics.war.normalize_transcript`) and aligned with
jiwer; rates are corpus-level (errors over all reference words), unlike WAR's per-utterance mean.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import jiwer

from amlib.metrics.war import normalize_transcript


@dataclass
class ErrorPatterns:
    """Word-level error counts over a set of utterances."""

    insertions: Counter = field(default_factory=Counter)  # inserted hypothesis word -> count
    deletions: Counter = field(default_factory=Counter)  # deleted reference word -> count
    substitutions: Counter = field(default_factory=Counter)  # (reference word, hypothesis word) -> count
    reference_words: int = 0
    utterances: int = 0

    def rates(self) -> dict[str, float]:
        """Substitution, deletion and insertion rates and their sum (WER), in % of reference words."""
        n = self.reference_words
        s, d, i = (sum(c.values()) for c in (self.substitutions, self.deletions, self.insertions))
        return {"sub_rate": 100 * s / n, "del_rate": 100 * d / n, "ins_rate": 100 * i / n,
                "wer": 100 * (s + d + i) / n}

    def top(self, kind: str, k: int = 8) -> str:
        """The k most frequent errors of `kind` ("insertions", "deletions", "substitutions") as text,
        the paper's way: "'the': 18, 'a': 15" / "'an' -> 'and': 25"."""
        counts = getattr(self, kind)
        items = counts.most_common(k)
        if kind == "substitutions":
            return ", ".join(f"'{ref}' -> '{hyp}': {n}" for (ref, hyp), n in items)
        return ", ".join(f"'{word}': {n}" for word, n in items)


def error_patterns(refs: Sequence[str], hyps: Sequence[str | None]) -> ErrorPatterns:
    """Align each (reference, hypothesis) pair after normalisation and count the errors. An empty
    hypothesis deletes every reference word; an empty reference is an error (naming its index)."""
    if len(refs) != len(hyps):
        raise ValueError(f"refs has {len(refs)} utterances but hyps has {len(hyps)}")
    patterns = ErrorPatterns()
    for index, (ref, hyp) in enumerate(zip(refs, hyps)):
        ref_norm, hyp_norm = normalize_transcript(ref), normalize_transcript(hyp)
        if not ref_norm:
            raise ValueError(f"utterance {index}: the reference is empty after normalisation ({ref!r})")
        ref_words = ref_norm.split()
        patterns.reference_words += len(ref_words)
        patterns.utterances += 1
        if not hyp_norm:
            patterns.deletions.update(ref_words)
            continue
        out = jiwer.process_words(ref_norm, hyp_norm)
        hyp_words = hyp_norm.split()
        for chunk in out.alignments[0]:
            ref_part = ref_words[chunk.ref_start_idx:chunk.ref_end_idx]
            hyp_part = hyp_words[chunk.hyp_start_idx:chunk.hyp_end_idx]
            if chunk.type == "substitute":
                patterns.substitutions.update(zip(ref_part, hyp_part))
            elif chunk.type == "delete":
                patterns.deletions.update(ref_part)
            elif chunk.type == "insert":
                patterns.insertions.update(hyp_part)
    return patterns


def repetition_loop(text: str | None, min_repeats: int = 3, max_ngram: int = 8) -> tuple[str, int] | None:
    """The longest-running n-gram (1..max_ngram words) repeated back to back at least `min_repeats`
    times in the normalised text, as (n-gram, repeats), or None. "we went home" x 3 is a loop;
    "the the" is not (2 < 3)."""
    words = normalize_transcript(text).split()
    best: tuple[str, int] | None = None
    for n in range(1, max_ngram + 1):
        for start in range(len(words) - n * min_repeats + 1):
            gram = words[start:start + n]
            repeats = 1
            while words[start + repeats * n:start + (repeats + 1) * n] == gram:
                repeats += 1
            if repeats >= min_repeats and (best is None or repeats * n > best[1] * len(best[0].split())):
                best = (" ".join(gram), repeats)
    return best
