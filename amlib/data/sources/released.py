"""The released AudioMarathon benchmark (Hugging Face dataset Hezep/AudioMarathon) -> manifest rows.

Expected layout (`--root`): the dataset snapshot as downloaded, i.e.

    test.csv                  one row per question (the card's only split: `test`, path test.csv)
    <audio paths of test.csv> relative to the root, or to <root>/audio/

test.csv's columns could not be verified (the card documents only the file, not its columns). The
loader therefore maps columns by name, accepting the field names of the authors' per-task metadata
(path, question, choice_a..choice_e, answer_gt, task_name, dataset_name, uniq_id) and common
alternatives; see COLUMNS. A csv without a usable column for a required field is rejected with the
columns found and the names tried.

Per row: the task comes from the task/dataset columns (e.g. "VoxCeleb-Gender", "TAU", "SD"); the
answer becomes a letter (it may be a letter, "(b)", or the option text); audio is resampled to 16 kHz
mono under out/audio/ without loudness normalisation (the released audio is kept as released); the
original id, audio path, answer and options are kept in meta. Options follow this project's fixed
conventions where the prompt fixes them: SGR ["male", "female"], SAR the five AGE_GROUPS in order; SD
labels become "real"/"fake" in their released order. meta["label"] holds the true option text.

Nothing is re-balanced or subsampled: every row of the requested tasks is loaded. amlib.data.build's
finalize balances classes by default, so this source must be finalised with balance_classes=False.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

import pandas as pd

from amlib.data.audio import load_audio
from amlib.data.sources.common import BuildRequest, LayoutError, write_item, write_report
from amlib.tasks import AGE_GROUPS, TASK_ORDER, TASKS, get_task

log = logging.getLogger(__name__)

SOURCE = "audiomarathon"
CSV_NAME = "test.csv"
COLUMNS = {  # field -> accepted column names, first found wins (compared case-insensitively)
    "id": ("uniq_id", "id", "sample_id", "qid", "index"),
    "task": ("task", "task_name", "task_type", "subset", "category"),
    "dataset": ("dataset", "dataset_name", "source"),
    "audio": ("path", "audio", "audio_path", "wav_path", "file_name", "filename", "file", "audio_file"),
    "question": ("question", "prompt", "query"),
    "answer": ("answer_gt", "answer", "gt", "label", "ground_truth", "transcription", "reference"),
    "choices": ("choices", "options"),
}
REQUIRED = ("id", "audio", "answer")
LETTER_COLUMNS = [(f"choice_{c}", f"option_{c}", c) for c in "abcde"]
# words in the task/dataset columns that identify a task (besides the codes themselves)
TASK_WORDS = {
    "ASR": {"librispeech", "transcription", "transcribe"},
    "SCR": {"race", "reasoning", "comprehension"},
    "SER": {"slue", "entity", "ner"},
    "SED": {"desed", "event"},
    "MC": {"gtzan", "genre", "music"},
    "ASC": {"tau", "scene"},
    "SD": {"had", "deepfake", "authenticity", "spoof", "fake"},
    "ER": {"vesus", "emotion"},
    "SAR": {"age"},
    "SGR": {"gender"},
}
SD_LABELS = {"real": "real", "authentic": "real", "genuine": "real", "bonafide": "real",
             "fake": "fake", "synthetic": "fake", "spoof": "fake", "spoofed": "fake"}
SGR_LABELS = {"male": "male", "man": "male", "m": "male", "female": "female", "woman": "female", "f": "female"}


def build(req: BuildRequest) -> list[dict]:
    root = req.require(CSV_NAME)
    table = pd.read_csv(root / CSV_NAME, dtype=str, keep_default_na=False)
    columns = resolve_columns(table, root / CSV_NAME)
    wanted = set(req.tasks or TASKS)
    counters: Counter = Counter()
    rows = []
    for offset, record in enumerate(table.to_dict("records")):
        where = f"{root / CSV_NAME}:{offset + 2}"  # line 1 is the header
        task = task_of(record, columns, where)
        if task not in wanted:
            counters[f"skipped {task}"] += 1
            continue
        rows.append(convert(req, root, record, columns, task, counters[task], where))
        counters[task] += 1
    if not rows:
        raise ValueError(f"{root / CSV_NAME}: no row of the tasks {sorted(wanted)}; found {dict(counters)}")
    write_report(req, SOURCE, *({"task": task, "rows": counters[task], "columns": columns} for task in TASKS
                                if counters[task]),
                 extra={"skipped_rows": {k: n for k, n in counters.items() if k.startswith("skipped")}})
    log.info("%s: %s", SOURCE, dict(counters))
    return rows


def resolve_columns(table: pd.DataFrame, path: Path) -> dict:
    """field -> column name (choices: list of columns or one list-valued column); clear error otherwise."""
    by_lower = {c.strip().lower(): c for c in table.columns}
    found = {field: next((by_lower[n] for n in names if n in by_lower), None) for field, names in COLUMNS.items()}
    # the answer may sit in different columns for different tasks (an ASR transcript vs an MCQ letter)
    found["answers"] = [by_lower[n] for n in COLUMNS["answer"] if n in by_lower]
    letter_columns = [next((by_lower[n] for n in names if n in by_lower), None) for names in LETTER_COLUMNS]
    found["choice_columns"] = [c for c in letter_columns if c]
    missing = [f for f in REQUIRED if not found[f]]
    if not (found["task"] or found["dataset"]):
        missing.append("task or dataset")
    if missing:
        tried = {f: COLUMNS[f] for f in REQUIRED} | {"task or dataset": COLUMNS["task"] + COLUMNS["dataset"]}
        raise LayoutError(f"{path}: no column for {missing}; columns found: {list(table.columns)}; "
                          f"names tried: {json.dumps({m: tried[m] for m in missing})}")
    return found


def task_of(record: dict, columns: dict, where: str) -> str:
    text = " ".join(str(record[columns[f]]) for f in ("task", "dataset") if columns[f])
    camel_split = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)  # "VoxCeleb" -> "Vox Celeb", keeping "voxceleb" too
    words = set(re.findall(r"[a-z0-9]+", f"{text} {camel_split}".lower()))
    matches = {code for code in TASKS if code.lower() in words or words & TASK_WORDS[code]}
    if len(matches) != 1:
        raise ValueError(f"{where}: cannot tell the task from {text!r} (matches {sorted(matches) or 'none'}; "
                         f"known: {', '.join(TASK_ORDER)})")
    return matches.pop()


def convert(req: BuildRequest, root: Path, record: dict, columns: dict, task: str, index: int, where: str) -> dict:
    spec = get_task(task)
    answer_text = next((record[c].strip() for c in columns["answers"] if record[c].strip()), "")
    question = record[columns["question"]].strip() if columns["question"] else ""
    meta = {"original_id": record[columns["id"]], "original_audio": record[columns["audio"]],
            "original_task": " / ".join(record[columns[f]] for f in ("task", "dataset") if columns[f]),
            "original_answer": answer_text}
    if spec.is_choice:
        released = choices_of(record, columns, where)
        if len(released) != spec.n_options:
            raise ValueError(f"{where}: {task} needs {spec.n_options} options, the row has {len(released)}: {released}")
        label = released[answer_index(answer_text, released, where)]
        choices, label = our_conventions(task, released, label, where)
        answer = spec.letters[choices.index(label)]
        meta.update(label=label, original_choices=released)
    else:
        if not answer_text:
            raise ValueError(f"{where}: empty reference transcript")
        choices, answer = [], answer_text
    wave = load_audio(audio_path(root, record[columns["audio"]], where))
    return write_item(req, task, index, wave, question=question, choices=choices, answer=answer, source=SOURCE,
                      meta=meta, normalize=False)


def choices_of(record: dict, columns: dict, where: str) -> list[str]:
    if columns["choice_columns"]:
        return [record[c].strip() for c in columns["choice_columns"] if record[c].strip()]
    if columns["choices"]:
        try:
            value = json.loads(record[columns["choices"]])
        except json.JSONDecodeError:
            raise ValueError(f"{where}: column {columns['choices']!r} is not a JSON list or object") from None
        return [str(v).strip() for v in (value.values() if isinstance(value, dict) else value)]
    raise LayoutError(f"{where}: a choice task needs choice_a..choice_e (or a 'choices' column)")


def answer_index(answer: str, choices: list[str], where: str) -> int:
    """The answer as a position: a letter ('B', 'b', '(b)', 'B.') or an option's text."""
    letter = re.fullmatch(r"\(?([A-Ea-e])[).:]?", answer)
    if letter and ord(letter.group(1).upper()) - ord("A") < len(choices):
        return ord(letter.group(1).upper()) - ord("A")
    texts = [c.lower() for c in choices]
    if answer.lower() in texts:
        return texts.index(answer.lower())
    raise ValueError(f"{where}: answer {answer!r} is neither a letter nor one of the options {choices}")


def our_conventions(task: str, released: list[str], label: str, where: str) -> tuple[list[str], str]:
    """(choices, label) with this project's option texts and, for SGR/SAR, the prompt's fixed order."""
    if task == "SD":
        mapped = [SD_LABELS.get(c.lower()) for c in released]
        if None in mapped:
            raise ValueError(f"{where}: SD options {released} are not real/fake")
        return mapped, SD_LABELS[label.lower()]
    if task == "SGR":
        mapped = {SGR_LABELS.get(c.lower()) for c in released}
        if mapped != {"male", "female"}:
            raise ValueError(f"{where}: SGR options {released} are not male/female")
        return list(get_task(task).fixed_choices), SGR_LABELS[label.lower()]
    if task == "SAR":
        if {age_group_of(c, where) for c in released} != set(AGE_GROUPS):
            raise ValueError(f"{where}: SAR options {released} are not the five age groups {list(AGE_GROUPS)}")
        return list(AGE_GROUPS), age_group_of(label, where)
    return released, label


def age_group_of(text: str, where: str) -> str:
    """One of AGE_GROUPS from its name or its age range, e.g. 'Senior (51-70)', '51-70', '(d) 51-70'."""
    for group in AGE_GROUPS:
        name, span = group.split(" (")
        if text.lower() == group.lower() or name.lower() in text.lower() or span.rstrip(")") in text.replace(" ", ""):
            return group
    raise ValueError(f"{where}: {text!r} is not one of the age groups {list(AGE_GROUPS)}")


def audio_path(root: Path, value: str, where: str) -> Path:
    tried = [root / value, root / "audio" / value]
    found = next((p for p in tried if p.is_file()), None)
    if found is None:
        raise LayoutError(f"{where}: audio {value!r} not found (tried {', '.join(map(str, tried))})")
    return found
