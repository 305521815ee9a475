import json

import pytest

from amlib.data import read_manifest, write_manifest
from amlib.report import score_table
from amlib.runner import RunConfig, evaluate, read_predictions, select
from conftest import make_item


@pytest.fixture()
def samples(tmp_path):
    rows = [make_item(tmp_path, f"sgr{i}", seconds=1.5, answer="AB"[i % 2]) for i in range(3)]
    rows.append(make_item(tmp_path, "asr0", task="ASR", seconds=1.0))
    return read_manifest(write_manifest(tmp_path / "manifest.jsonl", rows))


def test_rows_carry_results_and_provenance(tiny_adapter, samples, tmp_path):
    rows = evaluate(tiny_adapter, samples, tmp_path / "pred.jsonl", RunConfig(seed=3), progress=False)
    assert [r["id"] for r in rows] == [s.id for s in samples]
    sgr = rows[0]
    assert sgr["error"] is None and isinstance(sgr["prediction"], str)
    assert sgr["audio_tokens"] == tiny_adapter.expected_audio_tokens(1.5)
    assert sgr["prefill_s"] > 0 and sgr["decode_s"] >= 0
    prov = sgr["provenance"]
    for key in ("model", "model_revision", "method", "ratio", "layer", "press", "seed",
                "prompt_version", "parser_version", "amlib_version", "device"):
        assert key in prov
    assert prov["seed"] == 3 and prov["model"] == "tiny-random-qwen2-audio"


def test_resume_skips_finished_ids(tiny_adapter, samples, tmp_path):
    out = tmp_path / "pred.jsonl"
    evaluate(tiny_adapter, samples[:2], out, progress=False)
    first = out.read_text().splitlines()
    rows = evaluate(tiny_adapter, samples, out, progress=False)
    lines = out.read_text().splitlines()
    assert lines[:2] == first  # nothing already computed is rewritten
    assert len(lines) == len(samples) and len(rows) == len(samples)
    evaluate(tiny_adapter, samples, out, progress=False)
    assert len(out.read_text().splitlines()) == len(samples)


def test_resume_refuses_other_settings(tiny_adapter, samples, tmp_path):
    out = tmp_path / "pred.jsonl"
    evaluate(tiny_adapter, samples[:1], out, RunConfig(seed=0), progress=False)
    with pytest.raises(ValueError, match="seed=0.*seed=1"):
        evaluate(tiny_adapter, samples, out, RunConfig(seed=1), progress=False)


def test_a_failing_sample_is_recorded_and_the_run_goes_on(tiny_adapter, samples, tmp_path):
    samples[1].audio_path.write_bytes(b"broken")
    out = tmp_path / "pred.jsonl"
    rows = {r["id"]: r for r in evaluate(tiny_adapter, samples, out, progress=False)}
    assert "cannot read audio" in rows["sgr1"]["error"] and rows["sgr1"]["correct"] is False
    assert rows["sgr2"]["error"] is None
    table = score_table(list(rows.values()))
    assert table.loc["SGR", "errors"] == 1 and table.loc["SGR", "n"] == 3
    # retry_errors re-runs only the failed id, appending a row that supersedes the old one
    rows = evaluate(tiny_adapter, samples, out, retry_errors=True, progress=False)
    assert len(out.read_text().splitlines()) == len(samples) + 1
    assert len(read_predictions(out)) == len(samples)


def test_truncated_prediction_file_is_named(tmp_path):
    out = tmp_path / "pred.jsonl"
    out.write_text(json.dumps({"id": "x"}) + "\n{\"id\": ")
    with pytest.raises(ValueError, match="pred.jsonl:2"):
        read_predictions(out)


def test_select_per_task_limit_and_unknown_task(samples):
    assert [s.id for s in select(samples, ["SGR"], limit=2)] == ["sgr0", "sgr1"]
    with pytest.raises(ValueError, match="no samples of task"):
        select(samples, ["MC"])


def test_select_limits_per_task_by_name(samples):
    assert [s.id for s in select(samples, None, limit={"SGR": 1})] == ["sgr0", "asr0"]  # ASR unlimited
    assert [s.id for s in select(samples, None, limit={"ASR": 0, "*": 2})] == ["sgr0", "sgr1"]
    with pytest.raises(ValueError, match="unknown task.*XYZ"):
        select(samples, None, limit={"XYZ": 1})


def test_resume_refuses_another_dtype(tiny_adapter, samples, tmp_path):
    out = tmp_path / "pred.jsonl"
    evaluate(tiny_adapter, samples[:1], out, progress=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    rows[0]["provenance"]["dtype"] = "bfloat16"  # as if an earlier run was in bfloat16
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="dtype='bfloat16'.*dtype='float32'"):
        evaluate(tiny_adapter, samples, out, progress=False)


def test_find_runs_tells_configurations_apart_by_provenance(tiny_adapter, samples, tmp_path):
    from amlib.report import find_runs

    for config in (RunConfig(), RunConfig(method="frame", ratio=0.5), RunConfig(method="random", ratio=0.5),
                   RunConfig(press="knorm", ratio=0.5), RunConfig(seed=1)):
        evaluate(tiny_adapter, samples[:1], tmp_path / config.file_name(tiny_adapter.model_id), config,
                 progress=False)
    label = lambda rows: (rows[0]["provenance"]["method"], rows[0]["provenance"]["press"], rows[0]["provenance"]["seed"])
    model = tiny_adapter.model_id
    assert [label(r) for r in find_runs(tmp_path, model, "pruning", seed=0)] == [
        ("vanilla", None, 0), ("frame", None, 0), ("random", None, 0)]
    assert [label(r) for r in find_runs(tmp_path, model, "eviction", seed=0)] == [("vanilla", None, 0), ("vanilla", "knorm", 0)]
    assert [label(r) for r in find_runs(tmp_path, model, "vanilla")] == [("vanilla", None, 0), ("vanilla", None, 1)]
    assert find_runs(tmp_path, "another-model", "pruning") == []
    with pytest.raises(FileNotFoundError, match="no predictions folder"):
        find_runs(tmp_path / "missing", model)


# --- inputs: fingerprints, bad audio ----------------------------------------------------------

import dataclasses  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from amlib.data.manifest import input_fingerprint  # noqa: E402


def test_rows_carry_choices_and_input_fingerprint(tiny_adapter, samples, tmp_path):
    rows = evaluate(tiny_adapter, samples[:1], tmp_path / "pred.jsonl", progress=False)
    assert rows[0]["choices"] == ["male", "female"]
    assert rows[0]["input_fingerprint"] == input_fingerprint(samples[0])


def test_resume_refuses_a_file_made_from_other_audio(tiny_adapter, samples, tmp_path):
    out = tmp_path / "pred.jsonl"
    evaluate(tiny_adapter, samples[:2], out, progress=False)
    sf.write(samples[1].audio_path, np.zeros(24000, dtype=np.float32), 16000, subtype="PCM_16")
    with pytest.raises(ValueError, match=r"pred.jsonl: row sgr1 was made from other inputs.*sgr1\.wav"
                                         r".*audio_sha256 \(\w+ in the file, \w+ now\)"):
        evaluate(tiny_adapter, samples, out, progress=False)


def test_resume_refuses_a_file_made_from_another_manifest_row(tiny_adapter, samples, tmp_path):
    out = tmp_path / "pred.jsonl"
    evaluate(tiny_adapter, samples[:2], out, progress=False)
    changed = [samples[0], dataclasses.replace(samples[1], answer="A" if samples[1].answer == "B" else "B")]
    with pytest.raises(ValueError, match=r"row sgr1 .*answer_sha256.*differ") as err:
        evaluate(tiny_adapter, changed, out, progress=False)
    assert "question_sha256" not in str(err.value) and "audio_sha256" not in str(err.value)
    changed = [dataclasses.replace(samples[0], question="Who speaks?"), samples[1]]
    with pytest.raises(ValueError, match=r"row sgr0 .*question_sha256"):
        evaluate(tiny_adapter, changed, out, progress=False)
    evaluate(tiny_adapter, samples, out, progress=False)  # the original inputs still resume


def test_resume_refuses_rows_without_a_fingerprint(tiny_adapter, samples, tmp_path):
    out = tmp_path / "pred.jsonl"
    evaluate(tiny_adapter, samples[:1], out, progress=False)
    row = json.loads(out.read_text())
    del row["input_fingerprint"]
    out.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="row sgr0 has no input_fingerprint"):
        evaluate(tiny_adapter, samples, out, progress=False)


@pytest.mark.parametrize("kind", ["empty", "nan"])
def test_empty_or_nan_audio_becomes_an_error_row_naming_the_file(tiny_adapter, samples, tmp_path, kind):
    # written after the manifest was read (the manifest's duration check would catch "empty")
    wave = np.zeros(0 if kind == "empty" else 24000, dtype=np.float32)
    if kind == "nan":
        wave[100] = np.nan
    sf.write(samples[1].audio_path, wave, 16000, subtype="FLOAT")
    rows = {r["id"]: r for r in evaluate(tiny_adapter, samples, tmp_path / "pred.jsonl", progress=False)}
    why = "no audio samples" if kind == "empty" else "non-finite sample"
    assert "AudioError" in rows["sgr1"]["error"] and "sgr1.wav" in rows["sgr1"]["error"]
    assert why in rows["sgr1"]["error"]
    assert rows["sgr1"]["prediction"] is None and rows["sgr1"]["correct"] is False
    assert rows["sgr0"]["error"] is None and rows["sgr2"]["error"] is None
    table = score_table(list(rows.values()))
    assert table.loc["SGR", "errors"] == 1 and table.loc["SGR", "n"] == 3 and table.loc["SGR", "unparsed"] >= 1


def test_score_table_names_its_parser_and_rescoring_uses_it(tiny_adapter, samples, tmp_path):
    rows = evaluate(tiny_adapter, samples, tmp_path / "pred.jsonl", progress=False)
    for row, text in zip(rows, ["A cat barks", "b", "The answer is a dog"]):
        row["prediction"] = text  # answers on which the two parsers differ
    ours, paper = score_table(rows, parser="ours"), score_table(rows, parser="paper")
    assert ours.loc["SGR", "parser"] == "ours" and paper.loc["SGR", "parser"] == "paper"
    assert ours.loc["SGR", "unparsed"] == 2 and paper.loc["SGR", "unparsed"] == 0
    assert ours.loc["SGR", "f1_over"] == "label text" and "Bayesian" in ours.loc["SGR", "ci_method"]
    assert ours.loc["ASR", "war_capped"] >= ours.loc["ASR", "score"]
    with pytest.raises(ValueError, match="unknown parser"):
        score_table(rows, parser="official")


def test_built_in_models_take_the_requested_dtype():
    from amlib.models import load_model

    adapter = load_model("tiny-random-qwen2-audio", dtype="bfloat16")
    assert adapter.provenance()["dtype"] == "bfloat16"
    assert load_model("tiny-random-qwen2-audio").provenance()["dtype"] == "float32"
    with pytest.raises(ValueError, match="unknown dtype"):
        load_model("tiny-random-qwen2-audio", dtype="bf17")


def test_answer_budget_is_the_tasks_unless_the_adapter_caps_it(tiny_adapter, samples, tmp_path):
    from amlib.models.tiny_registry import TINY_ANSWER_TOKENS
    from amlib.runner import answer_budget
    from amlib.tasks import TASKS

    rows = {r["id"]: r for r in evaluate(tiny_adapter, samples, tmp_path / "pred.jsonl", progress=False)}
    # a random model never stops: its ASR answer fills the capped budget, and the row says which budget
    assert rows["asr0"]["new_tokens"] == rows["asr0"]["max_new_tokens"] == TINY_ANSWER_TOKENS < TASKS["ASR"].max_new_tokens
    assert rows["sgr0"]["max_new_tokens"] == TASKS["SGR"].max_new_tokens  # below the cap: the task's own

    class Uncapped:  # real checkpoints and API models: the paper's budgets
        pass

    assert answer_budget(Uncapped(), TASKS["ASR"]) == TASKS["ASR"].max_new_tokens


def test_evaluate_sample_gives_the_row_evaluate_writes(tiny_adapter, samples, tmp_path):
    """The runner's public per-sample API (what amlib.sweep uses) against a whole run's row: equal
    but for timings; the configuration is honoured (vanilla gives another row); failures are rows."""
    from amlib.runner import RunFile, evaluate_sample, prepare_inputs

    timing = ("prefill_s", "decode_s", "peak_memory_mb", "memory_kind")
    same = lambda row: {k: v for k, v in row.items() if k not in timing}
    frame = RunConfig(method="frame", ratio=0.5, layer=1)
    [whole] = evaluate(tiny_adapter, samples[:1], tmp_path / "run.jsonl", frame, progress=False, batch_size=1)
    prov = RunFile.open(tiny_adapter, samples[:1], tmp_path / "other.jsonl", frame).provenance
    one = evaluate_sample(tiny_adapter, samples[0], frame, prov)
    assert same(one) == same(whole) and one["kept_tokens"] < one["prompt_tokens"]
    prepared = prepare_inputs(tiny_adapter, samples[0])
    assert same(evaluate_sample(tiny_adapter, samples[0], frame, prov, prepared)) == same(whole)
    vanilla = evaluate_sample(tiny_adapter, samples[0], RunConfig(), prov, prepared)
    assert "kept_tokens" not in vanilla and same(vanilla) != same(whole)  # a config ignored would pass above
    samples[1].audio_path.write_bytes(b"broken")
    broken = evaluate_sample(tiny_adapter, samples[1], frame, prov)
    assert "cannot read audio" in broken["error"] and broken["provenance"] == prov
