"""The duration ablation (paper Table 8): long items against their short counterparts."""

from __future__ import annotations

import pandas as pd

from amlib.report.paper import paper_table
from amlib.report.scores import score_table
from amlib.tasks import TASK_ORDER


def paper_duration_table() -> pd.DataFrame:
    """The paper's Table 8 with tasks as rows and one column per model and duration ("<model> long",
    "<model> short"), in the paper's task order."""
    paper = paper_table("table8_duration")
    paper["column"] = paper["model"] + " " + paper["duration"]
    tasks = [t for t in TASK_ORDER if t in paper.columns]
    return paper.set_index("column")[tasks].T


def duration_table(long_rows: list[dict], short_rows: list[dict], seed: int = 0, n_resamples: int = 1000,
                   parser: str = "ours") -> pd.DataFrame:
    """Table 8 on this run: per task, the long items and their short (< 30 s) counterparts
    (amlib.data.short) each scored with `score_table` (macro-F1, WAR for ASR; `parser`; 95 % interval),
    n, short minus long, and the paper's Table 8 beside (`paper_duration_table`: its models on its real
    data, parsed with its own rules: the pattern to compare, not the numbers). A last row "Avg" is the
    mean over the tasks present, the paper's columns averaged over the same tasks.

    The two sets must be paired: every short row's id is a long row's id + amlib.data.short.SHORT_SUFFIX
    and every long row has its short row (ValueError naming the unpaired ids otherwise)."""
    from amlib.data.short import SHORT_SUFFIX

    long_ids = {r["id"] for r in long_rows}
    short_of = {r["id"].removesuffix(SHORT_SUFFIX) for r in short_rows}
    unpaired = sorted(long_ids ^ short_of)
    if unpaired or any(not r["id"].endswith(SHORT_SUFFIX) for r in short_rows):
        raise ValueError(f"duration_table needs each long item with its short counterpart (id + {SHORT_SUFFIX!r}); "
                         f"unpaired: {', '.join(unpaired[:8]) or 'short ids without the suffix'}")
    scores = {name: score_table(rows, seed=seed, n_resamples=n_resamples, parser=parser)
              for name, rows in (("long", long_rows), ("short", short_rows))}
    table = pd.DataFrame({"metric": scores["long"]["metric"], "n": scores["long"]["n"]})
    for name, part in scores.items():
        table[name] = part["score"]
        table[f"{name}_ci_low"], table[f"{name}_ci_high"] = part["ci_low"], part["ci_high"]
    table["short_minus_long"] = table["short"] - table["long"]
    paper = paper_duration_table()
    table = table.join(paper, how="left")
    avg = {"metric": "mean over tasks", "n": int(table["n"].sum()),
           **{c: table[c].mean() for c in ["long", "short", "short_minus_long", *paper.columns]}}
    table.loc["Avg"] = pd.Series(avg)
    table.attrs["parser"] = parser
    return table
