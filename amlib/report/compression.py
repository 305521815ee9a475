"""Token pruning (paper §4.1: Table 4, Figures 5, 6, 9-13) and KV-cache eviction (§4.2: Table 7,
Figure 7): scores per configuration and task, their tables, and the paper's tables in their layout."""

from __future__ import annotations

import numpy as np
import pandas as pd

from amlib.report.paper import paper_table
from amlib.report.scores import score_table
from amlib.tasks import TASK_ORDER


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


def _mean(part: pd.DataFrame, column: str, default: float = np.nan) -> float:
    return part[column].mean() if column in part else default


def configuration_scores(runs: list[list[dict]], configuration, measures, seed: int = 0,
                         parser: str = "ours") -> pd.DataFrame:
    """The long table shared by `pruning_scores` and `eviction_scores`: one row per (configuration,
    task) with the configuration's keys (`configuration(rows)` -> dict), score and interval, n,
    errors, "failed" (every row of the task an error: score NaN, never 0) and "error" (the most
    frequent error message), chance, the measures of `measures(ok_rows)` -> dict (means over the
    rows that ran) and the parser."""
    out = []
    for rows in runs:
        keys = configuration(rows)
        scores = score_table(rows, seed=seed, parser=parser)
        frame = pd.DataFrame(rows)
        ran = frame["error"].isna() if "error" in frame else pd.Series(True, index=frame.index)
        for task, s in scores.iterrows():
            out.append({**keys, "task": task, "score": s["score"], "ci_low": s["ci_low"], "ci_high": s["ci_high"],
                        "n": int(s["n"]), "errors": int(s["errors"]), "failed": bool(s["errors"] == s["n"]),
                        "error": s["error"], "chance": s["chance"],
                        **measures(frame[(frame["task"] == task) & ran]), "parser": parser})
    return pd.DataFrame(out)


def _pruning_measures(part: pd.DataFrame) -> dict:
    return {"prefill_s": _mean(part, "prefill_s"), "decode_s": _mean(part, "decode_s"),
            "audio_tokens": _mean(part, "audio_tokens"),
            "kept_audio_tokens": _mean(part, "audio_tokens_after") if "audio_tokens_after" in part
            else _mean(part, "audio_tokens"),
            "flops_ratio": _mean(part, "prefill_flops_ratio", 1.0)}


def pruning_scores(runs: list[list[dict]], seed: int = 0, parser: str = "ours") -> pd.DataFrame:
    """Long table, one row per (method, ratio, task): score and CI, n, errors, failed / error (a
    configuration whose rows of a task all failed scores NaN with its error named), chance, mean
    prefill/decode seconds, kept audio tokens, the theoretical LM FLOPs ratio (1 where not recorded).
    `runs`: each configuration's rows."""
    def keys(rows):
        method, ratio = configuration_of(rows)
        return {"method": method, "ratio": ratio}

    table = configuration_scores(runs, keys, _pruning_measures, seed, parser)
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


def wide_scores(scores: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The layout of Tables 4 and 7: one row per configuration (`keys`), tasks as columns (paper
    order), a failed task NaN, and "Avg" = the mean over the row's tasks, NaN where one of them
    failed (an average without it would compare unlike sets). Where any row of `scores` is an error,
    two columns more: "errors" (error rows of the configuration) and "failed" (its failed tasks with
    their error, "" if none), so that a partly failed configuration shows its error count beside
    its scores."""
    wide = scores.groupby(keys + ["task"])["score"].mean().unstack("task")
    wide = wide[[t for t in TASK_ORDER if t in wide.columns]]
    by_config = scores.groupby(keys)
    failed = by_config.apply(lambda part: "; ".join(f"{t}: {e}" for t, e, f in
                                                    zip(part["task"], part["error"], part["failed"]) if f),
                             include_groups=False).reindex(wide.index)
    wide["Avg"] = wide.mean(axis=1).where(failed == "")
    if scores["errors"].sum() > 0:
        wide["errors"] = by_config["errors"].sum().reindex(wide.index).astype(int)
        wide["failed"] = failed
    return wide


def pruning_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Table 4's layout (`wide_scores`): rows (method, ratio), tasks as columns, their average."""
    wide = wide_scores(scores, ["method", "ratio"])
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
    """Figure 9's six capabilities per method: means of the listed tasks' scores (NaN where one of
    them has none: a failed task leaves the capability unknown, not its other task's score); with
    `best_over_ratios`, each method's best ratio per capability (as the paper reports), vanilla as is."""
    caps = pd.DataFrame({cap: wide[[t for t in tasks if t in wide.columns]].mean(axis=1, skipna=False)
                         for cap, tasks in CAPABILITIES.items() if any(t in wide.columns for t in tasks)})
    if best_over_ratios:  # max skips NaN: the best ratio among those that have a score
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


def eviction_configuration_of(rows: list[dict]) -> tuple[str, float, str]:
    """(press, ratio, protocol) of a predictions file's rows; a vanilla file is ("vanilla", 0.0, "none")."""
    configs = {(r["provenance"].get("press") or "vanilla", float(r["provenance"]["ratio"] or 0.0),
                r["provenance"].get("protocol") or "none") for r in rows}
    if len(configs) != 1:
        raise ValueError(f"rows of several configurations mixed: {sorted(configs)}")
    return configs.pop()


def _eviction_measures(part: pd.DataFrame) -> dict:
    kv = _mean(part, "kv_bytes")
    return {"prefill_s": _mean(part, "prefill_s"), "decode_s": _mean(part, "decode_s"),
            "new_tokens": _mean(part, "new_tokens"), "peak_memory_mb": _mean(part, "peak_memory_mb"),
            "kv_mb": kv / 2**20, "kv_compression": _mean(part, "kv_compression", 0.0)}


def eviction_scores(runs: list[list[dict]], seed: int = 0, parser: str = "ours") -> pd.DataFrame:
    """Long table, one row per (press, ratio, protocol, task): score and CI, n, errors, failed /
    error (as in `pruning_scores`), chance, mean prefill / decode seconds, peak memory, KV-cache
    MB after prefill and the compression achieved (0 where not recorded)."""
    def keys(rows):
        return dict(zip(("press", "ratio", "protocol"), eviction_configuration_of(rows)))

    table = configuration_scores(runs, keys, _eviction_measures, seed, parser)
    table["kv_compression"] = table["kv_compression"].fillna(0.0)
    return table.sort_values(["protocol", "ratio", "press", "task"]).reset_index(drop=True)


def eviction_table(scores: pd.DataFrame, protocol: str = "query_aware") -> pd.DataFrame:
    """Table 7's layout for one protocol (`wide_scores`): rows (press, ratio) with vanilla first,
    tasks as columns, their average."""
    wide = wide_scores(scores[scores["protocol"].isin([protocol, "none"])], ["press", "ratio"])
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
    vanilla's, and of choice items whose parsed choice is (`same_answer`: how many). Under the paper's query-aware protocol
    the first answer token comes from the uncompressed prefill; later tokens see the evicted cache."""
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
                        "same_answer": int(part["same_choice"].sum()),
                        "same_text_pct": 100 * part["same_text"].mean(),
                        "same_answer_pct": 100 * part["same_choice"].mean()})
    return pd.DataFrame(out)
