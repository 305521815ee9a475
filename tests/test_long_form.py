"""Long-form validation of the reference model's training (amlib/reference/train/long_form.py): long
ASR items joined from held-out clips, transcribed greedily through the runner while LoRA is unmerged."""

import json

import numpy as np
import pytest
import torch

from amlib.data import load_audio, read_manifest, write_manifest
from amlib.data.audio import SAMPLE_RATE
from amlib.metrics.war import normalize_transcript
from amlib.models import load_model
from amlib.reference.train.long_form import long_form_validation, write_joined
from amlib.reference.train.loop import TrainConfig, load_samples, train
from conftest import make_item

WORDS = ["red fox", "blue sky", "green tree", "old road", "cold rain", "tall hill"]


@pytest.fixture()
def clips(tmp_path):
    """Short ASR clips of two speakers (train split), each its own words."""
    root = tmp_path / "clips"
    rows = [make_item(root, f"c{i}", task="ASR", seconds=1.0 + 0.25 * i, answer=WORDS[i], split="train",
                      meta={"speaker": f"voice-{i % 2}"}) for i in range(6)]
    write_manifest(root / "manifest.jsonl", rows)
    return root


def test_joined_items_are_one_speakers_clips_read_in_turn(clips, tmp_path):
    parts = {s.id: s for s in read_manifest(clips)}
    out = write_joined(load_samples([clips]), tmp_path / "long", n=3, min_s=2.0, max_s=4.0, seed=1)
    items = read_manifest(out)
    assert len(items) == 3 and all(s.task == "ASR" and s.split == "train" for s in items)
    for item in items:
        joined = [parts[i] for i in item.meta["joined_from"]]
        assert len({p.meta["speaker"] for p in joined}) == 1
        assert item.answer == " ".join(p.answer for p in joined)
        audio = load_audio(item.audio_path)
        clip_s = sum(p.duration_s for p in joined)
        pauses = len(audio) / SAMPLE_RATE - clip_s  # silence between clips: 0.3-0.9 s each
        assert 0.3 * (len(joined) - 1) - 1e-3 <= pauses <= 0.9 * (len(joined) - 1) + 1e-3
        assert item.duration_s == pytest.approx(len(audio) / SAMPLE_RATE, abs=1e-3) and item.duration_s <= 4.0


def _with_active_lora(adapter):
    from amlib.reference.model import trainable_parameters

    trainable_parameters(adapter.model, lora=True, r=4, alpha=8)
    gen = torch.Generator().manual_seed(0)
    for name, param in adapter.model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero (a no-op adapter): give it an effect
            param.data.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    return adapter


def test_long_form_validation_decodes_through_the_lora_and_scores_the_rows(clips, tmp_path):
    from amlib.runner import prepare_inputs

    adapter = _with_active_lora(load_model("tiny-random-qwen2-audio", seed=0))
    adapter.model.train()
    samples = read_manifest(write_joined(load_samples([clips]), tmp_path / "long", n=3, min_s=2.0, max_s=4.0, seed=1))
    result = long_form_validation(adapter, samples, tmp_path / "val.jsonl", batch_size=2)
    assert adapter.model.training and adapter.lean_decode == "auto"  # restored
    rows = [json.loads(line) for line in (tmp_path / "val.jsonl").read_text().splitlines()]
    # the oracle: each item alone through transformers' generate, the LoRA active (eval mode)
    adapter.model.eval()
    adapter.lean_decode = None
    alone = [adapter.generate(prepare_inputs(adapter, s), rows[0]["max_new_tokens"]).text for s in samples]
    assert [r["prediction"] for r in rows] == alone
    # WAR from jiwer directly: 100 - 100 x mean per-item WER (uncapped), an empty answer counting 1.0
    import jiwer

    wers = [jiwer.wer(normalize_transcript(s.answer), normalize_transcript(h)) if normalize_transcript(h) else 1.0
            for s, h in zip(samples, alone)]
    assert result["war"] == pytest.approx(100 - 100 * np.mean(wers))
    assert result["war_capped"] == pytest.approx(100 - 100 * np.mean(np.minimum(wers, 1.0)))
    assert result["budget_hits"] == sum(r["new_tokens"] >= r["max_new_tokens"] for r in rows) and result["items"] == 3
    # the wrong variant: the lean step reads the base weights and misses the unmerged LoRA
    adapter.lean_decode = "model"
    from amlib.runner import RunConfig, evaluate

    lean = evaluate(adapter, samples, tmp_path / "lean.jsonl", RunConfig(), progress=False, batch_size=2, workers=0)
    assert [r["prediction"] for r in lean] != alone
    with pytest.raises(FileExistsError):
        long_form_validation(adapter, samples, tmp_path / "val.jsonl")


def test_training_logs_long_form_validation_and_can_keep_the_best_war(clips, tmp_path):
    long = write_joined(load_samples([clips]), tmp_path / "long", n=2, min_s=2.0, max_s=4.0, seed=1)
    adapter = load_model("tiny-random-qwen2-audio", seed=0)
    cfg = TrainConfig(steps=4, batch_size=2, lr=3e-3, warmup=1, lora=True, log_every=2, save_every=100, workers=0,
                      data=[str(clips)], val_long=[str(long)], eval_every=2, selection="long_war")
    out = train(adapter, cfg, tmp_path / "run")
    evals = [r for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "val_long_war" in r]
    assert [r["step"] for r in evals] == [2, 4] and all(r["val_long_items"] == 2 for r in evals)
    assert sorted(p.name for p in (out / "val_long").iterdir()) == ["step-000002.jsonl", "step-000004.jsonl"]
    best = max(evals, key=lambda r: r["val_long_war"])  # the first of equals: a later one must be higher
    saved = json.loads((out / "best" / "step.json").read_text())
    assert (saved["step"], saved["selection"], saved["selected_on"]) == (best["step"], "long_war", -best["val_long_war"])
    with pytest.raises(ValueError, match="needs val_long"):
        train(adapter, TrainConfig(selection="long_war"), tmp_path / "bad")


def test_the_choice_guard_keeps_the_best_war_whose_choice_tasks_did_not_get_worse(clips, tmp_path, monkeypatch):
    """Validation numbers set per evaluation: step 2 has the best WAR but its choice tasks got worse than
    the guard allows, so step 4 is kept; without the guard, step 2."""
    import amlib.reference.train.loop as loop

    wars = {0: 10.0, 2: 50.0, 4: 30.0}
    choice = {0: 1.0, 2: 2.0, 4: 1.05}
    evals = iter(sorted(wars))
    monkeypatch.setattr(loop, "long_form_record", lambda adapter, samples, out_file, batch_size: {
        "val_long_war": wars[int(out_file.stem.split("-")[1])], "val_long_budget_hits": 0})

    def losses(model, adapter, samples, cfg, device, autocast):
        step = next(evals)
        return choice[step], {"SGR": choice[step], "ASR": 3.0}

    long = write_joined(load_samples([clips]), tmp_path / "long", n=1, min_s=2.0, max_s=4.0, seed=1)
    adapter = load_model("tiny-random-qwen2-audio", seed=0)

    def kept(guard, name):
        nonlocal evals
        evals = iter(sorted(wars))
        monkeypatch.setattr(loop, "validation_loss", losses)
        cfg = TrainConfig(steps=4, batch_size=2, warmup=1, lora=True, log_every=2, save_every=100, workers=0,
                          data=[str(clips)], val_data=[str(clips)], val_long=[str(long)], eval_every=2,
                          selection="long_war", eval_at_start=True, choice_guard=guard)
        out = train(adapter, cfg, tmp_path / name)
        log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in log if "val_long_war" in r] == [0, 2, 4]
        assert [r["val_choice_mean"] for r in log if "val_choice_mean" in r] == [1.0, 2.0, 1.05]  # SGR alone
        return json.loads((out / "best" / "step.json").read_text())["step"]

    assert kept(1.1, "guarded") == 4
    assert kept(None, "unguarded") == 2
    with pytest.raises(ValueError, match="step-0 evaluation"):
        train(adapter, TrainConfig(val_long=[str(long)], selection="long_war", choice_guard=1.1), tmp_path / "bad")
