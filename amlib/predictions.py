"""Predictions files: reading, appending, shard files, combining and merging them in manifest order.

A run's predictions file `<folder>/<stem>.jsonl` holds one JSON row per sample (`amlib.runner`). A
launch of several processes writes shard files `<folder>/shards/<stem>.rank{r}of{w}.jsonl` beside it
and merges them into it at the end (when and by whom: `amlib.distributed`). This module is the file
side of both and imports nothing else of amlib, so the runner and `amlib.distributed` both build on
it without importing each other.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

SHARD_DIR = "shards"
# What two rows of one id must agree on to count as the same result (timings and rank may differ).
SAME_RESULT_KEYS = ("prediction", "parsed", "correct", "input_fingerprint")


def read_predictions(path: str | Path, truncated_tail: bool = False) -> list[dict]:
    """All rows of a predictions file; for an id seen twice (a retried error) the last row wins.
    A line that is not JSON is an error naming it, except with `truncated_tail` the LAST line, which
    is dropped with a warning (a process killed mid-write: shard files)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows: dict[str, dict] = {}
    with path.open(encoding="utf-8") as fh:
        lines = [(n, line) for n, line in enumerate(fh, start=1) if line.strip()]
    for lineno, line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if truncated_tail and lineno == lines[-1][0]:
                logging.getLogger(__name__).warning(
                    "%s:%d: dropped a truncated last line (a process stopped mid-write); its sample is redone",
                    path, lineno)
                continue
            raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg}); truncated write?") from None
        rows[row["id"]] = row
    return list(rows.values())


def append_to(path: Path):
    """`path` opened for appending rows (its folder created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", encoding="utf-8")


def write_row(fh, row: dict) -> None:
    """One row, flushed at once: a crash loses at most the row being written."""
    fh.write(json.dumps(row) + "\n")
    fh.flush()


def shard_path(run_file: Path, rank: int, world_size: int) -> Path:
    return run_file.parent / SHARD_DIR / f"{run_file.stem}.rank{rank}of{world_size}.jsonl"


def shard_files(run_file: Path) -> list[Path]:
    """The shard files of `run_file` present now, of any world size, ordered by (world size, rank)."""
    folder = run_file.parent / SHARD_DIR
    if not folder.is_dir():
        return []
    pattern = re.compile(re.escape(run_file.stem) + r"\.rank(\d+)of(\d+)\.jsonl")
    found = [(int(m[2]), int(m[1]), p) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))]
    return [p for *_, p in sorted(found)]


def read_done(run_file: Path, shards: list[Path] = ()) -> list[dict]:
    """The rows finished so far: the run file's, then every shard's (those present and `shards`;
    a torn last line dropped), one row per id (see `combine`)."""
    sources = [(run_file, read_predictions(run_file))]
    found = shard_files(run_file)
    sources += [(p, read_predictions(p, truncated_tail=True)) for p in found + [p for p in shards if p not in found]]
    return combine(sources)


def combine(sources: list[tuple[Path, list[dict]]]) -> list[dict]:
    """One row per id, first seen first. A later copy of an id must hold the same result (a merge
    interrupted before the shards were removed), or replace an error row (a retried error);
    anything else means the sample was evaluated twice with different results: an error."""
    rows: dict[str, tuple[Path, dict]] = {}
    for path, source in sources:
        for row in source:
            seen = rows.get(row["id"])
            if seen is None or seen[1].get("error"):
                rows[row["id"]] = (path, row)
                continue
            differs = [k for k in SAME_RESULT_KEYS if seen[1].get(k) != row.get(k)]
            if differs:
                raise ValueError(f"sample {row['id']} is in {seen[0]} and in {path} with different "
                                 f"{', '.join(differs)}; remove the wrong row before merging")
    return [row for _, row in rows.values()]


def in_order(rows: list[dict], ids: list[str]) -> list[dict]:
    """`rows` in the order of `ids` (manifest order); rows of other ids after them, as they came."""
    position = {id_: i for i, id_ in enumerate(ids)}
    return sorted(rows, key=lambda row: position.get(row["id"], len(position)))


def merge(run_file: Path, ids: list[str], shards: list[Path] = ()) -> list[dict]:
    """Write the run file anew from itself and its shards (those present and `shards`), in manifest
    order and atomically (a temporary file replaced in one step), then remove the shards. Main
    process only."""
    rows = in_order(read_done(run_file, shards), ids)
    temporary = run_file.with_name(f".{run_file.name}.merging")
    with temporary.open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in rows)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, run_file)
    for path in set(shard_files(run_file)) | set(shards):
        path.unlink(missing_ok=True)
    try:
        (run_file.parent / SHARD_DIR).rmdir()
    except OSError:  # other runs' shards are still there
        pass
    return rows
