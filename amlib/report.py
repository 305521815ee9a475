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
    cut off by the token budget (new tokens = the task's max_new_tokens), and the k most frequent
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
                    "truncated": sum((r.get("new_tokens") or 0) >= budget for r in asr),
                    "insertions": patterns.top("insertions", k), "deletions": patterns.top("deletions", k),
                    "substitutions": patterns.top("substitutions", k)})
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
