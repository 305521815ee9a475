"""ASR error analysis (paper Tables 9-10): error rates and patterns per configuration."""

from __future__ import annotations

import pandas as pd

from amlib.tasks import get_task


def configuration_label(rows: list[dict]) -> str:
    """A run's configuration as text: "vanilla", "frame 0.9 (K2)", "snapkv 0.5 query_agnostic"."""
    prov = rows[0]["provenance"]
    if prov.get("press"):
        return f"{prov['press']} {float(prov['ratio']):g} {prov.get('protocol')}"
    if prov.get("method") not in (None, "vanilla"):
        return f"{prov['method']} {float(prov['ratio']):g} (K{prov.get('layer')})"
    return "vanilla"


def asr_error_table(runs: list[list[dict]], k: int = 8) -> pd.DataFrame:
    """Per configuration, over its ASR rows without errors: n, corpus WER split into substitution /
    deletion / insertion rates (% of reference words), answers caught in a repetition loop, answers
    cut off by the token budget (new tokens = the row's `max_new_tokens`, else the task's), and the k most frequent
    insertions, deletions and substitutions (the paper's Tables 9-10)."""
    from amlib.metrics.asr_errors import error_patterns, repetition_loop

    budget = get_task("ASR").max_new_tokens
    out = []
    for rows in runs:
        asr = [r for r in rows if r["task"] == "ASR" and not r.get("error")]
        if not asr:
            continue
        patterns = error_patterns([r["answer"] for r in asr], [r["prediction"] for r in asr])
        out.append({"configuration": configuration_label(rows), "n": len(asr), **patterns.rates(),
                    "loops": sum(repetition_loop(r["prediction"]) is not None for r in asr),
                    "truncated": sum((r.get("new_tokens") or 0) >= (r.get("max_new_tokens") or budget) for r in asr),
                    "insertions": patterns.top("insertions", k), "deletions": patterns.top("deletions", k),
                    "substitutions": patterns.top("substitutions", k)})
    return pd.DataFrame(out)


def on_common_items(runs: list[list[dict]]) -> list[list[dict]]:
    """Every run restricted to the ids all of them have (a vanilla file may hold more items than the
    pruned runs); ValueError when they share none."""
    common = set.intersection(*({r["id"] for r in rows} for rows in runs)) if runs else set()
    if not common:
        raise ValueError("the runs share no item")
    return [[r for r in rows if r["id"] in common] for rows in runs]


# the words the paper's Tables 9-10 find deleted most
FUNCTION_WORDS = frozenset({"the", "and", "of", "to", "a", "in", "was", "it", "that", "i"})


def deletion_pattern(runs: list[list[dict]], words: frozenset = FUNCTION_WORDS) -> pd.DataFrame:
    """The paper's reading of Tables 9-10, as numbers per configuration (its ASR rows without errors):
    all word errors, the share of them that are deletions, and the share of deletions falling on
    `words` (NaN where there is nothing to share)."""
    from amlib.metrics.asr_errors import error_patterns

    out = []
    for rows in runs:
        ok = [r for r in rows if r["task"] == "ASR" and not r.get("error")]
        p = error_patterns([r["answer"] for r in ok], [r["prediction"] for r in ok])
        deleted = sum(p.deletions.values())
        total = deleted + sum(p.insertions.values()) + sum(p.substitutions.values())
        out.append({"configuration": configuration_label(rows), "errors": total,
                    "deletion share %": 100 * deleted / total if total else float("nan"),
                    "function-word share of deletions %":
                        100 * sum(p.deletions[w] for w in words) / deleted if deleted else float("nan")})
    return pd.DataFrame(out)
