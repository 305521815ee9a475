"""Scores per task from prediction rows, and the paper's own tables for side-by-side comparison.

The paper's tables (transcribed to CSV, shipped in `amlib/paper/tables/`) are comparison material
only, never results of this project.

`score_table(rows, parser=...)` re-parses every stored answer (`prediction`) with the chosen parser
("ours", default, or "paper"; see `amlib.metrics.parsing`) and says which in its "parser" column.
Macro-F1 runs over label text for SD, SGR and SAR and over letters elsewhere ("f1_over"); WAR is
the paper's uncapped value, with the capped one beside it ("war_capped"). Intervals: "ci_low" /
"ci_high" of the score by the method named in "ci_method" (smoothed Bayesian bootstrap, see
`amlib.metrics.bootstrap`); "accuracy_ci_low" / "accuracy_ci_high" are Wilson score intervals.
`beside_paper` always uses the paper's parser.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from amlib.metrics import macro_f1, parse_choice, score_task
from amlib.metrics.bootstrap import ACCURACY_CI_METHOD
from amlib.metrics.classification import LABEL_TEXT_TASKS, label_text
from amlib.metrics.parsing import PARSERS
from amlib.tasks import TASK_ORDER, TaskSpec, get_task


def paper_table(name: str) -> pd.DataFrame:
    """One of the paper's tables, e.g. "table3_baseline" (see amlib/paper/tables/)."""
    path = resources.files("amlib.paper") / "tables" / f"{name}.csv"
    if not path.is_file():
        known = sorted(p.name[:-4] for p in (resources.files("amlib.paper") / "tables").iterdir())
        raise FileNotFoundError(f"no paper table {name!r}; known: {', '.join(known)}")
    with path.open() as fh:
        return pd.read_csv(fh)


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
    if parser == "ours" or spec.code in LABEL_TEXT_TASKS:
        raise ValueError(
            f"prediction row {row.get('id')!r} ({spec.code}) has no 'choices', which scoring with "
            f"parser={parser!r} needs (rows written before parser version 2 lack them); re-run it")
    return None


def score_table(rows: list[dict], seed: int = 0, n_resamples: int = 1000, parser: str = "ours") -> pd.DataFrame:
    """One row per task: score with its interval, accuracy with its Wilson interval, n, unparsed
    answers, errors and chance level; the parser and interval methods are named in columns.

    Every answer is parsed again from its `prediction` text with `parser` ("ours" or "paper"), so
    the table never mixes parsers. Error rows (no prediction) count as unparsed, hence wrong.
    """
    if parser not in PARSERS:
        raise ValueError(f"unknown parser {parser!r}; known: {', '.join(PARSERS)}")
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
            pred = [parse_choice(text, spec.n_options, c, parser=parser) for text, c in zip(texts, choices)]
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
        out.append({"task": task, "parser": parser if spec.is_choice else None, **scored,
                    "accuracy_ci_method": ACCURACY_CI_METHOD if spec.is_choice else None,
                    "errors": int(part["error"].notna().sum()), "chance": chance})
    table = pd.DataFrame(out).set_index("task")
    table.attrs["parser"] = parser
    return table


def beside_paper(scores: pd.DataFrame | list[dict], label: str, paper: str = "table3_baseline",
                 seed: int = 0, n_resamples: int = 1000) -> pd.DataFrame:
    """Our per-task scores as one row on top of the paper's rows (tasks as columns, paper order).

    The paper's numbers were parsed with the paper's rules, so ours must be too: pass prediction
    rows (scored here with parser="paper") or a `score_table(..., parser="paper")` frame; a frame
    scored with another parser raises ValueError. The row label ends with "[paper parser]".
    """
    if isinstance(scores, pd.DataFrame):
        used = set(scores["parser"].dropna()) if "parser" in scores else set()
        if used != {"paper"} and not (not used and scores.attrs.get("parser") == "paper"):
            raise ValueError("beside_paper compares with the paper's numbers: score with "
                             f"score_table(rows, parser='paper') (this table used {sorted(used) or 'unknown'})")
    else:
        scores = score_table(scores, seed=seed, n_resamples=n_resamples, parser="paper")
    table = paper_table(paper).set_index("model")
    tasks = [t for t in TASK_ORDER if t in table.columns]
    ours = pd.DataFrame([scores["score"].reindex(tasks)], index=[f"{label} [paper parser]"])
    return pd.concat([ours, table[tasks]]).round(1)


def manifest_frame(samples) -> pd.DataFrame:
    """Samples (from read_manifest) as a frame with the task's category and domain added."""
    frame = pd.DataFrame([s.to_json() for s in samples])
    frame["category"] = [get_task(t).category for t in frame["task"]]
    frame["domain"] = [get_task(t).domain for t in frame["task"]]
    return frame


def composition_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Table 5's shape: questions per task and source, with hours and durations, ours beside the paper's."""
    ours = (frame.groupby(["task", "category", "source"])["duration_s"]
            .agg(questions="count", hours=lambda d: d.sum() / 3600, mean_s="mean", min_s="min", max_s="max")
            .reset_index())
    paper = paper_table("table5_composition").rename(columns={"source": "paper_source", "questions": "paper_questions"})
    table = ours.merge(paper[["task", "paper_source", "paper_questions"]], on="task", how="left")
    order = {t: i for i, t in enumerate(TASK_ORDER)}
    return table.sort_values("task", key=lambda s: s.map(order)).reset_index(drop=True)


def benchmark_row(frame: pd.DataFrame, name: str) -> dict:
    """Our data set as a row of the paper's Table 1 (hours, size, domains covered, mean duration)."""
    domains = set(frame["domain"])
    return {"benchmark": name, "hours": round(frame["duration_s"].sum() / 3600, 2), "size": str(len(frame)),
            "speech": int("speech" in domains), "sound": int("sound" in domains), "music": int("music" in domains),
            "avg_duration_s": round(float(frame["duration_s"].mean()), 1)}


def benchmarks_table(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The paper's Table 1 with our row appended."""
    paper = paper_table("table1_benchmarks")
    return pd.concat([paper, pd.DataFrame([benchmark_row(frame, name)])], ignore_index=True)


# ---------------------------------------------------------------------------------------------
# token pruning (paper §4.1: Table 4, Figures 5, 6, 9-13)

CAPABILITIES = {  # the paper's six-degree view (Figure 9): capability -> tasks averaged
    "Speech Understanding": ("SER", "SCR"), "Speaker Recognition": ("SAR", "SGR"),
    "Emotion Recognition": ("ER",), "Authenticity Recognition": ("SD",), "ASR": ("ASR",),
    "Multi-Domain Classification": ("SED", "MC"),
}


def configuration_of(rows: list[dict]) -> tuple[str, float]:
    """(method, ratio) of a predictions file's rows (one configuration per file)."""
    configs = {(r["provenance"]["method"], float(r["provenance"]["ratio"] or 0.0)) for r in rows}
    if len(configs) != 1:
        raise ValueError(f"rows of several configurations mixed: {sorted(configs)}")
    return configs.pop()


def pruning_scores(runs: list[list[dict]], seed: int = 0, parser: str = "ours") -> pd.DataFrame:
    """Long table, one row per (method, ratio, task): score and CI, n, chance, mean prefill/decode
    seconds, kept audio tokens, the theoretical LM FLOPs ratio. `runs`: each configuration's rows."""
    out = []
    for rows in runs:
        method, ratio = configuration_of(rows)
        scores = score_table(rows, seed=seed, parser=parser)
        frame = pd.DataFrame(rows)
        for task, s in scores.iterrows():
            part = frame[(frame["task"] == task) & frame["error"].isna()]
            out.append({"method": method, "ratio": ratio, "task": task, "score": s["score"], "ci_low": s["ci_low"],
                        "ci_high": s["ci_high"], "n": int(s["n"]), "errors": int(s["errors"]), "chance": s["chance"],
                        "prefill_s": part["prefill_s"].mean(), "decode_s": part["decode_s"].mean(),
                        "audio_tokens": part["audio_tokens"].mean(),
                        "kept_audio_tokens": part["audio_tokens_after"].mean() if "audio_tokens_after" in part else part["audio_tokens"].mean(),
                        "flops_ratio": part["prefill_flops_ratio"].mean() if "prefill_flops_ratio" in part else 1.0,
                        "parser": parser})
    table = pd.DataFrame(out)
    table["flops_ratio"] = table["flops_ratio"].fillna(1.0)
    return table.sort_values(["ratio", "method", "task"], key=lambda c: c.map(_method_rank) if c.name == "method" else c)


def differences_from_vanilla(scores: pd.DataFrame) -> pd.DataFrame:
    """Per pruning configuration and task (a `pruning_scores` table): score minus vanilla's and
    whether the two 95 % intervals are disjoint, i.e. whether this run can show the difference at
    all. With few items per task most are not: then the table says so instead of a ranking."""
    vanilla = scores[scores["method"] == "vanilla"].set_index("task")
    if vanilla.empty:
        raise ValueError("no vanilla rows to compare with")
    out = []
    for _, row in scores[scores["method"] != "vanilla"].iterrows():
        if row["task"] not in vanilla.index:
            continue
        base = vanilla.loc[row["task"]]
        out.append({"method": row["method"], "ratio": row["ratio"], "task": row["task"], "n": row["n"],
                    "minus_vanilla": row["score"] - base["score"],
                    "shown": bool(row["ci_high"] < base["ci_low"] or row["ci_low"] > base["ci_high"])})
    return pd.DataFrame(out)


def _method_rank(method: str) -> int:
    order = ["vanilla", "random", "fastv", "dart", "frame"]
    return order.index(method) if method in order else len(order)


def pruning_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Table 4's layout: rows (method, ratio), tasks as columns (paper order), and their average."""
    wide = scores.pivot_table(index=["method", "ratio"], columns="task", values="score")
    wide = wide[[t for t in TASK_ORDER if t in wide.columns]]
    wide["Avg"] = wide.mean(axis=1)
    order = sorted(wide.index, key=lambda mr: (mr[1], _method_rank(mr[0])))
    return wide.loc[order]


def paper_pruning_table(model: str = "Qwen2.5-Omni-3B") -> pd.DataFrame:
    """The paper's Table 4 rows of one model, in `pruning_table`'s layout."""
    table = paper_table("table4_pruning")
    if model not in set(table["model"]):
        raise ValueError(f"no {model!r} in the paper's Table 4; it has {sorted(set(table['model']))}")
    part = table[table["model"] == model].drop(columns="model").set_index(["method", "ratio"])
    return part.loc[sorted(part.index, key=lambda mr: (mr[1], _method_rank(mr[0])))]


def capability_scores(wide: pd.DataFrame, best_over_ratios: bool = True) -> pd.DataFrame:
    """Figure 9's six capabilities per method: means of the listed tasks' scores; with
    `best_over_ratios`, each method's best ratio per capability (as the paper reports), vanilla as is."""
    caps = pd.DataFrame({cap: wide[[t for t in tasks if t in wide.columns]].mean(axis=1)
                         for cap, tasks in CAPABILITIES.items() if any(t in wide.columns for t in tasks)})
    if best_over_ratios:
        caps = caps.groupby(level="method").max()
        caps = caps.loc[sorted(caps.index, key=_method_rank)]
    return caps


def pruning_speedups(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (method, ratio): mean prefill seconds over the tasks of `pruning_scores`, the speed-up over
    vanilla's and the LM FLOP bound (1 / mean FLOPs ratio) it is set against (Figures 6, 12, 13)."""
    per = scores.groupby(["method", "ratio"]).agg(prefill_s=("prefill_s", "mean"), flops=("flops_ratio", "mean")).reset_index()
    vanilla = per.loc[per["method"] == "vanilla", "prefill_s"]
    if vanilla.empty:
        raise ValueError("no vanilla configuration among the scores: speed-ups need its prefill time")
    per["speedup"] = vanilla.iloc[0] / per["prefill_s"]
    per["bound"] = 1 / per["flops"]
    return per


# ---------------------------------------------------------------------------------------------
# KV-cache eviction (paper §4.2: Table 7, Figure 7)

def eviction_configuration_of(rows: list[dict]) -> tuple[str, float, str]:
    """(press, ratio, protocol) of a predictions file's rows; a vanilla file is ("vanilla", 0.0, "none")."""
    configs = {(r["provenance"].get("press") or "vanilla", float(r["provenance"]["ratio"] or 0.0),
                r["provenance"].get("protocol") or "none") for r in rows}
    if len(configs) != 1:
        raise ValueError(f"rows of several configurations mixed: {sorted(configs)}")
    return configs.pop()


def eviction_scores(runs: list[list[dict]], seed: int = 0, parser: str = "ours") -> pd.DataFrame:
    """Long table, one row per (press, ratio, protocol, task): score and CI, n, chance, mean prefill /
    decode seconds, peak memory, KV-cache bytes after prefill and the compression achieved."""
    out = []
    for rows in runs:
        press, ratio, protocol = eviction_configuration_of(rows)
        scores = score_table(rows, seed=seed, parser=parser)
        frame = pd.DataFrame(rows)
        for task, s in scores.iterrows():
            part = frame[(frame["task"] == task) & frame["error"].isna()]
            kv = part["kv_bytes"].mean() if "kv_bytes" in part else np.nan
            out.append({"press": press, "ratio": ratio, "protocol": protocol, "task": task, "score": s["score"],
                        "ci_low": s["ci_low"], "ci_high": s["ci_high"], "n": int(s["n"]), "errors": int(s["errors"]),
                        "chance": s["chance"], "prefill_s": part["prefill_s"].mean(),
                        "decode_s": part["decode_s"].mean(), "new_tokens": part["new_tokens"].mean(),
                        "peak_memory_mb": part["peak_memory_mb"].mean(),
                        "kv_mb": kv / 2**20 if not pd.isna(kv) else np.nan,
                        "kv_compression": part["kv_compression"].mean() if "kv_compression" in part else 0.0,
                        "parser": parser})
    table = pd.DataFrame(out)
    table["kv_compression"] = table["kv_compression"].fillna(0.0)
    return table.sort_values(["protocol", "ratio", "press", "task"]).reset_index(drop=True)


def eviction_table(scores: pd.DataFrame, protocol: str = "query_aware") -> pd.DataFrame:
    """Table 7's layout for one protocol: rows (press, ratio) with vanilla first, tasks as columns."""
    part = scores[scores["protocol"].isin([protocol, "none"])]
    wide = part.pivot_table(index=["press", "ratio"], columns="task", values="score")
    wide = wide[[t for t in TASK_ORDER if t in wide.columns]]
    wide["Avg"] = wide.mean(axis=1)
    return wide.loc[sorted(wide.index, key=lambda pr: (pr[0] != "vanilla", pr[0], pr[1]))]


def paper_eviction_table() -> pd.DataFrame:
    """The paper's Table 7 (Qwen2.5-Omni-3B, its query-aware protocol), in `eviction_table`'s layout."""
    table = paper_table("table7_eviction_qwen25omni3b").set_index(["press", "ratio"])
    return table.loc[sorted(table.index, key=lambda pr: (pr[0] != "vanilla", pr[0], pr[1]))]


def protocol_comparison(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (press, ratio, task): the score under each protocol and the query-agnostic minus
    query-aware difference, with both intervals; only configurations run under both protocols."""
    keys = ["press", "ratio", "task"]
    cols = ["score", "ci_low", "ci_high", "n"]
    aware = scores[scores["protocol"] == "query_aware"].set_index(keys)[cols]
    agnostic = scores[scores["protocol"] == "query_agnostic"].set_index(keys)[cols]
    both = aware.join(agnostic, lsuffix="_aware", rsuffix="_agnostic", how="inner")
    both["agnostic_minus_aware"] = both["score_agnostic"] - both["score_aware"]
    return both.reset_index()


def eviction_memory(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (press, ratio, protocol): mean KV-cache MB after prefill, compression achieved, peak memory,
    prefill and decode seconds over every task of `eviction_scores` (Figure 7's numbers)."""
    return scores.groupby(["protocol", "press", "ratio"]).agg(
        kv_mb=("kv_mb", "mean"), kv_compression=("kv_compression", "mean"),
        peak_memory_mb=("peak_memory_mb", "mean"), prefill_s=("prefill_s", "mean"),
        decode_s=("decode_s", "mean")).reset_index()


def agreement_with_vanilla(runs: list[list[dict]]) -> pd.DataFrame:
    """Per (press, ratio, protocol, task): the share (%) of items whose answer text is exactly
    vanilla's, and of choice items whose parsed choice is. Under the paper's query-aware protocol
    the first answer token comes from the uncompressed prefill, so short answers rarely change."""
    vanilla = next((rows for rows in runs if eviction_configuration_of(rows)[0] == "vanilla"), None)
    if vanilla is None:
        raise ValueError("no vanilla run among the runs: agreement needs its answers")
    ref = {r["id"]: r for r in vanilla if not r.get("error")}
    out = []
    for rows in runs:
        press, ratio, protocol = eviction_configuration_of(rows)
        if press == "vanilla":
            continue
        frame = pd.DataFrame([{"task": r["task"], "same_text": r["prediction"] == ref[r["id"]]["prediction"],
                               "same_choice": r["parsed"] == ref[r["id"]]["parsed"]}
                              for r in rows if not r.get("error") and r["id"] in ref])
        for task, part in frame.groupby("task"):
            out.append({"press": press, "ratio": ratio, "protocol": protocol, "task": task, "n": len(part),
                        "same_text_pct": 100 * part["same_text"].mean(),
                        "same_answer_pct": 100 * part["same_choice"].mean()})
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------
# ASR error analysis (paper Tables 9-10)

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


# ---------------------------------------------------------------------------------------------
# the random baseline (paper Table 6)

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


# ---------------------------------------------------------------------------------------------
# two runs of the same items (e.g. float32 vs bfloat16)

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


# ---------------------------------------------------------------------------------------------
# the duration ablation (paper Table 8)

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


# ---------------------------------------------------------------------------------------------
# results overview (paper Tables 2, 3, 6 and Figure 8) and the blind baseline

PAPER_DATA = "the paper's data (AudioMarathon)"
VANILLA_FILE_PATTERN = r"^(?P<model>.+)__vanilla__seed(?P<seed>\d+)\.jsonl$"  # runner.RunConfig.file_name


def find_vanilla_files(results_dir, seed: int | None = 0) -> pd.DataFrame:
    """The vanilla predictions files `<model>__vanilla__seed<k>.jsonl` directly in `results_dir`
    (sub-folders are not searched): columns model, seed, path, sorted by model and seed. Pruning and
    eviction files (`<model>__frame-r0.9-K2__seed0.jsonl`, ...) are not vanilla; files of other
    seeds than `seed` are left out unless `seed` is None."""
    import re
    from pathlib import Path

    folder = Path(results_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such predictions folder")
    found = []
    for path in sorted(folder.glob("*.jsonl")):
        match = re.match(VANILLA_FILE_PATTERN, path.name)
        if match and (seed is None or int(match["seed"]) == seed):
            found.append({"model": match["model"], "seed": int(match["seed"]), "path": path})
    return pd.DataFrame(found, columns=["model", "seed", "path"]).sort_values(["model", "seed"], ignore_index=True)


def _check_vanilla_rows(rows: list[dict], path, seed: int) -> None:
    """A vanilla file must hold vanilla rows of its own seed (no pruning method, no press)."""
    for row in rows:
        prov = row.get("provenance") or {}
        made = (prov.get("method") or "vanilla", prov.get("press"), prov.get("seed"))
        if made != ("vanilla", None, seed):
            raise ValueError(f"{path}: row {row.get('id')!r} was made with method={made[0]!r}, press={made[1]!r}, "
                             f"seed={made[2]!r}; a vanilla seed-{seed} file must hold vanilla seed-{seed} rows only")


def read_vanilla_runs(results_dir, samples=None, seed: int | None = 0) -> dict[str, list[dict]]:
    """The rows of every vanilla file of `find_vanilla_files`, keyed by run label (the file's model
    name; "<model> seed<k>" when `seed` is None). With `samples`, each run keeps the rows of their ids
    only, and those rows must have been made from the same inputs (audio bytes, question, choices,
    answer: `amlib.runner.check_same_inputs` raises ValueError naming the file); runs left without
    rows are dropped."""
    from amlib.runner import check_same_inputs, read_predictions

    files = find_vanilla_files(results_dir, seed)
    ids = {s.id for s in samples} if samples is not None else None
    runs = {}
    for file in files.itertuples():
        rows = read_predictions(file.path)
        _check_vanilla_rows(rows, file.path, file.seed)
        if ids is not None:
            rows = [r for r in rows if r["id"] in ids]
            check_same_inputs(rows, list(samples), file.path)
        if rows:
            runs[file.model if seed is not None else f"{file.model} seed{file.seed}"] = rows
    return runs


def overview_scores(runs: dict[str, list[dict]], seed: int = 0, n_resamples: int = 1000) -> pd.DataFrame:
    """Long table, one row per (run, task): the task's category, the score by our parser with its 95 %
    interval and method, n, unparsed answers, errors, chance, the score by the paper's parser
    (`score_paper_parser`), and the run's model, device and dtype from its provenance."""
    parts = []
    for label, rows in runs.items():
        ours = score_table(rows, seed=seed, n_resamples=n_resamples, parser="ours")
        paper = score_table(rows, seed=seed, n_resamples=n_resamples, parser="paper")
        prov = rows[0]["provenance"]
        part = ours[["metric", "score", "ci_low", "ci_high", "ci_method", "n", "unparsed", "errors", "chance"]].copy()
        part.insert(0, "run", label)
        part.insert(1, "category", [get_task(t).category for t in part.index])
        part["score_paper_parser"] = paper["score"]
        part = part.assign(model=prov.get("model"), device=prov.get("device"), dtype=prov.get("dtype"))
        parts.append(part.reset_index())
    if not parts:
        raise ValueError("no runs to score")
    return pd.concat(parts, ignore_index=True)


def table3_overview(scores: pd.DataFrame, data_label: str) -> pd.DataFrame:
    """Table 3's layout: one row per run of `overview_scores` (our parser, on `data_label`) above the
    paper's rows (the paper's parser, on its data), the ten tasks as columns in paper order (NaN where
    a row has no score), Avg = mean over the tasks the row has, n_tasks = how many."""
    tasks = list(TASK_ORDER)
    runs = list(dict.fromkeys(scores["run"]))
    ours = scores.pivot(index="run", columns="task", values="score").reindex(index=runs, columns=tasks)
    ours = ours.assign(group="this run", data=data_label, parser="ours")
    paper = paper_table("table3_baseline").set_index("model")
    paper = paper[tasks].assign(group="paper: " + paper["group"], data=PAPER_DATA, parser="paper")
    table = pd.concat([ours, paper])
    table["Avg"] = table[tasks].mean(axis=1)
    table["n_tasks"] = table[tasks].notna().sum(axis=1)
    table.index.name = "model"
    return table[["group", "data", "parser", *tasks, "Avg", "n_tasks"]]


def interval_cells(scores: pd.DataFrame) -> pd.DataFrame:
    """`overview_scores` as text cells "score [ci_low, ci_high] n=N", runs as rows, tasks as columns."""
    cells = scores.assign(cell=[f"{s:.1f} [{lo:.1f}, {hi:.1f}] n={n}" for s, lo, hi, n in
                                zip(scores["score"], scores["ci_low"], scores["ci_high"], scores["n"])])
    wide = cells.pivot(index="run", columns="task", values="cell")
    return wide.reindex(index=list(dict.fromkeys(scores["run"])), columns=[t for t in TASK_ORDER if t in wide.columns])


def category_averages(table: pd.DataFrame) -> pd.DataFrame:
    """Figure 8: for each row of a table with task columns (e.g. `table3_overview`), the mean score of
    each category's tasks (`amlib.tasks.CATEGORY_TASKS`) that the row has (the paper's human row has
    no ASR); long: model, group, category, average, tasks (those averaged), n_tasks."""
    from amlib.tasks import CATEGORY_TASKS

    out = []
    for model, row in table.iterrows():
        for category, tasks in CATEGORY_TASKS.items():
            have = [t for t in tasks if t in table.columns and pd.notna(row[t])]
            out.append({"model": model, "group": row.get("group"), "category": category,
                        "average": float(np.mean([row[t] for t in have])) if have else np.nan,
                        "tasks": " ".join(have), "n_tasks": len(have)})
    return pd.DataFrame(out)


def random_baseline_beside_paper(ours: pd.DataFrame) -> pd.DataFrame:
    """`random_baseline`'s table beside the paper's Table 6 (its accuracy and macro-F1 turned to 0-100),
    matched on task and number of labels (the paper prints ASC twice, with 4 and with 10 labels; its
    summary rows have no task and are left out)."""
    paper = paper_table("table6_random_baseline").dropna(subset=["labels"])
    paper = pd.DataFrame({"task": paper["task"], "labels": paper["labels"].astype(int),
                          "paper_acc": 100 * paper["acc"], "paper_macro_f1": 100 * paper["macro_f1"]})
    return ours.merge(paper, on=["task", "labels"], how="left")


# Which amlib family runs each model of the paper's Table 3 (amlib.models.registry: FAMILIES by
# transformers model_type, NAMED_FAMILIES by name).
PAPER_MODEL_FAMILIES = {
    "Phi-4-Multimodal": "phi4_multimodal", "Qwen2.5-Omni-3B": "qwen2_5_omni", "Qwen2.5-Omni-7B": "qwen2_5_omni",
    "Audio-Flamingo-2": "audio-flamingo-2", "Audio-Flamingo-3": "audioflamingo3", "Gemma-3n-E2B-it": "gemma3n",
    "Gemma-3n-E4B-it": "gemma3n", "Voxtral-Mini-3B-2507": "voxtral", "Baichuan-Omni-1.5": "baichuan-omni-1.5",
    "Aero-1-Audio": "aero-1-audio", "GPT-4o-Audio (Preview 2024-10-01)": "gpt-4o-audio",
    "GPT-4o-Audio (Preview 2024-12-17)": "gpt-4o-audio", "Gemini-2.0-Flash-Lite": "gemini",
    "Gemini-2.0-Flash": "gemini", "Gemini-2.5-Flash-Lite": "gemini", "Gemini-2.5-Flash": "gemini",
}

# The tasks that carry the task-based capabilities of the paper's Table 2 (its §2.3): multi-hop
# reasoning is SCR (RACE); speaker attributes are gender and age; deepfakes are SD; emotional and
# semantic understanding are ER and the two speech-content questions (SCR, SER).
TABLE2_TASKS = {
    "Multi-Hop Inference": ("SCR",), "Speaker attribute coverage": ("SGR", "SAR"),
    "Contain deepfake audio": ("SD",), "Emotional and Semantic Understanding": ("ER", "SCR", "SER"),
}
PAPER_SECONDS = (90.0, 300.0)  # the paper's item durations (§2.2, Step 6)


def _coverage_row(capability: str, frame: pd.DataFrame) -> tuple[str, str]:
    """(yes / partly / no, evidence) of one Table 2 capability on this run's items (`manifest_frame`)."""
    from amlib.tasks import CATEGORY_TASKS, TASKS

    counts = frame["task"].value_counts()
    if capability == "Long Audio Understanding":
        low, high = frame["duration_s"].min(), frame["duration_s"].max()
        inside = bool(low >= PAPER_SECONDS[0] and high <= PAPER_SECONDS[1])
        return ("yes" if inside else "no",
                f"{len(frame)} items of {low:.1f}-{high:.1f} s (paper: {PAPER_SECONDS[0]:g}-{PAPER_SECONDS[1]:g} s); "
                "builders take min/max seconds")
    if capability == "Full Domain Coverage":
        have = {d: sorted(set(frame.loc[frame["domain"] == d, "task"])) for d in ("speech", "sound", "music")}
        n = sum(bool(t) for t in have.values())
        return ("yes" if n == 3 else "partly" if n else "no",
                "; ".join(f"{d}: {' '.join(t) or 'none'}" for d, t in have.items()))
    if capability == "Complex task hierarchy":
        cats = {c: [t for t in tasks if t in counts] for c, tasks in CATEGORY_TASKS.items()}
        full = all(len(cats[c]) == len(CATEGORY_TASKS[c]) for c in cats)
        return ("yes" if full else "partly" if counts.size else "no",
                f"{sum(bool(t) for t in cats.values())} of {len(CATEGORY_TASKS)} categories, {counts.size} of "
                f"{len(TASKS)} tasks: " + "; ".join(f"{c}: {' '.join(t) or 'none'}" for c, t in cats.items()))
    tasks = TABLE2_TASKS[capability]
    n = sum(t in counts for t in tasks)
    sources = frame.groupby("task")["source"].agg(lambda s: ", ".join(sorted(set(s))))
    return ("yes" if n == len(tasks) else "partly" if n else "no",
            "; ".join(f"{t}: {int(counts.get(t, 0))} items" + (f" (source {sources[t]})" if t in sources else "")
                      for t in tasks))


def coverage_table(samples) -> pd.DataFrame:
    """The paper's Table 2 for this companion: per capability, the paper's claim for AudioMarathon and
    whether this run's items cover it (yes / partly / no), with the evidence computed from the items
    (durations, tasks and their domains and categories in `amlib.tasks`)."""
    frame = manifest_frame(samples)
    paper = paper_table("table2_comparison")
    out = []
    for capability, claimed in zip(paper["capability"], paper["AudioMarathon"]):
        covered, evidence = _coverage_row(capability, frame)
        out.append({"capability": capability, "paper": "yes" if claimed else "no", "this_run": covered,
                    "evidence": evidence})
    return pd.DataFrame(out)


def _model_rows() -> list[dict]:
    """The paper's models and amlib's other ones: which adapter runs each, and how it gets weights."""
    from amlib.reference.model import REFERENCE_MODEL
    from amlib.models.registry import FAMILIES, NAMED_FAMILIES
    from amlib.models.tiny_registry import TINY_MODELS

    adapters = {**FAMILIES, **NAMED_FAMILIES}

    def how(family: str) -> str:
        ref = adapters[family]
        tiny = [name for name, (_, adapter) in TINY_MODELS.items() if adapter == ref and name.startswith("tiny-")]
        weights = ("an API (key from the environment)" if ref.startswith("amlib.models.api:")
                   else "weights not shipped: hub id or local folder" if family in FAMILIES
                   else "weights not shipped: a local snapshot (--family)")
        return f"family {family} ({ref}); {weights}" + (f"; tiny stand-in {', '.join(tiny)}" if tiny else "")

    table3 = paper_table("table3_baseline")
    paper = table3.loc[table3["group"] != "human", "model"]
    rows = [{"kind": "model", "name": m, "in_paper": True, "in_amlib": PAPER_MODEL_FAMILIES.get(m) in adapters,
             "how": how(PAPER_MODEL_FAMILIES[m]) if PAPER_MODEL_FAMILIES.get(m) in adapters else "no adapter"}
            for m in paper]
    seen = {adapters[f] for f in PAPER_MODEL_FAMILIES.values() if f in adapters}
    for family, ref in adapters.items():  # adapters no paper model uses (one row per adapter class)
        if ref not in seen:
            seen.add(ref)
            rows.append({"kind": "model", "name": f"{family} family", "in_paper": False, "in_amlib": True,
                         "how": how(family)})
    rows.append({"kind": "model", "name": REFERENCE_MODEL, "in_paper": False, "in_amlib": True,
                 "how": "built in: packaged Whisper tiny.en + SmolLM2-135M with this project's trained weights"})
    return rows


def runnable_table() -> pd.DataFrame:
    """What of the paper runs here, from amlib's registries: its ten tasks (and the sources that build
    each), its models (the adapter family of each), its token-pruning methods (Table 4) and KV-cache
    presses (Table 7), plus what amlib has beyond the paper; columns kind, name, in_paper, in_amlib, how."""
    from amlib.data.sources import SOURCES
    from amlib.eviction import PRESS_SPECS
    from amlib.pruning import METHODS
    from amlib.tasks import TASKS

    rows = [{"kind": "task", "name": t, "in_paper": True, "in_amlib": t in TASKS,
             "how": "built by: " + ", ".join(n for n, s in SOURCES.items() if t in s.tasks)} for t in TASK_ORDER]
    rows += _model_rows()
    paper_methods = set(paper_table("table4_pruning")["method"]) - {"vanilla"}
    rows += [{"kind": "token pruning", "name": m, "in_paper": m in paper_methods, "in_amlib": m in METHODS,
              "how": "amlib.pruning (--method, --ratio, --layer)" if m in METHODS else "not implemented"}
             for m in list(METHODS) + sorted(paper_methods - set(METHODS))]
    paper_presses = set(paper_table("table7_eviction_qwen25omni3b")["press"]) - {"vanilla"}
    rows += [{"kind": "KV-cache press", "name": p, "in_paper": p in paper_presses,
              "in_amlib": p in PRESS_SPECS and not PRESS_SPECS[p].unavailable,
              "how": ("not implemented" if p not in PRESS_SPECS else
                      f"cannot run: {PRESS_SPECS[p].unavailable}" if PRESS_SPECS[p].unavailable else
                      "kvpress press (--press, --ratio, --protocol)")}
             for p in list(PRESS_SPECS) + sorted(paper_presses - set(PRESS_SPECS))]
    return pd.DataFrame(rows)


def blind_flags(table: pd.DataFrame) -> pd.DataFrame:
    """Add the blind baseline's flags to a table with audio_/blind_ score intervals and `chance`:
    blind_above_chance (the blind interval lies above chance: the question, options or the model's
    prior give answers away; None where the task has no chance level: ASR) and audio_above_blind (the
    audio interval lies above the blind one: the audio helped)."""
    no_chance = table["chance"].isna()
    table = table.copy()
    table["blind_above_chance"] = (table["blind_ci_low"] > table["chance"]).astype(object).where(~no_chance, None)
    table["audio_above_blind"] = (table["audio_ci_low"] > table["blind_ci_high"]).astype(object)
    return table


def _paired_rows(audio_rows: list[dict], blind_rows: list[dict]) -> list[dict]:
    """The audio run's rows of the blind run's items, in the blind run's order; the two rows of an id
    must share task, question, choices and answer (their audio differs by design)."""
    real = {r["id"]: r for r in audio_rows}
    missing = [r["id"] for r in blind_rows if r["id"] not in real]
    if missing:
        raise ValueError(f"{len(missing)} item(s) of the blind run have no row in the audio run, e.g. {missing[:3]}")
    keys = ("task", "question_sha256", "choices_sha256", "answer_sha256")
    for row in blind_rows:
        a, b = real[row["id"]].get("input_fingerprint") or {}, row.get("input_fingerprint") or {}
        differs = [k for k in keys if a.get(k) != b.get(k)]
        if differs:
            raise ValueError(f"item {row['id']!r}: the blind and the audio rows differ in {', '.join(differs)}")
    return [real[r["id"]] for r in blind_rows]


def _check_same_model(audio_rows: list[dict], blind_rows: list[dict]) -> None:
    """The blind run must be the audio run's model with its prompts and parser (ValueError otherwise);
    another dtype is allowed (e.g. a float32 baseline file, a bfloat16 blind run) but warned about."""
    import warnings

    def settings(rows, keys):
        return {key: sorted({str((r.get("provenance") or {}).get(key)) for r in rows}) for key in keys}

    keys = ("model", "model_revision", "prompt_version", "parser_version")
    audio, blind = settings(audio_rows, keys + ("dtype",)), settings(blind_rows, keys + ("dtype",))
    differs = [f"{k} {audio[k]} vs {blind[k]}" for k in keys if audio[k] != blind[k]]
    if differs:
        raise ValueError(f"the audio and blind runs differ in {'; '.join(differs)}: compare one model with itself")
    if audio["dtype"] != blind["dtype"]:
        warnings.warn(f"the audio run was made in {audio['dtype']}, the blind run in {blind['dtype']}: "
                      "part of a score difference may come from the dtype", stacklevel=3)


def blind_report(audio_rows: list[dict], blind_rows: list[dict], blind_samples, seed: int = 0,
                 guessers: int = 100, n_resamples: int = 1000) -> pd.DataFrame:
    """Per task, on the items of the blind run (the audio replaced by silence of the same length,
    `amlib.data.blind.silent_copy`): the score with the audio and without (our parser, 95 % intervals),
    n, unparsed blind answers, the chance level (`random_baseline` on these items: mean and sd of
    `guessers` seeded guessers' macro-F1), audio minus blind, the flags of `blind_flags`, and the share
    of items whose blind prompt had exactly as many audio tokens as the real one (`same_audio_tokens_pct`).
    Both runs must come from one model with the same prompts and parser (ValueError otherwise)."""
    paired = _paired_rows(audio_rows, blind_rows)
    _check_same_model(paired, blind_rows)
    audio = score_table(paired, seed=seed, n_resamples=n_resamples)
    blind = score_table(blind_rows, seed=seed, n_resamples=n_resamples)
    ids = {r["id"] for r in blind_rows}
    chance = random_baseline([s for s in blind_samples if s.id in ids], guessers=guessers, seed=seed)
    chance = chance.set_index("task").reindex(blind.index)
    table = pd.DataFrame({
        "metric": blind["metric"], "n": blind["n"],
        "audio_score": audio["score"], "audio_ci_low": audio["ci_low"], "audio_ci_high": audio["ci_high"],
        "blind_score": blind["score"], "blind_ci_low": blind["ci_low"], "blind_ci_high": blind["ci_high"],
        "blind_unparsed": blind["unparsed"], "blind_errors": blind["errors"],
        "chance": chance["macro_f1_mean"], "chance_sd": chance["macro_f1_sd"],
    })
    table["audio_minus_blind"] = table["audio_score"] - table["blind_score"]
    tokens = pd.DataFrame({"task": [r["task"] for r in blind_rows],
                           "same": [a.get("audio_tokens") is not None and a.get("audio_tokens") == b.get("audio_tokens")
                                    for a, b in zip(paired, blind_rows)]})
    table["same_audio_tokens_pct"] = 100 * tokens.groupby("task")["same"].mean().reindex(table.index)
    return blind_flags(table)


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
