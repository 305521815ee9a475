"""The main job's notebook run (`make book`): which pages, in which order, with which parameters,
each executed by papermill and timed.

Pages run in dependency order: 01 builds the data every other page reads; 02 evaluates the model on
every item into the baseline predictions folder; 00, 03, 04, 05 and 06 run in that same folder, so
every vanilla row is computed once and reused (the runner resumes); 07 reads 04's predictions and
computes nothing. A second run with nothing changed re-executes the notebooks but no model call.

Each page's wall time goes to `timing.json` and `timing.md` beside the executed notebooks (the intro
page includes the table): where the main job's minutes go.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amlib.reference.model import REFERENCE_MODEL

DATA_DIR = "../data/built/offline-test"  # relative to notebooks/ (papermill runs there)
RESULTS_DIR = "../results/baseline"
BLIND_DIR = "../results/blind"  # the silent copies and their predictions, apart from the real run's


def cpu_has_bf16() -> bool:
    """True where the CPU computes bfloat16 matrix products natively (AMX-BF16 or AVX512-BF16): there
    bfloat16 prefill is several times faster than float32 (3.5x measured on the project's machine)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


@dataclass
class BookSettings:
    """What the book evaluates. Sizes are chosen to fit the main job's budget (30 min on 2 CPU
    cores); every page states its n and intervals. Measured from a fresh clone (2 cores, bfloat16,
    2026-12-01) with ASR 4 / blind 4 / pruning 4: 01 3.7 min, 02 9.9, 00 0.8, 03 3.6, 04 6.5, 05 4.3,
    06 2.2, 07 0.2, 08 0.4 (31.5 min): a choice item costs ~4.3 s (prefill), an ASR item ~50 s
    (~530 answer tokens at ~90 ms), so the sizes below were cut by one item each."""

    model: str = REFERENCE_MODEL
    dtype: str | None = None  # None: bfloat16 where the CPU supports it, else float32
    per_task: int = 10  # items per task in the built test split
    min_seconds: float = 90.0
    max_seconds: float = 300.0
    seed: int = 0
    # ASR answers are ~450 tokens at ~80 ms each on the 2-core CPU: ASR items are the costly ones
    baseline_limit: dict = field(default_factory=lambda: {"ASR": 3})  # per task (others: all)
    # items per task for the blind (silent audio) baseline; ASR left out: from silence the model may
    # write its whole 1,100-token budget (~2 min per item here), and it has no question to answer
    blind_limit: dict = field(default_factory=lambda: {"ASR": 0, "*": 3})
    pruning_tasks: list[str] = field(default_factory=lambda: ["SGR", "ER", "SD", "MC"])
    pruning_limit: int = 3
    pruning_asr_limit: int = 1  # ASR items pruned (page 07 analyses their transcripts)
    pruning_asr_ratios: list[float] = field(default_factory=lambda: [0.6])
    eviction_tasks: list[str] = field(default_factory=lambda: ["SGR", "MC"])
    eviction_ratios: list[float] = field(default_factory=lambda: [0.5, 0.9])
    eviction_limit: int = 2

    def resolved_dtype(self) -> str:
        return self.dtype or ("bfloat16" if cpu_has_bf16() else "float32")


@dataclass
class Page:
    notebook: str  # file name in notebooks/
    parameters: dict


def book_pages(s: BookSettings) -> list[Page]:
    """The pages in the order they run, with their papermill parameters."""
    dtype = s.resolved_dtype()
    build = {"per_task": s.per_task, "min_seconds": s.min_seconds, "max_seconds": s.max_seconds, "seed": s.seed}
    data = {"data_source": "offline", "data_dir": DATA_DIR, **build}
    model = {"model": s.model, "dtype": dtype, "output_dir": RESULTS_DIR}
    return [
        Page("01_dataset_construction.ipynb", {"source": "offline", "out": DATA_DIR, **build}),
        Page("02_baseline_eval.ipynb", {**data, **model, "limit": s.baseline_limit}),
        Page("00_reference_model.ipynb", {"data_dir": DATA_DIR, **build, "tasks": None, "limit": s.baseline_limit,
                                          "dtype": dtype, "output_dir": RESULTS_DIR}),
        Page("03_results_overview.ipynb", {**data, **model, "tasks": None, "limit": s.baseline_limit,
                                           "results_dir": RESULTS_DIR, "output_dir": BLIND_DIR,
                                           "blind_limit": s.blind_limit}),
        Page("04_pruning.ipynb", {**data, **model, "tasks": s.pruning_tasks, "limit": s.pruning_limit,
                                  "asr_limit": s.pruning_asr_limit, "asr_ratios": s.pruning_asr_ratios}),
        Page("05_eviction.ipynb", {**data, **model, "tasks": s.eviction_tasks, "ratio": s.eviction_ratios,
                                   "limit": s.eviction_limit}),
        Page("06_duration_ablation.ipynb", {**data, **model, "tasks": None, "limit": s.baseline_limit}),
        Page("07_error_analysis.ipynb", {"model": s.model, "results_dir": RESULTS_DIR}),
        Page("08_encoding_granularity.ipynb", {}),
    ]


def run_pages(pages: list[Page], notebooks_dir: str | Path, executed_dir: str | Path,
              only: list[str] | None = None) -> list[dict]:
    """Execute each page with papermill into `executed_dir` (stops at the first failing page, whose
    error papermill raises); returns and writes the page-by-page timing."""
    import papermill

    notebooks_dir, executed_dir = Path(notebooks_dir), Path(executed_dir)
    executed_dir.mkdir(parents=True, exist_ok=True)
    timing_path = executed_dir / "timing.json"
    rows = _previous_timing(timing_path)
    for page in pages:
        if only and not any(page.notebook.startswith(o) for o in only):
            continue
        start = time.perf_counter()
        papermill.execute_notebook(str(notebooks_dir / page.notebook), str(executed_dir / page.notebook),
                                   parameters=page.parameters, kernel_name="python3", cwd=str(notebooks_dir),
                                   progress_bar=False)
        rows[page.notebook] = {"page": page.notebook, "seconds": round(time.perf_counter() - start, 1),
                               "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "parameters": page.parameters}
        _write_timing(rows, timing_path)
    return list(rows.values())


def _previous_timing(path: Path) -> dict:
    if not path.is_file():
        return {}
    return {row["page"]: row for row in json.loads(path.read_text())["pages"]}


def _write_timing(rows: dict, path: Path) -> None:
    machine = f"{platform.machine()}, {_cpu_count()} CPU cores"
    pages = sorted(rows.values(), key=lambda r: r["finished"])
    path.write_text(json.dumps({"machine": machine, "pages": pages}, indent=1))
    path.with_suffix(".md").write_text(timing_markdown(pages, machine))


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def timing_markdown(pages: list[dict], machine: str) -> str:
    """The page-by-page table the intro page includes."""
    total = sum(p["seconds"] for p in pages)
    lines = [f"Notebook execution of this build on {machine} (papermill; set-up and `jupyter-book build` "
             "not included):", "", "| page | minutes | share | finished |", "|---|---:|---:|---|"]
    for p in pages:
        share = 100 * p["seconds"] / total if total else 0.0
        lines.append(f"| {p['page'].removesuffix('.ipynb')} | {p['seconds'] / 60:.1f} | {share:.0f} % | {p['finished']} |")
    lines.append(f"| **total** | **{total / 60:.1f}** | | |")
    return "\n".join(lines) + "\n"


def settings_dict(s: BookSettings) -> dict:
    return {**asdict(s), "dtype": s.resolved_dtype()}
