"""Sentences about results, computed from the numbers (the book types no verdict by hand).

One rule throughout, stated once: a result is "above" or "below" a reference (chance, vanilla, the
paper) only when its 95 % interval excludes that reference; otherwise the difference is not shown at
this n, whatever the point estimate says.
"""

from __future__ import annotations

import math

RULE = "a difference counts only when the 95 % interval excludes the reference"


def _missing(*values) -> bool:
    return any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values)


def _check_interval(low: float, high: float) -> None:
    if low > high:
        raise ValueError(f"interval [{low}, {high}] has its low end above its high end")


def versus(low: float, high: float, reference: float, name: str = "chance") -> str:
    """'above chance' / 'below chance' / 'not distinguishable from chance at this n' (the rule above);
    'no verdict (no interval)' where the interval is missing."""
    if _missing(low, high, reference):
        return "no verdict (no interval)"
    _check_interval(low, high)
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


# --- Two results against each other, shares with their interval ------------------------------------------

RULE_TWO = "two results differ only when their 95 % intervals do not overlap"




def apart(a_low: float, a_high: float, b_low: float, b_high: float, a: str = "A", b: str = "B") -> str:
    """'A above B' / 'A below B' when the two 95 % intervals do not overlap (RULE_TWO); otherwise
    'A and B not distinguishable at this n'; 'no verdict (no interval)' where one is missing."""
    if _missing(a_low, a_high, b_low, b_high):
        return "no verdict (no interval)"
    _check_interval(a_low, a_high)
    _check_interval(b_low, b_high)
    if a_low > b_high:
        return f"{a} above {b}"
    if a_high < b_low:
        return f"{a} below {b}"
    return f"{a} and {b} not distinguishable at this n"


def with_interval(score: float, low: float, high: float, n: int, digits: int = 1) -> str:
    """'67.0 [44.0, 100.0], n = 3': a score as every sentence quotes it."""
    if _missing(score):
        return f"no score, n = {n}"
    if _missing(low, high):
        return f"{score:.{digits}f} (no interval), n = {n}"
    return f"{score:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}], n = {n}"


def share(k: int, n: int) -> tuple[float, float, float]:
    """k of n as a percentage with its Wilson 95 % interval: (pct, low, high)."""
    from amlib.metrics.bootstrap import wilson_interval

    if n <= 0:
        raise ValueError(f"a share needs n >= 1, got n = {n}")
    low, high = wilson_interval(k, n)
    return 100 * k / n, low, high
