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
The file side (reading, shard names, combining, merging): `amlib.predictions`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable

import torch

from amlib.predictions import merge, shard_files, shard_path

# A process that finished its share waits at a barrier for the slowest one; the default process
# group timeout (10-30 min) would kill a launch whose shares differ by more than that.
BARRIER_TIMEOUT = timedelta(hours=24)


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


def write_target(run_file: Path, ranks: Ranks) -> Path:
    """Where this process appends: the run file itself when alone, as always; else its own shard
    file (also alone when an earlier launch left shards: the final merge then puts the whole file in
    manifest order). Ask before `amlib.runner.RunFile.open`, which merges those leftovers away."""
    if ranks.world_size == 1 and not shard_files(run_file):
        return run_file
    return shard_path(run_file, ranks.rank, ranks.world_size)


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
