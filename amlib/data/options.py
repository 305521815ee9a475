"""Step 4: multiple-choice options: the true label plus distractors from the other classes.

Answer positions are balanced across letters (each letter is the answer for n/k items, the rest
spread at random) and every random choice comes from the caller's seeded Generator.
"""

from __future__ import annotations

from string import ascii_uppercase

import numpy as np


def balanced_positions(n_items: int, n_options: int, rng: np.random.Generator) -> list[int]:
    """Answer positions 0..n_options-1, as equal in count as n_items allows, in random order."""
    base = [i % n_options for i in range(n_items)]
    # which letters get the extra items when n_items is not a multiple is random, not always A first
    order = rng.permutation(n_options)
    positions = [int(order[p]) for p in base]
    rng.shuffle(positions)
    return positions


def make_options(true_label: str, pool: list[str], n_options: int, position: int,
                 rng: np.random.Generator) -> tuple[list[str], str]:
    """(choices, answer letter): `true_label` at `position`, distractors drawn from `pool`."""
    others = sorted({p for p in pool if p.strip().lower() != true_label.strip().lower()})
    if len(others) < n_options - 1:
        raise ValueError(f"need {n_options - 1} distractors for {true_label!r}, the pool has {len(others)}: {others}")
    if not 0 <= position < n_options:
        raise ValueError(f"position {position} outside 0..{n_options - 1}")
    picked = [others[i] for i in rng.choice(len(others), size=n_options - 1, replace=False)]
    choices = picked[:position] + [true_label] + picked[position:]
    return choices, ascii_uppercase[position]
