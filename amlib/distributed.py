"""One run spread over several processes (`accelerate launch` / `torchrun`): which process this is,
which samples are its own, where it writes, and how the rows come back into the run's one file.

The protocol of one predictions file `<folder>/<stem>.jsonl` (`amlib.runner.evaluate`, `amlib.sweep`):

1. every process reads what is done: the run file and the shard files an earlier launch left in
   `<folder>/shards/` (any world size; a truncated last line is dropped and its sample redone);
2. every process takes its share of the samples not done yet (the same list everywhere, so the
   shares are disjoint) and appends its rows to its own shard `shards/<stem>.rank{r}of{w}.jsonl`
   (leftover shards are merged into the run file first, so no file is appended after a torn line);
3. after a barrier the main process merges: de-duplicated by id (an id present twice must hold the
   same result), in manifest order, written atomically; only then are the shard files removed.

A crash anywhere loses at most the row being written; a re-launch with any world size resumes.
World size 1 writes straight into the run file, as the runner always did (unless an earlier launch
left shards: then it too writes a shard, so that the merge leaves the file in manifest order).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable

import torch

SHARD_DIR = "shards"
# A process that finished its share waits at a barrier for the slowest one; the default process
# group timeout (10-30 min) would kill a launch whose shares differ by more than that.
BARRIER_TIMEOUT = timedelta(hours=24)
# What two rows of one id must agree on to count as the same result (timings and rank may differ).
SAME_RESULT_KEYS = ("prediction", "parsed", "correct", "input_fingerprint")


@dataclass(frozen=True)
class Ranks:
    """This process's place in a launch (rank 0 of 1 when not launched by accelerate/torchrun)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None  # accelerate's device for this process (cuda:<local rank>)
    barrier: Callable[[], None] = field(default=lambda: None, repr=False, compare=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Ranks()


def current(device: str | torch.device = "cpu") -> Ranks:
    """This process's `Ranks`, from accelerate's `PartialState`. CPU is asked for explicitly for a
    CPU device or a machine without CUDA: PartialState otherwise sees no backend under torchrun and
    every process would believe it runs alone."""
    from accelerate import PartialState

    cpu = (str(device).startswith("cpu") or not torch.cuda.is_available()
           or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"))
    if not cpu and gpus_shared():
        return shared_gpu_ranks()
    state = PartialState(cpu=cpu, timeout=BARRIER_TIMEOUT)
    return Ranks(state.process_index, state.num_processes, state.device, state.wait_for_everyone)


def gpus_shared() -> bool:
    """More processes on this node than GPUs (e.g. two processes on one GPU)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", 1)))
    return local > torch.cuda.device_count()


def shared_gpu_ranks() -> Ranks:
    """Ranks for processes that share GPUs: process r uses GPU (local rank mod GPU count), and the
    barrier is a gloo one. Not through PartialState: it pins process r to cuda:<local rank>, which
    does not exist when there are fewer GPUs than processes, and NCCL refuses two ranks on one GPU."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    gpu = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    torch.cuda.set_device(gpu)
    return Ranks(dist.get_rank(), dist.get_world_size(), gpu, dist.barrier)


def resolve_device(device: str, ranks: Ranks) -> str:
    """The device this process loads the model on: "auto" is accelerate's device; "cuda" in a launch
    of several processes is this process's own GPU (cuda:<local rank>); anything else as given."""
    if device == "auto" or (device == "cuda" and ranks.world_size > 1):
        if ranks.device is not None:
            return str(ranks.device)
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def my_share(items: list, ranks: Ranks) -> list:
    """Every world_size-th item from this rank on: disjoint shares that mix tasks and lengths."""
    return items[ranks.rank::ranks.world_size]


def shard_path(run_file: Path, rank: int, world_size: int) -> Path:
    return run_file.parent / SHARD_DIR / f"{run_file.stem}.rank{rank}of{world_size}.jsonl"


def write_target(run_file: Path, ranks: Ranks) -> Path:
    """Where this process appends: the run file itself when alone, as always; else its own shard
    file (also alone when an earlier launch left shards: the final merge then puts the whole file in
    manifest order). Ask before `amlib.runner.start_run`, which merges those leftovers away."""
    if ranks.world_size == 1 and not shard_files(run_file):
        return run_file
    return shard_path(run_file, ranks.rank, ranks.world_size)


def append_to(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", encoding="utf-8")


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
    from amlib.runner import read_predictions

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


def await_files(paths: list[Path], seconds: float = 60.0) -> None:
    """Wait until every path is visible here: a network file system may show another machine's new
    file late; one never seen means the machines do not share the folder (their rows would be lost)."""
    deadline = time.monotonic() + seconds
    while missing := [p for p in paths if not p.is_file()]:
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"the main process cannot see {', '.join(map(str, missing))} after "
                                    f"{seconds:.0f} s: --out must be a folder every machine of the launch shares")
        time.sleep(1.0)


def settle_leftovers(run_file: Path, ids: list[str], leftovers: bool, ranks: Ranks) -> None:
    """Called after every process read what is done and before anyone writes. A barrier first (else
    a fast process's new shard would look like a leftover to a slow one); then the main process
    merges the shards an earlier launch left (`leftovers`: seen before the barrier) into the run
    file, since new shards may reuse their names; a barrier again. Every process takes both barriers,
    whatever it saw (machines on a network file system may see a folder differently for a while)."""
    ranks.barrier()
    if leftovers and ranks.is_main:
        merge(run_file, ids)
    ranks.barrier()  # nobody writes a shard before the old ones are gone


def finish(run_file: Path, ids: list[str], ranks: Ranks, target: Path) -> None:
    """After every process wrote its share into `target` (`write_target`; each created its file): the
    main process merges all of them into the run file; all wait for the result."""
    if target == run_file:
        return
    ranks.barrier()
    if ranks.is_main:
        shards = [shard_path(run_file, r, ranks.world_size) for r in range(ranks.world_size)]
        await_files(shards)
        merge(run_file, ids, shards)
    ranks.barrier()
