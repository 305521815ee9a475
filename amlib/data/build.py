"""Build a dataset from a registered source, and reuse a folder already built with the same settings."""

from __future__ import annotations

import fcntl
import json
import shutil
import time
from pathlib import Path

from amlib.data.finalize import finalize
from amlib.data.sources import BuildRequest, get_source
from amlib.tasks import get_task


def build_dataset(source: str, out: str | Path, root: str | Path | None = None, tasks: list[str] | None = None,
                  per_task: int = 20, min_seconds: float = 90.0, max_seconds: float = 300.0, seed: int = 0,
                  split: str = "test", gap_seconds: float = 0.0, review: bool = True,
                  options: dict | None = None) -> dict:
    """Run the source's builder into `out` (emptied first), then finalise; return stats.json's content."""
    spec = get_source(source)
    wanted = tuple(get_task(t).code for t in tasks) if tasks else spec.tasks
    unknown = [t for t in wanted if t not in spec.tasks]
    if unknown:
        raise ValueError(f"source {source!r} provides {', '.join(spec.tasks)}, not {', '.join(unknown)}")
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    req = BuildRequest(out=out, root=Path(root) if root else None, tasks=wanted, per_task=per_task,
                       min_seconds=min_seconds, max_seconds=max_seconds, seed=seed, split=split,
                       gap_seconds=gap_seconds, options=dict(options or {}))
    start = time.perf_counter()
    rows = spec.build(req)
    stats = finalize(out, rows, per_task=per_task if spec.balance else None, seed=seed,
                     balance_classes=spec.balance, review=review)
    stats["build_seconds"] = round(time.perf_counter() - start, 1)
    (out / "stats.json").write_text(json.dumps(stats, indent=1))
    return stats


PREBUILT = "manifest"  # a folder built beforehand (page 01, or `amlib build-data`): read as it is


def ensure_dataset(out_dir: str | Path, source: str = "skeleton", **settings) -> Path:
    """Build `source` into `out_dir` unless it already holds a build with identical settings. One
    process at a time per folder (a lock file beside it): two notebooks or test workers asking for the
    same folder at once get one build, not two interleaved. Source "manifest": the folder was built
    beforehand (a real source's build, whose root the later pages do not know): it is used as it is,
    and must hold a manifest."""
    out_dir = Path(out_dir)
    if source == PREBUILT:
        if not (out_dir / "manifest.jsonl").is_file():
            raise FileNotFoundError(f"{out_dir}: no manifest.jsonl (data source {PREBUILT!r} reads a folder built "
                                    "beforehand, e.g. by `python -m amlib build-data` or the book's page 01)")
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with (out_dir.parent / f".{out_dir.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_dataset(out_dir, source, **settings)


def _ensure_dataset(out_dir: Path, source: str, **settings) -> Path:
    record = out_dir / "build.json"
    if source != "skeleton":  # the same build asked with or without the defaults is the same build
        settings = {"root": None, "tasks": None, **settings}
        settings["root"] = str(settings["root"]) if settings["root"] is not None else None
        settings["tasks"] = sorted(settings["tasks"]) if settings["tasks"] else None
    wanted = {"source": source, **settings}
    if record.is_file() and (out_dir / "manifest.jsonl").is_file():
        if json.loads(record.read_text()) == wanted:
            if source == "offline":  # built by other generator code: refuse to reuse it (clear error)
                from amlib.data.offline.suite import check_folder_version
                check_folder_version(out_dir)
            return out_dir
    if source == "skeleton":  # the two-task quick set of the walking skeleton
        from amlib.data.offline.skeleton import build_skeleton

        build_skeleton(out_dir, **settings)
    else:
        build_dataset(source, out_dir, **settings)
    record.write_text(json.dumps(wanted, indent=1))
    return out_dir


def ensure_dataset_for_tasks(out_dir: str | Path, source: str, tasks: list[str] | None, **settings) -> Path:
    """`ensure_dataset` for a page that reads only `tasks` (None: all): a new folder gets those tasks
    only (cheaper to build), while a folder already built with the same settings for these tasks or
    more is reused as it is, never rebuilt for fewer; a folder lacking some of them is rebuilt with
    both sets. The skeleton source builds its own two tasks."""
    if source in ("skeleton", PREBUILT):
        return ensure_dataset(out_dir, source, **settings)
    record = Path(out_dir) / "build.json"
    recorded = json.loads(record.read_text()) if record.is_file() else {}
    return ensure_dataset(out_dir, source, tasks=_tasks_to_build(recorded, tasks), **settings)


def _tasks_to_build(recorded: dict, wanted: list[str] | None) -> list[str] | None:
    """The task list to ask of a folder whose build record is `recorded` ({} when none)."""
    if "tasks" not in recorded or wanted is None:
        return wanted
    have = recorded["tasks"]
    if have is None:  # built with every task of the source
        return None
    wanted = [get_task(t).code for t in wanted]
    return have if set(wanted) <= set(have) else sorted(set(have) | set(wanted))
