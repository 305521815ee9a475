"""The runner as a pipeline: load -> prefill -> batched decode -> write.

- **load** (`prefetched`): each sample's audio read, resampled and laid out as model inputs
  (`runner.prepare_inputs`) by worker processes (forked: they share the loaded adapter and never touch
  the device) or threads, a few samples ahead of the compute, so the device does not wait for the next
  item's features (the time it still waits is measured: `PipelineStats`). Processes by default: on an
  H100, a 195 s prefill took 0.109 s alone and 0.172 s while 4 loader threads prepared inputs in the
  same process (benchmarks/prefill_profile_gpu*.json): the threads compete with the prefill's host
  side, for the GIL or the cores (that profile does not separate the two);
- **prefill** (`_prefilled_rows`): each (sample, configuration) still to do is prefilled inside its
  configuration's context (pruning hooks, a kvpress press) with its decode deferred
  (`amlib.fastpath.batched_decode.deferred_decoding`); the configurations of one sample share its
  inputs and, where given, a shared prefix (`amlib.sweep.SharedPrefix`: the encoder, and for pruning
  the layers below K, computed once);
- **decode** (`BatchedDecoder`): the prefilled rows decode together in `batch_size` slots; a row that
  stops leaves and the next prefilled row joins (the prefill stage runs lazily, between steps);
- **write**: each finished row is completed and appended to its configuration's file at once
  (`RunFile`), so an interrupted run resumes with every finished row kept.

A row's answer does not depend on its neighbours in the batch (tests/test_batched_decode.py), so the
rows are those of a batch-1 run (timings aside: `decode_s` is the wall time of the decode steps the
row took part in, shared with the rows beside it, and `decode_rows_mean` the mean number of rows in
those steps). Adapters without decode modules
(or configurations whose generation cannot be deferred) answer at batch 1 inside the same stages.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import time
import traceback
import warnings
from collections import deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch

from amlib.data import Sample
from amlib.fastpath.batched_decode import complete, deferred_decoding


@dataclass
class PipelineStats:
    """Where a pipelined run's wall time went: waiting for inputs (the load stage behind), prefill,
    decode (the batched steps) and the rows it wrote."""

    wall_s: float = 0.0
    input_wait_s: float = 0.0
    prefill_s: float = 0.0
    rows: int = 0
    decode_steps: int = 0
    graph_captures: int = 0

    @property
    def input_wait_share(self) -> float:
        return self.input_wait_s / self.wall_s if self.wall_s else 0.0

    def as_dict(self) -> dict:
        return {**self.__dict__, "input_wait_share": self.input_wait_share}


LOADERS = ("process", "thread")


def default_loader() -> str:
    """Processes where the platform can fork (they inherit the adapter, so nothing large is pickled);
    threads elsewhere."""
    return "process" if "fork" in multiprocessing.get_all_start_methods() else "thread"


def prefetched(samples: Iterable[Sample], prepare: Callable[[Sample], object], workers: int = 2, ahead: int = 4,
               stats: PipelineStats | None = None, loader: str | None = None) -> Iterator[tuple[Sample, object]]:
    """(sample, prepared inputs or the exception preparing raised), in order, prepared by `workers`
    worker processes or threads (`loader`, None: `default_loader()`) at most `ahead` samples ahead of the
    consumer. `workers` 0: prepared in the caller. `samples` is consumed lazily (a progress bar over it
    advances as samples are handed to the workers)."""
    loader = loader or default_loader()
    if loader not in LOADERS:
        raise ValueError(f"loader {loader!r}: expected one of {LOADERS}")
    if workers <= 0:
        for sample in samples:
            start = time.perf_counter()
            prepared = _attempt(prepare, sample)
            if stats is not None:
                stats.input_wait_s += time.perf_counter() - start
            yield sample, prepared
        return
    with _LoaderPool(loader, workers, prepare) as (pool, task):
        queue = deque()
        pending = iter(samples)
        for sample in pending:
            queue.append((sample, pool.submit(task, sample)))
            if len(queue) >= ahead:
                break
        while queue:
            sample, future = queue.popleft()
            start = time.perf_counter()
            prepared = future.result()
            if stats is not None:
                stats.input_wait_s += time.perf_counter() - start
            for nxt in pending:  # keep `ahead` in flight
                queue.append((nxt, pool.submit(task, nxt)))
                break
            yield sample, prepared


def _attempt(prepare, sample):
    try:
        return prepare(sample)
    except Exception as err:  # the row records it
        err.amlib_traceback = traceback.format_exc(limit=3)
        return err


# The forked workers' `prepare`: set in the parent just before the fork, so the children inherit it
# (a closure over the adapter cannot be pickled, and need not be).
_WORKER_PREPARE: Callable | None = None


def _prepare_in_worker(sample):
    prepared = _attempt(_WORKER_PREPARE, sample)
    if isinstance(prepared, Exception):
        try:
            pickle.dumps(prepared)
        except Exception:  # an exception that cannot travel back: its type, message and traceback can
            text = RuntimeError(f"{type(prepared).__name__}: {prepared}")
            text.amlib_traceback = prepared.amlib_traceback
            return text
    return prepared


def _init_worker():
    import torch

    torch.set_num_threads(1)  # the parent's compute keeps the cores; a worker prepares one sample at a time


class _LoaderPool:
    """(executor, the function to submit): `workers` forked processes or threads."""

    def __init__(self, loader: str, workers: int, prepare: Callable):
        self.loader, self.workers, self.prepare = loader, workers, prepare

    def __enter__(self):
        global _WORKER_PREPARE
        if self.loader == "thread":
            self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="amlib-load")
            return self.pool, lambda sample: _attempt(self.prepare, sample)
        if _WORKER_PREPARE is not None:
            raise RuntimeError("a process loader is already running in this process (nested prefetched)")
        _WORKER_PREPARE = self.prepare
        # the Rust tokenizer's thread pool is not fork-safe: the children tokenize on one thread
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        context = multiprocessing.get_context("fork")
        try:
            self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=_init_worker)
            with warnings.catch_warnings():
                # Python >= 3.12 warns at each fork of a multi-threaded parent (the CUDA driver's and the
                # progress bar's threads). The children only read audio files and run the processor on
                # the CPU: no device, and no lock those threads hold.
                warnings.filterwarnings("ignore", message=r".*use of fork\(\) may lead to deadlocks",
                                        category=DeprecationWarning)
                self.pool.submit(_init_worker).result()  # a fork context starts every worker at the first submit
        except BaseException:
            _WORKER_PREPARE = None
            raise
        return self.pool, _prepare_in_worker

    def __exit__(self, *exc):
        global _WORKER_PREPARE
        try:
            self.pool.shutdown(wait=True, cancel_futures=True)
        finally:
            if self.loader == "process":
                _WORKER_PREPARE = None
        return False


def batched_decoder_of(adapter, batch_size: int):
    """The adapter's `BatchedDecoder` with `batch_size` slots, or None: batch 1, or an adapter that
    cannot decode batched (no decode modules, a remote API, a generation config with processors)."""
    make = getattr(adapter, "batched_decoder", None)
    return make(batch_size) if batch_size > 1 and make is not None else None


def run_pipelined(adapter, items: Iterable[tuple[Sample, object]], runs: list, batch_size: int,
                  shared_prefix: Callable[[], object] | None = None, stats: PipelineStats | None = None) -> PipelineStats:
    """Every run (`runner.RunFile`, entered) that still needs a sample answers it; rows are written as
    they finish. `items`: (sample, prepared inputs or an exception) from the load stage;
    `shared_prefix`: a factory of the per-sample context the configurations share (None: none)."""
    from amlib.runner import answer_fields, efficiency_context, error_row, file_row, start_answer
    from amlib.sweep import shared_prefix_timing

    stats = stats or PipelineStats()
    begin = time.perf_counter()
    decoder = batched_decoder_of(adapter, batch_size)
    in_flight: dict[int, tuple] = {}

    def finished(sample, run, prepared, gen, extra):
        row = file_row(sample, {**answer_fields(adapter, sample, prepared, gen), "error": None}, run.provenance)
        row.pop("_shared_prefix", None)  # (in `extra` already)
        row.update(extra)
        run.write(row)
        stats.rows += 1

    def prefilled_rows():
        for sample, prepared in items:
            todo = [run for run in runs if run.needs(sample)]
            if isinstance(prepared, Exception):  # every configuration records the failure
                for run in todo:
                    run.write(error_row(sample, prepared, run.provenance))
                continue
            with (shared_prefix() if shared_prefix is not None and todo else nullcontext()) as prefix:
                for run in todo:
                    torch.manual_seed(run.config.seed)
                    replayed = prefix.recorded if prefix is not None else None
                    try:
                        start = time.perf_counter()
                        with efficiency_context(adapter, run.config, prefix=prefix), \
                                (deferred_decoding(adapter) if decoder is not None else nullcontext()):
                            gen = start_answer(adapter, sample, prepared)
                        stats.prefill_s += time.perf_counter() - start
                    except Exception as err:
                        run.write(error_row(sample, err, run.provenance))
                        continue
                    extra = {} if prefix is None else \
                        shared_prefix_timing(gen.timing.prefill_s, *(gen.shared_prefix or (replayed, prefix.prefix_seconds)))
                    if gen.pending is None:  # answered at once (batch 1)
                        finished(sample, run, prepared, gen, extra)
                        continue
                    gen.pending.payload = key = id(gen)
                    in_flight[key] = (sample, run, prepared, gen, extra)
                    yield gen.pending

    def on_done(decoded):
        sample, run, prepared, gen, extra = in_flight.pop(decoded.prefilled.payload)
        complete(gen, decoded, adapter.processor.tokenizer)
        finished(sample, run, prepared, gen, extra)

    rows = prefilled_rows()
    if decoder is None:
        for _ in rows:  # nothing is deferred without a decoder
            raise AssertionError("a row was deferred without a batched decoder")
    else:
        while True:
            try:
                decoder.run(rows, adapter.stop_token_ids(), on_done)
                break
            except Exception as err:  # the batch's rows record it; the rows not yet prefilled go on
                for sample, run, *_ in in_flight.values():
                    run.write(error_row(sample, err, run.provenance))
                in_flight.clear()
            finally:
                stats.decode_steps += decoder.steps
                stats.graph_captures += decoder.captures
    stats.wall_s += time.perf_counter() - begin
    return stats
