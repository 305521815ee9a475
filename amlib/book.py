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
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from amlib.book_settings import BookSettings, settings_dict  # noqa: F401 (the book's settings live there)

DATA_DIR = "../data/built/offline-test"  # relative to notebooks/ (papermill runs there)
RESULTS_DIR = "../results/baseline"
DOWNLOADS_FOLDER = "predictions"  # beside the executed notebooks: the pages' whole predictions
BLIND_DIR = "../results/blind"  # the silent copies and their predictions, apart from the real run's
STAND_IN_DIR = "../results/stand-in-offline"  # page 00's rows when the book's data is not the offline suite


def cpu_has_bf16() -> bool:
    """True where the CPU computes bfloat16 matrix products natively (AMX-BF16 or AVX512-BF16): there
    bfloat16 prefill is several times faster than float32 (3.5x measured on the project's machine)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


@dataclass
class Page:
    notebook: str  # file name in notebooks/
    parameters: dict


def book_pages(s: BookSettings) -> list[Page]:
    """The pages in the order they run, with their papermill parameters."""
    from amlib.book_settings import data_spec

    dtype = s.resolved_dtype()
    spec = data_spec(s.data)
    build = {"per_task": s.per_task, "min_seconds": s.min_seconds, "max_seconds": s.max_seconds, "seed": s.seed}
    # a real source is built once (page 01, from its root); the later pages read that folder as it is
    data = {"data_source": "offline" if spec.source == "offline" else "manifest", "data_dir": spec.folder, **build}
    primary, *more = s.models
    model = {"model": primary, "device": s.device, "dtype": dtype, "output_dir": RESULTS_DIR}
    return [
        Page("01_dataset_construction.ipynb", {"source": spec.source, "out": spec.folder, **build,
                                               **({"root": spec.root} if spec.root else {})}),
        Page("02_baseline_eval.ipynb", {**data, **model, "limit": s.baseline_limit, "more_models": more}),
        # the stand-in's own page: always on the offline suite (its own folder when the book's data is another)
        Page("00_reference_model.ipynb", {"data_dir": DATA_DIR, **build, "tasks": None, "limit": s.baseline_limit,
                                          "dtype": dtype,
                                          "output_dir": RESULTS_DIR if spec.source == "offline" else STAND_IN_DIR}),
        Page("03_results_overview.ipynb", {**data, **model, "tasks": None, "limit": s.baseline_limit,
                                           "results_dir": RESULTS_DIR, "output_dir": BLIND_DIR,
                                           "blind_limit": s.blind_limit}),
        Page("04_pruning.ipynb", {**data, **model, "tasks": s.pruning_tasks, "limit": s.pruning_limit,
                                  "asr_limit": s.pruning_asr_limit, "asr_ratios": s.pruning_asr_ratios}),
        Page("05_eviction.ipynb", {**data, **model, "tasks": s.eviction_tasks, "ratio": s.eviction_ratios,
                                   "protocol": s.eviction_protocols, "limit": s.eviction_limit}),
        Page("06_duration_ablation.ipynb", {**data, **model, "tasks": None, "limit": s.baseline_limit}),
        Page("07_error_analysis.ipynb", {"model": primary, "results_dir": RESULTS_DIR}),
        Page("08_encoding_granularity.ipynb", {}),
    ]


def run_pages(pages: list[Page], notebooks_dir: str | Path, executed_dir: str | Path,
              only: list[str] | None = None, progress_every: float | None = 60.0, write=print) -> list[dict]:
    """Execute each page with papermill into `executed_dir` (stops at the first failing page, whose
    error papermill raises), tag it for readers (`reader_view`); returns and writes the page-by-page
    timing, with the rows each page computed (`amlib.book_plan`). A page whose notebook has a
    `downloads_dir` parameter writes its whole predictions to `executed_dir/predictions/`, which the
    page links. `progress_every`: seconds between a page's progress lines (None: none)."""
    from contextlib import nullcontext

    import nbformat
    import papermill

    from amlib.book_plan import PagePlan, Progress, page_plans

    notebooks_dir, executed_dir = Path(notebooks_dir), Path(executed_dir)
    executed_dir.mkdir(parents=True, exist_ok=True)
    timing_path = executed_dir / "timing.json"
    rows = _previous_timing(timing_path)
    downloads_dir = os.path.relpath((executed_dir / DOWNLOADS_FOLDER).resolve(), notebooks_dir.resolve())
    for page in pages:
        if only and not any(page.notebook.startswith(o) for o in only):
            continue
        source = notebooks_dir / page.notebook
        parameters = dict(page.parameters)
        if "downloads_dir" in notebook_parameters(nbformat.read(str(source), as_version=4)):
            parameters["downloads_dir"] = downloads_dir  # the page's whole predictions, linked from it
        plans = page_plans([page], notebooks_dir)
        plan = plans[0] if plans else PagePlan(page.notebook.removesuffix(".ipynb"))
        start = time.perf_counter()
        with Progress(plan, progress_every, write) if progress_every else nullcontext() as progress:
            papermill.execute_notebook(str(source), str(executed_dir / page.notebook), parameters=parameters,
                                       kernel_name="python3", cwd=str(notebooks_dir), progress_bar=False)
        computed = progress.rows_computed if progress is not None else None
        reader_view_file(executed_dir / page.notebook)
        rows[page.notebook] = {"page": page.notebook, "seconds": round(time.perf_counter() - start, 1),
                               "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "parameters": page.parameters,
                               "rows_planned": plan.planned, "rows_computed": computed}
        _write_timing(rows, timing_path)
    return list(rows.values())


def _previous_timing(path: Path) -> dict:
    if not path.is_file():
        return {}
    return {row["page"]: row for row in json.loads(path.read_text())["pages"]}


def _write_timing(rows: dict, path: Path) -> None:
    machine = machine_description()
    pages = sorted(rows.values(), key=lambda r: r["finished"])
    path.write_text(json.dumps({"machine": machine, "pages": pages}, indent=1))
    path.with_suffix(".md").write_text(timing_markdown(pages, machine))


def machine_description() -> str:
    """The build's machine for its timing: processor, cores, and the GPUs torch sees (by name and count)."""
    import torch

    text = f"{platform.machine()}, {_cpu_count()} CPU cores"
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        text += ", " + ", ".join(f"{names.count(n)}x {n}" if names.count(n) > 1 else n for n in dict.fromkeys(names))
    return text


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def timing_markdown(pages: list[dict], machine: str) -> str:
    """The page-by-page table the intro page includes."""
    total = sum(p["seconds"] for p in pages)
    lines = [f"Notebook execution of this build on {machine} (papermill; set-up and `jupyter-book build` "
             "not included; rows: predictions the page planned, and those it computed rather than found):", "",
             "| page | minutes | share | rows planned | rows computed | finished |", "|---|---:|---:|---:|---:|---|"]

    def count(value):
        return "" if value is None else f"{value:,}"

    for p in pages:
        share = 100 * p["seconds"] / total if total else 0.0
        lines.append(f"| {p['page'].removesuffix('.ipynb')} | {p['seconds'] / 60:.1f} | {share:.0f} % | "
                     f"{count(p.get('rows_planned'))} | {count(p.get('rows_computed'))} | {p['finished']} |")
    lines.append(f"| **total** | **{total / 60:.1f}** | | | | |")
    return "\n".join(lines) + "\n"


# --- What a reader sees: set-up code collapsed, a summary of the run's settings, results in front ---------

SETUP_TAG = "hide-cell"  # Jupyter Book: the whole cell behind a "Show code cell content" button
CODE_TAG = "hide-input"  # the output shown, its code behind a "Show code cell source" button
PARAMETER_TAGS = ("parameters", "injected-parameters")  # the notebook's defaults; papermill's values
READER_TAGS = ("hide-cell", "hide-input", "hide-output", "remove-cell", "remove-input", "remove-output")
SETTINGS_CELL_ID = "run-settings"
GLUE_MIME_PREFIX = "application/papermill.record/"  # myst_nb.glue(..., display=False) outputs
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"  # live progress bars: nothing to read afterwards

# the settings summary's rows: (label, parameter names); every other parameter goes to "settings"
SETTING_GROUPS = (
    ("model", ("model", "dtype")),
    ("data", ("data_dir", "out", "source", "data_source", "split", "min_seconds", "max_seconds", "seed")),
    ("n per task", ("per_task", "limit", "asr_limit", "blind_limit")),
    ("device", ("device",)),
)
PATH_PARAMETERS = ("output_dir", "results_dir", "benchmarks_dir", "downloads_dir", "short_dir")


def is_setup_code(source: str) -> bool:
    """True for a cell that only prepares: imports, definitions, display options, line magics."""
    import ast

    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("%"))
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return False
    def prepares(node) -> bool:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
            return True
        call = node.value if isinstance(node, ast.Expr) else None
        return (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr in ("set_option", "filterwarnings", "simplefilter"))
    return bool(body) and all(prepares(node) for node in body)


def has_visible_output(cell) -> bool:
    """True when a code cell shows something: glued values (display=False) do not count."""
    for out in cell.get("outputs", []):
        if out["output_type"] in ("stream", "error"):
            return True
        if any(not mime.startswith(GLUE_MIME_PREFIX) for mime in out.get("data", {})):
            return True
    return False


def notebook_parameters(nb) -> dict:
    """The values a notebook ran with: its "parameters" cell's defaults, then papermill's injected
    values over them (both read as Python literals)."""
    import ast

    values = {}
    for tag in PARAMETER_TAGS:
        for cell in nb["cells"]:
            if tag not in cell.get("metadata", {}).get("tags", []):
                continue
            for node in ast.parse(_source(cell)).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    try:
                        values[node.targets[0].id] = ast.literal_eval(node.value)
                    except (ValueError, TypeError):  # an expression, not a literal: shown as written
                        values[node.targets[0].id] = ast.unparse(node.value)
    return values


# what None means for a parameter (the notebooks' comments say so); elsewhere it is the default
NONE_MEANS = {"limit": "all", "tasks": "all", "blind_limit": "all", "dtype": "the model's own",
              "output_dir": "a temporary folder", "results_dir": "a temporary folder", "downloads_dir": "none"}


def format_setting(name: str, value) -> str:
    """One parameter's value as a reader reads it."""
    if value is None:
        return NONE_MEANS.get(name, "default")
    if isinstance(value, dict):
        return ", ".join(f"{'others' if k == '*' else k} {v}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --- What the page ran, read from its prediction rows (parameters are only what it was asked to run) ----

RUN_SETTINGS_METADATA = "amlib_run_settings"  # the output metadata key that carries a page's computed settings
RUN_SETTINGS_GLUE_KEY = "amlib-run-settings"
# parameters the rows answer for: where a page recorded rows, these are not shown from its parameters
# (a default such as a demo's data folder or ratio is not what the page ran when it read other rows)
SUPERSEDED_BY_ROWS = ("model", "dtype", "device", "seed", "tasks", "data_dir", "out", "source", "data_source",
                      "split", "per_task", "min_seconds", "max_seconds", "limit", "asr_limit", "method", "ratio",
                      "methods", "ratios", "asr_ratios", "layer", "press", "protocol")
# a page's fallback run (a demo when no results folder is given) is not what it shows when it read rows
SUPERSEDED_PREFIXES = ("demo_",)


def superseded_by_rows(name: str) -> bool:
    return name in SUPERSEDED_BY_ROWS or name.startswith(SUPERSEDED_PREFIXES)


def configuration_name(provenance: dict) -> str:
    """A row's configuration as a reader reads it: vanilla, a pruning method at a ratio and layer, or a
    press at a ratio under a protocol."""
    ratio = provenance.get("ratio")
    if provenance.get("press"):
        return f"{provenance['press']} {ratio:g} ({provenance.get('protocol') or 'default protocol'})"
    if provenance.get("method") not in (None, "vanilla"):
        return f"{provenance['method']} {ratio:g} at layer {provenance.get('layer')}"
    return "vanilla"


def run_settings(rows: list[dict]) -> dict:
    """What these prediction rows ran, read from the rows themselves (JSON-ready): model, dtype, device,
    seed, data (source and split), configurations, the audio's duration range and the items per task
    (distinct ids: after limits and class-count rounding, whatever the page's parameters asked for)."""
    if not rows:
        raise ValueError("run_settings: no prediction rows (a page that ran nothing has no settings to show)")
    missing = [r.get("id") for r in rows if not isinstance(r.get("provenance"), dict)]
    if missing:
        raise ValueError(f"run_settings: rows without provenance: {missing[:5]}")
    def distinct(values):
        return sorted({v for v in values if v is not None}, key=str)
    provenance = [r["provenance"] for r in rows]
    items: dict[str, set] = {}
    for r in rows:
        items.setdefault(r["task"], set()).add(r["id"])
    durations = [r["duration_s"] for r in rows if r.get("duration_s") is not None]
    return {
        "model": distinct(p.get("model") for p in provenance),
        "dtype": distinct(p.get("dtype") for p in provenance),
        "device": distinct(p.get("device") for p in provenance),
        "seed": distinct(p.get("seed") for p in provenance),
        "data": distinct(" ".join(str(v) for v in (r.get("source"), r.get("split")) if v) for r in rows),
        "configurations": distinct(configuration_name(p) for p in provenance),
        "duration_s": [min(durations), max(durations)] if durations else [],
        "items": {task: sorted(ids) for task, ids in sorted(items.items())},
    }


def merge_run_settings(records: list[dict]) -> dict:
    """Several recorded settings of one page (each table's rows) as one: values and items united."""
    merged = {key: sorted({v for r in records for v in r.get(key, [])}, key=str)
              for key in ("model", "dtype", "device", "seed", "data", "configurations")}
    durations = [d for r in records for d in r.get("duration_s", [])]
    merged["duration_s"] = [min(durations), max(durations)] if durations else []
    items: dict[str, set] = {}
    for record in records:
        for task, ids in record.get("items", {}).items():
            items.setdefault(task, set()).update(ids)
    merged["items"] = {task: sorted(ids) for task, ids in sorted(items.items())}
    return merged


def glue_run_settings(rows: list[dict]) -> None:
    """Record what these rows ran for the page's settings box (a notebook's cell; shows nothing). The
    record is a glue entry with no displayable data, carried in the output's metadata; `reader_view`
    reads it. `show_predictions` records its rows itself."""
    from IPython.display import display

    display({}, raw=True, metadata={"scrapbook": {"name": RUN_SETTINGS_GLUE_KEY, "mime_prefix": GLUE_MIME_PREFIX},
                                    RUN_SETTINGS_METADATA: run_settings(rows)})


def recorded_run_settings(nb) -> dict | None:
    """The settings a notebook's outputs recorded (`glue_run_settings`, `show_predictions`), merged;
    None where it recorded none."""
    records = [out["metadata"][RUN_SETTINGS_METADATA] for cell in nb["cells"] for out in cell.get("outputs", [])
               if RUN_SETTINGS_METADATA in out.get("metadata", {})]
    return merge_run_settings(records) if records else None


def _listed(values) -> str:
    return ", ".join(f"`{v}`" for v in values) or "none recorded"


def computed_setting_rows(settings: dict) -> list[tuple[str, str]]:
    """The settings box's rows for what the rows ran (`run_settings`)."""
    durations = settings.get("duration_s") or []
    span = (f", {durations[0]:.0f}–{durations[1]:.0f} s" if durations and round(durations[0]) != round(durations[1])
            else f", {durations[0]:.0f} s" if durations else "")
    items = settings.get("items", {})
    total = sum(len(ids) for ids in items.values())
    return [
        ("model", f"{_listed(settings['model'])}; dtype {_listed(settings['dtype'])}"),
        ("data", f"{_listed(settings['data'])}{span}"),
        ("n per task", "; ".join(f"{task} `{len(ids)}`" for task, ids in items.items()) + f" ({total} in all)"),
        ("device", _listed(settings["device"])),
        ("configurations", _listed(settings["configurations"])),
        ("seed", _listed(settings["seed"])),
    ]


def run_settings_markdown(parameters: dict, computed: dict | None = None) -> str:
    """A small table of the settings a page ran with: model, data, n per task, device, the rest. With
    `computed` (the page's recorded `run_settings`), those rows come from the prediction rows and the
    parameters they answer for are left out; the other parameters are shown as given."""
    def cell(label, names):  # the parameter named like its row needs no name
        return "; ".join(f"{'' if n == label else n + ' '}`{format_setting(n, parameters[n])}`"
                         for n in names if n in parameters)
    grouped = {n for _, names in SETTING_GROUPS for n in names} | set(PATH_PARAMETERS)
    if computed is None:
        rows = [(label, cell(label, names)) for label, names in SETTING_GROUPS]
    else:
        grouped |= {n for n in parameters if superseded_by_rows(n)}
        rows = computed_setting_rows(computed)
    rows.append(("settings", cell("", [n for n in parameters if n not in grouped])))
    rows.append(("files", cell("", [n for n in PATH_PARAMETERS if n in parameters])))
    rows.append(("shown from", "the prediction rows this page ran" if computed is not None
                 else "the page's parameters (it recorded no prediction rows)"))
    lines = ["| this run | |", "|---|---|"] + [f"| {label} | {text} |" for label, text in rows if text]
    return "\n".join(lines) + "\n"


def reader_view(nb):
    """Tag a notebook for the book (in place; returns it): parameter and set-up cells collapsed
    (expandable), every other code cell's source collapsed behind its output (cells the notebook
    tagged itself keep their tags), live widgets dropped, and a table of the run's settings above the
    collapsed cells. Applying it twice changes nothing."""
    import nbformat

    nb.get("metadata", {}).pop("widgets", None)
    cells = [c for c in nb["cells"] if c.get("id") != SETTINGS_CELL_ID]
    first_setup = None
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        cell["outputs"] = [o for o in cell.get("outputs", []) if WIDGET_MIME not in o.get("data", {})]
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        setup = any(t in tags for t in PARAMETER_TAGS) or is_setup_code(_source(cell))
        if setup and first_setup is None:
            first_setup = i
        if not any(t in tags for t in READER_TAGS):  # a tag the notebook has (or a first pass set) wins
            tags.append(SETUP_TAG if setup or not has_visible_output(cell) else CODE_TAG)
    settings = nbformat.v4.new_markdown_cell(run_settings_markdown(notebook_parameters(nb), recorded_run_settings(nb)))
    settings["id"] = SETTINGS_CELL_ID
    cells.insert(first_setup if first_setup is not None else min(1, len(cells)), settings)
    nb["cells"] = cells
    return nb


def reader_view_file(path: str | Path) -> None:
    """`reader_view` on a notebook file, written back."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    nbformat.write(reader_view(nb), str(path))


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


# --- Prediction tables: a few rows on the page, every row in a file beside it --------------------------

PREVIEW_ROWS = 6
PREVIEW_WIDTH = 60  # characters of a text cell on the page


def shorten(value, width: int = PREVIEW_WIDTH):
    """A text cut to `width` characters (an ellipsis marks the cut); other values unchanged."""
    if isinstance(value, str) and len(value) > width:
        return value[: width - 1].rstrip() + "…"
    return value


def predictions_preview(frame, columns: list[str], n_rows: int = PREVIEW_ROWS, width: int = PREVIEW_WIDTH):
    """A few prediction rows for the page: the first row of each task first (so every task shows),
    then the following rows, at most `n_rows`; long texts cut to `width` characters."""
    import pandas as pd

    frame = frame.reset_index(drop=True)
    firsts = frame.groupby("task", sort=False).head(1).index if "task" in frame else pd.Index([])
    order = list(firsts) + [i for i in frame.index if i not in set(firsts)]
    preview = frame.loc[order[:n_rows], [c for c in columns if c in frame]]
    return preview.apply(lambda col: col.map(lambda v: shorten(v, width)))


def write_predictions(rows: list[dict], folder: str | Path, name: str) -> tuple[Path, Path]:
    """Every row, twice: `<name>.jsonl` as the runner wrote it and `<name>.csv` flat (nested fields
    such as provenance become `provenance.model` ... columns, lists JSON text)."""
    import pandas as pd

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jsonl, csv = folder / f"{name}.jsonl", folder / f"{name}.csv"
    jsonl.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
    flat = pd.json_normalize(rows)
    for col in flat.columns:
        if flat[col].map(lambda v: isinstance(v, (list, dict))).any():
            flat[col] = flat[col].map(lambda v: json.dumps(v, default=str) if isinstance(v, (list, dict)) else v)
    flat.to_csv(csv, index=False)
    return csv, jsonl


def predictions_link(rows: list[dict], name: str, downloads_dir: str | Path | None) -> str:
    """Markdown under a preview: links to the whole predictions, written to `downloads_dir` (a folder
    beside the notebook: the links are relative, `<folder name>/<name>.csv`), or where they are when
    no folder is given."""
    if downloads_dir is None:
        return (f"All {len(rows)} rows: the predictions JSONL files of this run's output folder "
                "(the book links them as CSV and JSONL).")
    csv, jsonl = write_predictions(rows, downloads_dir, name)
    folder = Path(downloads_dir).name
    return (f"All {len(rows)} rows of this page: [CSV]({folder}/{csv.name}) "
            f"({csv.stat().st_size / 1024:.0f} kB), [JSONL]({folder}/{jsonl.name}) "
            f"({jsonl.stat().st_size / 1024:.0f} kB).")


def show_predictions(rows: list[dict], columns: list[str], name: str, downloads_dir: str | Path | None,
                     frame=None) -> None:
    """Display a preview of the prediction rows and the links to all of them (a notebook's cell).
    `frame`: the rows as a table with extra columns, where the page computed some."""
    import pandas as pd
    from IPython.display import Markdown, display

    with pd.option_context("display.max_colwidth", None):  # the preview cut its texts already
        display(predictions_preview(pd.DataFrame(rows) if frame is None else frame, columns))
    # the link carries what the rows ran, for the page's settings box (`reader_view`)
    display(Markdown(predictions_link(rows, name, downloads_dir)), metadata={RUN_SETTINGS_METADATA: run_settings(rows)})


# --- A preview of the book from the committed notebooks (their default outputs), for the browser check --

BOOK_FILES = ("_config.yml", "_toc.yml", "book/intro.md", "book/_ext", "book/_static")


def stage_preview_book(repo: str | Path, dest: str | Path) -> Path:
    """Lay out a book in `dest` like `make book` does (config, toc, intro, `book/executed/`), from the
    committed notebooks with their default outputs, each through `reader_view`; returns the book's
    source folder (`dest/book`) for `jupyter-book build`. No notebook is executed."""
    import shutil

    repo, dest = Path(repo), Path(dest)
    for name in BOOK_FILES:
        src, dst = repo / name, dest / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst, dirs_exist_ok=True) if src.is_dir() else shutil.copyfile(src, dst)
    shutil.copyfile(dest / "_toc.yml", dest / "book" / "_toc.yml")  # book/_toc.yml links to the top one
    executed = dest / "book" / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    for notebook in sorted((repo / "notebooks").glob("*.ipynb")):
        shutil.copyfile(notebook, executed / notebook.name)
        reader_view_file(executed / notebook.name)
    pages = [{"page": p.name, "seconds": 0.0, "finished": "committed outputs"} for p in sorted(executed.glob("*.ipynb"))]
    (executed / "timing.md").write_text(timing_markdown(pages, "the committed notebooks (not executed)"))
    return dest / "book"
