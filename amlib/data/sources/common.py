"""What every dataset builder shares: the build request, item writing, layout errors, the build report,
class-balanced selection, round-robin over groups and clip durations."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from amlib.data.audio import SAMPLE_RATE, write_audio
from amlib.data.concat import loudness_normalize
from amlib.data.options import balanced_positions
from amlib.tasks import get_task

REPORT_FILE = "build_report.json"


class LayoutError(FileNotFoundError):
    """The source folder is not in the layout the builder expects; the message says what is missing."""


@dataclass(frozen=True)
class BuildRequest:
    out: Path
    root: Path | None = None  # the source data set's folder, in its native published layout
    tasks: tuple[str, ...] = ()  # empty: every task the source provides
    per_task: int = 20
    min_seconds: float = 90.0
    max_seconds: float = 300.0
    seed: int = 0
    split: str = "test"
    gap_seconds: float = 0.0  # silence between merged clips
    options: dict = field(default_factory=dict)  # builder-specific settings (CLI: --option key=value)

    def rng(self, *salt: int | str) -> np.random.Generator:
        """A Generator for one purpose: same request + same salt -> same stream."""
        return np.random.default_rng([self.seed] + [_salt_word(s) for s in salt])

    def require(self, *relative: str) -> Path:
        """The root, after checking that each of `relative` exists under it (else a LayoutError)."""
        if self.root is None:
            raise LayoutError("this source needs --root pointing at its data folder")
        for rel in relative:
            if not (self.root / rel).exists():
                raise LayoutError(f"{self.root}: expected '{rel}' (see the builder's docstring for the layout)")
        return self.root

    def option(self, name: str, given: Any = None, default: Any = None) -> Any:
        """A builder-specific setting: `given` (the build() keyword argument) when it is not None, else
        options[name] (CLI: --option name=value), else `default`."""
        if given is not None:
            return given
        return self.options.get(name, default)


def _salt_word(salt: int | str) -> int:
    if isinstance(salt, int):
        return salt
    return int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "little")


def item_id(task: str, split: str, index: int) -> str:
    return f"{task}-{split}-{index:04d}"


def write_item(req: BuildRequest, task: str, index: int, wave: np.ndarray, *, question: str, choices: list[str],
               answer: str, source: str, meta: dict, normalize: bool = True) -> dict:
    """Write one item's audio (16 kHz mono, loudness-normalised) and return its manifest row.

    `meta["label"]` should hold the class name (the correct option's text) so finalisation can balance.
    """
    spec = get_task(task)
    if spec.is_choice and meta.get("label") is None:
        raise ValueError(f"{task} item {index}: meta['label'] (the class) is required for balancing")
    wave = loudness_normalize(wave) if normalize else np.asarray(wave, dtype=np.float32)
    id_ = item_id(task, req.split, index)
    rel = f"audio/{id_}.wav"
    write_audio(req.out / rel, wave)
    return {"id": id_, "task": task, "audio": rel, "duration_s": round(len(wave) / SAMPLE_RATE, 3),
            "question": question, "choices": choices, "answer": answer, "source": source, "split": req.split,
            "meta": meta}


def audio_seconds(path: Path) -> float:
    """An audio file's length in seconds, from its header; OSError naming the file when it cannot be read."""
    try:
        return float(sf.info(str(path)).duration)
    except Exception as err:
        raise OSError(f"{path}: cannot read audio ({err})") from err


# ------------------------------------------------------------------ build report


def write_report(req: BuildRequest, source: str, *reports: dict, watch: Sequence[str] = (),
                 summary: Callable[[dict], str] | None = None, extra: dict | None = None) -> Path:
    """Merge `reports` into <out>/build_report.json, next to the manifest, and return its path.

    The file holds one entry per task (report["task"]): an entry for another task, e.g. from an earlier
    builder run into the same folder, is kept; one for the same task is replaced. `extra` adds entries
    that are not tasks (the released source's skipped_rows). For each report in which any of the `watch`
    keys holds something (see `_holds_something`) a warning goes to the builder's logger
    (amlib.data.sources.<source>): "<source> <task>: <summary(report), default the report as JSON>; see <path>".
    """
    path = req.out / REPORT_FILE
    merged = json.loads(path.read_text()) if path.is_file() else {}
    for report in reports:
        merged[report["task"]] = report
    merged.update(extra or {})
    path.write_text(json.dumps(merged, indent=1))
    log = logging.getLogger(f"{__package__}.{source}")
    for report in reports:
        if any(_holds_something(report.get(key)) for key in watch):
            message = summary(report) if summary else json.dumps(report)
            log.warning("%s %s: %s; see %s", source, report["task"], message, path)
    return path


def _holds_something(value: Any) -> bool:
    """A non-empty list, a non-zero count, a dict with any such value (e.g. per-class dicts of reasons)."""
    if isinstance(value, dict):
        return any(_holds_something(v) for v in value.values())
    return bool(value)


# ------------------------------------------------------------------ balanced selection


def take_balanced(planned: dict[str, list], per_task: int, pick: Callable[[list, int], list], *,
                  classes: Sequence[str] | None = None,
                  nothing: str = "no class has an item in the window") -> tuple[dict[str, list], dict]:
    """The same number of items from every class that has any: per_task // (such classes) at most.

    `planned`: class -> candidate items. `pick(items, n)` chooses a class's n items; classes are visited in
    the order of `classes` (default: sorted), so a seeded `pick` is reproducible. Returns (class -> chosen
    items, in that order; the report fields candidates_per_class, quota_per_class, kept_per_class and
    classes_short_of_quota). ValueError(nothing) when no class has an item.
    """
    counts = {label: len(items) for label, items in planned.items() if items}
    if not counts:
        raise ValueError(nothing)
    quota = per_task // len(counts)
    cap = min(quota, *counts.values())
    order = [c for c in classes if c in counts] if classes is not None else sorted(counts)
    chosen = {label: pick(planned[label], cap) for label in order}
    report = {"candidates_per_class": counts, "quota_per_class": quota, "kept_per_class": cap,
              "classes_short_of_quota": {k: n for k, n in counts.items() if n < quota}}
    return chosen, report


def round_robin(grouped_items: list[tuple[str, Any]], n: int, rng: np.random.Generator) -> list[tuple[str, Any]]:
    """n (group, item) pairs: every group, in a random order, gives one item before any gives a second."""
    by_group: dict[str, list] = defaultdict(list)
    for group, item in grouped_items:
        by_group[group].append((group, item))
    keys = sorted(by_group)
    return interleave([by_group[keys[i]] for i in rng.permutation(len(keys))], n)


def interleave(queues: Sequence, n: int, entries: Callable[[Any], Sequence] | None = None) -> list:
    """Up to n entries taken in turns: the first entry of every queue in order, then every second one, ...

    `entries(queue)` lists a queue's entries (default: the queue itself); it is called once per queue,
    when the turns first reach it, so queues after the n-th pick are never listed (lazy packing)."""
    listed: dict[int, Sequence] = {}
    picked: list = []
    depth = 0
    while len(picked) < n:
        progressed = False
        for i, queue in enumerate(queues):
            if i not in listed:
                listed[i] = entries(queue) if entries else queue
            if depth < len(listed[i]):
                picked.append(listed[i][depth])
                progressed = True
                if len(picked) == n:
                    return picked
        if not progressed:
            break
        depth += 1
    return picked


def class_jobs(chosen: dict[str, list], n_options: int, rng: np.random.Generator) -> list[tuple[str, Any, int]]:
    """(class, item, answer position) for every chosen item, classes mixed in a random order.

    The positions are balanced within each class (balanced_positions, drawn class by class in `chosen`'s
    order); then one permutation of all items sets the manifest order. Both draw from `rng`."""
    jobs = [(label, item, position) for label, items in chosen.items()
            for item, position in zip(items, balanced_positions(len(items), n_options, rng))]
    return [jobs[i] for i in rng.permutation(len(jobs))]
