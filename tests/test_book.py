"""amlib.book: the main job's pages run in dependency order, each with parameters its notebook has."""

import ast
import json
import shutil
from pathlib import Path

import pytest

import nbformat
import pandas as pd

from amlib.book import (RUN_SETTINGS_METADATA, SETTINGS_CELL_ID, BookSettings, book_pages, format_setting,
                        is_setup_code, notebook_parameters, predictions_link, predictions_preview, reader_view,
                        recorded_run_settings, run_pages, run_settings, run_settings_markdown, stage_preview_book,
                        timing_markdown)

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
TOC = Path(__file__).parents[1] / "_toc.yml"


def parameter_names(notebook: Path) -> set[str]:
    cells = json.loads(notebook.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{notebook.name}: expected one cell tagged 'parameters'"
    tree = ast.parse("".join(tagged[0]["source"]))
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}


def test_every_page_exists_and_gets_only_parameters_it_defines():
    for page in book_pages(BookSettings(dtype="float32")):
        notebook = NOTEBOOKS / page.notebook
        assert notebook.is_file(), page.notebook
        unknown = set(page.parameters) - parameter_names(notebook)
        assert not unknown, f"{page.notebook} does not define {sorted(unknown)} (papermill would only warn)"


def test_pages_run_after_what_they_read():
    order = [p.notebook[:2] for p in book_pages(BookSettings(dtype="float32"))]
    assert order[0] == "01"  # the data every page reads
    for later in ("00", "03", "04", "05", "06"):
        assert order.index("02") < order.index(later)  # the baseline's predictions are reused
    assert order.index("04") < order.index("07")  # 07 analyses 04's ASR predictions
    assert sorted(order) == sorted(set(order))


def test_every_page_is_in_the_table_of_contents():
    toc = TOC.read_text()
    for page in book_pages(BookSettings(dtype="float32")):
        assert f"executed/{page.notebook.removesuffix('.ipynb')}" in toc, page.notebook


def test_pages_share_one_predictions_folder_and_one_dtype():
    pages = book_pages(BookSettings(dtype="bfloat16"))
    folders = {p.parameters.get("results_dir") or p.parameters.get("output_dir") for p in pages} - {None}
    assert len(folders) == 1  # page 03's output_dir holds its silent copies, apart
    assert {p.parameters["dtype"] for p in pages if "dtype" in p.parameters} == {"bfloat16"}


def fake_execute(calls):
    """papermill.execute_notebook's stand-in: records the call and writes the notebook unexecuted."""
    def execute(src, dst, **kw):
        calls.append((Path(src).name, kw["parameters"]))
        shutil.copyfile(src, dst)
    return execute


def test_run_pages_times_each_page_and_keeps_earlier_rows(tmp_path, monkeypatch):
    import papermill

    calls = []
    monkeypatch.setattr(papermill, "execute_notebook", fake_execute(calls))
    pages = book_pages(BookSettings(dtype="float32"))
    run_pages(pages, NOTEBOOKS, tmp_path, only=["01", "08"])
    assert [name for name, _ in calls] == ["01_dataset_construction.ipynb", "08_encoding_granularity.ipynb"]
    rows = run_pages(pages, NOTEBOOKS, tmp_path, only=["02"])
    assert [r["page"][:2] for r in rows] == ["01", "08", "02"]
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert len(timing["pages"]) == 3 and "CPU cores" in timing["machine"]
    assert "| **total** |" in (tmp_path / "timing.md").read_text()


def test_timing_markdown_shares_add_up():
    text = timing_markdown([{"page": "a.ipynb", "seconds": 90.0, "finished": "t1"},
                            {"page": "b.ipynb", "seconds": 30.0, "finished": "t2"}], "test machine")
    assert "| a | 1.5 | 75 % |  |  | t1 |" in text and "| b | 0.5 | 25 % |  |  | t2 |" in text and "**2.0**" in text


def test_run_pages_gives_pages_with_a_downloads_parameter_the_folder_beside_them_and_tags_them(tmp_path, monkeypatch):
    import papermill

    calls = []
    monkeypatch.setattr(papermill, "execute_notebook", fake_execute(calls))
    executed = tmp_path / "book" / "executed"
    run_pages(book_pages(BookSettings(dtype="float32")), NOTEBOOKS, executed, only=["02", "08"])
    given = {name: params.get("downloads_dir") for name, params in calls}
    # papermill runs in notebooks/: the folder is given from there, and lands beside the executed page
    assert (NOTEBOOKS / given["02_baseline_eval.ipynb"]).resolve() == (executed / "predictions").resolve()
    assert given["08_encoding_granularity.ipynb"] is None  # 08 has no predictions and no such parameter
    page = nbformat.read(str(executed / "02_baseline_eval.ipynb"), as_version=4)
    assert page.cells[1]["id"] == SETTINGS_CELL_ID
    assert "hide-cell" in page.cells[2].metadata["tags"] and "parameters" in page.cells[2].metadata["tags"]


def test_every_page_with_a_prediction_table_can_link_all_its_predictions():
    with_tables = [nb for nb in sorted(NOTEBOOKS.glob("*.ipynb")) if "show_predictions(" in nb.read_text()]
    assert len(with_tables) >= 5
    for nb in with_tables:
        assert "downloads_dir" in parameter_names(nb), f"{nb.name} shows predictions but has no downloads_dir"


def notebook(*cells, injected=None):
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    nb.cells = [nbformat.v4.new_markdown_cell("# Title")] + list(cells)
    if injected:
        cell = nbformat.v4.new_code_cell(injected)
        cell.metadata["tags"] = ["injected-parameters"]
        nb.cells.insert(2, cell)
    return nb


def code(source, outputs=(), tags=()):
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = [nbformat.v4.new_output(**o) for o in outputs]
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


SHOWN = {"output_type": "display_data", "data": {"text/html": "<table/>", "text/plain": "t"}}
GLUED = {"output_type": "display_data", "data": {"application/papermill.record/text/plain": "1"},
         "metadata": {"scrapbook": {"name": "k"}}}
WIDGET = {"output_type": "display_data", "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "m"},
                                                   "text/plain": "Loading: 0%"}}


def test_reader_view_collapses_set_up_and_parameters_and_shows_the_run_settings():
    nb = notebook(code('model = "tiny"\nlimit = None\nseed = 0', tags=["parameters"]),
                  code("%matplotlib inline\nimport pandas as pd\npd.set_option('display.precision', 1)"),
                  code("table", outputs=[SHOWN, WIDGET]), code("glue('k', 1, display=False)", outputs=[GLUED]),
                  code("secret", outputs=[SHOWN], tags=["remove-cell"]),
                  injected='model = "Qwen/Qwen2.5-Omni-3B"\nlimit = {"ASR": 3}')
    reader_view(nb)
    tags = [c.metadata.get("tags") for c in nb.cells]
    assert nb.cells[1]["id"] == SETTINGS_CELL_ID  # above the collapsed cells, under the title
    assert tags[2:] == [["parameters", "hide-cell"], ["injected-parameters", "hide-cell"], ["hide-cell"],
                        ["hide-input"], ["hide-cell"], ["remove-cell"]]
    assert [o["data"] for o in nb.cells[5].outputs] == [SHOWN["data"]] and "widgets" not in nb.metadata  # no stale progress bar
    settings = nb.cells[1].source
    assert "| model | `Qwen/Qwen2.5-Omni-3B` |" in settings  # papermill's value over the default
    assert "limit `ASR 3`" in settings and "seed `0`" in settings
    reader_view(nb)  # again (a page re-tagged): one settings cell, the same tags
    assert [c.metadata.get("tags") for c in nb.cells] == tags and sum(c.get("id") == SETTINGS_CELL_ID for c in nb.cells) == 1


def test_is_setup_code():
    assert is_setup_code("%matplotlib inline\nimport json\nfrom pathlib import Path\npd.set_option('a', 1)\ndef f():\n    return 1")
    assert not is_setup_code("import json\nrows = json.loads('[]')")
    assert not is_setup_code("")


def test_notebook_parameters_reads_literals_and_shows_expressions_as_written():
    nb = notebook(code('a = 1\nb = [0.3, 0.6]\nc = str(2)', tags=["parameters"]), injected="a = 2")
    assert notebook_parameters(nb) == {"a": 2, "b": [0.3, 0.6], "c": "str(2)"}


def test_run_settings_rows_and_values():
    text = run_settings_markdown({"model": "m", "dtype": None, "data_dir": "../data/built/x", "per_task": 10,
                                  "limit": None, "device": "cpu", "ratio": [0.5, 0.9], "output_dir": None})
    assert text.splitlines()[2:] == [
        "| model | `m`; dtype `the model's own` |", "| data | data_dir `../data/built/x` |",
        "| n per task | per_task `10`; limit `all` |", "| device | `cpu` |", "| settings | ratio `0.5, 0.9` |",
        "| files | output_dir `a temporary folder` |", "| shown from | the page's parameters (it recorded no prediction rows) |"]
    assert format_setting("blind_limit", {"ASR": 0, "*": 3}) == "ASR 0, others 3"
    assert "device" not in run_settings_markdown({"per_task": 2})  # rows only for what the page has


def test_predictions_preview_shows_every_task_first_and_cuts_long_texts():
    frame = pd.DataFrame({"id": list("abcdef"), "task": ["SGR", "SGR", "SGR", "ASR", "ASR", "MC"],
                          "prediction": ["x" * 200, "y", "z", "w " * 100, "v", "u"]})
    preview = predictions_preview(frame, ["id", "task", "prediction", "absent"], n_rows=4, width=20)
    assert list(preview["id"]) == ["a", "d", "f", "b"] and list(preview.columns) == ["id", "task", "prediction"]
    assert preview["prediction"].str.len().max() <= 20 and preview["prediction"].iloc[0].endswith("…")


def test_predictions_link_writes_every_row_beside_the_page(tmp_path):
    rows = [{"id": f"i{k}", "task": "SGR", "prediction": "A", "choices": ["a", "b"],
             "provenance": {"model": "m", "ratio": 0.5}} for k in range(7)]
    text = predictions_link(rows, "02_page", tmp_path / "predictions")
    assert "[CSV](predictions/02_page.csv)" in text and "[JSONL](predictions/02_page.jsonl)" in text
    csv = pd.read_csv(tmp_path / "predictions" / "02_page.csv")
    assert len(csv) == 7 and {"provenance.model", "provenance.ratio"} <= set(csv.columns)
    assert json.loads(csv["choices"][0]) == ["a", "b"]
    lines = (tmp_path / "predictions" / "02_page.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows
    assert "](" not in predictions_link(rows, "p", None) and not (tmp_path / "p.csv").exists()  # no link, no file


def test_stage_preview_book_lays_out_the_committed_notebooks_for_readers(tmp_path):
    source = stage_preview_book(Path(__file__).parents[1], tmp_path)
    assert source == tmp_path / "book" and (tmp_path / "_config.yml").is_file() and (source / "_toc.yml").is_file()
    pages = sorted(p.name for p in (source / "executed").glob("*.ipynb"))
    assert pages == sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert "| **total** |" in (source / "executed" / "timing.md").read_text()
    first = nbformat.read(str(source / "executed" / pages[0]), as_version=4)
    assert any(c.get("id") == SETTINGS_CELL_ID for c in first.cells)


def test_ratio_curve_starts_each_method_at_vanillas_average():
    import matplotlib

    matplotlib.use("Agg")
    from amlib.plots import ratio_curve_figure

    wide = pd.DataFrame({"Avg": [50.0, 45.0, 30.0, 48.0]},
                        index=pd.MultiIndex.from_tuples([("vanilla", 0.0), ("frame", 0.3), ("frame", 0.9), ("random", 0.5)]))
    fig = ratio_curve_figure({"a": wide, "b": wide}, "t")
    ax = fig.axes[0]
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines}
    assert lines["frame"] == ([0.0, 0.3, 0.9], [50.0, 45.0, 30.0]) and lines["random"] == ([0.0, 0.5], [50.0, 48.0])
    assert list(lines["vanilla"][1]) == [50.0, 50.0] and len(fig.axes) == 2


def prediction_row(item, task, model="Qwen/Qwen2.5-Omni-3B", method=None, ratio=None, press=None, protocol=None,
                   duration=120.0, dtype="bfloat16"):
    return {"id": item, "task": task, "source": "offline", "split": "test", "duration_s": duration,
            "provenance": {"model": model, "dtype": dtype, "device": "cpu", "seed": 0, "method": method,
                           "ratio": ratio, "layer": 2 if method else None, "press": press, "protocol": protocol}}


# a page's rows as the book's pruning run writes them: vanilla and frame 0.6 on 3 SGR items (class-count
# rounding left 3 of the 4 asked for) and 1 ASR item; the page's defaults name a demo the page did not run
PAGE_ROWS = ([prediction_row(f"SGR_{k}", "SGR", duration=90.0 + k) for k in range(3)]
             + [prediction_row(f"SGR_{k}", "SGR", method="frame", ratio=0.6) for k in range(3)]
             + [prediction_row("ASR_0", "ASR", method="frame", ratio=0.6, duration=300.0)])
PAGE_DEFAULTS = {"model": "tiny-random-qwen2-audio", "data_dir": "../data/built/skeleton-small", "limit": 4,
                 "methods": ["frame"], "ratios": [0.5], "dtype": None, "top_k": 8, "results_dir": "../results/baseline",
                 "demo_data_dir": "../data/built/skeleton-small", "demo_ratios": [0.5]}  # 07's fallback demo


def test_run_settings_are_read_from_the_rows():
    settings = run_settings(PAGE_ROWS)
    # expected values counted by hand from PAGE_ROWS above
    assert settings["items"] == {"ASR": ["ASR_0"], "SGR": ["SGR_0", "SGR_1", "SGR_2"]}
    assert settings["configurations"] == ["frame 0.6 at layer 2", "vanilla"]
    assert settings["model"] == ["Qwen/Qwen2.5-Omni-3B"] and settings["dtype"] == ["bfloat16"]
    assert settings["data"] == ["offline test"] and settings["duration_s"] == [90.0, 300.0]
    evicted = run_settings([prediction_row("MC_0", "MC", press="snapkv", ratio=0.5, protocol="query_agnostic")])
    assert evicted["configurations"] == ["snapkv 0.5 (query_agnostic)"]
    with pytest.raises(ValueError, match="no prediction rows"):
        run_settings([])
    with pytest.raises(ValueError, match="without provenance"):
        run_settings([{"id": "x", "task": "SGR"}])


def page_with_recorded_rows(rows_per_output):
    """An executed page whose outputs recorded these rows (as show_predictions / glue_run_settings do)."""
    defaults = "\n".join(f"{k} = {v!r}" for k, v in PAGE_DEFAULTS.items())
    outputs = [{"output_type": "display_data", "data": {}, "metadata": {RUN_SETTINGS_METADATA: run_settings(rows)}}
               for rows in rows_per_output]
    return notebook(code(defaults, tags=["parameters"]), code("table", outputs=[SHOWN] + outputs),
                    injected='results_dir = "../results/baseline"')


def settings_box(nb) -> dict:
    cell = next(c for c in nb.cells if c.get("id") == SETTINGS_CELL_ID)
    return {line.split("|")[1].strip(): line.split("|")[2].strip() for line in cell.source.splitlines()[2:]}


def test_the_settings_box_shows_what_the_rows_ran_not_the_parameter_defaults():
    # two tables on the page (the choice rows, the ASR rows): one box for both
    nb = reader_view(page_with_recorded_rows([PAGE_ROWS[:6], PAGE_ROWS[6:]]))
    box = settings_box(nb)
    assert box["model"] == "`Qwen/Qwen2.5-Omni-3B`; dtype `bfloat16`"
    assert box["n per task"] == "ASR `1`; SGR `3` (4 in all)"
    assert box["configurations"] == "`frame 0.6 at layer 2`, `vanilla`"
    assert box["data"] == "`offline test`, 90–300 s" and box["device"] == "`cpu`"
    assert box["settings"] == "top_k `8`" and box["files"] == "results_dir `../results/baseline`"
    assert box["shown from"] == "the prediction rows this page ran"
    assert "skeleton-small" not in str(box) and "0.5" not in str(box)  # the demo's defaults are not shown
    assert "demo_" not in str(box)  # nor a fallback demo's parameters (page 07's demo_*)
    # the wrong variant, the box from the parameters (as before), shows what the page did not run
    wrong = run_settings_markdown(notebook_parameters(nb))
    assert "tiny-random-qwen2-audio" in wrong and "skeleton-small" in wrong and "ratios `0.5`" in wrong
    assert "Qwen/Qwen2.5-Omni-3B" not in wrong
    # a page that recorded no rows (08) keeps the parameter box
    assert recorded_run_settings(notebook(code("x = 1", tags=["parameters"]))) is None


def test_show_predictions_and_glue_run_settings_record_the_rows_for_the_box(monkeypatch):
    import IPython.display

    from amlib.book import RUN_SETTINGS_GLUE_KEY, glue_run_settings, show_predictions

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.append(kw.get("metadata") or {}))
    show_predictions(PAGE_ROWS[:6], ["id", "task"], "p", None)
    glue_run_settings(PAGE_ROWS[6:])
    records = [m[RUN_SETTINGS_METADATA] for m in shown if RUN_SETTINGS_METADATA in m]
    assert records == [run_settings(PAGE_ROWS[:6]), run_settings(PAGE_ROWS[6:])]
    assert shown[-1]["scrapbook"]["name"] == RUN_SETTINGS_GLUE_KEY  # a glue entry: jupyter-book hides it


def test_the_timing_names_the_gpus_torch_sees(monkeypatch):
    import torch

    from amlib.book import machine_description

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert machine_description().endswith("CPU cores")
    names = ["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3", "NVIDIA A100"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(names))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: names[i])
    assert machine_description().endswith("CPU cores, 2x NVIDIA H100 80GB HBM3, NVIDIA A100")
