"""The results overview page's pieces: the predictions-folder scan, Table 3 / Figure 8 / Table 6 / Table 2
tables, silent copies and the blind baseline's report."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from amlib.data import load_audio, read_manifest, write_manifest
from amlib.data.blind import silent_copy
from amlib.report import (blind_flags, blind_report, category_averages, coverage_table, find_runs,
                          overview_scores, paper_table, random_baseline, random_baseline_beside_paper,
                          read_vanilla_runs, run_files, runnable_table, table3_overview)
from amlib.tasks import CATEGORY_TASKS, TASK_ORDER
from tests.conftest import make_item

TASKS = list(TASK_ORDER)


def prediction_row(id_, task, answer, prediction, choices, method="vanilla", seed=0, fingerprint=None):
    return {"id": id_, "task": task, "answer": answer, "prediction": prediction, "choices": choices,
            "error": None, "audio_tokens": 100, "input_fingerprint": fingerprint,
            "provenance": {"model": "m", "method": method, "press": None, "seed": seed, "device": "cpu",
                           "dtype": "float32"}}


def mc_rows(n, predict):
    """n MC rows, answers cycling A-D; `predict(i, answer)` gives the model's text."""
    return [prediction_row(f"MC-{i}", "MC", "ABCD"[i % 4], predict(i, "ABCD"[i % 4]), ["rock", "jazz", "pop", "folk"])
            for i in range(n)]


def _named_vanilla(folder):
    """A wrong finder, for the test below: vanilla = the file name says so (the old way)."""
    return sorted(p.name for p in folder.glob("*__vanilla__seed*.jsonl"))


def test_runs_are_found_by_provenance_not_by_file_name(tmp_path):
    def rows(model, method="vanilla", press=None, seed=0, ratio=None):
        return [{**prediction_row(f"MC-{i}", "MC", "A", "A", ["a", "b", "c", "d"], method, seed),
                 "provenance": {"model": model, "method": method, "press": press, "seed": seed, "ratio": ratio,
                                "layer": 2 if method != "vanilla" else None, "protocol": None}} for i in range(2)]

    files = {"qwen__vanilla__seed0.jsonl": rows("org/qwen"), "ref-model__vanilla__seed0.jsonl": rows("ref-model"),
             "qwen__vanilla__seed1.jsonl": rows("org/qwen", seed=1),
             "qwen__frame-r0.9-K2__seed0.jsonl": rows("org/qwen", "frame", ratio=0.9),
             "qwen__knorm-r0.5__seed0.jsonl": rows("org/qwen", press="knorm", ratio=0.5),
             # renamed by hand: the name says vanilla, the rows say frame 0.5
             "renamed__vanilla__seed0.jsonl": rows("org/qwen", "frame", ratio=0.5),
             # a vanilla run whose file name follows no pattern
             "my baseline.jsonl": rows("other-model")}
    for name, content in files.items():
        write_jsonl(tmp_path / name, content)
    (tmp_path / "notes.jsonl").write_text("")
    (tmp_path / "shards").mkdir()
    write_jsonl(tmp_path / "shards" / "x__vanilla__seed0.rank0of2.jsonl", rows("x"))

    names = lambda found: [p.name for p, _ in found]
    # expected by hand from the rows above: vanilla seed 0 runs, ordered by model name
    assert names(run_files(tmp_path, kind="vanilla", seed=0)) == [
        "my baseline.jsonl", "qwen__vanilla__seed0.jsonl", "ref-model__vanilla__seed0.jsonl"]
    assert names(run_files(tmp_path, "Qwen", kind="vanilla")) == []  # names compare exactly
    assert names(run_files(tmp_path, "/models/qwen", kind="pruning", seed=0)) == [
        "qwen__vanilla__seed0.jsonl", "renamed__vanilla__seed0.jsonl", "qwen__frame-r0.9-K2__seed0.jsonl"]
    assert names(run_files(tmp_path, "qwen", kind="eviction", seed=0)) == [
        "qwen__vanilla__seed0.jsonl", "qwen__knorm-r0.5__seed0.jsonl"]
    assert [len(r) for r in find_runs(tmp_path, "qwen", kind="vanilla")] == [2, 2]  # seeds 0 and 1
    runs = read_vanilla_runs(tmp_path, seed=None)
    assert sorted(runs) == ["other-model seed0", "qwen seed0", "qwen seed1", "ref-model seed0"]
    # the wrong, name-based finder takes the renamed frame run for a vanilla one and misses "my baseline"
    assert "renamed__vanilla__seed0.jsonl" in _named_vanilla(tmp_path)
    assert _named_vanilla(tmp_path) != sorted(names(run_files(tmp_path, kind="vanilla")))

    write_jsonl(tmp_path / "mixed.jsonl", rows("org/qwen") + [{**r, "id": r["id"] + "-b"} for r in rows("org/qwen", "frame", ratio=0.9)])
    with pytest.raises(ValueError, match=r"mixed\.jsonl: rows of several configurations"):
        run_files(tmp_path)
    with pytest.raises(ValueError, match="kind must be one of"):
        run_files(tmp_path, kind="vanila")
    with pytest.raises(FileNotFoundError, match="no-such"):
        run_files(tmp_path / "no-such")
    (tmp_path / "mixed.jsonl").unlink()
    write_jsonl(tmp_path / "copy.jsonl", rows("ref-model"))
    with pytest.raises(ValueError, match=r"copy\.jsonl and .*ref-model__vanilla__seed0\.jsonl hold runs of one configuration"):
        run_files(tmp_path)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_runs_keep_this_data_only_and_refuse_other_inputs_or_configurations(tmp_path):
    from amlib.runner import sample_fields

    data = tmp_path / "data"
    write_manifest(data / "manifest.jsonl", [make_item(data, f"SGR-{i}", answer="AB"[i % 2]) for i in range(3)])
    samples = read_manifest(data)
    rows = [{**sample_fields(s), "prediction": s.answer, "parsed": s.answer, "error": None,
             "provenance": {"model": "m", "method": "vanilla", "press": None, "seed": 0}} for s in samples]
    out = tmp_path / "results"
    out.mkdir()
    of_model = lambda model, part: [{**r, "provenance": {**r["provenance"], "model": model}} for r in part]
    write_jsonl(out / "a__vanilla__seed0.jsonl", of_model("a", rows))
    write_jsonl(out / "b__vanilla__seed0.jsonl", of_model("b", rows[:2] + [{**rows[2], "id": "elsewhere"}]))
    write_jsonl(out / "c__vanilla__seed0.jsonl", of_model("c", [{**rows[0], "id": "elsewhere"}]))  # nothing of this data

    runs = read_vanilla_runs(out, samples[:2])
    assert {k: [r["id"] for r in v] for k, v in runs.items()} == {"a": ["SGR-0", "SGR-1"], "b": ["SGR-0", "SGR-1"]}
    assert len(read_vanilla_runs(out)["c"]) == 1  # without samples every row is kept

    other = {**rows[1], "input_fingerprint": {**rows[1]["input_fingerprint"], "audio_sha256": "0" * 64}}
    write_jsonl(out / "b__vanilla__seed0.jsonl", of_model("b", [rows[0], other]))
    with pytest.raises(ValueError, match=r"b__vanilla__seed0\.jsonl.*SGR-1.*other inputs"):
        read_vanilla_runs(out, samples)
    write_jsonl(out / "b__vanilla__seed0.jsonl", of_model("b", [{**rows[0], "provenance": {**rows[0]["provenance"], "method": "frame"}}]))
    assert sorted(read_vanilla_runs(out, samples)) == ["a"]  # b's rows say frame: no vanilla run, whatever its name


def test_overview_scores_and_table3_layout_on_hand_made_rows():
    right = mc_rows(8, lambda i, a: a)  # every answer right: macro-F1 100
    sgr = [prediction_row(f"SGR-{i}", "SGR", "AB"[i % 2], "The answer is A", ["male", "female"]) for i in range(4)]
    half = mc_rows(8, lambda i, a: a if i < 4 else "E")  # items 4-7 unparsed
    scores = overview_scores({"model-x": right + sgr, "model-y": half}, n_resamples=200)
    x = scores[scores["run"] == "model-x"].set_index("task")
    assert list(x.index) == ["MC", "SGR"]
    assert x.loc["MC", "score"] == 100 and x.loc["MC", "n"] == 8 and x.loc["MC", "ci_low"] < 100
    assert x.loc["MC", "category"] == "Audio Classification"
    # always "A" on balanced two-class items: male F1 = 2/3, female F1 = 0
    assert x.loc["SGR", "score"] == pytest.approx(100 / 3)
    assert scores.set_index(["run", "task"]).loc[("model-y", "MC"), "unparsed"] == 4

    table = table3_overview(scores, "our data")
    paper = paper_table("table3_baseline")
    assert list(table.index[:2]) == ["model-x", "model-y"] and len(table) == 2 + len(paper)
    assert list(table.columns) == ["group", "data", "parser", *TASKS, "Avg", "n_tasks"]
    assert table.loc["model-x", "data"] == "our data" and table.loc["model-x", "parser"] == "released parser and scoring"
    # Table 3 uses the released parser and scoring: the SGR script reads "the answer is a" as nothing
    # (no "a."/"a)", no option text), so no SGR item is parsed and the script scores 0; model-y's
    # unparsed "E" answers leave the denominator, its 4 right ones score 100
    assert table.loc["model-x", "SGR"] == 0.0 and table.loc["model-y", "MC"] == 100.0
    assert table.loc["model-x", "Avg"] == pytest.approx((100 + 0) / 2)
    assert table.loc["model-x", "n_tasks"] == 2 and np.isnan(table.loc["model-x", "SER"])
    assert table.loc["Qwen2.5-Omni-3B", "MC"] == 97.4 and table.loc["Qwen2.5-Omni-3B", "parser"] == "released parser and scoring"
    # Avg is recomputed from the task columns; it agrees with the paper's printed Avg (a transcription check)
    printed = paper.set_index("model")["Avg"]
    assert (table.loc[printed.index, "Avg"] - printed).abs().max() < 0.06
    assert table.loc["Human Evaluation", "n_tasks"] == 9  # no ASR


def test_category_groups_and_averages_by_hand():
    assert CATEGORY_TASKS == {"Speech Content Extraction": ("SER", "SCR", "ASR"),
                              "Audio Classification": ("SED", "MC", "ASC"),
                              "Speaker Information Modeling": ("SD", "ER", "SAR", "SGR")}  # Table 3's caption
    table = pd.DataFrame([dict(zip(TASKS, range(10, 110, 10))), {"SER": 40.0, "SCR": 80.0, "MC": 30.0}],
                         index=["ten", "partial"]).assign(group="this run")
    avg = category_averages(table).set_index(["model", "category"])
    assert avg.loc[("ten", "Speech Content Extraction"), "average"] == pytest.approx(20)  # (10+20+30)/3
    assert avg.loc[("ten", "Audio Classification"), "average"] == pytest.approx(50)  # (40+50+60)/3
    assert avg.loc[("ten", "Speaker Information Modeling"), "average"] == pytest.approx(85)  # (70+80+90+100)/4
    assert avg.loc[("partial", "Speech Content Extraction"), "average"] == pytest.approx(60)
    assert avg.loc[("partial", "Speech Content Extraction"), "tasks"] == "SER SCR"
    assert np.isnan(avg.loc[("partial", "Speaker Information Modeling"), "average"])
    # the paper's text (§5): the strongest model reaches 83.5 on audio classification (Qwen2.5-Omni-7B)
    paper = category_averages(paper_table("table3_baseline").set_index("model")).set_index(["model", "category"])
    assert paper.loc[("Qwen2.5-Omni-7B", "Audio Classification"), "average"] == pytest.approx(83.53, abs=0.01)


def test_random_baseline_is_matched_to_the_papers_row_with_the_same_labels():
    samples = [SimpleNamespace(id=f"ASC-{i}", task="ASC", answer="ABCD"[i % 4], choices=["a", "b", "c", "d"])
               for i in range(40)]
    table = random_baseline_beside_paper(random_baseline(samples, guessers=20, seed=0))
    assert len(table) == 1 and table.loc[0, "paper_acc"] == pytest.approx(24.96)  # not the 10-label row


def test_coverage_and_runnable_tables_come_from_the_registries(tmp_path):
    write_manifest(tmp_path / "manifest.jsonl", [make_item(tmp_path, "SGR-0", seconds=2.0)])
    coverage = coverage_table(read_manifest(tmp_path)).set_index("capability")
    assert list(coverage.index) == paper_table("table2_comparison")["capability"].tolist()
    assert coverage.loc["Long Audio Understanding", "this_run"] == "no"  # a 2 s item
    assert coverage.loc["Contain deepfake audio", "this_run"] == "no"
    assert coverage.loc["Speaker attribute coverage", "this_run"] == "partly"  # SGR without SAR
    assert coverage.loc["Full Domain Coverage", "evidence"] == "speech: SGR; sound: none; music: none"

    runnable = runnable_table()
    tasks = runnable[runnable["kind"] == "task"]
    assert tasks["name"].tolist() == TASKS and tasks["in_amlib"].all()
    paper_models = runnable[(runnable["kind"] == "model") & runnable["in_paper"]]
    assert len(paper_models) == 16 and paper_models["in_amlib"].all()  # every Table 3 model has an adapter
    pruning = runnable[runnable["kind"] == "token pruning"].set_index("name")
    assert set(pruning.index[pruning["in_paper"]]) == {"random", "fastv", "dart", "frame"}
    presses = runnable[runnable["kind"] == "KV-cache press"].set_index("name")
    assert set(presses.index[presses["in_paper"]]) == {"random", "knorm", "tova", "snapkv"}
    assert not presses.loc["kvzip", "in_amlib"] and presses.loc["kvzip", "how"].startswith("cannot run")


def test_silent_copy_keeps_length_ids_and_questions_with_zero_audio(tmp_path):
    data = tmp_path / "data"
    rows = [make_item(data, "SGR-0", seconds=2.5), make_item(data, "ASR/1", task="ASR", seconds=1.5)]
    stereo = np.random.default_rng(0).uniform(-0.5, 0.5, size=(22050 * 2, 2)).astype(np.float32)
    sf.write(str(data / "audio/stereo.wav"), stereo, 22050, subtype="PCM_16")  # other rate, two channels
    rows.append(make_item(data, "SGR-2", seconds=2.0, audio="audio/stereo.wav", answer="B"))
    write_manifest(data / "manifest.jsonl", rows)
    samples = read_manifest(data)

    blind = silent_copy(samples, tmp_path / "blind")
    assert [b.id for b in blind] == [s.id for s in samples]
    assert read_manifest(tmp_path / "blind") == blind  # a valid manifest on disk
    for original, copy in zip(samples, blind):
        a, b = sf.info(str(original.audio_path)), sf.info(str(copy.audio_path))
        assert (b.frames, b.samplerate, b.channels) == (a.frames, a.samplerate, a.channels)
        assert not sf.read(str(copy.audio_path))[0].any()
        assert len(load_audio(copy.audio_path)) == len(load_audio(original.audio_path))  # what the model gets
        assert (copy.task, copy.question, copy.choices, copy.answer, copy.duration_s) == \
            (original.task, original.question, original.choices, original.answer, original.duration_s)
        assert copy.meta["blind_of"] == str(original.audio_path.resolve())
    before = (tmp_path / "blind" / blind[0].audio).read_bytes()
    silent_copy(samples, tmp_path / "blind")
    assert (tmp_path / "blind" / blind[0].audio).read_bytes() == before  # same bytes: a resumed run matches
    with pytest.raises(ValueError, match="overwrite the original"):
        silent_copy(samples, data)


def test_blind_flags_mark_blind_scores_above_chance_beyond_their_interval():
    table = pd.DataFrame({"chance": [25.0, 25.0, 25.0, np.nan], "blind_ci_low": [30.0, 25.0, 10.0, -20.0],
                          "blind_ci_high": [70.0, 60.0, 40.0, 5.0], "audio_ci_low": [80.0, 50.0, 30.0, 40.0]},
                         index=["SCR", "MC", "SGR", "ASR"])
    flags = blind_flags(table)
    assert flags["blind_above_chance"].tolist() == [True, False, False, None]  # equal to chance is not above
    assert flags["audio_above_blind"].tolist() == [True, False, False, True]


def test_blind_report_pairs_items_and_flags_a_task_answered_without_audio():
    def samples_of(rows):
        return [SimpleNamespace(id=r["id"], task=r["task"], answer=r["answer"], choices=r["choices"]) for r in rows]

    audio = mc_rows(24, lambda i, a: a)
    audio += [prediction_row(f"SGR-{i}", "SGR", "AB"[i % 2], "AB"[i % 2], ["male", "female"]) for i in range(24)]
    audio += [prediction_row(f"ASR-{i}", "ASR", "hello world", "hello world", []) for i in range(3)]
    blind = mc_rows(24, lambda i, a: a)  # the MC answers are found without audio: a shortcut
    blind += [prediction_row(f"SGR-{i}", "SGR", "AB"[i % 2], "A", ["male", "female"]) for i in range(24)]
    blind += [prediction_row(f"ASR-{i}", "ASR", "hello world", "silence", []) for i in range(3)]
    audio.append(prediction_row("MC-extra", "MC", "A", "A", ["rock", "jazz", "pop", "folk"]))  # not in the blind run
    report = blind_report(audio, blind, samples_of(blind), seed=0, guessers=50, n_resamples=200)
    assert list(report.index) == ["ASR", "MC", "SGR"] and (report["n"] == [3, 24, 24]).all()
    assert report.loc["MC", "blind_above_chance"] is True and report.loc["MC", "blind_score"] == 100
    assert report.loc["SGR", "blind_above_chance"] is False and report.loc["SGR", "audio_above_blind"] is True
    assert report.loc["ASR", "blind_above_chance"] is None and np.isnan(report.loc["ASR", "chance"])
    assert report.loc["MC", "chance"] == pytest.approx(25, abs=5)
    assert (report["same_audio_tokens_pct"] == 100).all()

    with pytest.raises(ValueError, match="no row in the audio run"):
        blind_report(audio[:10], blind, samples_of(blind))
    other_model = [{**r, "provenance": {**r["provenance"], "model": "other"}} for r in blind]
    with pytest.raises(ValueError, match=r"model \['m'\] vs \['other'\]"):
        blind_report(audio, other_model, samples_of(blind))
    bf16 = [{**r, "provenance": {**r["provenance"], "dtype": "bfloat16"}} for r in blind]
    with pytest.warns(UserWarning, match="float32.*bfloat16"):
        blind_report(audio, bf16, samples_of(blind), guessers=5, n_resamples=50)
    changed = [dict(r) for r in blind]
    for r, a in zip(changed, audio):
        r["input_fingerprint"], a["input_fingerprint"] = {"answer_sha256": "x"}, {"answer_sha256": "y"}
    with pytest.raises(ValueError, match="'MC-0'.*answer_sha256"):
        blind_report(audio, changed, samples_of(changed))


def test_a_page_reading_some_tasks_never_rebuilds_a_folder_for_fewer(tmp_path, monkeypatch):
    import amlib.data.build as build

    asked = []

    def fake_build(source, out, **settings):  # records what would be built; writes a stand-in manifest
        asked.append(settings["tasks"])
        (out / "manifest.jsonl").write_text("{}\n")

    monkeypatch.setattr(build, "build_dataset", fake_build)
    out = tmp_path / "data"
    out.mkdir()
    settings = dict(per_task=5, min_seconds=90.0, max_seconds=95.0, seed=0, split="test")
    build.ensure_dataset_for_tasks(out, "gtzan", ["MC"], **settings)
    build.ensure_dataset_for_tasks(out, "gtzan", ["mc"], **settings)  # reused
    build.ensure_dataset_for_tasks(out, "gtzan", ["SGR"], **settings)  # MC kept, SGR added
    build.ensure_dataset_for_tasks(out, "gtzan", ["MC"], **settings)  # reused: built for more
    build.ensure_dataset_for_tasks(out, "gtzan", None, **settings)  # every task
    build.ensure_dataset_for_tasks(out, "gtzan", ["SGR"], **settings)  # reused
    assert asked == [["MC"], ["MC", "SGR"], None]
