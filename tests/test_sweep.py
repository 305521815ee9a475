"""The encode-once sweep gives the rows of separate runs, resumes, and really replays the prefix."""

import pytest
import torch

from amlib.data import read_manifest
from amlib.runner import evaluate
from amlib.sweep import CPU_BATCH, SharedPrefix, run_sweep, sweep_configs

from conftest import make_item, noise, write_rows
from oracles import generate_logits, max_diff, sharpen, static_decoder_logits

COMPARED = ("prediction", "parsed", "correct", "new_tokens", "audio_tokens", "prompt_tokens",
            "audio_tokens_before", "audio_tokens_after", "kept_tokens", "prefill_flops_ratio", "error")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep-data")
    rows = [make_item(root, "a", seconds=5.0), make_item(root, "b", seconds=7.0),
            make_item(root, "c", seconds=4.0)]  # choice items: 5 new tokens at most
    write_rows(root / "manifest.jsonl", rows)
    return read_manifest(root)


GRIDS = {  # the paper's whole grid on one family, a smaller one (both attention readers) on M-RoPE
    "tiny-random-qwen2-audio": (["random", "fastv", "dart", "frame"], [0.3, 0.6, 0.9]),
    "tiny-random-qwen2.5-omni": (["fastv", "dart"], [0.6]),
}


@pytest.mark.parametrize("batch_size", [1, None])
@pytest.mark.parametrize("name", sorted(GRIDS))
def test_sweep_rows_equal_separate_runs(name, batch_size, manifest, tmp_path):
    """One row at a time, and batched (the CPU default: the configurations of one sample decode
    together, amlib.pipeline): the rows of separate batch-1 runs."""
    from amlib.models import load_model

    adapter = load_model(name, seed=0)
    methods, ratios = GRIDS[name]
    configs = sweep_configs(methods, ratios)
    assert len(configs) == 1 + len(methods) * len(ratios)
    swept = run_sweep(adapter, manifest, tmp_path / "sweep", configs, progress=False, batch_size=batch_size)
    for config in configs:
        alone = evaluate(adapter, manifest, tmp_path / "alone" / config.file_name(name), config, progress=False,
                         batch_size=1)
        together = swept[config.file_name(name)]
        assert [r["id"] for r in together] == [r["id"] for r in alone]
        for a, b in zip(alone, together):
            assert {k: a.get(k) for k in COMPARED} == {k: b.get(k) for k in COMPARED}, (config, a["id"])
            expected_batch = batch_size or max(CPU_BATCH, len(configs))  # the CPU default
            batched = expected_batch > 1
            settled = lambda p: {k: v for k, v in p.items() if k not in ("batch_size", "fast_paths")}
            # the paths a batched run adds: batched decoding, and the lean step where it runs (a CPU's default)
            batched_only = lambda f: f == "batched_decode" or f.startswith("lean_step")
            paths = lambda p: [f for f in p.get("fast_paths", []) if not batched_only(f)]
            assert settled(a["provenance"]) == settled(b["provenance"])
            assert paths(a["provenance"]) == paths(b["provenance"])
            assert b["provenance"]["batch_size"] == expected_batch
            assert ("batched_decode" in b["provenance"].get("fast_paths", [])) == batched
            assert ("lean_step" in b["provenance"].get("fast_paths", [])) == (batched and adapter.lean_step() is not None)
    # every sample recorded its prefix once and replayed it for the 12 other configurations
    flags = [r["shared_prefix"] for rows in swept.values() for r in rows]
    assert flags.count("recorded") == len(manifest) and flags.count("replayed") == (len(configs) - 1) * len(manifest)


def test_sweep_resumes_without_recomputing(manifest, tmp_path):
    from amlib.models import load_model

    adapter = load_model("tiny-random-qwen2-audio", seed=0)
    configs = sweep_configs(["frame"], [0.5])
    run_sweep(adapter, manifest[:2], tmp_path, configs, progress=False)
    calls = []
    original = adapter.generate
    adapter.generate = lambda *a, **k: (calls.append(1), original(*a, **k))[1]
    try:
        rows = run_sweep(adapter, manifest, tmp_path, configs, progress=False)
    finally:
        del adapter.generate
    assert len(calls) == 2  # only the third sample, in both configurations
    assert all(len(r) == 3 for r in rows.values())


def test_replayed_prefix_skips_the_encoder_and_lower_layers(manifest):
    from amlib.models import load_model
    from amlib.pruning import pruning
    from amlib.tasks import TASKS

    adapter = load_model("tiny-random-qwen2-audio", seed=0)
    prepared = adapter.build_inputs(noise(6.0), TASKS["SGR"], "q", ["male", "female"])
    runs = []
    # hooks on SUBmodules fire only when the real forward runs (a replayed forward skips them)
    hooks = [adapter.model.audio_tower.conv1.register_forward_hook(lambda *a: runs.append("encoder")),
             adapter.decoder_layers()[0].self_attn.register_forward_pre_hook(lambda m, a, k: runs.append(
                 "layer0-prefill" if k["hidden_states"].shape[-2] > 1 else "layer0-decode"), with_kwargs=True)]
    try:
        with SharedPrefix(adapter, layer=2) as prefix:
            for method in ("fastv", "frame"):
                with pruning(adapter, method, 0.5, layer=2, prefix=prefix):
                    adapter.generate(prepared, 1)
    finally:
        for h in hooks:
            h.remove()
    # the hooks see the module calls: the replay replaces forward, so the second prefill computes nothing
    assert runs.count("encoder") == 1 and runs.count("layer0-prefill") == 1 and prefix.recorded
    assert torch.is_tensor(prefix.attention.keys)


# -- logits on sharpened attention: a replayed prefix gives a separate run's logits, another sample's does not

LOGITS_TOL = 1e-5
REPLAYED = [None, ("fastv", 0.6), ("dart", 0.6), ("frame", 0.6)]  # vanilla and every attention reader


def _sgr_prompt(adapter, audio):
    from amlib.tasks import TASKS

    return adapter.build_inputs(audio, TASKS["SGR"], "Is the speaker male or female?", ["male", "female"])


def _tone(seconds: float, hz: float = 220.0):
    import numpy as np

    from amlib.data.audio import SAMPLE_RATE

    return (0.1 * np.sin(2 * np.pi * hz * np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE)).astype(np.float32)


def _logits(adapter, prepared, config, prefix=None, static_decoder=False):
    """Per-step logits of a forced greedy generate under `config` ((method, ratio) or None: vanilla),
    with `prefix` (a SharedPrefix) active around it as the sweep has it; HF's generate, or the
    static-KV decoder the adapter uses on CUDA."""
    from contextlib import nullcontext

    from amlib.pruning import pruning

    with pruning(adapter, config[0], config[1], layer=2, prefix=prefix) if config else nullcontext() as pruner:
        if pruner is not None:
            pruner.set_audio_spans(prepared.audio_spans)  # both call the model, not adapter.generate
        return static_decoder_logits(adapter, prepared) if static_decoder else generate_logits(adapter, prepared)[1]


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_replayed_prefix_logits_equal_separate_runs_and_another_samples_prefix_fails(name):
    """What the sweep does per sample (record the prefix in one configuration's prefill, replay it in
    the others') gives each configuration the logits of a separate pruned run, step by step; a prefix
    recorded on another sample of the same length (a tone instead of noise) does not."""
    from amlib.models import load_model

    adapter = load_model(name, seed=0)
    sharpen(adapter)
    own, other = _sgr_prompt(adapter, noise(2.0, seed=1)), _sgr_prompt(adapter, _tone(2.0))
    assert own.tensors["input_ids"].shape == other.tensors["input_ids"].shape  # a replay would not notice
    alone = [_logits(adapter, own, config) for config in REPLAYED]
    with SharedPrefix(adapter, layer=2) as prefix:
        _logits(adapter, own, ("frame", 0.3), prefix)  # records this sample's prefix
        assert prefix.recorded
        replayed = [_logits(adapter, own, config, prefix) for config in REPLAYED]
        if adapter.decode_modules() is not None:  # the sweep on CUDA decodes through the static-KV decoder
            replayed += [_logits(adapter, own, config, prefix, static_decoder=True) for config in REPLAYED]
    with SharedPrefix(adapter, layer=2, check_inputs=False) as prefix:
        _logits(adapter, other, ("frame", 0.3), prefix)  # wrong on purpose: another sample's prefix
        foreign = [_logits(adapter, own, config, prefix) for config in REPLAYED]
    # and the sweep refuses such a replay: the encoder's input is not the recorded one
    with SharedPrefix(adapter, layer=2) as prefix:
        _logits(adapter, other, ("frame", 0.3), prefix)
        with pytest.raises(RuntimeError, match="audio encoder input differs from the one recorded"):
            _logits(adapter, own, ("frame", 0.6), prefix)
        _logits(adapter, other, ("frame", 0.6), prefix)  # its own sample replays
    for config, a, r in zip(REPLAYED * 2, alone * 2, replayed):
        assert max_diff(r, a) < LOGITS_TOL, config
    for config, a, f in zip(REPLAYED, alone, foreign):
        assert max_diff(f, a) > 30 * LOGITS_TOL, config
