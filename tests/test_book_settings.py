"""The book's settings (profiles, files, command line, errors) and its plan (dry run, progress, estimate)."""

import csv
import json
from pathlib import Path

import pytest

from amlib import book_plan
from amlib.book import book_pages, run_pages, timing_markdown
from amlib.book_plan import PagePlan, Progress, page_plans, plan_rows, plan_text
from amlib.book_settings import PROFILES, BookSettings, SettingsError, load_settings
from amlib.data.manifest import write_manifest
from amlib.reference.model import REFERENCE_MODEL
from amlib.runner import RunConfig

from conftest import make_item

TABLES = Path(__file__).parents[1] / "amlib" / "paper" / "tables"


def paper_ratios(table: str, column: str) -> list[float]:
    with (TABLES / table).open() as fh:
        return sorted({float(r["ratio"]) for r in csv.DictReader(fh) if r[column] != "vanilla"})


# --- profiles, files, command line -------------------------------------------------------------------

def test_no_settings_is_todays_book():
    assert load_settings() == BookSettings()
    assert PROFILES["cpu"] == {}


def test_the_full_profile_is_the_papers_grid_on_every_item():
    full = load_settings("full")
    assert full.eviction_ratios == paper_ratios("table7_eviction_qwen25omni3b.csv", "press")  # Table 7's 5 ratios
    assert full.eviction_protocols is None  # both
    assert full.pruning_tasks is None and full.pruning_limit is None and full.eviction_limit is None
    assert full.baseline_limit is None and full.blind_limit is None and full.eviction_tasks is None
    pages = {p.notebook[:2]: p.parameters for p in book_pages(full)}
    assert pages["04"].get("ratio") is None and pages["04"].get("method") is None  # the page's 4 methods x 3 ratios
    assert paper_ratios("table4_pruning.csv", "method") == [0.3, 0.6, 0.9]  # ... which are Table 4's


def test_later_sources_win_profile_then_file_then_command_line(tmp_path):
    file = tmp_path / "book.yaml"
    file.write_text("profile: gpu\npruning_limit: 4\nmodel: from-file\n")
    s = load_settings(settings_file=file, overrides={"model": "from-cli", "dtype": None})
    assert s.profile == "gpu" and s.pruning_limit == 4 and s.model == "from-cli"
    assert s.eviction_limit == PROFILES["gpu"]["eviction_limit"]  # the profile's where nothing overrides it
    assert load_settings(settings_file=file, overrides={"profile": "full"}).eviction_limit is None
    json_file = tmp_path / "book.json"
    json_file.write_text(json.dumps({"eviction_ratios": [0.3], "eviction_protocols": ["query_aware"]}))
    s = load_settings(settings_file=json_file)
    assert s.profile == "cpu" and s.eviction_ratios == [0.3] and s.eviction_protocols == ["query_aware"]


def test_book_pages_carry_the_settings():
    s = load_settings(overrides={"model": "some/model", "dtype": "float32"}, settings_file=None)
    s.eviction_protocols = ["query_agnostic"]
    for page in book_pages(s):
        if "model" in page.parameters and not page.notebook.startswith("07"):
            assert page.parameters["model"] == "some/model" and page.parameters["device"] == "cpu"
            assert page.parameters["dtype"] == "float32"
    assert {p.notebook[:2]: p for p in book_pages(s)}["05"].parameters["protocol"] == ["query_agnostic"]


@pytest.mark.parametrize("text,suffix,match", [
    ("pruning_limt: 4\n", ".yaml", r"settings file .*book\.yaml: unknown key\(s\) 'pruning_limt'"),
    ("pruning_limit: eight\n", ".yaml", r"pruning_limit = 'eight': expected a positive integer"),
    ("eviction_ratios: [0.5, 1.0]\n", ".yaml", r"eviction_ratios = \[0.5, 1.0\]: expected a non-empty list of ratios in \[0, 1\)"),
    ("pruning_tasks: [SGR, XYZ]\n", ".yaml", r"pruning_tasks = \['SGR', 'XYZ'\]: expected a list of task codes"),
    ("baseline_limit: {ASR: -1}\n", ".yaml", r"baseline_limit"),
    ("profile: huge\n", ".yaml", r"profile 'huge': unknown; choose one of cpu, gpu, full"),
    ("min_seconds: 200\nmax_seconds: 100\n", ".yaml", r"min_seconds 200 > max_seconds 100"),
    ("dtype: float16\n", ".yaml", r"float16 on the CPU"),
    ("device: gpu\n", ".yaml", r"device 'gpu': expected cpu, cuda or cuda:N"),
    ("pruning_limit: [4\n", ".yaml", r"(?s)cannot be read: .*line 1"),
    ("[1, 2]\n", ".yaml", r"expected a mapping of settings, got list"),
    ("{\"seed\": -1}", ".json", r"seed = -1: expected a non-negative integer"),
])
def test_bad_settings_are_a_clear_error_before_anything_runs(tmp_path, text, suffix, match):
    file = tmp_path / f"book{suffix}"
    file.write_text(text)
    with pytest.raises(SettingsError, match=match):
        load_settings(settings_file=file)


def test_a_cuda_device_where_there_is_none_is_refused(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SettingsError, match="no CUDA device"):
        load_settings(overrides={"device": "cuda"})
    assert load_settings(overrides={"device": "cuda"}, check_device=False).resolved_dtype() == "bfloat16"


def test_cli_dry_run_prints_the_plan_and_runs_nothing(monkeypatch, capsys, tmp_path):
    from amlib import book, cli

    monkeypatch.setattr(book, "run_pages", lambda *a, **k: pytest.fail("a dry run ran a page"))
    cli.main(["book-pages", "--dry-run", "--profile", "gpu", "--executed", str(tmp_path / "executed")])
    out = capsys.readouterr().out
    assert '"profile": "gpu"' in out and "04_pruning" in out and "model work estimated" in out
    with pytest.raises(SystemExit, match="book settings: the command line: dtype = 'half'"):
        cli.main(["book-pages", "--dry-run", "--dtype", "half"])


# --- the plan: rows planned, present, to compute, and the estimate ---------------------------------------

@pytest.fixture
def book_root(tmp_path):
    """notebooks/ beside data/built/offline-test (3 SGR + 2 ASR items) and results/, as the book lays them out."""
    (tmp_path / "notebooks").mkdir()
    data = tmp_path / "data" / "built" / "offline-test"
    rows = [make_item(data, f"SGR-{i}", "SGR", 1.0) for i in range(3)] + \
        [make_item(data, f"ASR-{i}", "ASR", 1.0) for i in range(2)]
    write_manifest(data / "manifest.jsonl", rows)
    return tmp_path


SMALL = BookSettings(dtype="float32", baseline_limit={"ASR": 1}, blind_limit={"ASR": 0, "*": 2},
                     pruning_tasks=["SGR"], pruning_limit=2, pruning_asr_limit=1, pruning_asr_ratios=[0.6],
                     eviction_tasks=["SGR"], eviction_ratios=[0.5], eviction_limit=2)


def write_predictions(path: Path, ids: list[str], prefill: float, decode: float, rows_mean: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        for id_ in ids:
            fh.write(json.dumps({"id": id_, "error": None, "prefill_s": prefill, "decode_s": decode,
                                 "decode_rows_mean": rows_mean}) + "\n")


def test_the_plan_counts_each_pages_rows(book_root):
    plans = {p.page: p for p in page_plans(book_pages(SMALL), book_root / "notebooks")}
    # counted by hand from the manifest: 3 SGR + 1 ASR (limit), blind 2 SGR, pruning 13 configurations x 2
    # SGR + (vanilla + 4 methods at 0.6) x 1 ASR, eviction (4 presses x 1 ratio x 2 protocols + vanilla) x 2 SGR
    assert {name: plan.planned for name, plan in plans.items()} == {
        "02_baseline_eval": 4, "00_reference_model": 4, "03_results_overview": 4 + 2,
        "04_pruning": 13 * 2 + 5 * 1, "05_eviction": 9 * 2, "06_duration_ablation": 4 + 4}
    assert not any(plan.nominal for plan in plans.values())
    assert len(plans["04_pruning"].files) == 13  # the ASR item joins the files of its 5 configurations


def test_rows_already_present_are_not_planned_again_and_the_estimate_uses_their_rate(book_root):
    results = book_root / "results" / "baseline"
    vanilla = results / RunConfig().file_name(REFERENCE_MODEL)
    write_predictions(vanilla, ["SGR-0", "SGR-1", "SGR-2", "ASR-0"], prefill=2.0, decode=1.0, rows_mean=2.0)
    write_predictions(vanilla, ["not-planned"], prefill=2.0, decode=1.0, rows_mean=2.0)
    plans = page_plans(book_pages(SMALL), book_root / "notebooks")
    rows = {r.page: r for r in plan_rows(plans, book_root / "executed" / "timing.json")}
    assert (rows["02_baseline_eval"].done, rows["02_baseline_eval"].to_compute) == (4, 0)
    pruning = rows["04_pruning"]
    assert (pruning.done, pruning.to_compute) == (3, 28)  # the vanilla rows of its 2 SGR items and its ASR item
    # each row's own prefill + its share of the decode steps it took part in: 2.0 + 1.0 / 2
    assert pruning.seconds_per_row == pytest.approx(2.5) and pruning.estimate_s == pytest.approx(28 * 2.5)
    assert rows["05_eviction"].rate_from == "rows in its files"
    text = plan_text(list(rows.values()))
    assert "04_pruning" in text and f"{28 * 2.5 / 60:.1f} min" in text


def test_the_previous_builds_rate_comes_first(book_root):
    executed = book_root / "executed"
    executed.mkdir()
    (executed / "timing.json").write_text(json.dumps({"pages": [
        {"page": "04_pruning.ipynb", "seconds": 120.0, "rows_computed": 40, "finished": "x"}]}))
    rows = {r.page: r for r in plan_rows(page_plans(book_pages(SMALL), book_root / "notebooks"), executed / "timing.json")}
    assert rows["04_pruning"].seconds_per_row == pytest.approx(3.0) and rows["04_pruning"].rate_from == "previous build"
    assert rows["05_eviction"].seconds_per_row is None and rows["05_eviction"].estimate_s is None
    assert "+ pages without a measured rate" in plan_text(list(rows.values()))


def test_unbuilt_data_gives_nominal_counts(tmp_path):
    (tmp_path / "notebooks").mkdir()
    plans = {p.page: p for p in page_plans(book_pages(SMALL), tmp_path / "notebooks")}
    assert plans["04_pruning"].nominal
    assert plans["04_pruning"].planned == 13 * 2 + 5 * 1  # per_task 10, limited to 2 SGR and 1 ASR


def test_progress_lines_and_the_rows_a_page_computed(tmp_path):
    path = tmp_path / "run.jsonl"
    write_predictions(path, ["a"], 1.0, 0.0, 1.0)
    plan = PagePlan("04_pruning", {path: {"a", "b", "c", "d"}})
    lines = []
    with Progress(plan, every=3600, write=lines.append) as progress:
        assert progress.line() == "04_pruning: 1/4 rows"  # nothing computed yet: no time left to tell
        write_predictions(path, ["b", "zzz"], 1.0, 0.0, 1.0)
        assert progress.line().startswith("04_pruning: 2/4 rows, ~") and progress.line().endswith(" min left")
    assert progress.rows_computed == 1


def test_run_pages_records_rows_planned_and_computed(tmp_path, monkeypatch):
    import papermill

    from amlib.book import Page

    notebooks = Path(__file__).parents[1] / "notebooks"
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: None)
    monkeypatch.setattr("amlib.book.reader_view_file", lambda path: None)
    rows = run_pages([Page("08_encoding_granularity.ipynb", {})], notebooks, tmp_path, progress_every=None)
    assert rows[0]["rows_planned"] == 0 and rows[0]["rows_computed"] is None
    table = timing_markdown([{"page": "04_pruning.ipynb", "seconds": 60.0, "finished": "now", "rows_planned": 1200,
                              "rows_computed": 900}], "a machine")
    assert "| 04_pruning | 1.0 | 100 % | 1,200 | 900 | now |" in table


# --- the data ----------------------------------------------------------------------------------------

def test_data_settings_name_a_source_and_its_folder(tmp_path):
    from amlib.book_settings import data_spec

    assert data_spec("offline").source == "offline"
    released = data_spec(f"released:{tmp_path}")
    assert (released.source, released.root, released.folder) == ("audiomarathon", str(tmp_path),
                                                                 "../data/built/audiomarathon-test")
    with pytest.raises(SettingsError, match="unknown source 'nope'"):
        data_spec(f"nope:{tmp_path}")
    with pytest.raises(SettingsError, match="is not a folder"):
        data_spec(f"gtzan:{tmp_path / 'missing'}")
    with pytest.raises(SettingsError, match="has no manifest.jsonl"):
        data_spec(f"built:{tmp_path}")
    with pytest.raises(SettingsError, match="expected offline, <source>:<folder> or built:<folder>"):
        load_settings(overrides={"data": "AudioMarathon"})


def test_a_real_source_is_built_once_and_read_as_it_is_by_the_later_pages(tmp_path):
    s = load_settings(overrides={"data": f"gtzan:{tmp_path}"})
    pages = {p.notebook[:2]: p.parameters for p in book_pages(s)}
    assert (pages["01"]["source"], pages["01"]["root"], pages["01"]["out"]) == ("gtzan", str(tmp_path),
                                                                               "../data/built/gtzan-test")
    for page in ("02", "03", "04", "05", "06"):
        assert (pages[page]["data_source"], pages[page]["data_dir"]) == ("manifest", "../data/built/gtzan-test")
    assert pages["00"]["data_dir"] == "../data/built/offline-test"  # the stand-in's page keeps its own data
    assert pages["00"]["output_dir"] != pages["02"]["output_dir"]  # ... and its own predictions


def test_a_prebuilt_folder_is_used_as_it_is(tmp_path):
    from amlib.data.build import ensure_dataset

    with pytest.raises(FileNotFoundError, match="no manifest.jsonl"):
        ensure_dataset(tmp_path / "empty", source="manifest", per_task=3)
    data = tmp_path / "built"
    write_manifest(data / "manifest.jsonl", [make_item(data, "SGR-0", "SGR", 1.0)])
    before = (data / "manifest.jsonl").read_text()
    assert ensure_dataset(data, source="manifest", per_task=3, root=None) == data
    assert (data / "manifest.jsonl").read_text() == before and not (data / "build.json").exists()
    s = load_settings(overrides={"data": f"built:{data}"})
    assert {p.notebook[:2]: p.parameters for p in book_pages(s)}["02"]["data_dir"] == str(data)


def test_row_counting_reads_only_what_was_appended(tmp_path):
    path = tmp_path / "run.jsonl"
    write_predictions(path, ["a", "b"], 1.0, 0.0, 1.0)
    assert book_plan.ids_in(path) == {"a", "b"}
    with path.open("a") as fh:
        fh.write('{"id": "c", "error": null}\n{"id": "d", "err')  # a row being written
    assert book_plan.ids_in(path) == {"a", "b", "c"}
    with path.open("a") as fh:
        fh.write('or": null}\n')
    assert book_plan.ids_in(path) == {"a", "b", "c", "d"}
    path.unlink()  # replaced by a merged file with other rows
    write_predictions(path, ["x"], 1.0, 0.0, 1.0)
    assert book_plan.ids_in(path) == {"x"}


def test_several_models_every_page_runs_the_first_and_page_02_evaluates_all(book_root):
    s = load_settings(overrides={"model": ["tiny-random-qwen2-audio", "tiny-random-voxtral"]})
    pages = {p.notebook[:2]: p.parameters for p in book_pages(s)}
    assert pages["02"]["model"] == "tiny-random-qwen2-audio" and pages["02"]["more_models"] == ["tiny-random-voxtral"]
    assert all(pages[k]["model"] == "tiny-random-qwen2-audio" for k in ("03", "04", "05", "06", "07"))
    s.dtype = "float32"
    plans = {p.page: p for p in page_plans(book_pages(s), book_root / "notebooks")}
    plan = plans["02_baseline_eval"]
    assert sorted(path.name.split("__")[0] for path in plan.files) == ["tiny-random-qwen2-audio", "tiny-random-voxtral"]
    assert plan.planned == 2 * (3 + 2)  # every item (limit ASR 3 of 2) for each model
    # the default pruning tasks are not all in this data: the page would stop, the plan says why
    assert plans["04_pruning"].problems == ["no samples of task(s) ER, MC in the manifest"]
    assert "PROBLEM: no samples of task(s) ER, MC" in plan_text(plan_rows(list(plans.values()), book_root / "t.json"))
    with pytest.raises(SettingsError, match="a list of distinct ones"):
        load_settings(overrides={"model": ["a", "a"]})


def test_cli_takes_several_models(monkeypatch, capsys):
    from amlib import cli

    cli.main(["book-pages", "--dry-run", "--model", "tiny-random-qwen2-audio", "tiny-random-voxtral"])
    assert '"model": ["tiny-random-qwen2-audio", "tiny-random-voxtral"]' in capsys.readouterr().out


def built_folders(root: Path) -> tuple[Path, Path]:
    """Two built data folders, as their build records describe them: the offline suite, the released benchmark."""
    offline, released = root / "offline", root / "released"
    for folder, record in ((offline, {"source": "offline", "root": None}),
                           (released, {"source": "audiomarathon", "root": "/data/AM"})):
        folder.mkdir()
        (folder / "build.json").write_text(json.dumps(record))
    return offline, released


def test_the_landing_note_says_what_this_build_evaluated(tmp_path):
    from amlib.book_settings import scope_note

    offline, released = built_folders(tmp_path)
    stand_in = scope_note(REFERENCE_MODEL, "cpu", "bfloat16", offline)
    assert "small stand-in model on synthetic data" in stand_in
    real = scope_note("Qwen/Qwen2.5-Omni-7B", "NVIDIA H100", "bfloat16", released)
    assert real == "This build evaluates Qwen/Qwen2.5-Omni-7B (bfloat16, NVIDIA H100) on the released AudioMarathon " \
                   "benchmark from /data/AM."
    random_on_offline = scope_note("random-qwen2.5-omni-3b", "NVIDIA H100", "bfloat16", offline)
    assert "weights are random" in random_on_offline and "offline suite is synthetic" in random_on_offline
    assert "stand-in model on synthetic data" not in random_on_offline
    assert "stand-in model (page 00)" in scope_note(REFERENCE_MODEL, "cuda", "bfloat16", released)


def test_the_plan_takes_the_throughput_benchmark_s_rates_for_the_size_it_measured(tmp_path):
    from amlib.book_plan import PagePlan, benchmark_rates, plan_rows

    bench = {"model": "random-qwen2.5-omni-3b", "device": "NVIDIA H100 80GB HBM3",
             "modes": [{"mode": "hf_batch1", "wall_s": 100.0, "items": 20},
                       {"mode": "batched_pipelined", "wall_s": 10.0, "items": 20}],
             "pruning_grid": {"per_task_runs": {"SER": {"wall_s": 3.0, "rows": 26}, "ASR": {"wall_s": 13.0, "rows": 26}}}}
    path = tmp_path / "throughput_gpu.json"
    path.write_text(json.dumps(bench))
    rates, origin = benchmark_rates(["Qwen/Qwen2.5-Omni-3B", "other"], "cuda:0", path)
    assert rates["02_baseline_eval"] == pytest.approx(0.5) and rates["04_pruning"] == pytest.approx(16.0 / 52)
    assert "05_eviction" not in rates and origin == "benchmark (throughput_gpu.json, NVIDIA H100 80GB HBM3)"
    assert benchmark_rates("Qwen/Qwen2.5-Omni-7B", "cuda", path) == ({}, "")  # another size: another speed
    assert benchmark_rates("Qwen/Qwen2.5-Omni-3B", "cpu", path) == ({}, "")
    plan = PagePlan("04_pruning", {tmp_path / "none.jsonl": 10})
    row = plan_rows([plan], tmp_path / "timing.json", (rates, origin))[0]
    assert row.estimate_s == pytest.approx(10 * 16.0 / 52) and row.rate_from == origin


def test_the_landing_rows_call_a_stand_in_a_stand_in_only_where_one_ran(tmp_path):
    from amlib.book_settings import landing_rows

    offline, released = built_folders(tmp_path)
    default = landing_rows(REFERENCE_MODEL, "cpu", "bfloat16", offline)
    assert default["data"].startswith("a stand-in: the offline suite") and default["model"].startswith("a stand-in: ")
    assert "AMX-BF16" in default["precision"]
    real = landing_rows("Qwen/Qwen2.5-Omni-7B", "NVIDIA H100", "bfloat16", released, ["Qwen/Qwen2-Audio-7B-Instruct"])
    assert not any("stand-in" in text for text in real.values())
    assert real["data"] == "real data: the released AudioMarathon benchmark from /data/AM."
    assert real["model"].startswith("Qwen/Qwen2.5-Omni-7B, loaded by hub id") and "Qwen2-Audio-7B-Instruct" in real["model"]
    assert real["precision"].startswith("bfloat16 on NVIDIA H100") and "AMX" not in real["precision"]
    mixed = landing_rows("random-qwen2.5-omni-3b", "NVIDIA H100", "bfloat16", offline)
    assert mixed["data"].startswith("a stand-in") and "random weights" in mixed["model"]
    assert landing_rows(REFERENCE_MODEL, "cuda", "bfloat16", released)["data"].startswith("real data")
    assert "re-encoded" not in default["data"] + real["data"]


def test_a_packed_copy_of_the_data_is_named_as_one(tmp_path):
    import json

    from amlib.book_settings import built_data_description, landing_rows

    offline, released = built_folders(tmp_path)
    for folder in (offline, released):
        (Path(folder) / "packed.json").write_text(json.dumps({"from": "x", "format": "ogg/opus", "kbps": 16}))
    note = "its audio re-encoded as ogg/opus at 16 kbit/s"
    assert built_data_description(released) == f"the released AudioMarathon benchmark from /data/AM, {note}"
    assert built_data_description(offline).endswith(note)
    row = landing_rows(REFERENCE_MODEL, "cpu", "bfloat16", offline)["data"]
    assert row.startswith("a stand-in: the offline suite") and row.endswith(f"Here, {note} (a compact copy).")


def test_progress_counts_rows_while_papermill_runs_from_the_notebooks_folder(book_root, monkeypatch):
    """papermill changes the working directory to the notebooks folder while a page runs: the plan's
    files must not depend on it."""
    monkeypatch.chdir(book_root)
    plan = {p.page: p for p in page_plans(book_pages(SMALL), Path("notebooks"))}["02_baseline_eval"]
    write_predictions(book_root / "results" / "baseline" / RunConfig().file_name(REFERENCE_MODEL), ["SGR-0"],
                      1.0, 0.0, 1.0)
    monkeypatch.chdir(book_root / "notebooks")
    assert plan.done() == 1
