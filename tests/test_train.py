import json

import pytest
import torch

from amlib.data import load_audio, read_manifest, write_manifest
from amlib.tasks import TASKS
from amlib.reference.train.examples import IGNORE, collate, encode, target_text
from amlib.reference.train.loop import TrainConfig, batches, train
from amlib.reference.train import pack
from amlib.reference.train.pack import compress_dataset, shard_dataset, split_file
from conftest import make_item


@pytest.fixture()
def dataset(tmp_path):
    rows = [make_item(tmp_path, f"s{i}", seconds=1.0 + 0.2 * i, answer="AB"[i % 2], split="train") for i in range(4)]
    rows.append(make_item(tmp_path, "a0", task="ASR", seconds=1.0, split="train"))
    write_manifest(tmp_path / "manifest.jsonl", rows)
    return tmp_path


def test_target_text_follows_the_prompt_format(dataset, tiny_adapter):
    tok = tiny_adapter.processor.tokenizer
    samples = {s.id: s for s in read_manifest(dataset)}
    assert target_text(samples["s1"], tok) == "b"  # SGR: fixed letters, and the prompt asks for 'a' / 'b'
    assert target_text(samples["a0"], tok) == "Spoken Content: hello world"


def test_moving_options_are_answered_with_their_text_when_it_fits(tmp_path, tiny_adapter):
    from amlib.metrics.parsing import parse_choice

    tok = tiny_adapter.processor.tokenizer
    scenes = ["office", "forest", "harbour", "cafe"]
    row = make_item(tmp_path, "c0", task="ASC", question="", choices=scenes, answer="C")
    long_names = [" ".join(["word"] * 9), "Oslo", "Lisbon", "Paris"]  # the first option is over 5 tokens
    too_long = make_item(tmp_path, "c1", task="SER", question="Which city?", choices=long_names, answer="B")
    write_manifest(tmp_path / "manifest.jsonl", [row, too_long])
    asc, ser = read_manifest(tmp_path)
    assert target_text(asc, tok) == "harbour"
    assert parse_choice(target_text(asc, tok), 4, asc.choices) == "C"  # the parser maps it back
    assert target_text(ser, tok) == "B"  # one option would not fit the answer budget: the letter


def test_encoded_example_has_loss_only_on_the_answer(tiny_adapter, dataset):
    sample = read_manifest(dataset)[0]
    enc = encode(tiny_adapter, sample)
    prompt = tiny_adapter.build_inputs(load_audio(sample.audio_path), TASKS["SGR"], sample.question, sample.choices)
    n_prompt = prompt.tensors["input_ids"].shape[1]
    assert (enc.labels[:n_prompt] == IGNORE).all()
    answer = tiny_adapter.processor.tokenizer.decode(enc.labels[n_prompt:])
    assert answer == "a<|im_end|>"
    batch = collate([enc, encode(tiny_adapter, read_manifest(dataset)[4])], tiny_adapter.pad_token_id)
    assert batch["input_ids"].shape[0] == 2 and batch["input_features"].shape[0] == 2
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()


def test_batches_are_seeded_and_cover_the_data():
    plan = batches(10, 4, steps=5, seed=1)
    assert plan == batches(10, 4, steps=5, seed=1) and plan != batches(10, 4, steps=5, seed=2)
    assert len(set(plan[0] + plan[1])) == 8  # the first two batches: 8 distinct items of one epoch
    assert batches(10, 4, steps=5, seed=1, start=3) == plan[3:]


def test_training_lowers_the_loss_and_writes_weights(dataset, tmp_path):
    from amlib.models import load_model

    adapter = load_model("tiny-random-qwen2-audio", seed=0)
    cfg = TrainConfig(steps=12, batch_size=4, lr=3e-3, warmup=1, lora=True, log_every=3, save_every=100,
                      workers=0, data=[str(dataset)])
    out = train(adapter, cfg, tmp_path / "run")
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [3, 6, 9, 12]
    assert log[-1]["loss"] < log[0]["loss"]
    assert (out / "projector.safetensors").is_file() and (out / "lora" / "adapter_model.safetensors").is_file()
    assert not (out / "checkpoint.pt").exists()
    assert json.loads((out / "train_config.json").read_text())["data_summary"]["ASR"]["items"] == 1


def test_validation_loss_is_logged_and_the_best_weights_kept(dataset, tmp_path):
    from amlib.models import load_model
    from amlib.reference.model import load_trained

    adapter = load_model("tiny-random-qwen2-audio", seed=0)
    cfg = TrainConfig(steps=6, batch_size=2, lr=3e-3, warmup=1, lora=True, log_every=3, save_every=100,
                      workers=0, data=[str(dataset)], val_data=[str(dataset)], eval_every=2)
    out = train(adapter, cfg, tmp_path / "run")
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    val = [r for r in log if "val_loss" in r]
    assert [r["step"] for r in val] == [2, 4, 6]
    for r in val:  # the task mean weighs each task once: here SGR (4 items) and ASR (1 item)
        assert r["val_task_mean"] == pytest.approx(sum(r["val_loss_per_task"].values()) / 2, abs=1e-3)
    best = min(val, key=lambda r: r["val_task_mean"])  # the default selection
    saved = json.loads((out / "best" / "step.json").read_text())
    assert (saved["step"], saved["selection"], saved["selected_on"]) == (best["step"], "task_mean", best["val_task_mean"])
    fresh = load_model("tiny-random-qwen2-audio", seed=0)  # the best weights load into a fresh model
    load_trained(fresh.model, out / "best" / "projector.safetensors", out / "best" / "lora")
    with pytest.raises(ValueError, match="selection"):
        train(adapter, TrainConfig(selection="lowest"), tmp_path / "bad")


def test_compressed_copy_validates_and_split_parts_rejoin(dataset, tmp_path):
    packed = compress_dataset(dataset, tmp_path / "packed")
    samples = read_manifest(packed)
    assert all(s.audio.endswith(".ogg") for s in samples)
    wave = load_audio(samples[0].audio_path)
    assert abs(len(wave) / 16000 - samples[0].duration_s) < 0.05
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 10)
    parts = split_file(blob, 1000, tmp_path / "parts")
    assert len(parts) == 3 and b"".join(p.read_bytes() for p in parts) == blob.read_bytes()


def test_a_repacked_dataset_encodes_only_the_clips_not_packed(dataset, tmp_path, monkeypatch):
    packed = compress_dataset(dataset, tmp_path / "packed")
    missing, kept = (s.audio_path for s in read_manifest(packed)[:2])
    kept_stamp = kept.stat().st_mtime_ns
    missing.unlink()  # as if the first run had been killed before this clip
    encoded = []
    real = pack.encode_opus
    monkeypatch.setattr(pack, "encode_opus", lambda src, dst, kbps: (encoded.append(dst), real(src, dst, kbps)))
    compress_dataset(dataset, tmp_path / "packed")
    assert len(encoded) == 1 and encoded[0].parent == missing.parent  # the one missing clip, under a temporary name
    assert missing.is_file() and kept.stat().st_mtime_ns == kept_stamp
    assert not list((tmp_path / "packed").rglob(".*"))  # no temporary file left


def test_shards_respect_their_budgets_and_keep_every_sample(dataset, tmp_path):
    packed = compress_dataset(dataset, tmp_path / "packed")
    sizes = [s.audio_path.stat().st_size for s in read_manifest(packed)]
    budget = max(sizes) + min(sizes)
    shards = shard_dataset(packed, tmp_path / "shards", [max(sizes), budget])
    got = [read_manifest(d) for d in shards]
    assert [s.id for part in got for s in part] == [s.id for s in read_manifest(packed)]
    assert sum(s.audio_path.stat().st_size for s in got[0]) <= max(sizes)
    assert all(sum(s.audio_path.stat().st_size for s in part) <= budget for part in got[1:])
    with pytest.raises(ValueError, match="more than a shard"):
        shard_dataset(packed, tmp_path / "bad", min(sizes) - 1)


def test_a_run_paused_by_its_time_limit_resumes_to_the_same_weights(dataset, tmp_path):
    from safetensors.torch import load_file

    from amlib.models import load_model

    def run(out, **kw):
        cfg = TrainConfig(steps=4, batch_size=2, lr=3e-3, warmup=1, lora=True, log_every=1, save_every=100,
                          workers=0, data=[str(dataset)], **kw)
        return train(load_model("tiny-random-qwen2-audio", seed=0), cfg, out)

    whole = run(tmp_path / "whole")
    paused = run(tmp_path / "parts", time_limit_s=0.0)  # stops after its first step
    assert (paused / "checkpoint.pt").is_file() and not (paused / "projector.safetensors").exists()
    while (paused / "checkpoint.pt").is_file():
        run(tmp_path / "parts", time_limit_s=0.0)
    steps = [json.loads(line)["step"] for line in (paused / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    a, b = load_file(whole / "projector.safetensors"), load_file(paused / "projector.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_warm_start_continues_from_saved_weights_and_records_them(dataset, tmp_path):
    from safetensors.torch import load_file

    from amlib.models import load_model
    from amlib.reference.model import trainable_parameters, warm_start

    cfg = dict(batch_size=2, lr=3e-3, warmup=1, lora=True, log_every=1, save_every=100, workers=0,
               data=[str(dataset)])
    first = train(load_model("tiny-random-qwen2-audio", seed=0), TrainConfig(steps=2, **cfg), tmp_path / "a")
    model = load_model("tiny-random-qwen2-audio", seed=0).model
    trainable_parameters(model, lora=True)
    revision = warm_start(model, first)
    saved = load_file(first / "projector.safetensors")
    assert torch.equal(model.multi_modal_projector.linear.weight, saved["linear.weight"])
    lora_b = [p for n, p in model.language_model.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # fresh LoRA B is zero; the saved one is not
    second = train(load_model("tiny-random-qwen2-audio", seed=0), TrainConfig(steps=1, init=str(first), **cfg),
                   tmp_path / "b")
    assert json.loads((second / "train_config.json").read_text())["init_revision"] == revision
    with pytest.raises(ValueError, match="r=8"):
        other = load_model("tiny-random-qwen2-audio", seed=0).model
        trainable_parameters(other, lora=True, r=4)
        warm_start(other, first)


def test_task_weighted_batches_follow_the_weights_and_cycle_each_task():
    from amlib.reference.train.loop import weighted_batches

    tasks = ["ASR"] * 10 + ["SED"] * 30 + ["MC"] * 5
    plan = weighted_batches(tasks, {"ASR": 3, "SED": 1}, batch_size=8, steps=200, seed=0)
    drawn = [tasks[i] for batch in plan for i in batch]
    assert "MC" not in drawn  # unnamed: never drawn
    assert 0.70 < drawn.count("ASR") / len(drawn) < 0.80  # 3 : 1
    asr = [i for batch in plan for i in batch if tasks[i] == "ASR"]
    assert sorted(asr[:10]) == list(range(10))  # one full pass over ASR's items before any repeats
    assert plan == weighted_batches(tasks, {"ASR": 3, "SED": 1}, batch_size=8, steps=200, seed=0)
    assert weighted_batches(tasks, {"ASR": 3, "SED": 1}, 8, 200, 0, start=5) == plan[5:]
    with pytest.raises(ValueError, match="SGR"):
        weighted_batches(tasks, {"SGR": 1}, 8, 2, 0)
    with pytest.raises(ValueError, match="no task"):
        weighted_batches(tasks, {"ASR": 0}, 8, 2, 0)


def test_training_with_task_weights_records_them(dataset, tmp_path):
    from amlib.cli import _task_weights
    from amlib.models import load_model

    assert _task_weights(["asr=0.6", "SGR=1"]) == {"ASR": 0.6, "SGR": 1.0}
    with pytest.raises(SystemExit, match="TASK=WEIGHT"):
        _task_weights(["ASR"])
    cfg = TrainConfig(steps=2, batch_size=2, warmup=1, log_every=1, save_every=100, workers=0,
                      data=[str(dataset)], task_weights={"ASR": 1.0})
    out = train(load_model("tiny-random-qwen2-audio", seed=0), cfg, tmp_path / "run")
    assert json.loads((out / "train_config.json").read_text())["task_weights"] == {"ASR": 1.0}


def _asr_clips(root, speakers=("v1", "v2"), per_speaker=6, seconds=2.0):
    rows = [make_item(root, f"{v}-{k}", task="ASR", seconds=seconds, answer=f"{v} says {k}.",
                      meta={"speaker": v}, split="train") for v in speakers for k in range(per_speaker)]
    write_manifest(root / "manifest.jsonl", rows)
    return read_manifest(root)


def test_joined_asr_examples_keep_one_speaker_their_order_and_the_length_bounds(tmp_path):
    from amlib.reference.train.joined_asr import plan_joined

    clips = _asr_clips(tmp_path)
    plan = plan_joined(clips, n=20, min_s=5.0, max_s=9.0, seed=3)
    assert plan == plan_joined(clips, n=20, min_s=5.0, max_s=9.0, seed=3)
    assert plan != plan_joined(clips, n=20, min_s=5.0, max_s=9.0, seed=4)
    for joined in plan:
        assert len({p.meta["speaker"] for p in joined.parts}) == 1
        assert len({p.id for p in joined.parts}) == len(joined.parts)  # no clip twice in one example
        assert 5.0 <= joined.duration_s <= 9.0
        sample = joined.sample()
        assert sample.task == "ASR" and sample.answer == " ".join(p.answer for p in joined.parts)
        wave = joined.audio()
        assert abs(wave.size / 16000 - joined.duration_s) < 0.01  # clips plus pauses, nothing cut


def test_joined_asr_needs_speakers_with_enough_audio(tmp_path):
    from amlib.reference.train.joined_asr import plan_joined

    clips = _asr_clips(tmp_path, per_speaker=2)
    with pytest.raises(ValueError, match="no speaker has 10.0 s"):
        plan_joined(clips, n=1, min_s=10.0, max_s=20.0, seed=0)
    clips[0].meta.pop("speaker")
    with pytest.raises(ValueError, match=f"{clips[0].id}.*speaker"):
        plan_joined(clips, n=1, min_s=1.0, max_s=2.0, seed=0)


def test_training_with_joined_asr_examples(tmp_path):
    from amlib.models import load_model

    _asr_clips(tmp_path / "data", per_speaker=3, seconds=1.0)
    cfg = TrainConfig(steps=2, batch_size=2, warmup=1, log_every=1, save_every=100, workers=0,
                      data=[str(tmp_path / "data")], joined_asr=[4, 2.0, 3.5], task_weights={"JOINED-ASR": 1.0},
                      val_data=[str(tmp_path / "data")], eval_every=2)
    out = train(load_model("tiny-random-qwen2-audio", seed=0), cfg, tmp_path / "run")
    summary = json.loads((out / "train_config.json").read_text())["data_summary"]
    assert summary["JOINED-ASR"]["items"] == 4 and summary["ASR"]["items"] == 6
    assert 2.0 <= summary["JOINED-ASR"]["min_s"] <= summary["JOINED-ASR"]["max_s"] <= 3.5
    val = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if "val_loss" in line]
    assert set(val[0]["val_loss_per_task"]) == {"ASR"}


def test_training_record_chains_the_stages_that_led_to_the_weights(tmp_path):
    from amlib.reference.model import training_record

    (tmp_path / "train_config.json").write_text(json.dumps({"steps": 20}))
    (tmp_path / "train_log_run7.jsonl").write_text(
        '{"step": 10, "loss": 2.0}\n{"step": 10, "val_loss": 1.5, "val_loss_per_task": {"ASR": 1.0, "SGR": 2.0}}\n')
    (tmp_path / "train_log.jsonl").write_text('{"step": 10, "loss": 1.0}\n{"step": 20, "loss": 0.5}\n')
    config, log = training_record(tmp_path)
    assert config == {"steps": 20}
    assert log["stage"].tolist() == ["run7", "run7", "final", "final"]
    assert log["total_step"].tolist() == [10, 10, 20, 30]
    assert log["val_ASR"].iloc[1] == 1.0 and log["val_SGR"].iloc[1] == 2.0 and log["val_ASR"].isna().iloc[2]


def test_training_record_continues_from_the_selected_step_of_a_stage(tmp_path):
    from amlib.reference.model import training_record

    (tmp_path / "train_config.json").write_text(json.dumps({"steps": 10}))
    (tmp_path / "train_log_run8.jsonl").write_text('{"step": 10, "loss": 2.0}\n{"step": 30, "loss": 1.0}\n')
    (tmp_path / "selected_step_run8.json").write_text('{"step": 10, "val_loss": 1.2}')
    (tmp_path / "train_log.jsonl").write_text('{"step": 10, "loss": 0.5}\n')
    _, log = training_record(tmp_path)
    assert log["total_step"].tolist() == [10, 30, 20]  # the last stage started from run 8's step 10
