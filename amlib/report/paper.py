"""The paper's own tables (transcribed to CSV in `amlib/paper/tables/`) and this project's data set
and registries set beside them: Tables 1, 2, 5 and 6, and what of the paper runs here.

The paper's numbers are comparison material only, never results of this project."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from amlib.tasks import TASK_ORDER, get_task


def paper_table(name: str) -> pd.DataFrame:
    """One of the paper's tables, e.g. "table3_baseline" (see amlib/paper/tables/)."""
    path = resources.files("amlib.paper") / "tables" / f"{name}.csv"
    if not path.is_file():
        known = sorted(p.name[:-4] for p in (resources.files("amlib.paper") / "tables").iterdir())
        raise FileNotFoundError(f"no paper table {name!r}; known: {', '.join(known)}")
    with path.open() as fh:
        return pd.read_csv(fh)


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
