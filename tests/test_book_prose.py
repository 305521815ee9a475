"""The book's prose states only numbers its page computed (amlib.book_prose): every committed, executed
notebook and the landing page are read (no execution); a typed number in their prose fails its page."""

import copy
import json
import re
from pathlib import Path

import pytest

from amlib.book_prose import (ProseNumber, check_markdown_page, check_notebook, computed_values, prose_numbers,
                              read_notebook, shows, typed_numbers, unused_phrases, notebook_prose_numbers)

ROOT = Path(__file__).parents[1]
NOTEBOOKS = ROOT / "notebooks"
INTRO = ROOT / "book" / "intro.md"

# The only numbers a page may state without computing them: specification constants of the benchmark
# or the design, each as the phrase it appears in (it allows its numbers in that sentence only) and why.
BENCHMARK = {"90–300 s": "the benchmark's item durations (the paper's definition of long audio)"}
SPECIFICATION = {
    "00_reference_model": {**BENCHMARK, "8 kHz telephone band":
                           "the ASR corpus's telephone band (amlib.reference.asr_corpus resamples through 8000 Hz)"},
    "01_dataset_construction": {},
    "02_baseline_eval": {},
    "03_results_overview": {},
    "04_pruning": {},
    "05_eviction": {"last 64 prompt tokens (pooled, kernel 5)":
                    "SnapKV's window and pooling kernel, the paper's press settings (window_size=64, kernel_size=5)"},
    "06_duration_ablation": {**BENCHMARK,
                             "0–100": "the score scale of macro-F1 and WAR",
                             "95 % interval": "the interval level of every score (amlib.claims.RULE)"},
    "07_error_analysis": {"up to 8 words repeated back to back ≥ 3 times":
                          "the loop's definition: repetition_loop's defaults in amlib.metrics.asr_errors"},
    "08_encoding_granularity": {},
    "intro": {**BENCHMARK,
              "(< 30 s)": "the paper's short-audio threshold (its Table 8)",
              "Audio Flamingo 2/3": "model names"},
}
PAGES = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))


def texts(numbers):
    return [n.text for n in numbers]


def number(text, percent=False):
    return prose_numbers(text + (" %" if percent else ""))[0]


# --- what counts as a prose number -------------------------------------------------------------

MARKDOWN = """# Token pruning (paper §4.1, Table 4, Figures 5, 10, 11; Tables 9–10; page 04)

1. Qwen2.5-Omni-3B and the 7B thinker in float32 (transformers 5.2, torch==2.13.0 at v4.57.1) score
   44.5 on 1,100 items {glue:text}`score:.1f`, see `ratio=0.9` and [the docs](https://x.org/v2/3.html).
2. Measured 2026-12-01 on the 8-thread CPU at commit 3ce77b8: 78 % of the answers, 7x faster, 6.8e-6 apart.

```python
limit = 17
```

```{glue:figure} fig_12
:name: fig-13
A caption says 0.25.
```
"""


def test_prose_numbers_are_the_claims_and_nothing_else():
    # by hand: the claims are 44.5, 1,100, 8 (8-thread), 78, 7 (7x), 6.8e-6 and the caption's 0.25;
    # the rest is a section, a table, figures, a page, a list number, names, versions, a date, code, a URL
    assert texts(prose_numbers(MARKDOWN)) == ["44.5", "1,100", "8", "78", "7", "6.8e-6", "0.25"]
    numbers = {n.text: n for n in prose_numbers(MARKDOWN)}
    assert numbers["78"].percent and not numbers["44.5"].percent
    assert numbers["1,100"].value == 1100 and numbers["44.5"].decimals == 1
    assert numbers["44.5"].sentence.startswith("Qwen2.5-Omni-3B and the 7B thinker")
    # the wrong variant: every digit run read as a number takes names, references and code for claims
    naive = re.findall(r"\d+(?:[.,]\d+)*", MARKDOWN)
    assert {"4.1", "2.5", "3", "7", "04", "17", "12"} <= set(naive) and len(naive) > 3 * len(numbers)


def test_a_number_is_shown_when_the_computed_value_rounds_to_it():
    assert shows(number("44.5"), 44.53) and shows(number("44.53"), 44.53) and shows(number("45"), 44.53)
    assert not shows(number("44.6"), 44.53) and not shows(number("44"), 44.53)
    assert shows(number("1,100"), 1100.0) and shows(number("19.4"), -19.4)  # "a drop of 19.4"
    assert shows(number("78", percent=True), 0.78) and not shows(number("78"), 0.78)  # a fraction shown as %
    assert shows(number("2"), 2.0) and not shows(number("2"), 1.51)  # a small count is not a rounding
    assert shows(number("6.8e-6"), 6.83e-6) and not shows(number("6.8e-6"), 6.8e-5)
    # the wrong variant, exact equality, would call a correctly rounded number typed
    assert number("44.5").value != 44.53


def test_an_allowed_phrase_allows_its_numbers_in_its_sentence_only():
    numbers = prose_numbers("Items last 90-300 s. We ran 300 items.")
    allowed = {"90–300 s": "the benchmark's durations"}
    assert texts(typed_numbers(numbers, set(), allowed)) == ["300"]  # the second sentence's 300
    assert texts(typed_numbers(numbers, set(), {})) == ["90", "300", "300"]
    assert unused_phrases(numbers, {**allowed, "K = 2": "the paper's layer"}) == ["K = 2"]


# --- a planted typed number in a real executed page --------------------------------------------

def planted(notebook, where: str):
    """A copy of the notebook with "scores 73.4 on SGR" typed in a markdown cell, and (where="output")
    the same number shown by a code cell's output, or (where="glue") glued."""
    copied = copy.deepcopy(notebook)
    copied["cells"].append({"cell_type": "markdown", "metadata": {}, "source": ["The model scores 73.4 on SGR."]})
    if where == "output":
        copied["cells"].append({"cell_type": "code", "metadata": {}, "source": [], "execution_count": 1,
                                "outputs": [{"output_type": "stream", "name": "stdout", "text": ["SGR 73.42\n"]}]})
    if where == "glue":
        copied["cells"].append({"cell_type": "code", "metadata": {}, "source": [], "execution_count": 1, "outputs": [
            {"output_type": "display_data", "metadata": {"scrapbook": {"name": "sgr", "mime_prefix": "application/papermill.record/"}},
             "data": {"application/papermill.record/text/plain": "73.4"}}]})
    return copied


def test_a_typed_number_fails_and_the_same_number_shown_passes():
    notebook = read_notebook(NOTEBOOKS / "02_baseline_eval.ipynb")
    assert not any(abs(v - 73.4) <= 0.05 for v in computed_values(notebook))  # the page does not show it
    before = check_notebook(notebook, SPECIFICATION["02_baseline_eval"])
    typed = check_notebook(planted(notebook, "typed"), SPECIFICATION["02_baseline_eval"])
    assert texts(typed) == texts(before) + ["73.4"]
    assert typed[-1].sentence == "The model scores 73.4 on SGR."
    for where in ("output", "glue"):
        assert check_notebook(planted(notebook, where), SPECIFICATION["02_baseline_eval"]) == before


def test_a_timing_output_computes_nothing_the_prose_may_state():
    # a number that matches only a cell whose output varies by run (a timing) matches by chance
    notebook = planted(read_notebook(NOTEBOOKS / "02_baseline_eval.ipynb"), "output")
    before = check_notebook(notebook, SPECIFICATION["02_baseline_eval"])
    notebook["cells"][-1]["source"] = ["# NBVAL_IGNORE_OUTPUT\n", "print(timings)"]
    assert texts(check_notebook(notebook, SPECIFICATION["02_baseline_eval"])) == texts(before) + ["73.4"]


def test_a_page_is_read_executed():
    notebook = read_notebook(NOTEBOOKS / "02_baseline_eval.ipynb")
    for cell in notebook["cells"]:
        cell.pop("outputs", None)
    with pytest.raises(ValueError, match="no outputs"):
        check_notebook(notebook)


def test_the_landing_page_may_state_what_it_glues_from_other_pages(tmp_path):
    notebook = planted(read_notebook(NOTEBOOKS / "02_baseline_eval.ipynb"), "glue")
    (tmp_path / "b.ipynb").write_text(json.dumps(notebook))
    page = "SGR: {glue:text}`executed/b.ipynb::sgr:.1f`, that is 73.4 (not 73.5)."
    assert texts(check_markdown_page(page, tmp_path)) == ["73.5"]
    # a value the page shows but does not glue here does not count: only what the landing page pulls in
    assert texts(check_markdown_page("SGR 73.4.", tmp_path)) == ["73.4"]
    with pytest.raises(ValueError, match="b.ipynb glues no value named 'missing'"):
        check_markdown_page("{glue:text}`executed/b.ipynb::missing`", tmp_path)


# --- the book ------------------------------------------------------------------------------------

def report(typed: list[ProseNumber]) -> str:
    return "typed numbers (glue them, or allow a specification constant with its reason):\n" + "\n".join(map(str, typed))


def test_every_page_has_its_allowlist():
    assert sorted(SPECIFICATION) == sorted(PAGES + ["intro"])


@pytest.mark.parametrize("page", PAGES)
def test_a_notebook_states_only_numbers_it_computed(page):
    notebook = read_notebook(NOTEBOOKS / f"{page}.ipynb")
    typed = check_notebook(notebook, SPECIFICATION[page])
    assert not typed, report(typed)
    assert not unused_phrases(notebook_prose_numbers(notebook), SPECIFICATION[page])


def test_the_landing_page_states_only_numbers_it_glues():
    markdown = INTRO.read_text()
    typed = check_markdown_page(markdown, NOTEBOOKS, SPECIFICATION["intro"])
    assert not typed, report(typed)
    assert not unused_phrases(prose_numbers(markdown), SPECIFICATION["intro"])
