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
