"""RACE passages read aloud by TTS -> Speech Content Reasoning (SCR).

Expected layout (RACE.tar.gz as published by CMU, extracted; `--root` may hold `RACE/` or be it):
    RACE/test/high/10010.txt     RACE/{train,dev,test}/{middle,high}/<n>.txt
each file one JSON object {"article": str, "questions": [str], "options": [[4 str] per question],
"answers": ["A".."D" per question], "id": "high10010.txt"}. `req.split` picks the folder ("validation"
means dev).

Items: ONE article per item, read aloud whole by a TTS backend (tts_backends: Kokoro-82M as in the
paper where installed, else Piper, else espeak-ng; choose with `build(req, tts=...)`, `--option tts=NAME`
or the environment variable AMLIB_TTS_BACKEND). The reading must last req.min_seconds..req.max_seconds: a
reading outside the window is reported in build_report.json, never padded or cut. Synthesis is costly, so
articles are tried in a seeded order until req.per_task items exist, and an article whose word count puts
its reading surely outside the window (below 1.5 or above 4 words per second would be needed) is reported
without being synthesized. One of the article's questions is picked with the seed, preferring one whose correct
option text no earlier item has (finalisation balances by that text and would keep one per text).

Options: RACE's own four options for that question, re-ordered so that the correct one lands on a
balanced position (the answer positions of every 4 consecutive items are a permutation of A-D); the
answer letter points at it. meta: race_id, level, question_index, race_answer (RACE's own letter),
label (the correct option's text), tts (the backend that spoke).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from amlib.data.audio import SAMPLE_RATE
from amlib.data.options import make_options
from amlib.data.sources.common import BuildRequest, LayoutError, write_item, write_report
from amlib.data.sources.tts_backends import get_backend
from amlib.tasks import get_task

TASK = "SCR"
SOURCE = "race"
LEVELS = ("middle", "high")
SPLIT_FOLDERS = {"validation": "dev"}
TTS_ENV = "AMLIB_TTS_BACKEND"
# Plausible speaking rates of any backend; outside them the reading cannot land in the window.
WORDS_PER_SECOND = (1.5, 4.0)
N_OPTIONS = get_task(TASK).n_options
LETTERS = get_task(TASK).letters


@dataclass(frozen=True)
class Article:
    race_id: str
    level: str
    path: Path
    text: str
    questions: list[str]
    options: list[list[str]]
    answers: list[str]

    @property
    def words(self) -> int:
        return len(self.text.split())


def build(req: BuildRequest, tts=None) -> list[dict]:
    """Options (keyword argument, else `--option` / BuildRequest.options, else the default):
    tts: a backend name (auto, kokoro, piper, espeak) or, as a keyword argument, a backend object
    (default: $AMLIB_TTS_BACKEND, else auto)."""
    tts = req.option("tts", tts)
    folder = split_folder(req)
    articles = read_split(folder)
    order = req.rng(SOURCE, "order").permutation(len(articles))
    backend = get_backend(tts or os.environ.get(TTS_ENV, "auto")) if tts is None or isinstance(tts, str) else tts
    positions = answer_positions(req)
    rows, not_built, used_answers = [], [], set()
    for k in order:
        if len(rows) >= req.per_task:
            break
        article = articles[k]
        question = pick_question(article, used_answers, req.rng(SOURCE, "question", int(k)))
        why = "no question with 4 distinct non-empty options" if question is None else estimate_outside(article, req)
        if why:
            not_built.append({"article": str(article.path), "why": why})
            continue
        wave = backend.synthesize(article.text)
        seconds = len(wave) / SAMPLE_RATE
        if not req.min_seconds <= seconds <= req.max_seconds:
            side = "shorter" if seconds < req.min_seconds else "longer"
            not_built.append({"article": str(article.path), "why": f"reading {side} than the window",
                              "seconds": round(seconds, 2)})
            continue
        rows.append(write_article_item(req, len(rows), article, question, next(positions), wave, backend))
        used_answers.add(rows[-1]["meta"]["label"].lower())
    write_report(req, SOURCE, {
        "task": TASK, "source": SOURCE, "split_folder": str(folder), "articles": len(articles),
        "tts": backend.describe(), "items_written": len(rows), "short_of_per_task": max(0, req.per_task - len(rows)),
        "not_built_reasons": dict(Counter(n["why"] for n in not_built)), "not_built": not_built,
    }, watch=("not_built", "short_of_per_task"),
        summary=lambda r: (f"{r['items_written']} items of {req.per_task} wanted; "
                           f"articles not used: {r['not_built_reasons']}"))
    return rows


def split_folder(req: BuildRequest) -> Path:
    root = req.require()
    split = SPLIT_FOLDERS.get(req.split, req.split)
    base = root if root.name == "RACE" else root / "RACE"
    folder = base / split
    missing = [str(folder / lvl) for lvl in LEVELS if not (folder / lvl).is_dir()]
    if missing:
        raise LayoutError(f"{root}: expected RACE/{split}/{{middle,high}}/<n>.txt; missing {', '.join(missing)}")
    return folder


def read_split(folder: Path) -> list[Article]:
    articles = [read_article(p, level) for level in LEVELS for p in sorted((folder / level).glob("*.txt"), key=_number)]
    if not articles:
        raise LayoutError(f"{folder}: no <n>.txt files under middle/ or high/")
    return articles


def _number(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (0, path.stem)


def read_article(path: Path, level: str) -> Article:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    for name, kind in {"article": str, "questions": list, "options": list, "answers": list}.items():
        if not isinstance(data.get(name), kind):
            raise ValueError(f"{path}: field '{name}' missing or not a {kind.__name__}")
    n = len(data["questions"])
    if len(data["options"]) != n or len(data["answers"]) != n:
        raise ValueError(f"{path}: {n} questions but {len(data['options'])} option lists "
                         f"and {len(data['answers'])} answers")
    for i, (question, opts, ans) in enumerate(zip(data["questions"], data["options"], data["answers"])):
        if not isinstance(question, str):
            raise ValueError(f"{path}: question {i}: expected a string, got {question!r}")
        if not isinstance(opts, list) or len(opts) != N_OPTIONS or not all(isinstance(o, str) for o in opts):
            raise ValueError(f"{path}: question {i}: expected {N_OPTIONS} option strings, got {opts!r}")
        if ans not in LETTERS:
            raise ValueError(f"{path}: question {i}: answer {ans!r} is not one of {', '.join(LETTERS)}")
    text = " ".join(data["article"].split())
    if not text:
        raise ValueError(f"{path}: empty article")
    return Article(str(data.get("id", f"{level}{path.name}")), level, path, text, data["questions"],
                   data["options"], data["answers"])


def correct_option(article: Article, q: int) -> str:
    return article.options[q][LETTERS.index(article.answers[q])].strip()


def pick_question(article: Article, used_answers: set[str], rng) -> int | None:
    """A seeded choice among the article's questions whose 4 options are distinct and non-empty,
    preferring answers not used yet (balancing keeps one item per answer text)."""
    usable = [i for i, opts in enumerate(article.options)
              if all(o.strip() for o in opts) and len({o.strip().lower() for o in opts}) == N_OPTIONS
              and article.questions[i].strip()]
    fresh = [i for i in usable if correct_option(article, i).lower() not in used_answers]
    return int(rng.choice(fresh or usable)) if usable else None


def estimate_outside(article: Article, req: BuildRequest) -> str:
    slowest, fastest = WORDS_PER_SECOND
    if article.words / fastest > req.max_seconds:
        return f"estimated reading longer than the window ({article.words} words)"
    if article.words / slowest < req.min_seconds:
        return f"estimated reading shorter than the window ({article.words} words)"
    return ""


def answer_positions(req: BuildRequest):
    """Every consecutive run of N_OPTIONS items uses each answer letter once, so any count is near balanced."""
    rng = req.rng(SOURCE, "positions")
    while True:
        yield from rng.permutation(N_OPTIONS).tolist()


def write_article_item(req: BuildRequest, index: int, article: Article, q: int, position: int, wave, backend) -> dict:
    options = [o.strip() for o in article.options[q]]
    correct = correct_option(article, q)
    choices, letter = make_options(correct, options, N_OPTIONS, position, req.rng(SOURCE, "options", index))
    return write_item(
        req, TASK, index, wave, question=article.questions[q].strip(), choices=choices, answer=letter, source=SOURCE,
        meta={"race_id": article.race_id, "level": article.level, "question_index": q,
              "race_answer": article.answers[q], "label": correct, "tts": backend.describe()},
    )

