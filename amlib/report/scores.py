"""Scores per task from prediction rows (`score_table`), the same beside the paper's Table 3
(`beside_paper`), a reader's view of them, two runs of the same items compared, and the random
baseline (the paper's Table 6)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from amlib.metrics import macro_f1, parse_choice, score_task
from amlib.metrics.bootstrap import ACCURACY_CI_METHOD
from amlib.metrics.classification import LABEL_TEXT_TASKS, label_text, to_label_text
from amlib.metrics.released import released_score, released_war
from amlib.metrics.parsing import PARSERS
from amlib.report.paper import paper_table
from amlib.tasks import TASK_ORDER, TaskSpec, get_task


def chance_macro_f1(truth: list[str], labels: list[str], seed: int = 0, draws: int = 200,
                    options: list[list[str]] | None = None) -> float:
    """Expected macro-F1 of a uniform random guesser on these very labels (Monte Carlo, seeded).

    The guesser picks uniformly among `labels`, or, where given, among each item's `options`
    (e.g. the label texts of an item's shuffled options).
    """
    rng = np.random.default_rng(seed)
    if options is None:
        guesses = rng.choice(labels, size=(draws, len(truth)))
    else:
        picks = rng.random(size=(draws, len(truth)))
        guesses = [[opts[int(u * len(opts))] for opts, u in zip(options, row)] for row in picks.tolist()]
    return float(np.mean([macro_f1(truth, list(g), labels) for g in guesses]))


def _item_choices(spec: TaskSpec, row: dict, parser: str) -> list[str] | None:
    """The option texts of a prediction row; None where the scoring does not need them."""
    choices = row.get("choices")
    if isinstance(choices, (list, tuple)) and choices:  # rows without the key read back as NaN
        return list(choices)
    if spec.fixed_choices is not None:
        return list(spec.fixed_choices)
    if parser in ("ours", "released") or spec.code in LABEL_TEXT_TASKS:
        raise ValueError(
            f"prediction row {row.get('id')!r} ({spec.code}) has no 'choices', which scoring with "
            f"parser={parser!r} needs (rows written before parser version 2 lack them); re-run it")
    return None


# The columns of a task whose every row failed: NaN, as no answer was scored.
NO_SCORE_WHEN_FAILED = ("score", "ci_low", "ci_high", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "war_capped")


def most_common_error(errors: pd.Series) -> str | None:
    """The most frequent error message of some rows (first seen on ties), None without errors."""
    errors = errors.dropna()
    return str(errors.value_counts(sort=True).index[0]) if len(errors) else None


SCORINGS = ("ours", "released")


def _released(spec: TaskSpec, truth: list, pred: list, choices) -> dict:
    """The released scripts' score of one task (`amlib.metrics.released`), without an interval."""
    if not spec.is_choice:
        score, used = released_war(truth, pred)
    else:
        if spec.code in LABEL_TEXT_TASKS:
            truth, pred, _ = to_label_text(spec, truth, pred, choices)
        score, used = released_score(spec.code, truth, pred)
    return {"score": score, "ci_low": np.nan, "ci_high": np.nan, "ci_method": "none (released scoring)",
            "scored_items": used}


def score_table(rows: list[dict], seed: int = 0, n_resamples: int = 1000, parser: str = "ours",
                scoring: str = "ours") -> pd.DataFrame:
    """One row per task: score with its interval, accuracy with its Wilson interval, n, unparsed
    answers, errors and chance level; the parser, the scoring and the interval methods are named in
    columns.

    Every answer is parsed again from its `prediction` text with `parser` ("ours", "paper" or
    "released"), so the table never mixes parsers. Error rows (no prediction) count as unparsed,
    hence wrong, and "errors" counts them; "error" names the most frequent error message (None
    without errors). A task whose rows ALL failed did not run: it is "failed", its score, intervals
    and accuracy are NaN (never 0, which would read as a result).

    `scoring="ours"` (default, the headline): macro-F1 over all items (WAR for ASR) with its
    interval. `scoring="released"`: the score as the paper's released scripts compute it (unparsed
    answers dropped, SGR weighted F1, SD the F1 of "fake", ...; `amlib.metrics.released`), for
    tables beside the paper's numbers only; no interval (NaN), "scored_items" = items it used.
    """
    if parser not in PARSERS:
        raise ValueError(f"unknown parser {parser!r}; known: {', '.join(PARSERS)}")
    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r}; known: {', '.join(SCORINGS)}")
    if not rows:
        raise ValueError("no prediction rows to score")
    frame = pd.DataFrame(rows)
    if "error" not in frame:
        frame["error"] = None
    out = []
    for task in [t for t in TASK_ORDER if t in set(frame["task"])]:
        spec, part = get_task(task), frame[frame["task"] == task]
        records = part.to_dict("records")
        truth = part["answer"].tolist()
        texts = [r["prediction"] if isinstance(r.get("prediction"), str) else None for r in records]
        choices = None
        if spec.is_choice:
            choices = [_item_choices(spec, r, parser) for r in records]
            pred = [parse_choice(text, spec.n_options, c, parser=parser, task=task) for text, c in zip(texts, choices)]
            if spec.code in LABEL_TEXT_TASKS:
                options = [[label_text(o) for o in c] for c in choices]
                labels = sorted({o for opts in options for o in opts})
                truth_labels = [opts[spec.letters.index(a)] for opts, a in zip(options, truth)]
                chance = chance_macro_f1(truth_labels, labels, seed, options=options)
            else:
                chance = chance_macro_f1(truth, list(spec.letters), seed)
        else:
            pred, chance = texts, np.nan
        scored = score_task(spec, truth, pred, seed=seed, n_resamples=n_resamples, choices=choices)
        if scoring == "released":
            scored.update(_released(spec, truth, pred, choices))
        out.append({"task": task, "parser": parser if spec.is_choice else None, "scoring": scoring, **scored,
                    "accuracy_ci_method": ACCURACY_CI_METHOD if spec.is_choice else None,
                    "errors": int(part["error"].notna().sum()), "chance": chance,
                    "error": most_common_error(part["error"])})
        if out[-1]["errors"] == out[-1]["n"]:  # nothing ran: no score, not a score of 0
            out[-1].update(dict.fromkeys(NO_SCORE_WHEN_FAILED, np.nan))
    table = pd.DataFrame(out).set_index("task")
    table.attrs["parser"] = parser
    table.attrs["scoring"] = scoring
    return table


BESIDE_PAPER = "released parser and scoring"


def beside_paper(scores: pd.DataFrame | list[dict], label: str, paper: str = "table3_baseline",
                 seed: int = 0, n_resamples: int = 1000) -> pd.DataFrame:
    """Our per-task scores as one row on top of the paper's rows (tasks as columns, paper order).

    The paper's numbers come from its released per-task scripts, so ours must be parsed and scored
    as those do: pass prediction rows (scored here with parser="released", scoring="released") or a
    `score_table(..., parser="released", scoring="released")` frame; a frame parsed or scored
    otherwise raises ValueError. The row label ends with "[released parser and scoring]".
    """
    if isinstance(scores, pd.DataFrame):
        parsers = set(scores["parser"].dropna()) if "parser" in scores else set()
        scorings = set(scores["scoring"].dropna()) if "scoring" in scores else set()
        if parsers != {"released"} or scorings != {"released"}:
            raise ValueError("beside_paper compares with the paper's numbers: score with score_table(rows, "
                             "parser='released', scoring='released') (this table used parser "
                             f"{sorted(parsers) or 'unknown'}, scoring {sorted(scorings) or 'unknown'})")
    else:
        scores = score_table(scores, seed=seed, n_resamples=n_resamples, parser="released", scoring="released")
    table = paper_table(paper).set_index("model")
    tasks = [t for t in TASK_ORDER if t in table.columns]
    ours = pd.DataFrame([scores["score"].reindex(tasks)], index=[f"{label} [{BESIDE_PAPER}]"])
    return pd.concat([ours, table[tasks]]).round(1)


def headline_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """A `score_table` as a reader's table: per task its metric, "score [ci_low, ci_high]", n and the
    chance level (the landing page shows it)."""
    return pd.DataFrame({
        "metric": scores["metric"],
        "score [95 % interval]": [f"{s:.1f} [{lo:.1f}, {hi:.1f}]" for s, lo, hi in
                                  zip(scores["score"], scores["ci_low"], scores["ci_high"])],
        "n": scores["n"].astype(int),
        "chance": [f"{c:.1f}" if pd.notna(c) else "" for c in scores["chance"]],
    }, index=scores.index)


def compare_runs(rows_a: list[dict], rows_b: list[dict], labels: tuple[str, str] = ("a", "b"), seed: int = 0,
                 parser: str = "ours") -> pd.DataFrame:
    """Per task, on the items both runs answered without error: each run's score with its 95 %
    interval, whether the two intervals overlap, the share of identical answers, and the mean
    prefill / decode seconds of each (their ratio b/a is a speed-up only if both ran alike)."""
    ok_a = {r["id"]: r for r in rows_a if not r.get("error")}
    ok_b = {r["id"]: r for r in rows_b if not r.get("error")}
    common = [i for i in ok_a if i in ok_b]
    if not common:
        raise ValueError("the two runs have no item in common without an error")
    a, b = [ok_a[i] for i in common], [ok_b[i] for i in common]
    sa, sb = score_table(a, seed=seed, parser=parser), score_table(b, seed=seed, parser=parser)
    fa, fb = pd.DataFrame(a), pd.DataFrame(b)
    la, lb = labels
    out = pd.DataFrame({
        f"score_{la}": sa["score"], f"ci_{la}": sa["ci_low"].round(1).astype(str) + "-" + sa["ci_high"].round(1).astype(str),
        f"score_{lb}": sb["score"], f"ci_{lb}": sb["ci_low"].round(1).astype(str) + "-" + sb["ci_high"].round(1).astype(str),
        "intervals_overlap": (sa["ci_low"] <= sb["ci_high"]) & (sb["ci_low"] <= sa["ci_high"]),
        "n": sa["n"],
    })
    same = (fa["prediction"] == fb["prediction"]).groupby(fa["task"]).mean() * 100
    out["same_answer_pct"] = same.reindex(out.index)
    for label, frame in ((la, fa), (lb, fb)):
        out[f"prefill_s_{label}"] = frame.groupby("task")["prefill_s"].mean().reindex(out.index)
        out[f"decode_s_{label}"] = frame.groupby("task")["decode_s"].mean().reindex(out.index)
    return out


def random_baseline(samples, guessers: int = 100, seed: int = 0) -> pd.DataFrame:
    """Table 6 on this run's data: `guessers` seeded uniform random guessers per choice task (each
    item's answer letter drawn among its options), scored like the models (macro-F1 over letters, or
    over label text for SD/SGR/SAR); mean and standard deviation of accuracy and macro-F1 (0-100)."""
    from amlib.metrics.classification import to_label_text

    rng = np.random.default_rng(seed)
    out = []
    by_task: dict[str, list] = {}
    for s in samples:
        by_task.setdefault(s.task, []).append(s)
    for task in [t for t in TASK_ORDER if t in by_task]:
        spec = get_task(task)
        if not spec.is_choice:
            continue
        items = by_task[task]
        truth = [s.answer for s in items]
        choices = [list(s.choices) for s in items]
        acc, f1 = [], []
        for _ in range(guessers):
            guess = [spec.letters[i] for i in rng.integers(0, spec.n_options, size=len(items))]
            acc.append(100 * np.mean([g == t for g, t in zip(guess, truth)]))
            if task in LABEL_TEXT_TASKS:
                t_lab, g_lab, labels = to_label_text(spec, truth, guess, choices)
                f1.append(macro_f1(t_lab, g_lab, labels))
            else:
                f1.append(macro_f1(truth, guess, list(spec.letters)))
        out.append({"task": task, "labels": spec.n_options, "n": len(items), "guessers": guessers,
                    "acc_mean": float(np.mean(acc)), "acc_sd": float(np.std(acc)),
                    "macro_f1_mean": float(np.mean(f1)), "macro_f1_sd": float(np.std(f1))})
    return pd.DataFrame(out)
