"""Headline sentences, each chosen from a page's numbers by a stated rule (the landing page glues them).

Rules, stated once: a score is above or below a reference level (chance) only when its 95 % interval
excludes it (`amlib.claims.RULE`); two results (a configuration and vanilla, long and short, two
protocols) differ only when their 95 % intervals do not overlap (`amlib.claims.RULE_TWO`). A headline
never picks a number by hand: it is the largest difference shown by that rule, or the sentence that
none is shown at this n.
"""

from __future__ import annotations

import pandas as pd

from amlib.claims import apart, listing, share, versus, with_interval


def _n_range(n: pd.Series) -> str:
    return f"n = {int(n.min())}" if n.nunique() == 1 else f"n = {int(n.min())}-{int(n.max())}"


def largest_shown_difference(comparisons: pd.DataFrame, reference: str = "vanilla") -> str:
    """The largest |score - ref_score| among the rows whose interval and the reference's do not
    overlap, as a sentence with both intervals and n; else "no difference from <reference> shown at
    this n". Columns: label, task, n, score, ci_low, ci_high, ref_score, ref_ci_low, ref_ci_high."""
    if comparisons.empty:
        raise ValueError(f"no configuration to compare with {reference}")
    verdicts = [apart(r.ci_low, r.ci_high, r.ref_ci_low, r.ref_ci_high, r.label, reference)
                for r in comparisons.itertuples()]
    shown = comparisons.assign(verdict=verdicts, gap=(comparisons["score"] - comparisons["ref_score"]).abs())
    shown = shown[~shown["verdict"].str.contains("not distinguishable|no verdict")]
    ns = _n_range(comparisons["n"])
    if shown.empty:
        return (f"no difference from {reference} shown at this n ({len(comparisons)} configuration-task pairs "
                f"compared, {ns} items each)")
    best = shown.sort_values("gap", ascending=False, kind="stable").iloc[0]
    return (f"{best['verdict']} on {best['task']}: {with_interval(best['score'], best['ci_low'], best['ci_high'], best['n'])} "
            f"against {with_interval(best['ref_score'], best['ref_ci_low'], best['ref_ci_high'], best['n'])} "
            f"(the largest of {len(shown)} differences shown among {len(comparisons)} configuration-task pairs)")


def against_reference(scores: pd.DataFrame, is_reference: pd.Series, labels: pd.Series) -> pd.DataFrame:
    """The rows `largest_shown_difference` reads: each non-reference score row (task, n, score,
    interval) beside the reference row of its task. `labels` names each row's configuration."""
    reference = scores[is_reference].set_index("task")
    others = scores[~is_reference]
    ref = reference.reindex(others["task"])
    return pd.DataFrame({"label": labels[~is_reference].values, "task": others["task"].values,
                         "n": others["n"].values, "score": others["score"].values,
                         "ci_low": others["ci_low"].values, "ci_high": others["ci_high"].values,
                         "ref_score": ref["score"].values, "ref_ci_low": ref["ci_low"].values,
                         "ref_ci_high": ref["ci_high"].values})


def agreement_sentence(counts: dict[str, tuple[int, int]]) -> str:
    """Per protocol, k of n answers identical to vanilla's with the Wilson 95 % interval, then whether
    the protocols differ (RULE_TWO). `counts`: protocol -> (same, n)."""
    if not counts:
        raise ValueError("no protocol to report")
    parts, intervals = [], {}
    for protocol, (k, n) in counts.items():
        pct, low, high = share(k, n)
        intervals[protocol] = (low, high)
        parts.append(f"{protocol}: {k} of {n} ({pct:.0f} % [{low:.0f}, {high:.0f}])")
    text = "; ".join(parts)
    if len(counts) == 2:
        (a, (alo, ahi)), (b, (blo, bhi)) = intervals.items()
        text += f"; {apart(alo, ahi, blo, bhi, a, b)}"
    return text


def _above_chance(scores: pd.DataFrame) -> list[str]:
    return [t for t, r in scores.iterrows() if versus(r["ci_low"], r["ci_high"], r["chance"]) == "above chance"]


def above_chance_tasks(scores: pd.DataFrame) -> str:
    """The tasks whose score is above chance beyond its interval (RULE), as a short list with the count
    and n; else "no task above chance beyond its interval at this n". `scores`: task index, score,
    ci_low, ci_high, n, chance."""
    above = _above_chance(scores)
    where = f"{len(scores)} tasks, {_n_range(scores['n'])}"
    if not above:
        return f"no task above chance beyond its interval at this n ({where})"
    return f"{listing(above)} ({len(above)} of {where})"


def above_chance_table(scores: pd.DataFrame, blind: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per task above chance beyond its interval: its score with interval and n, chance, and
    where the blind (silent-audio) baseline ran the task, the blind score with its n and its verdict
    against chance ("not run" where it did not). `blind`: a `blind_report` table."""
    rows = []
    for task in _above_chance(scores):
        r = scores.loc[task]
        row = {"task": task, "score [95 % interval]": with_interval(r["score"], r["ci_low"], r["ci_high"], int(r["n"])),
               "chance": round(float(r["chance"]), 1)}
        if blind is not None and task in blind.index:
            b = blind.loc[task]
            row["silent audio [95 % interval]"] = with_interval(b["blind_score"], b["blind_ci_low"], b["blind_ci_high"],
                                                                int(b["n"]))
            row["silent audio against chance"] = versus(b["blind_ci_low"], b["blind_ci_high"], b["chance"])
        else:
            row["silent audio [95 % interval]"] = row["silent audio against chance"] = "not run"
        rows.append(row)
    columns = ["task", "score [95 % interval]", "chance", "silent audio [95 % interval]", "silent audio against chance"]
    return pd.DataFrame(rows, columns=columns).set_index("task")


def items_per_task(built: dict[str, int], evaluated: dict[str, int], requested: int | None,
                   classes: dict[str, int]) -> str:
    """The n per task of a page and why a task has fewer: the page's limit (evaluated < built) or the
    builder's balancing (built = requested rounded down to a multiple of the task's class count)."""
    if set(evaluated) - set(built):
        raise ValueError(f"evaluated tasks not in the data: {sorted(set(evaluated) - set(built))}")
    counts = pd.Series(evaluated).value_counts()
    common = max(counts.index, key=lambda n: (counts[n], n))  # the most frequent n; a tie: the larger
    same = [t for t, n in evaluated.items() if n == common]
    text = f"{common} items per task" if len(same) == len(evaluated) else \
        f"{common} items per task for {listing(same)}"
    by_reason: dict[tuple, list[str]] = {}
    for task, n in evaluated.items():
        if n == common:
            continue
        if n < built[task]:
            reason = f"limited on this page; the data has {built[task]}"
        elif requested and built[task] < requested and built[task] == requested // classes[task] * classes[task]:
            reason = (f"balancing keeps an equal count of each of their {classes[task]} classes: "
                      f"{requested} rounded down to a multiple of {classes[task]}")
        else:
            reason = "as many as the data has"
        by_reason.setdefault((n, reason), []).append(task)
    for (n, reason), tasks in by_reason.items():
        text += f"; {listing(tasks)}: {n} ({reason})"
    return text


def class_counts(samples) -> dict[str, int]:
    """Per task, the number of classes balancing equalises (`TaskSpec.balance_by`: the label, the
    answer letter, or none: 1)."""
    from amlib.tasks import get_task

    found: dict[str, set] = {}
    for s in samples:
        how = get_task(s.task).balance_by
        key = s.meta.get("label") if how == "label" else (s.answer if how == "answer" else "")
        found.setdefault(s.task, set()).add(key)
    return {t: len(v) for t, v in found.items()}


def duration_sentence(table: pd.DataFrame, leave_out: tuple[str, ...] = ("ASR",)) -> str:
    """A `duration_table` read: the mean short and long score over its tasks with the number of pairs,
    the same without `leave_out` where it is there, and the tasks where short and long differ (RULE_TWO)."""
    tasks = table.drop(index="Avg", errors="ignore")
    if tasks.empty:
        raise ValueError("no task in the duration table")

    def means(part: pd.DataFrame) -> str:
        return (f"short {part['short'].mean():.1f} against long {part['long'].mean():.1f} "
                f"(mean over {listing(list(part.index))}, {int(part['n'].sum())} pairs)")

    text = means(tasks)
    rest = tasks.drop(index=[t for t in leave_out if t in tasks.index])
    if len(rest) < len(tasks) and not rest.empty:
        text += f"; without {listing([t for t in leave_out if t in tasks.index])}: {means(rest)}"
    verdicts = {t: apart(r["short_ci_low"], r["short_ci_high"], r["long_ci_low"], r["long_ci_high"], "short", "long")
                for t, r in tasks.iterrows()}
    shown = [f"{t} ({v})" for t, v in verdicts.items() if "not distinguishable" not in v and "no verdict" not in v]
    return text + f"; short and long differ beyond their intervals on: {listing(shown, 'no task at this n')}"


def paper_reading(paper: pd.DataFrame, hurts: tuple[str, ...], helps: tuple[str, ...]) -> dict[str, list[str]]:
    """For each model of the paper's Table 8 (`paper_duration_table`: tasks as rows, "<model> long" /
    "<model> short" columns), the tasks where the reading "long audio hurts `hurts` (short > long) and
    helps `helps` (long > short)" fails; an empty list: the reading holds for that model."""
    models = [c.removesuffix(" long") for c in paper.columns if c.endswith(" long")]
    out = {}
    for m in models:
        long, short = paper[f"{m} long"], paper[f"{m} short"]
        out[m] = [t for t in hurts if not short[t] > long[t]] + [t for t in helps if not long[t] > short[t]]
    return out


def paper_reading_sentence(fails: dict[str, list[str]]) -> str:
    """`paper_reading`'s result as a sentence: for which models it holds, and where it fails."""
    holds = [m for m, f in fails.items() if not f]
    text = f"holds for {listing(holds)} ({len(holds)} of the paper's {len(fails)} models)"
    broken = [f"{m} (not on {listing(f)})" for m, f in fails.items() if f]
    return text + (f"; fails for {listing(broken)}" if broken else "")


def trend_sentence(values: dict[float, float], n_items: int, what: str, min_ratios: int = 3) -> str:
    """Whether `what` grows with the ratio, read from one value per ratio (vanilla at 0 included): no
    verdict with fewer than `min_ratios` ratios; else whether the values rise at every step, with the
    values and n (they have no interval)."""
    ratios = sorted(values)
    if len(ratios) < min_ratios:
        return (f"no verdict at this n: {what} at {len(ratios)} ratio(s) ({', '.join(f'{r:g}' for r in ratios)}) "
                f"on {n_items} item(s); a trend needs at least {min_ratios}")
    steps = [values[b] > values[a] for a, b in zip(ratios, ratios[1:])]
    shape = "rises at every step" if all(steps) else "does not rise at every step"
    points = ", ".join(f"{r:g}: {values[r]:.1f}" for r in ratios)
    return f"{what} {shape} ({points}; {n_items} item(s), no interval)"


def trends_sentence(per_method: dict[str, dict[float, float]], n_items: int, what: str, min_ratios: int = 3) -> str:
    """`trend_sentence` for each method's values of `what` (e.g. "deletion share"), the methods with too
    few ratios for a verdict named together in one clause."""
    if not per_method:
        return "no pruned configuration"
    few = {m: v for m, v in per_method.items() if len(v) < min_ratios}
    parts = [trend_sentence(v, n_items, f"{m}'s {what}", min_ratios) for m, v in per_method.items() if m not in few]
    grids = {tuple(sorted(v)) for v in few.values()}
    if few:
        at = (f"at {len(next(iter(grids)))} ratio(s) ({', '.join(f'{r:g}' for r in next(iter(grids)))})"
              if len(grids) == 1 else f"at fewer than {min_ratios} ratios")
        parts.insert(0, f"no verdict at this n for {listing(list(few))}: each has its {what} {at} on {n_items} "
                        f"item(s); a trend needs at least {min_ratios}")
    return "; ".join(parts)


def released_zeros(released: pd.DataFrame) -> str:
    """Why a row parsed and scored as the released scripts do shows 0 on a task: per such task, how
    many answers the released rules could not parse (they score an empty set as 0). `released`: a
    `score_table(..., parser="released", scoring="released")`."""
    zeros = released[(released["score"] == 0) & released["metric"].ne("war")]
    if zeros.empty:
        return "no task scores 0 under the released rules"
    parts = [f"{t} (unparsed by the released rules: {int(r['unparsed'])} of {int(r['n'])} answers"
             + ("; the parsed ones all wrong)" if r["unparsed"] < r["n"] else ")") for t, r in zeros.iterrows()]
    return "0 under the released rules on " + listing(parts)
