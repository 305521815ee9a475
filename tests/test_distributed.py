"""A run split over processes (amlib.distributed): shares, shard files, merge, resume after a crash.

Most of the protocol runs in-process: ranks are threads with a `threading.Barrier` and the model is
a stand-in that answers instantly (`fake_predict`), so a crash, a torn line and a re-launch with
another world size cost nothing. One real launch (`torch.distributed.run`, 2 CPU processes, gloo)
runs the tiny model through `python -m amlib eval` and crashes mid-write; it is resumed in-process.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import amlib
from amlib import distributed, predictions, runner, sweep
from amlib.data import read_manifest
from amlib.distributed import SINGLE, Ranks, my_share
from amlib.predictions import combine, in_order, merge, read_predictions, shard_files, shard_path
from amlib.runner import RunConfig, evaluate

from conftest import make_item, write_rows

# timings differ between runs; so does how many rows decoded beside a row (which rows share a batch)
VOLATILE = ("prefill_s", "decode_s", "peak_memory_mb", "memory_kind", "decode_rows_mean")


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Seven tiny items of two tasks (SGR, SD): an odd count, so shares differ in size."""
    root = tmp_path_factory.mktemp("dist-data")
    rows = [make_item(root, f"sgr{i}", seconds=1.0 + 0.1 * i, answer="AB"[i % 2]) for i in range(4)]
    rows += [make_item(root, f"sd{i}", task="SD", seconds=1.2, question="How many speakers?",
                       choices=["one", "two"], answer="B") for i in range(3)]
    write_rows(root / "manifest.jsonl", rows)
    return read_manifest(root)


def comparable(rows: list[dict]) -> list[dict]:
    """Rows without timings and without which process wrote them."""
    drop = lambda row: {k: v for k, v in row.items() if k not in VOLATILE and k != "provenance"}
    prov = lambda row: {k: v for k, v in row["provenance"].items() if k not in ("rank", "world_size")}
    return [{**drop(r), "provenance": prov(r)} for r in rows]


# --- shares, names, merge ----------------------------------------------------------------------


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_shares_are_disjoint_and_cover_every_item_in_order(world_size):
    items = list(range(11))
    shares = [my_share(items, Ranks(r, world_size)) for r in range(world_size)]
    assert sorted(i for share in shares for i in share) == items
    assert all(share == sorted(share) for share in shares)
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_shard_files_of_one_run_any_world_size(tmp_path):
    run = tmp_path / "m__vanilla__seed0.jsonl"
    assert shard_path(run, 1, 4) == tmp_path / "shards" / "m__vanilla__seed0.rank1of4.jsonl"
    for path in (shard_path(run, 1, 2), shard_path(run, 0, 2), shard_path(run, 2, 3),
                 shard_path(tmp_path / "m__vanilla__seed01.jsonl", 0, 2)):  # another run's shard
        path.parent.mkdir(exist_ok=True)
        path.write_text("")
    assert [p.name for p in shard_files(run)] == [
        "m__vanilla__seed0.rank0of2.jsonl", "m__vanilla__seed0.rank1of2.jsonl", "m__vanilla__seed0.rank2of3.jsonl"]
    # the shards sit in a sub-folder, out of the way of globs over the results folder
    assert [p.name for p in tmp_path.glob("m__*__seed*.jsonl")] == []


def row(id_: str, prediction: str = "A", error: str | None = None, **extra) -> dict:
    return {"id": id_, "prediction": prediction, "parsed": prediction, "correct": True, "error": error,
            "input_fingerprint": {"audio_sha256": id_}, **extra}


def test_merge_orders_by_manifest_keeps_other_rows_and_removes_shards(tmp_path):
    run = tmp_path / "run.jsonl"
    write_rows(run, [row("c"), row("old-item")])  # an item outside this selection stays
    shard_path(run, 0, 2).parent.mkdir()
    write_rows(shard_path(run, 0, 2), [row("d"), row("a")])
    write_rows(shard_path(run, 1, 2), [row("b")])
    rows = merge(run, ["a", "b", "c", "d"])
    assert [r["id"] for r in rows] == ["a", "b", "c", "d", "old-item"]
    assert [r["id"] for r in read_predictions(run)] == ["a", "b", "c", "d", "old-item"]
    assert shard_files(run) == [] and not (tmp_path / "shards").exists()
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_a_sample_twice_must_hold_the_same_result(tmp_path):
    first, second = tmp_path / "run.jsonl", tmp_path / "shards" / "run.rank0of2.jsonl"
    # a merge stopped before removing the shards: the same row twice is one row
    once = combine([(first, [row("a", prefill_s=1.0)]), (second, [row("a", prefill_s=2.0)])])
    assert once == [row("a", prefill_s=1.0)]
    # an error row gives way to its retry
    assert combine([(first, [row("a", None, error="OOM")]), (second, [row("a", "B")])]) == [row("a", "B")]
    with pytest.raises(ValueError, match=r"sample a is in .*run.jsonl and in .*run.rank0of2.jsonl with different "
                                         r"prediction, parsed"):
        combine([(first, [row("a", "A")]), (second, [row("a", "B")])])
    assert [r["id"] for r in in_order([row("x"), row("b"), row("a")], ["a", "b"])] == ["a", "b", "x"]


def test_truncated_last_line_of_a_shard_is_dropped_with_a_warning(tmp_path, caplog):
    shard = tmp_path / "shard.jsonl"
    shard.write_text(json.dumps(row("a")) + "\n" + json.dumps(row("b"))[:25])
    with pytest.raises(ValueError, match="shard.jsonl:2: not valid JSON"):
        read_predictions(shard)  # the run file itself stays strict, as before
    assert [r["id"] for r in read_predictions(shard, truncated_tail=True)] == ["a"]
    assert "shard.jsonl:2: dropped a truncated last line" in caplog.text


def test_a_malformed_line_before_the_last_is_an_error_naming_it(tmp_path):
    run = tmp_path / "run.jsonl"
    shard = shard_path(run, 1, 2)
    shard.parent.mkdir()
    shard.write_text(json.dumps(row("a")) + "\n{broken\n" + json.dumps(row("b")) + "\n")
    with pytest.raises(ValueError, match=r"run.rank1of2.jsonl:2: not valid JSON"):
        predictions.read_done(run)


def test_a_shard_the_main_process_cannot_see_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cannot see .*run.rank1of2.jsonl.*every machine of the launch shares"):
        distributed.await_files([shard_path(tmp_path / "run.jsonl", 1, 2)], seconds=0)


def test_device_map_on_the_command_line():
    import argparse

    from amlib.cli import _device_map

    assert _device_map("auto") == "auto"
    assert _device_map('{"audio_tower": 0, "language_model": "cpu"}') == {"audio_tower": 0, "language_model": "cpu"}
    with pytest.raises(argparse.ArgumentTypeError, match="not a JSON object"):
        _device_map("{audio_tower: 0}")


def test_resolve_device():
    assert distributed.resolve_device("cpu", Ranks(1, 2, torch.device("cpu"))) == "cpu"
    assert distributed.resolve_device("cuda", Ranks(1, 2, torch.device("cuda:1"))) == "cuda:1"
    assert distributed.resolve_device("cuda", SINGLE) == "cuda"
    assert distributed.resolve_device("auto", Ranks(0, 1, torch.device("cpu"))) == "cpu"
    assert distributed.current().world_size == 1  # not launched: rank 0 of 1


def test_processes_sharing_one_gpu_take_it_modulo_and_a_gloo_barrier(monkeypatch):
    """Two processes on a one-GPU machine: rank 1 uses cuda:0 (not the absent cuda:1) and a gloo
    process group (NCCL refuses two ranks on one GPU); accelerate's PartialState is not asked."""
    calls = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.setdefault("set_device", d))
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: "backend" in calls)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda backend, timeout: calls.setdefault("backend", backend))
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    import accelerate

    monkeypatch.setattr(accelerate, "PartialState", None)  # calling it would fail the test
    for key, value in {"LOCAL_WORLD_SIZE": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    ranks = distributed.current("cuda")
    assert (ranks.rank, ranks.world_size, ranks.device) == (1, 2, torch.device("cuda", 0))
    assert calls == {"backend": "gloo", "set_device": torch.device("cuda", 0)}
    assert distributed.resolve_device("cuda", ranks) == "cuda:0"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # one process per GPU: not shared
    assert not distributed.gpus_shared()


# --- module structure: no import cycle between the runner and amlib.distributed -------------------


def amlib_imports(source: str) -> set[str]:
    """Every amlib module a source imports, at module level or inside a function."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("amlib"):
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names if node.module == "amlib"}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("amlib")}
    return found


def test_the_file_layer_imports_nothing_of_amlib_and_distributed_not_the_runner():
    source = lambda name: (Path(amlib.__file__).parent / f"{name}.py").read_text()
    assert amlib_imports(source("predictions")) == set()
    assert amlib_imports(source("distributed")) == {"amlib.predictions"}
    assert "amlib.predictions" in amlib_imports(source("runner"))
    # the old dodge, a function-level import of the runner, is found wherever it hides
    dodge = source("distributed") + "\n\ndef read_done(path):\n    from amlib.runner import read_predictions\n"
    assert "amlib.runner" in amlib_imports(dodge)
    # and the runner still offers read_predictions to notebooks and scripts
    assert runner.read_predictions is predictions.read_predictions


# --- the protocol with threads as ranks and an instant model ----------------------------------


class StubAdapter:
    """What the runner needs of an adapter when `predict_one` is replaced."""

    model_id = "stub"
    device = torch.device("cpu")

    def provenance(self):
        return {"model": "stub", "model_revision": "0", "family": "stub", "dtype": "float32"}


@pytest.fixture()
def fake_predict(monkeypatch):
    """Instant predictions; the ids it evaluated, in order (shared by all thread-ranks)."""
    evaluated = []

    def predict(adapter, sample):
        evaluated.append(sample.id)
        return {"prediction": f"answer to {sample.id}", "parsed": "A", "correct": sample.answer == "A",
                "prefill_s": 0.0, "decode_s": 0.0}

    monkeypatch.setattr(runner, "predict_one", predict)
    return evaluated


def crash_rank_after(monkeypatch, rank: int, rows: int) -> None:
    """Process `rank` writes `rows` rows, then dies in the middle of writing the next one."""
    written = []
    write = predictions.write_row

    def write_row(fh, row):
        if row["provenance"]["rank"] == rank and len(written) == rows:
            fh.write(json.dumps(row)[:40])
            fh.flush()
            raise RuntimeError("killed mid-write")
        written.extend([row["id"]] if row["provenance"]["rank"] == rank else [])
        write(fh, row)

    monkeypatch.setattr(predictions, "write_row", write_row)


class ThreadBarrier:
    """A barrier of thread-ranks that, like a process group, breaks only for barriers not yet passed
    when a rank dies: threading.Barrier.abort() also fails a waiter that was already released but not
    yet rescheduled, which made the crash test depend on thread timing."""

    def __init__(self, parties: int, timeout: float = 60.0):
        self.parties, self.timeout = parties, timeout
        self.count = self.generation = 0
        self.dead = False
        self.cond = threading.Condition()

    def wait(self) -> None:
        with self.cond:
            if self.dead:
                raise threading.BrokenBarrierError
            generation = self.generation
            self.count += 1
            if self.count == self.parties:
                self.count, self.generation = 0, self.generation + 1
                self.cond.notify_all()
                return
            self.cond.wait_for(lambda: self.generation != generation or self.dead, self.timeout)
            if self.generation == generation:  # a rank died (or timed out) before all arrived
                self.dead = True
                self.cond.notify_all()
                raise threading.BrokenBarrierError

    def abort(self) -> None:
        with self.cond:
            self.dead = True
            self.cond.notify_all()


def launch_threads(world_size: int, job) -> dict[int, BaseException]:
    """`job(ranks)` in `world_size` threads sharing a barrier; a rank that raises breaks the barrier
    (as torchrun stops the others). Returns {rank: exception}."""
    barrier = ThreadBarrier(world_size)
    errors = {}

    def run(rank):
        try:
            job(Ranks(rank, world_size, barrier=barrier.wait))
        except BaseException as err:  # noqa: BLE001 - reported to the test
            errors[rank] = err
            barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world_size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_ranks_together_write_the_rows_of_one_process(samples, fake_predict, tmp_path):
    alone = evaluate(StubAdapter(), samples, tmp_path / "alone.jsonl", ranks=SINGLE, progress=False)
    run = tmp_path / "three.jsonl"
    assert launch_threads(3, lambda ranks: evaluate(StubAdapter(), samples, run, ranks=ranks, progress=False)) == {}
    together = read_predictions(run)
    assert comparable(together) == comparable(alone)  # same rows, manifest order
    assert [(r["provenance"]["rank"], r["provenance"]["world_size"]) for r in together] == [
        (i % 3, 3) for i in range(len(samples))]
    assert [(r["provenance"]["rank"], r["provenance"]["world_size"]) for r in alone] == [(0, 1)] * len(samples)
    assert sorted(fake_predict) == sorted(2 * [s.id for s in samples]) and not (tmp_path / "shards").exists()


def test_a_crashed_launch_resumes_with_any_world_size(samples, fake_predict, monkeypatch, tmp_path, caplog):
    run = tmp_path / "a" / "run.jsonl"
    with monkeypatch.context() as patch:
        crash_rank_after(patch, rank=1, rows=1)
        errors = launch_threads(2, lambda ranks: evaluate(StubAdapter(), samples, run, ranks=ranks, progress=False))
    assert "killed mid-write" in str(errors[1]) and isinstance(errors[0], threading.BrokenBarrierError)
    torn = shard_path(run, 1, 2).read_text().splitlines()
    assert len(torn) == 2 and not torn[1].endswith("}")
    # rank 0 did its share (0, 2, 4, 6); rank 1 did 1, then died writing 3's row and never reached 5
    assert sorted(fake_predict) == sorted(s.id for s in samples[0::2] + samples[1:4:2])
    redo = [samples[3].id, samples[5].id]
    shutil.copytree(run.parent, tmp_path / "b")
    expected = comparable(evaluate(StubAdapter(), samples, tmp_path / "ref.jsonl", ranks=SINGLE, progress=False))

    fake_predict.clear()
    assert launch_threads(3, lambda ranks: evaluate(StubAdapter(), samples, run, ranks=ranks, progress=False)) == {}
    assert comparable(read_predictions(run)) == expected and sorted(fake_predict) == sorted(redo)
    assert len(run.read_text().splitlines()) == len(samples) and shard_files(run) == []
    assert "run.rank1of2.jsonl:2: dropped a truncated last line" in caplog.text

    fake_predict.clear()  # the same crashed state resumed by one process
    rows = evaluate(StubAdapter(), samples, tmp_path / "b" / "run.jsonl", ranks=SINGLE, progress=False)
    assert comparable(rows) == expected and sorted(fake_predict) == sorted(redo)
    assert shard_files(tmp_path / "b" / "run.jsonl") == []


def test_resume_checks_the_shards_rows_too(samples, fake_predict, tmp_path):
    run = tmp_path / "run.jsonl"
    evaluate(StubAdapter(), samples[:2], run, RunConfig(seed=0), ranks=SINGLE, progress=False)
    shard = shard_path(run, 0, 2)
    shard.parent.mkdir()
    run.rename(shard)  # as if a launch of two had written them and stopped before the merge
    with pytest.raises(ValueError, match="seed=0.*seed=1"):
        evaluate(StubAdapter(), samples, run, RunConfig(seed=1), ranks=SINGLE, progress=False)
    assert shard.is_file()  # nothing merged or removed when the run is refused


def test_sweep_shards_every_configuration(samples, monkeypatch, tmp_path):
    def fake_sample(adapter, sample, runs, layer):
        for run in runs:
            if run.needs(sample):
                result = {"prediction": f"{run.config.method} {sample.id}", "parsed": "A", "correct": True, "error": None}
                run.write(runner.file_row(sample, result, run.provenance))

    monkeypatch.setattr(sweep, "_sweep_sample", fake_sample)
    configs = sweep.sweep_configs(["frame", "random"], [0.5])
    alone = sweep.run_sweep(StubAdapter(), samples, tmp_path / "alone", configs, progress=False, ranks=SINGLE)
    sweep.run_sweep(StubAdapter(), samples[:3], tmp_path / "two", configs, progress=False, ranks=SINGLE)
    errors = launch_threads(2, lambda ranks: sweep.run_sweep(StubAdapter(), samples, tmp_path / "two", configs,
                                                             progress=False, ranks=ranks))
    assert errors == {}
    for name, rows in alone.items():
        assert comparable(read_predictions(tmp_path / "two" / name)) == comparable(rows)
    assert not (tmp_path / "two" / "shards").exists()


# --- device_map -----------------------------------------------------------------------------------


def test_device_map_reaches_from_pretrained(tmp_path, tiny_adapter, monkeypatch):
    import transformers

    from amlib.models import load_model

    from conftest import noise

    tiny_adapter.model.save_pretrained(tmp_path)
    tiny_adapter.processor.save_pretrained(tmp_path)
    checkpoint = transformers.Qwen2AudioForConditionalGeneration
    load, maps = checkpoint.from_pretrained, []
    spy = lambda *args, **kwargs: (maps.append(kwargs.get("device_map")), load(*args, **kwargs))[1]
    monkeypatch.setattr(checkpoint, "from_pretrained", spy)
    per_module = {"audio_tower": "cpu", "multi_modal_projector": "cpu", "language_model": "cpu"}
    loaded = load_model(str(tmp_path), device_map=per_module)
    assert maps == [per_module]  # (only one device here, so transformers places it without dispatch hooks)
    prepared = tiny_adapter.build_inputs(noise(1.0), amlib.tasks.TASKS["SGR"], "q", ["male", "female"])
    assert loaded.generate(prepared, 3).text == tiny_adapter.generate(prepared, 3).text
    with pytest.raises(ValueError, match="built in memory.*no device_map"):
        load_model("tiny-random-qwen2-audio", device_map="auto")
    with pytest.raises(ValueError, match="device_map spreads one model"):
        runner.load_for("tiny-random-qwen2-audio", "cuda", Ranks(0, 2), device_map="auto")


# --- real launches: two CPU processes (gloo) ----------------------------------------------------

CRASH = """
import json, sys
from amlib import predictions
from amlib.distributed import current

written = []
write = predictions.write_row

def write_row(fh, row):  # this process dies while writing its second row
    if current().rank == 1 and written:
        fh.write(json.dumps(row)[:40]); fh.flush()
        raise RuntimeError("killed mid-write")
    written.append(row["id"]); write(fh, row)

predictions.write_row = write_row
from amlib.cli import main
main(sys.argv[1:])
"""


def torchrun(program: list[str], data: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(Path(amlib.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *program,
               "eval", "--model", "tiny-random-qwen2-audio", "--data", str(data), "--out", str(out)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_two_processes_crash_resume_and_match_one_process(samples, tiny_adapter, tmp_path, caplog):
    """A real launch of two processes that crashes mid-write; then resumed by one process, and (on
    another copy) by two ranks again (threads, each with its own model: a second real launch would
    add ~20 s of process start-up and prove nothing the first does not)."""
    from amlib.models import load_model

    data, out = Path(samples[0].root), tmp_path / "out"
    run = out / RunConfig().file_name("tiny-random-qwen2-audio")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each launched process (greedy text must not hinge on summation order)
    try:
        expected = comparable(evaluate(tiny_adapter, samples, tmp_path / "alone.jsonl", ranks=SINGLE, progress=False))

        (tmp_path / "crash.py").write_text(CRASH)
        crashed = torchrun([str(tmp_path / "crash.py")], data, out)
        assert crashed.returncode != 0 and "killed mid-write" in crashed.stderr
        torn = shard_path(run, 1, 2).read_text().splitlines()
        assert len(torn) == 2 and not torn[1].endswith("}")
        kept = {line for path in shard_files(run) for line in path.read_text().splitlines()[:-1] if line.endswith("}")}

        shutil.copytree(out, tmp_path / "copy")  # world size 2, then 1
        rows = evaluate(tiny_adapter, samples, tmp_path / "copy" / run.name, ranks=SINGLE, progress=False)
        assert comparable(rows) == expected

        models = [load_model("tiny-random-qwen2-audio") for _ in range(2)]  # world size 2 again
        errors = launch_threads(2, lambda ranks: evaluate(models[ranks.rank], samples, run, ranks=ranks, progress=False))
        assert errors == {}
    finally:
        torch.set_num_threads(threads)
    assert "rank1of2.jsonl:2: dropped a truncated last line" in caplog.text
    lines = run.read_text().splitlines()
    assert comparable([json.loads(line) for line in lines]) == expected and len(lines) == len(samples)
    assert kept and kept <= set(lines)  # the crashed launch's finished rows, unchanged (not evaluated again)
    assert {json.loads(line)["provenance"]["world_size"] for line in lines} == {2}
    assert not (out / "shards").exists()
