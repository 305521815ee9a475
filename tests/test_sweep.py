"""The encode-once sweep gives the rows of separate runs, resumes, and really replays the prefix."""

import pytest
import torch

from amlib.data import read_manifest
from amlib.runner import evaluate
from amlib.sweep import SharedPrefix, run_sweep, sweep_configs

from conftest import make_item, write_rows

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


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_sweep_rows_equal_separate_runs(name, manifest, tmp_path):
    from amlib.models import load_model

    adapter = load_model(name, seed=0)
    methods, ratios = GRIDS[name]
    configs = sweep_configs(methods, ratios)
    assert len(configs) == 1 + len(methods) * len(ratios)
    swept = run_sweep(adapter, manifest, tmp_path / "sweep", configs, progress=False)
    for config in configs:
        alone = evaluate(adapter, manifest, tmp_path / "alone" / config.file_name(name), config, progress=False)
        together = swept[config.file_name(name)]
        assert [r["id"] for r in together] == [r["id"] for r in alone]
        for a, b in zip(alone, together):
            assert {k: a.get(k) for k in COMPARED} == {k: b.get(k) for k in COMPARED}, (config, a["id"])
            assert a["provenance"] == b["provenance"]
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

    from conftest import noise

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
