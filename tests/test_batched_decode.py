"""Batched greedy decoding (amlib.fastpath.batched_decode): a row's answer does not depend on the rows
that share its batch. Rows of different lengths and configurations (vanilla, pruned at layer K,
evicted by a press) decode together in fewer slots than rows (so rows leave and join); each row's
per-step logits are compared with its own batch-1 HF decode, in float32 with sharpened attention.
Wrong variants (a row writing at another row's slot, reading another row's mask, continuing at
another row's position) are shown to fail."""

from __future__ import annotations

import os
from contextlib import nullcontext

import pytest
import torch

from amlib.eviction import PRESS_SPECS, PressInstallation, evicted_generate, make_press
from amlib.fastpath import batched_decode as bd
from amlib.fastpath.batched_decode import BatchedKV, deferred_decoding
from amlib.models import load_model
from amlib.pruning import TokenPruner, make_method
from oracles import generate_logits, max_diff, prepare, sharpen, with_image_block

STEPS = 6
# AMLIB_TEST_DEVICE=cuda runs the decoding oracles on a GPU (the decoder then replays a CUDA graph per step)
DEVICE = os.environ.get("AMLIB_TEST_DEVICE", "cpu")
TOL = 1e-5  # float32: equal to ~1e-7 (often exactly); each wrong variant misses by > 1e-3


def pruned(adapter, prepared, method="frame"):
    pruner = TokenPruner(adapter, make_method(method), 0.6, 2)
    pruner.set_audio_spans(prepared.audio_spans)
    return pruner


def evicting(adapter, press="snapkv", ratio=0.5):
    return PressInstallation(adapter, make_press(press, ratio), PRESS_SPECS[press])


def batch_one_logits(adapter, prepared, config):
    """The row's own batch-1 decode: HF generate (vanilla, pruned) or the eviction loop."""
    kind, protocol = config
    if kind == "snapkv":
        logits = []
        with evicting(adapter) as inst:
            evicted_generate(adapter, prepared, STEPS, inst, protocol, logits_out=logits)
        return torch.stack(logits)
    with pruned(adapter, prepared) if kind == "frame" else nullcontext():
        return generate_logits(adapter, prepared, STEPS)[1][:, 0]


def prefilled(adapter, prepared, config, key):
    kind, protocol = config
    with deferred_decoding(adapter, keep_logits=True):
        if kind == "snapkv":
            with evicting(adapter) as inst:
                gen = evicted_generate(adapter, prepared, STEPS, inst, protocol)
        else:
            with pruned(adapter, prepared) if kind == "frame" else nullcontext():
                gen = adapter.generate(prepared, STEPS)
    assert gen.text is None and gen.pending is not None  # prefilled only
    gen.pending.payload = key
    return gen.pending


ROWS = [(1.0, ("vanilla", None)), (3.0, ("frame", None)), (2.0, ("snapkv", "query_aware")),
        (4.0, ("vanilla", None)), (1.5, ("snapkv", "query_agnostic")), (2.5, ("frame", None))]


def sharp_family(name):
    adapter = load_model(name, device=DEVICE)
    sharpen(adapter)
    return adapter


@pytest.fixture(scope="module", params=["tiny-random-qwen2-audio", "tiny-random-qwen2.5-omni"])
def family(request):
    """Qwen2-Audio (the reference model's family: 1-D RoPE) and Qwen2.5-Omni, whose prompts carry an
    image block so the rows' M-RoPE delta is nonzero (their next position is not their length)."""
    adapter = sharp_family(request.param)
    prompts = []
    for seconds, config in ROWS:
        prepared = prepare(adapter, seconds)
        if request.param == "tiny-random-qwen2.5-omni" and config[1] != "query_agnostic":
            prepared = with_image_block(adapter, prepared)  # (the context cut of query_agnostic drops it)
        prompts.append((prepared, config))
    expected = [batch_one_logits(adapter, p, c) for p, c in prompts]
    return adapter, prompts, expected


def batched_logits(adapter, prompts, slots=3, kv_class=BatchedKV, decoder_class=bd.BatchedDecoder):
    decoder = decoder_class(adapter.model, *adapter.decode_modules(), adapter.decoder_layers(), slots=slots)
    decoder.kv_class = kv_class
    rows = (prefilled(adapter, p, c, i) for i, (p, c) in enumerate(prompts))  # prefilled lazily, between steps
    done = decoder.run(rows, [], keep_logits=True)
    assert sorted(d.prefilled.payload for d in done) == list(range(len(prompts)))
    return {d.prefilled.payload: torch.stack(d.logits) for d in done}, decoder


def test_every_row_decodes_as_it_would_alone(family):
    adapter, prompts, expected = family
    lengths = {p.tensors["input_ids"].shape[-1] for p, _ in prompts}
    assert len(lengths) == len(prompts)  # rows of different lengths
    if "image_grid_thw" in prompts[0][0].tensors:  # M-RoPE: the next position is not the length
        row = prefilled(adapter, *prompts[0], 0)
        assert row.next_position == prompts[0][0].tensors["input_ids"].shape[-1] - 2
    got, decoder = batched_logits(adapter, prompts, slots=3)
    assert decoder.steps < sum(len(e) - 1 for e in expected)  # rows shared steps
    for i, logits in got.items():
        n = len(expected[i])  # the eviction loop stops at EOS; HF generate was forced to STEPS
        assert n >= 2 and max_diff(logits[:n], expected[i]) < TOL, (i, ROWS[i])


class _WrongSlot(BatchedKV):
    """Wrong: every row writes its new key and value at row 0's position."""

    def update(self, key_states, value_states, layer_idx, cache_kwargs=None):
        fill = self.fill[layer_idx].clone()
        self.fill[layer_idx].copy_(fill[0].expand_as(fill))
        try:
            return super().update(key_states, value_states, layer_idx)
        finally:
            self.fill[layer_idx].copy_(fill)


class _WrongMask(BatchedKV):
    """Wrong: every row attends under row 0's mask."""

    def open_slots(self, layer_idx):
        super().open_slots(layer_idx)
        self.masks[layer_idx].copy_(self.masks[layer_idx][:1].expand_as(self.masks[layer_idx]))


class _WrongPosition(bd.BatchedDecoder):
    """Wrong: every row continues at the first row's position."""

    def run(self, rows, eos_token_ids, on_done=None, keep_logits=False):
        rows = list(rows)
        for row in rows[1:]:
            row.next_position = rows[0].next_position
        return super().run(rows, eos_token_ids, on_done, keep_logits)


@pytest.mark.parametrize("wrong", ["slot", "mask", "position"])
def test_a_row_that_reads_another_rows_state_fails(family, wrong):
    adapter, prompts, expected = family
    kwargs = {"slot": {"kv_class": _WrongSlot}, "mask": {"kv_class": _WrongMask},
              "position": {"decoder_class": _WrongPosition}}[wrong]
    got, _ = batched_logits(adapter, prompts, slots=3, **kwargs)
    misses = [max_diff(got[i][:len(expected[i])], expected[i]) for i in got]
    assert max(misses) > 100 * TOL, misses


def test_one_slot_and_more_slots_than_rows_give_the_same_rows(family):
    adapter, prompts, expected = family
    for slots in (1, len(prompts) + 2):
        got, _ = batched_logits(adapter, prompts, slots=slots)
        for i, logits in got.items():
            assert max_diff(logits[:len(expected[i])], expected[i]) < TOL


def test_rows_stop_at_their_own_eos_and_budget():
    adapter = sharp_family("tiny-random-qwen2-audio")
    prompts = [(prepare(adapter, s), ("vanilla", None)) for s in (1.0, 2.0, 3.0)]
    free = [generate_logits(adapter, p, STEPS)[0].tolist() for p, _ in prompts]
    stop = free[1][2]  # the second row's third token stops it
    decoder = adapter.batched_decoder(2)
    rows = [prefilled(adapter, p, c, i) for i, (p, c) in enumerate(prompts)]
    rows[2].max_new_tokens = 3  # the third row has a budget of 3
    done = {d.prefilled.payload: d.tokens for d in decoder.run(rows, [stop])}
    for i, tokens in done.items():
        budget = 3 if i == 2 else STEPS
        cut = next((k + 1 for k, t in enumerate(free[i][:budget]) if t == stop), budget)
        assert tokens == free[i][:cut]
    assert len(done[1]) == 3 and done[1][-1] == stop


def test_buffers_grow_for_a_longer_row_that_joins_later():
    adapter = sharp_family("tiny-random-qwen2-audio")
    prompts = [(prepare(adapter, s), ("vanilla", None)) for s in (1.0, 6.0)]
    expected = [generate_logits(adapter, p, STEPS)[1][:, 0] for p, _ in prompts]
    decoder = bd.BatchedDecoder(adapter.model, *adapter.decode_modules(), adapter.decoder_layers(), slots=1,
                                capacity_step=8)
    rows = [prefilled(adapter, p, c, i) for i, (p, c) in enumerate(prompts)]
    assert rows[1].lengths()[0] > rows[0].lengths()[0] + STEPS + 8  # does not fit the first buffers
    done = {d.prefilled.payload: torch.stack(d.logits) for d in decoder.run(rows, [], keep_logits=True)}
    for i in range(2):
        assert max_diff(done[i], expected[i]) < TOL


# --- the runner through the pipeline: the rows of batch-1 runs ---------------------------------------

ROW_KEYS = ("prediction", "parsed", "correct", "new_tokens", "audio_tokens", "prompt_tokens", "kept_tokens",
            "kv_tokens_per_layer", "kv_bytes", "error")


@pytest.fixture(scope="module")
def mixed_manifest(tmp_path_factory):
    """Choice items of different lengths and one ASR item (a longer answer: rows finish apart)."""
    from amlib.data import read_manifest
    from conftest import make_item, write_rows

    root = tmp_path_factory.mktemp("batched-data")
    rows = [make_item(root, "a", seconds=5.0), make_item(root, "b", seconds=7.0, task="ASR"),
            make_item(root, "c", seconds=4.0), make_item(root, "d", seconds=6.0)]
    write_rows(root / "manifest.jsonl", rows)
    return read_manifest(root)


def same_rows(alone, together):
    assert [r["id"] for r in together] == [r["id"] for r in alone]  # file order: the manifest's
    for a, b in zip(alone, together):
        assert {k: a.get(k) for k in ROW_KEYS} == {k: b.get(k) for k in ROW_KEYS}, a["id"]


@pytest.mark.parametrize("loader", ["process", "thread"])
def test_batched_evaluate_writes_the_rows_of_a_batch_one_run(mixed_manifest, tmp_path, loader):
    from amlib.runner import RunConfig, evaluate

    adapter = load_model("tiny-random-qwen2.5-omni", seed=0)
    for config in (RunConfig(), RunConfig(method="frame", ratio=0.5), RunConfig(press="snapkv", ratio=0.5)):
        name = config.file_name(adapter.model_id)
        alone = evaluate(adapter, mixed_manifest, tmp_path / "one" / name, config, progress=False, batch_size=1)
        together = evaluate(adapter, mixed_manifest, tmp_path / "many" / name, config, progress=False, batch_size=3,
                            workers=2, loader=loader)
        same_rows(alone, together)
        assert {r["provenance"]["batch_size"] for r in together} == {3}
        assert all(r["decode_rows_mean"] >= 1 for r in together if r["new_tokens"] > 1)


@pytest.mark.parametrize("batch_size", [None, 1])
def test_eviction_configurations_share_the_encoder_and_the_prefill_and_equal_separate_runs(mixed_manifest, tmp_path,
                                                                                           monkeypatch, batch_size):
    from amlib.eviction.shared import PrefillRecord
    from amlib.runner import evaluate
    from amlib.sweep import eviction_configs, run_configs

    adapter = load_model("tiny-random-qwen2-audio", seed=0)
    configs = eviction_configs(["snapkv", "knorm"], [0.5], ["query_aware", "query_agnostic"])
    encoded, recorded = [], []
    record = PrefillRecord.record.__func__
    monkeypatch.setattr(PrefillRecord, "record", classmethod(lambda cls, *a: (recorded.append(1), record(cls, *a))[1]))
    hook = adapter.model.audio_tower.conv1.register_forward_hook(lambda *a: encoded.append(1))
    try:
        grid = run_configs(adapter, mixed_manifest, tmp_path / "grid", configs, batch_size=batch_size)
    finally:
        hook.remove()
    assert len(encoded) == len(mixed_manifest)  # once per sample, for the 5 configurations
    assert len(recorded) == 2 * len(mixed_manifest)  # one prefill per protocol, for its 2 presses
    for name, rows in grid.items():  # only each sample's first row (vanilla) computed the encoder itself
        vanilla = "__vanilla__" in name
        assert {r["shared_prefix"] for r in rows} == {"recorded" if vanilla else "replayed"}, name
        assert all(r["prefill_s"] >= r["prefill_measured_s"] for r in rows)
    for config in configs:
        name = config.file_name(adapter.model_id)
        same_rows(evaluate(adapter, mixed_manifest, tmp_path / "alone" / name, config, progress=False, batch_size=1),
                  grid[name])


def test_an_interrupted_batched_run_keeps_every_finished_row(mixed_manifest, tmp_path, monkeypatch):
    """Rows are written as they finish; a crash mid-batch loses only the rows still decoding, and the
    resumed run computes only those (and puts the file in manifest order)."""
    from amlib.predictions import read_predictions
    from amlib.runner import RunConfig, evaluate

    adapter = load_model("tiny-random-qwen2-audio", seed=0)
    out = tmp_path / "run.jsonl"
    original = bd._State.step
    calls = {"n": 0}

    def crashing(self):
        calls["n"] += 1
        if calls["n"] == 8:  # the choice rows have finished, the ASR row is still decoding
            raise KeyboardInterrupt("stopped")
        return original(self)

    monkeypatch.setattr(bd._State, "step", crashing)
    with pytest.raises(KeyboardInterrupt):
        evaluate(adapter, mixed_manifest, out, RunConfig(), progress=False, batch_size=4)
    kept = {r["id"] for r in read_predictions(out)}
    assert kept and "b" not in kept and len(kept) < len(mixed_manifest)
    monkeypatch.setattr(bd._State, "step", original)
    prefilled = []
    generate = type(adapter).generate
    monkeypatch.setattr(type(adapter), "generate", lambda self, *a, **k: (prefilled.append(1), generate(self, *a, **k))[1])
    rows = evaluate(adapter, mixed_manifest, out, RunConfig(), progress=False, batch_size=4)
    assert len(prefilled) == len(mixed_manifest) - len(kept)
    same_rows(evaluate(adapter, mixed_manifest, tmp_path / "alone.jsonl", RunConfig(), progress=False, batch_size=1),
              rows)


def test_an_unreadable_sample_prepared_in_a_worker_process_is_an_error_row_naming_the_file(mixed_manifest, tmp_path):
    import dataclasses

    from amlib.runner import RunConfig, evaluate

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not audio")
    samples = [mixed_manifest[0], dataclasses.replace(mixed_manifest[2], id="broken", audio=str(broken), root=""),
               mixed_manifest[3]]
    adapter = load_model("tiny-random-qwen2.5-omni", seed=0)
    rows = {r["id"]: r for r in evaluate(adapter, samples, tmp_path / "run.jsonl", RunConfig(), progress=False,
                                         batch_size=2, workers=2, loader="process")}
    assert rows["broken"]["error"].startswith(f"OSError: {broken}: cannot read audio")
    assert "load_audio" in rows["broken"]["error"]  # the worker's traceback, not the handler's
    assert rows[samples[0].id]["error"] is None and rows[samples[2].id]["error"] is None
