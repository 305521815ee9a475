"""What a book build will compute, before it runs (`--dry-run`) and while it runs (progress lines).

Each page's model work is a set of (predictions file, sample ids) pairs, derived from the page's
parameters with the same functions the notebooks call (`runner.select`, `sweep.sweep_configs`,
`sweep.eviction_configs`, `RunConfig.file_name`); rows already in a file (the runner resumes there)
are not computed again. Where the data is not built yet, a page's items are the build's nominal
count (`per_task` per task) and the plan says so.

The time estimate uses measured rates: the seconds per computed row of the same page in this
folder's previous build (`timing.json` records the rows each page computed), else the rows already
in the page's own files (their prefill, and their share of the batched decode steps), else, for a
CUDA build of the model size the throughput benchmark measured (`benchmarks/throughput_gpu.json`: the
Qwen2.5-Omni-3B thinker's sizes), that benchmark's seconds per row (evaluation pages: its batched,
pipelined pass; the pruning page: its 13-configuration grid; the eviction page: its eviction grid),
else none ("no measured rate").
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from amlib.book import BLIND_DIR, DATA_DIR, RESULTS_DIR, Page
from amlib.reference.model import REFERENCE_MODEL


@dataclass
class PagePlan:
    page: str
    files: dict[Path, set[str] | int] = field(default_factory=dict)  # file -> ids (or a nominal count)
    nominal: bool = False  # the data is not built: counts are the build's nominal ones
    problems: list[str] = field(default_factory=list)  # what the page would fail on (e.g. a task the data lacks)

    @property
    def planned(self) -> int:
        return sum(len(ids) if isinstance(ids, set) else ids for ids in self.files.values())

    def done(self) -> int:
        """Rows of the plan already in their files."""
        return sum(len(ids & ids_in(path)) if isinstance(ids, set) else min(ids, len(ids_in(path)))
                   for path, ids in self.files.items())


_READ: dict[Path, tuple[int, int, set[str]]] = {}  # file -> (inode, bytes read, ids): appended rows only


def ids_in(path: Path) -> set[str]:
    """Sample ids of the rows in a predictions file (and its shard files). Files only grow while a run
    appends to them, so each is read from where the last call stopped (a file replaced, e.g. merged,
    is read again); a line not yet complete waits for the next call."""
    found: set[str] = set()
    for file in [path, *sorted(path.parent.glob(f"{path.stem}.rank*.jsonl"))] if path.parent.is_dir() else []:
        if file.is_file():
            found |= _file_ids(file)
    return found


def _file_ids(file: Path) -> set[str]:
    stat = file.stat()
    inode, offset, ids = _READ.get(file, (stat.st_ino, 0, set()))
    if inode != stat.st_ino or stat.st_size < offset:
        offset, ids = 0, set()
    with file.open("rb") as fh:
        fh.seek(offset)
        chunk = fh.read()
    complete = chunk[:chunk.rfind(b"\n") + 1]
    for line in complete.splitlines():
        try:
            ids.add(json.loads(line)["id"])
        except (ValueError, KeyError, TypeError):
            continue
    _READ[file] = (stat.st_ino, offset + len(complete), ids)
    return set(ids)


def page_plans(pages: list[Page], notebooks_dir: str | Path) -> list[PagePlan]:
    """The model work of every page (pages without any: no plan). Paths are absolute: papermill runs a
    page from inside the notebooks folder (it changes this process's working directory meanwhile)."""
    root = Path(notebooks_dir).resolve()
    plans = []
    for page in pages:
        plan = _plan(page, root)
        if plan is not None:
            plans.append(plan)
    return plans


def _manifest(params: dict, root: Path):
    from amlib.data import read_manifest

    path = root / params.get("data_dir", DATA_DIR) / "manifest.jsonl"
    return read_manifest(path.parent) if path.is_file() else None


def _nominal(params: dict, tasks, limit) -> dict[str, int]:
    from amlib.runner import _task_limits
    from amlib.tasks import TASK_ORDER

    per_task = params.get("per_task", 0)
    wanted = tasks or TASK_ORDER
    limits = _task_limits(limit)
    return {t: min(per_task, limits(t)) if limits(t) is not None else per_task for t in wanted}


def _items(params: dict, root: Path, tasks, limit, plan: PagePlan) -> set[str] | int:
    from amlib.runner import select

    samples = _manifest(params, root)
    if samples is None:
        plan.nominal = True
        return sum(_nominal(params, tasks, limit).values())
    try:
        return {s.id for s in select(samples, tasks, limit)}
    except ValueError as err:  # the page would stop on it: the plan says so instead
        plan.problems.append(str(err))
        return set()


def _plan(page: Page, root: Path) -> PagePlan | None:
    from amlib.eviction import PAPER_PRESSES, PROTOCOLS
    from amlib.pruning import METHODS
    from amlib.runner import RunConfig
    from amlib.sweep import eviction_configs, sweep_configs

    p, name = page.parameters, page.notebook.removesuffix(".ipynb")
    if "model" not in p and not name.startswith("00"):
        return None
    plan = PagePlan(name)
    seed = p.get("seed", 0)
    model = p.get("model", REFERENCE_MODEL)
    results = root / p.get("output_dir", RESULTS_DIR) if not name.startswith("03") else root / p["results_dir"]
    vanilla = RunConfig(seed=seed)
    if name.startswith(("00", "02")):
        models = [REFERENCE_MODEL] if name.startswith("00") else [model, *p.get("more_models", [])]
        for each in models:
            plan.files[results / vanilla.file_name(each)] = _items(p, root, p.get("tasks"), p.get("limit"), plan)
    elif name.startswith("03"):
        items = _items(p, root, p.get("tasks"), p.get("limit"), plan)
        plan.files[results / vanilla.file_name(model)] = items
        blind = root / p.get("output_dir", BLIND_DIR) / "predictions" / vanilla.file_name(model)
        plan.files[blind] = _items(p, root, p.get("tasks"), p.get("blind_limit"), plan)
    elif name.startswith("04"):
        methods = [p["method"]] if p.get("method") else list(METHODS)
        ratios = [float(p["ratio"])] if p.get("ratio") is not None else [0.3, 0.6, 0.9]
        items = _items(p, root, p.get("tasks"), p.get("limit"), plan)
        for config in sweep_configs(methods, ratios, layer=p.get("layer", 2), seed=seed):
            plan.files[results / config.file_name(model)] = items
        if p.get("asr_limit"):
            asr = _items(p, root, ["ASR"], p["asr_limit"], plan)
            asr_ratios = ratios if p.get("asr_ratios") is None else [float(r) for r in p["asr_ratios"]]
            for config in sweep_configs(methods, asr_ratios, layer=p.get("layer", 2), seed=seed):
                path = results / config.file_name(model)
                plan.files[path] = _union(plan.files.get(path), asr)
    elif name.startswith("05"):
        presses = [p["press"]] if p.get("press") else list(PAPER_PRESSES)
        ratio = p.get("ratio")
        ratios = [0.3, 0.5, 0.7, 0.9] if ratio is None else [float(r) for r in (ratio if isinstance(ratio, list) else [ratio])]
        protocol = p.get("protocol")
        protocols = list(PROTOCOLS) if protocol is None else list(protocol) if isinstance(protocol, list) else [protocol]
        items = _items(p, root, p.get("tasks"), p.get("limit"), plan)
        for config in eviction_configs(presses, ratios, protocols, seed=seed):
            plan.files[results / config.file_name(model)] = items
    elif name.startswith("06"):
        items = _items(p, root, p.get("tasks"), p.get("limit"), plan)
        plan.files[results / vanilla.file_name(model)] = items
        plan.files[results / "short" / vanilla.file_name(model)] = _short_ids(p, root, items)
    elif name.startswith("07"):
        return None  # reads page 04's rows
    return plan


def _union(a, b):
    if a is None:
        return b
    if isinstance(a, set) and isinstance(b, set):
        return a | b
    return (len(a) if isinstance(a, set) else a) + (len(b) if isinstance(b, set) else b)


def _short_ids(params: dict, root: Path, items: set[str] | int) -> set[str] | int:
    """The short counterparts' ids where page 06 built them already, else one per long item."""
    from amlib.data import read_manifest

    short_dir = root / f"{params.get('data_dir', DATA_DIR)}-short"
    if (short_dir / "manifest.jsonl").is_file() and isinstance(items, set):
        return {s.id for s in read_manifest(short_dir) if s.meta.get("long_id") in items} or len(items)
    return len(items) if isinstance(items, set) else items


# --- rates and the estimate --------------------------------------------------------------------------

def previous_rates(timing_path: Path) -> dict[str, float]:
    """Seconds per computed row of each page in the previous build (pages that computed rows)."""
    if not timing_path.is_file():
        return {}
    rates = {}
    for row in json.loads(timing_path.read_text()).get("pages", []):
        if row.get("rows_computed"):
            rates[row["page"].removesuffix(".ipynb")] = row["seconds"] / row["rows_computed"]
    return rates


def rows_rate(plan: PagePlan) -> float | None:
    """Seconds per row from the rows already in the plan's files: each row's prefill (its own part)
    and its share of the decode steps it took part in."""
    costs = []
    for path in plan.files:
        for file in [path, *sorted(path.parent.glob(f"{path.stem}.rank*.jsonl"))] if path.parent.is_dir() else []:
            if not file.is_file():
                continue
            for line in file.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if row.get("error") or row.get("prefill_s") is None:
                    continue
                prefill = row.get("prefill_measured_s", row["prefill_s"])
                share = row.get("decode_rows_mean") or 1.0
                costs.append(prefill + (row.get("decode_s") or 0.0) / share)
    return statistics.mean(costs) if costs else None


@dataclass
class PlanRow:
    page: str
    planned: int
    done: int
    seconds_per_row: float | None
    rate_from: str
    nominal: bool
    problems: list[str] = field(default_factory=list)

    @property
    def to_compute(self) -> int:
        return self.planned - self.done

    @property
    def estimate_s(self) -> float | None:
        return None if self.seconds_per_row is None else self.to_compute * self.seconds_per_row


THROUGHPUT_JSON = Path(__file__).resolve().parent.parent / "benchmarks" / "throughput_gpu.json"
EVALUATION_PAGES = ("02_baseline_eval", "03_results_overview", "06_duration_ablation")


def benchmark_rates(model: str | list[str], device: str, path: Path = THROUGHPUT_JSON) -> tuple[dict[str, float], str]:
    """(seconds per row by page, where they come from) from the throughput benchmark's JSON, for a CUDA
    build whose (first) model has the size the benchmark measured (its weights do not change its speed);
    ({}, "") otherwise. The benchmark names its GPU: another GPU runs at another speed."""
    model = model[0] if isinstance(model, list) else model
    if not device.startswith("cuda") or not path.is_file():
        return {}, ""
    bench = json.loads(path.read_text())
    size = bench["model"].removeprefix("random-")  # e.g. "qwen2.5-omni-3b"
    if size not in str(model).lower():
        return {}, ""
    rates = {}
    batched = next((m for m in bench.get("modes", []) if m.get("mode") == "batched_pipelined"), None)
    if batched and batched.get("items"):
        rates.update({page: batched["wall_s"] / batched["items"] for page in EVALUATION_PAGES})
    for page, key in (("04_pruning", "pruning_grid"), ("05_eviction", "eviction_grid")):
        runs = (bench.get(key) or {}).get("per_task_runs", {})
        rows = sum(r.get("rows", 0) for r in runs.values())
        if rows:
            rates[page] = sum(r["wall_s"] for r in runs.values()) / rows
    return rates, f"benchmark ({path.name}, {bench['device']})"


def plan_rows(plans: list[PagePlan], timing_path: Path, benchmark: tuple[dict[str, float], str] = ({}, "")
              ) -> list[PlanRow]:
    previous = previous_rates(timing_path)
    rows = []
    for plan in plans:
        rate, origin = previous.get(plan.page), "previous build"
        if rate is None:
            rate, origin = rows_rate(plan), "rows in its files"
        if rate is None:
            rate, origin = benchmark[0].get(plan.page), benchmark[1]
        if rate is None:
            origin = "no measured rate"
        rows.append(PlanRow(plan.page, plan.planned, plan.done(), rate, origin, plan.nominal, plan.problems))
    return rows


def plan_text(rows: list[PlanRow]) -> str:
    lines = [f"{'page':28s} {'planned':>8s} {'present':>8s} {'compute':>8s} {'estimate':>10s}  rate from"]
    total, unknown = 0.0, False
    for r in rows:
        estimate = "?" if r.estimate_s is None else f"{r.estimate_s / 60:.1f} min"
        note = r.rate_from + (" (data not built: nominal counts)" if r.nominal else "")
        lines.append(f"{r.page:28s} {r.planned:8d} {r.done:8d} {r.to_compute:8d} {estimate:>10s}  {note}")
        lines += [f"{'':28s} PROBLEM: {problem}" for problem in r.problems]
        if r.estimate_s is None:
            unknown = unknown or r.to_compute > 0
        else:
            total += r.estimate_s
    lines.append(f"model work estimated: {total / 60:.1f} min" + (" + pages without a measured rate" if unknown else ""))
    return "\n".join(lines)


# --- progress while a page runs ----------------------------------------------------------------------

class Progress:
    """A thread that prints `page: done/planned rows, ~N min left` every `every` seconds while a page
    runs (rows counted in the plan's files; time left from the page's own rate so far)."""

    def __init__(self, plan: PagePlan, every: float = 60.0, write=print):
        import threading

        self.plan, self.every, self.write = plan, every, write
        self.start_done = plan.done()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"amlib-progress-{plan.page}")

    def __enter__(self):
        import time

        self._began = time.perf_counter()
        self._thread.start()
        return self

    def line(self) -> str:
        import time

        done = self.plan.done()
        computed = done - self.start_done
        elapsed = time.perf_counter() - self._began
        left = self.plan.planned - done
        eta = f", ~{left * elapsed / computed / 60:.1f} min left" if computed and left else ""
        return f"{self.plan.page}: {done}/{self.plan.planned} rows{eta}"

    def _loop(self):
        while not self._stop.wait(self.every):
            self.write(self.line())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.rows_computed = self.plan.done() - self.start_done
        return False
