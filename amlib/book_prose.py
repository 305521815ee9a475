"""The book's prose states only numbers its page computed: a checker for typed numbers.

A page's *prose* is the text of its markdown cells as a reader sees it; its *computed values* are
every number the executed page shows or glues (cell outputs: text/plain, HTML tables, markdown,
streams; glued values, which the prose pulls in with `{glue:text}`). A number in the prose that is
none of the computed values (after rounding to the prose's own decimals) was typed by hand and goes
stale when models, sizes or data change: `typed_numbers` lists them, each with its sentence.

What is not a claim is masked before numbers are read: code (fenced and inline), MyST roles (glue,
ref) and directive lines, URLs and link targets, labels, HTML tags, references to parts of the paper
or of the book ("Table 4", "Figures 5, 10, 11", "§4.1", "page 04", "(07)"), names that mix letters
and digits ("Qwen2.5-Omni-3B", "7B", "float32", a commit hash), version strings, dates and list
enumerators. Specification constants of the benchmark or the design (the paper's 90–300 s, K = 2)
are not computed by the page; a caller allows them explicitly, each with its reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

# A number as prose writes it: 1,100 / 44.53 / 6.8e-6 / 7x (a factor); not part of a word or of a
# longer number. Signs are ignored: prose says "a drop of 19.4" for a computed -19.4.
NUMBER = re.compile(r"(?<![\w.])(?<!\d,)(\d{1,3}(?:,\d{3})+(?!\d)|\d+)(\.\d+)?(e[-+]?\d+)?(?!\.\d)(?!(?!x\b)\w)")
# In computed text anything that looks like a number counts (inside names too): more values only
# makes the check more lenient, never stricter than what the page shows.
ANY_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?(?:e[-+]?\d+)?")
SMALL_COUNT = 10
PERCENT_AFTER = re.compile(r"\s?(%|percent\b)")

_REF_LIST = r"\d+(?:\.\d+)*[a-z]?(?:\s*(?:[–—-]|,|/|and|or|&)\s*\d+(?:\.\d+)*[a-z]?)*"
NOT_CLAIMS = [
    re.compile(r"^(```|~~~)\s*(?!\{).*?^\1[ \t]*$", re.M | re.S),  # a code block
    re.compile(r"^(```|~~~|:::+)\s*\{[^}]*\}.*$", re.M),  # a MyST directive's opening line
    re.compile(r"^(```|~~~|:::+)[ \t]*$", re.M),  # a directive's closing fence
    re.compile(r"^:[\w-]+:.*$", re.M),  # a directive's option (:doc: ..., :name: ...)
    re.compile(r"\{[\w:-]+\}`[^`]*`"),  # a role: {glue:text}`name:.1f`, {ref}`...`
    re.compile(r"(`+).+?\1", re.S),  # inline code
    re.compile(r"^\([\w -]+\)=[ \t]*$", re.M),  # a label: (stand-ins)=
    re.compile(r"<!--.*?-->", re.S),  # an HTML comment
    re.compile(r"<[A-Za-z/!][^>]*>"),  # an HTML tag
    re.compile(r"\]\([^)]*\)"),  # a link's target (its text stays prose)
    re.compile(r"https?://\S+"),
    # parts of the paper or the book, named by number
    re.compile(r"\b(?:Tables?|Fig(?:ures?|s?\.)|Eq(?:uations?|s?\.)|Sec(?:tions?|s?\.)|Appendix|[Ss]teps?|[Ss]tages?"
               r"|[Pp]ages?|[Nn]otebooks?|[Cc]hapters?)\s+" + _REF_LIST),
    re.compile(r"§\s*[A-Z]?\.?" + _REF_LIST),
    re.compile(r"\b\d{4}-\d{2}-\d{2}\b"),  # a date
    re.compile(r"(?<![\w.,])0\d(?![\d.,]\d)(?:'s)?"),  # a page by its two-digit number: 04, 03's
    re.compile(r"(?<![\w.])v?\d+(?:\.\d+){2,}\b"),  # a version: 4.57.1
    re.compile(r"\b(?:transformers|torch|kvpress|Python|CUDA|numpy|pandas)\s+\d+(?:\.\d+)+"),  # 5.2
    re.compile(r"^[ \t]*(?:#+[ \t]*)?\d+[.)][ \t]", re.M),  # a list enumerator: "1. "
]
# A word of letters and digits: a model, a dtype, a hash. "2-core", "8-thread", "1,100-token" are a
# number and a word, and "6.8e-6" a number.
TOKEN = re.compile(r"[\w][\w.+\-‑]*[\w]|\w")
COMPOUND = re.compile(r"\d[\d,.]*[-‑][a-z]{2,}(?:[-‑][a-z]+)*")
SCIENTIFIC = re.compile(r"\d+(?:\.\d+)?e[-+]?\d+")
FACTOR = re.compile(r"\d+(?:\.\d+)?x")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[^a-z])|\n[ \t]*\n|\n(?=[ \t]*(?:[*-]|\d+\.)[ \t])|\n(?=\|)")


@dataclass(frozen=True)
class ProseNumber:
    text: str  # as written: "1,100", "44.5"
    value: float
    decimals: int
    percent: bool  # followed by "%": a computed fraction may be shown as its percentage
    sentence: str
    where: str = ""  # "cell 5 line 3"

    def __str__(self):
        return f"{self.where}: {self.text!r} in: {self.sentence}"


def _mask(text: str, span: tuple[int, int]) -> str:
    start, end = span
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def masked_prose(markdown: str) -> str:
    """The markdown with every span that is not a claim blanked (offsets kept)."""
    for pattern in NOT_CLAIMS:
        for match in reversed(list(pattern.finditer(markdown))):
            markdown = _mask(markdown, match.span())
    for token in reversed(list(TOKEN.finditer(markdown))):
        word = token.group().rstrip(".")
        is_name = re.search(r"\d", word) and re.search(r"[^\W\d_]", word)
        if is_name and not (COMPOUND.fullmatch(word) or SCIENTIFIC.fullmatch(word) or FACTOR.fullmatch(word)):
            markdown = _mask(markdown, token.span())
    return markdown


def _sentence(text: str, offset: int) -> str:
    starts = [m.end() for m in SENTENCE_END.finditer(text, 0, offset)]
    start = starts[-1] if starts else 0
    end_match = SENTENCE_END.search(text, offset)
    end = end_match.start() if end_match else len(text)
    return " ".join(text[start:end].split())


def prose_numbers(markdown: str, where: str = "") -> list[ProseNumber]:
    """The numbers a reader sees in this markdown, each with its sentence."""
    masked = masked_prose(markdown)
    numbers = []
    for match in NUMBER.finditer(masked):
        whole, fraction, exponent = match.group(1), match.group(2) or "", match.group(3) or ""
        written = whole + fraction + exponent
        numbers.append(ProseNumber(
            text=written, value=float(written.replace(",", "")),
            decimals=len(fraction) - 1 if fraction and not exponent else 0,
            percent=bool(PERCENT_AFTER.match(masked, match.end())),
            sentence=_sentence(markdown, match.start()),
            where=f"{where} line {markdown.count(chr(10), 0, match.start()) + 1}".strip()))
    return numbers


def numbers_in(text: str) -> set[float]:
    """Every number in a computed text (an output, a glued value)."""
    return {abs(float(m.group().replace(",", ""))) for m in ANY_NUMBER.finditer(text)}


def shows(number: ProseNumber, value: float) -> bool:
    """Whether `value`, rounded to the prose's decimals, is the number written ("44.5" for 44.53,
    "78 %" also for a fraction 0.78). An integer below 10 is a count, not a rounding: it must be
    shown as it is ("2" is not 1.51). Scientific notation is compared to 1 %."""
    candidates = [abs(value)] + ([abs(value) * 100] if number.percent else [])
    if "e" in number.text:
        return any(abs(c - number.value) <= 0.01 * number.value for c in candidates)
    if number.decimals == 0 and number.value < SMALL_COUNT:
        return number.value in candidates
    half_step = 0.5 * 10 ** -number.decimals
    return any(abs(c - number.value) <= half_step * (1 + 1e-9) for c in candidates)


def is_allowed(number: ProseNumber, allowed: dict[str, str]) -> bool:
    """Whether an allowed phrase ("90–300 s": the benchmark's durations) is in the number's sentence
    and holds that number."""
    sentence = _same_dashes(number.sentence)
    return any(_same_dashes(phrase) in sentence and number.value in {n.value for n in prose_numbers(phrase)}
               for phrase in allowed)


def _same_dashes(text: str) -> str:
    return re.sub(r"(?<=\d)[-‑—](?=\d)", "–", text)  # 90-300 and 90–300 are one range


def unused_phrases(numbers: list[ProseNumber], allowed: dict[str, str]) -> list[str]:
    """Allowed phrases that allow no number of the page (stale: the allowlist stays short)."""
    return [p for p in allowed if not any(is_allowed(n, {p: ""}) for n in numbers)]


def typed_numbers(numbers: list[ProseNumber], computed: set[float], allowed: dict[str, str] | None = None) -> list[ProseNumber]:
    """The prose numbers that are neither a computed value nor in an allowed phrase (a specification
    constant of the benchmark or the design, each allowed with its reason)."""
    allowed = allowed or {}
    return [n for n in numbers if not is_allowed(n, allowed) and not any(shows(n, v) for v in computed)]


# --- executed notebooks -------------------------------------------------------------------------

GLUE_PREFIX = "application/papermill.record/"
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex")
ROW_NUMBER = re.compile(r"(<tr>\s*)<th>\d+</th>")  # a table's row index 0, 1, 2...: not a result


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def output_texts(output: dict) -> list[str]:
    """The texts an output shows (or glues); a figure's repr ('<Figure size 640x480 ...>') is none."""
    if output.get("output_type") == "stream":
        return [_text(output.get("text", ""))]
    data = {k.removeprefix(GLUE_PREFIX): v for k, v in output.get("data", {}).items()}
    if any(k.startswith("image/") for k in data) or "text/html" in data:
        data.pop("text/plain", None)  # what the book renders instead of it
    if "text/html" in data:  # its cells' text: no row index, no markup (border="1")
        html = re.sub(r"<(style|script)\b.*?</\1>", " ", ROW_NUMBER.sub(r"\1", _text(data["text/html"])), flags=re.S)
        data["text/html"] = re.sub(r"<[^>]*>", " ", html)
    return [_text(data[m]) for m in TEXT_MIMES if m in data]


def glued(notebook: dict) -> dict[str, list[str]]:
    """The texts of every glued value, by its glue name."""
    values = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is not None:
                values[name] = output_texts(output)
    return values


# a cell whose output changes from run to run (timings): the tests do not compare it, and a prose number
# that matches it matches by chance, so it computes nothing the prose may state
VARYING_OUTPUT = "NBVAL_IGNORE_OUTPUT"


def computed_values(notebook: dict) -> set[float]:
    """Every number the executed notebook shows or glues, outside cells whose output varies by run."""
    return {v for cell in notebook["cells"] if VARYING_OUTPUT not in _text(cell.get("source", ""))
            for output in cell.get("outputs", []) for text in output_texts(output) for v in numbers_in(text)}


def notebook_prose_numbers(notebook: dict) -> list[ProseNumber]:
    return [n for i, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "markdown"
            for n in prose_numbers(_text(cell["source"]), where=f"cell {i}")]


def read_notebook(path: str | Path) -> dict:
    notebook = json.loads(Path(path).read_text())
    if "cells" not in notebook:
        raise ValueError(f"{path} is not a notebook (no 'cells')")
    return notebook


def check_notebook(notebook: dict, allowed: dict[str, str] | None = None) -> list[ProseNumber]:
    """The typed numbers of one executed notebook."""
    if not any(cell.get("outputs") for cell in notebook["cells"]):
        raise ValueError("the notebook has no outputs: check an executed notebook")
    return typed_numbers(notebook_prose_numbers(notebook), computed_values(notebook), allowed)


# --- a markdown page that glues from other pages (the landing page) --------------------------------

GLUE_REFERENCE = re.compile(r"\{glue(?::\w+)?\}`(?:[\w./-]*/)?([\w.-]+\.ipynb)::([^:`]+)(?::[^`]*)?`")
GLUE_DIRECTIVE = re.compile(r"^```\{glue(?::\w+)?\}[ \t]+(\S+)[ \t]*\n:doc:[ \t]+(?:[\w./-]*/)?([\w.-]+\.ipynb)", re.M)


def glue_references(markdown: str) -> list[tuple[str, str]]:
    """(notebook file, glue name) of every value the markdown pulls in from another page."""
    return ([(nb, name) for nb, name in GLUE_REFERENCE.findall(markdown)]
            + [(nb, name) for name, nb in GLUE_DIRECTIVE.findall(markdown)])


def referenced_values(markdown: str, notebooks_dir: str | Path) -> set[float]:
    """The numbers of the glued values the markdown shows; a reference to a missing page or glue
    name is an error naming it."""
    values, pages = set(), {}
    for notebook_file, name in glue_references(markdown):
        if notebook_file not in pages:
            pages[notebook_file] = glued(read_notebook(Path(notebooks_dir) / notebook_file))
        if name not in pages[notebook_file]:
            raise ValueError(f"{notebook_file} glues no value named {name!r}")
        values |= {v for text in pages[notebook_file][name] for v in numbers_in(text)}
    return values


def check_markdown_page(markdown: str, notebooks_dir: str | Path, allowed: dict[str, str] | None = None) -> list[ProseNumber]:
    """The typed numbers of a markdown page whose computed values are glued from executed notebooks."""
    return typed_numbers(prose_numbers(markdown), referenced_values(markdown, notebooks_dir), allowed)
