"""The runner's load stage (amlib.pipeline.prefetched): worker processes or threads prepare samples
ahead of the compute, in order, with failures handed back as the sample's exception."""

import os

import pytest
import torch

from amlib.pipeline import PipelineStats, prefetched


def prepare(sample: str) -> dict:
    if sample.startswith("bad"):
        raise ValueError(f"cannot prepare {sample}")
    return {"pid": os.getpid(), "id": sample, "features": torch.arange(len(sample) * 1000, dtype=torch.float32)}


@pytest.mark.parametrize("loader", ["process", "thread"])
def test_samples_come_back_prepared_in_order_by_the_named_workers(loader):
    samples = [f"s{i}" * (i + 1) for i in range(7)]
    stats = PipelineStats()
    got = list(prefetched(iter(samples), prepare, workers=2, ahead=3, stats=stats, loader=loader))
    assert [s for s, _ in got] == samples
    for sample, prepared in got:
        assert prepared["id"] == sample
        assert torch.equal(prepared["features"], torch.arange(len(sample) * 1000, dtype=torch.float32))
    pids = {prepared["pid"] for _, prepared in got}
    # processes: none of the work in this process (a loader that fell back to threads fails here)
    assert (os.getpid() not in pids) if loader == "process" else (pids == {os.getpid()})
    assert stats.input_wait_s >= 0


def test_a_failure_comes_back_as_that_samples_exception_and_the_others_go_on():
    class Unpicklable(Exception):  # a local class cannot be pickled back from a worker process
        pass

    def prepare_or_fail(sample):
        if sample == "odd":
            raise Unpicklable("odd one")
        return prepare(sample)

    got = dict(prefetched(["a", "bad-1", "odd", "b"], prepare_or_fail, workers=2, loader="process"))
    assert got["a"]["id"] == "a" and got["b"]["id"] == "b"
    assert isinstance(got["bad-1"], ValueError) and str(got["bad-1"]) == "cannot prepare bad-1"
    assert "prepare" in got["bad-1"].amlib_traceback  # where it was raised, in the worker
    assert isinstance(got["odd"], RuntimeError) and str(got["odd"]) == "Unpicklable: odd one"
    assert "prepare_or_fail" in got["odd"].amlib_traceback


def test_the_caller_prepares_when_there_are_no_workers_and_unknown_loaders_are_refused():
    assert {p["pid"] for _, p in prefetched(["a", "b"], prepare, workers=0)} == {os.getpid()}
    with pytest.raises(ValueError, match="loader 'gpu'"):
        list(prefetched(["a"], prepare, workers=1, loader="gpu"))
