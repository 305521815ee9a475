"""Sentences about results, computed from the numbers (the book types no verdict by hand).

One rule throughout, stated once: a result is "above" or "below" a reference (chance, vanilla, the
paper) only when its 95 % interval excludes that reference; otherwise the difference is not shown at
this n, whatever the point estimate says.
"""

from __future__ import annotations

import math

RULE = "a difference counts only when the 95 % interval excludes the reference"


def versus(low: float, high: float, reference: float, name: str = "chance") -> str:
    """'above chance' / 'below chance' / 'not distinguishable from chance at this n' (the rule above);
    'no verdict (no interval)' where the interval is missing."""
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (low, high, reference)):
        return "no verdict (no interval)"
    if low > high:
        raise ValueError(f"interval [{low}, {high}] has its low end above its high end")
    if low > reference:
        return f"above {name}"
    if high < reference:
        return f"below {name}"
    return f"not distinguishable from {name} at this n"


def listing(names: list[str], none: str = "none") -> str:
    """'A', 'A and B', 'A, B and C'; `none` for an empty list."""
    names = [str(n) for n in names]
    if not names:
        return none
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def times(new: float, old: float) -> str:
    """How `new` compares with `old` as a factor: '2.1x faster' (new < old), '1.3x slower', 'the same'
    (within 1 %). For durations: smaller is faster."""
    if new <= 0 or old <= 0:
        raise ValueError(f"durations must be positive, got {new} and {old}")
    ratio = old / new
    if abs(ratio - 1) < 0.01:
        return "the same"
    return f"{ratio:.1f}x faster" if ratio > 1 else f"{1 / ratio:.1f}x slower"
