import json

import numpy as np
import pytest

from amlib.data import read_manifest
from amlib.data.concat import Clip, concat_audio, loudness_normalize, pack_clips, repeat_to
from amlib.data.finalize import balance, finalize
from amlib.data.options import balanced_positions, make_options
from amlib.data.review import review_sample, write_review_sheet
from amlib.data.sources.common import (BuildRequest, LayoutError, interleave, round_robin, take_balanced,
                                       write_item, write_report)


def clips(*durations):
    return [Clip(f"c{i}", d) for i, d in enumerate(durations)]


def test_pack_respects_window_and_order():
    packing = pack_clips(clips(40, 40, 40, 40, 40, 40, 40), min_s=90, max_s=130)
    assert [[c.key for c in item] for item in packing.items] == [["c0", "c1", "c2"], ["c3", "c4", "c5"]]
    assert [(c.key, why) for c, why in packing.unplaced] == [("c6", "group shorter than 90 s")]


def test_pack_reports_clips_longer_than_max_and_gaps_count():
    packing = pack_clips(clips(50, 400, 50, 50), min_s=100, max_s=160, gap_s=5)
    assert [c.key for c, _ in packing.unplaced] == ["c1"]
    assert "longer than 160" in packing.unplaced[0][1]
    assert [[c.key for c in i] for i in packing.items] == [["c0", "c2", "c3"]]  # 150 + 2 gaps of 5 = 160


def test_pack_with_targets_spreads_durations_within_window():
    rng = np.random.default_rng(0)
    packing = pack_clips(clips(*[10] * 200), min_s=90, max_s=300, rng=rng)
    lengths = [sum(c.duration_s for c in item) for item in packing.items]
    assert all(90 <= n <= 300 for n in lengths) and len(set(lengths)) > 3


def test_concat_inserts_gaps_and_repeat_pads():
    wave = concat_audio([np.ones(10, np.float32), np.ones(5, np.float32)], gap_s=0.001, sample_rate=1000)
    assert wave.tolist() == [1.0] * 10 + [0.0] + [1.0] * 5
    assert len(repeat_to(np.ones(16000, np.float32), 2.5)) == 40000


def test_loudness_normalize_reaches_target_and_keeps_silence():
    import pyloudnorm

    t = np.arange(16000 * 3) / 16000
    wave = (0.01 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = loudness_normalize(wave, target_lufs=-23.0)
    assert abs(pyloudnorm.Meter(16000).integrated_loudness(out.astype(float)) + 23.0) < 0.5
    assert np.array_equal(loudness_normalize(np.zeros(16000 * 2, np.float32)), np.zeros(16000 * 2))


def test_balanced_positions_and_options():
    rng = np.random.default_rng(1)
    positions = balanced_positions(20, 4, rng)
    assert sorted(np.bincount(positions).tolist()) == [5, 5, 5, 5]
    choices, letter = make_options("jazz", ["rock", "jazz", "pop", "blues", "metal"], 4, 2, rng)
    assert choices[2] == "jazz" and letter == "C" and len(set(choices)) == 4
    with pytest.raises(ValueError, match="need 3 distractors"):
        make_options("jazz", ["jazz", "rock"], 4, 0, rng)


def make_rows(tmp_path, labels):
    req = BuildRequest(out=tmp_path)
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    return [write_item(req, "SGR", i, wave, question="q", choices=["male", "female"], answer="AB"[lab == "female"],
                       source="test", meta={"label": lab}) for i, lab in enumerate(labels)]


def test_balance_equalises_classes_and_finalize_writes_everything(tmp_path):
    rows = make_rows(tmp_path, ["male"] * 5 + ["female"] * 3)
    kept, removed = balance(rows, per_task=None, seed=0)
    assert sorted(r["meta"]["label"] for r in kept) == ["female"] * 3 + ["male"] * 3 and removed == {"SGR": 2}
    stats = finalize(tmp_path, rows, per_task=4, seed=0)
    samples = read_manifest(tmp_path)
    assert len(samples) == 4 and stats["per_task"]["SGR"]["items"] == 4
    assert len(list((tmp_path / "audio").glob("*.wav"))) == 4  # left-out audio removed
    assert json.loads((tmp_path / "stats.json").read_text())["removed_by_balancing"] == {"SGR": 4}
    assert (tmp_path / "review.html").is_file()


def test_review_sample_takes_ten_percent_or_at_least_twenty(tmp_path):
    rows = make_rows(tmp_path, ["male", "female"] * 15)
    finalize(tmp_path, rows, balance_classes=False, review=False)
    samples = read_manifest(tmp_path)
    assert len(review_sample(samples, minimum=20)) == 20
    assert len(review_sample(samples, fraction=0.5, minimum=5)) == 15
    page = write_review_sheet(tmp_path).read_text()
    assert page.count("<audio") == 20 and "src='audio/SGR-test-" in page


def test_write_item_requires_label_and_request_checks_layout(tmp_path):
    req = BuildRequest(out=tmp_path, root=tmp_path)
    with pytest.raises(ValueError, match="meta\\['label'\\]"):
        write_item(req, "MC", 0, np.zeros(16000, np.float32), question="", choices=list("abcd"), answer="A",
                   source="x", meta={})
    with pytest.raises(LayoutError, match="expected 'genres'"):
        req.require("genres")
    assert req.rng("a").integers(1000) == req.rng("a").integers(1000)
    assert req.rng("a").integers(10**9) != req.rng("b").integers(10**9)


def test_free_text_tasks_balance_by_answer_letter_and_asr_not_at_all(tmp_path):
    req = BuildRequest(out=tmp_path)
    wave = np.zeros(16000, np.float32)
    scr = [write_item(req, "SCR", i, wave, question="q", choices=[f"o{i}{j}" for j in range(4)], answer="ABCD"[i % 4],
                      source="t", meta={"label": f"o{i}{i % 4}"}) for i in range(8)]
    kept, _ = balance(scr, per_task=8, seed=0)
    assert len(kept) == 8  # eight distinct answer texts, but two items per letter
    asr = [write_item(req, "ASR", 100 + i, wave, question="", choices=[], answer=f"words {i}", source="t", meta={})
           for i in range(5)]
    assert len(balance(asr, per_task=3, seed=0)[0]) == 3
    with pytest.raises(ValueError, match="below its 2 classes"):
        balance(make_rows(tmp_path, ["male", "female"]), per_task=1)


def test_write_report_merges_tasks_and_warns_only_on_watched_problems(tmp_path, caplog):
    req = BuildRequest(out=tmp_path)
    clean = {"task": "SGR", "short": {"male": {}, "female": {}}, "missing": []}
    with caplog.at_level("WARNING", logger="amlib.data.sources.demo"):
        write_report(req, "demo", clean, watch=("short", "missing"))
        assert not caplog.records  # per-class dicts with nothing in them are no problem
        write_report(req, "demo", {"task": "SAR", "short": {"young": {"too short": 2}}, "missing": []},
                     watch=("short", "missing"), summary=lambda r: f"short {r['short']}")
    path = tmp_path / "build_report.json"
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("amlib.data.sources.demo", f"demo SAR: short {{'young': {{'too short': 2}}}}; see {path}")]
    report = json.loads(path.read_text())
    assert list(report) == ["SGR", "SAR"] and report["SGR"] == clean  # one entry per task, merged
    write_report(req, "demo", {"task": "SGR", "rows": 3}, extra={"skipped_rows": {}})
    assert json.loads(path.read_text())["SGR"] == {"task": "SGR", "rows": 3}


def test_take_balanced_round_robin_and_interleave():
    rng = np.random.default_rng(0)
    planned = {"b": [("g1", 1), ("g1", 2), ("g2", 3)], "a": [("g1", 4), ("g2", 5), ("g3", 6), ("g3", 7)], "c": []}
    chosen, report = take_balanced(planned, 5, lambda items, n: round_robin(items, n, rng))
    assert list(chosen) == ["a", "b"] and report == {"candidates_per_class": {"b": 3, "a": 4}, "quota_per_class": 2,
                                                      "kept_per_class": 2, "classes_short_of_quota": {}}
    assert all(len({g for g, _ in items}) == 2 for items in chosen.values())  # two groups before any second item
    assert list(take_balanced(planned, 4, lambda items, n: items[:n], classes=("b", "a"))[0]) == ["b", "a"]
    with pytest.raises(ValueError, match="nothing here"):
        take_balanced({"a": []}, 4, lambda items, n: items, nothing="nothing here")
    listed = []
    assert interleave([[1, 2, 3], [4], [5, 6]], 5) == [1, 4, 5, 2, 6]
    # queues are listed lazily: the third is never reached for 2 entries
    assert interleave(["x", "yy", "zzz"], 2, lambda q: listed.append(q) or list(q)) == ["x", "y"]
    assert listed == ["x", "yy"]
    assert interleave([[1], [2, 3]], 10) == [1, 2, 3]
