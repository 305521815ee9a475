"""amlib.book: the main job's pages run in dependency order, each with parameters its notebook has."""

import ast
import json
from pathlib import Path

import pytest

from amlib.book import BookSettings, book_pages, run_pages, timing_markdown

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


def test_run_pages_times_each_page_and_keeps_earlier_rows(tmp_path, monkeypatch):
    import papermill

    calls = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda src, dst, **kw: calls.append((Path(src).name, kw["parameters"])))
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
    assert "| a | 1.5 | 75 % | t1 |" in text and "| b | 0.5 | 25 % | t2 |" in text and "**2.0**" in text
