"""The duration ablation (paper Table 8): segment timelines recorded by the builders, short cuts of
long items (amlib.data.short) and the duration table (amlib.report.duration_table)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from amlib.data import read_manifest
from amlib.data.audio import SAMPLE_RATE, write_audio
from amlib.data.manifest import Sample, write_manifest
from amlib.data.short import JOIN_GAP_S, MARGIN_S, SHORT_SUFFIX, ShortCutError, short_counterparts
from amlib.data.sources.common import BuildRequest
from amlib.data.timeline import timeline
from amlib.report import duration_table, paper_duration_table
from amlib.tasks import get_task

# offline tasks built for these tests: (items, min_s, max_s), small but longer than the cuts below
OFFLINE = {"ASR": (4, 8, 12), "SER": (2, 14, 20), "SED": (5, 8, 12), "SD": (2, 12, 18), "SGR": (2, 8, 12),
           "SCR": (1, 24, 34), "MC": (5, 8, 12)}
CUT_S = 6.0  # cuts of the small items: short enough that every item is really cut
SILENT_GAPS = ("ASR", "SER", "SCR", "SD", "MC")  # pauses between segments are digital silence


def samples_int16(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="int16")[0]


def bounds(segment: dict) -> tuple[int, int]:
    return int(round(segment["start_s"] * SAMPLE_RATE)), int(round(segment["end_s"] * SAMPLE_RATE))


@pytest.fixture(scope="module")
def offline(tmp_path_factory) -> list[Sample]:
    """One small test-split build of the offline tasks above (timelines as the builders record them)."""
    from amlib.data.offline.suite import build

    out = tmp_path_factory.mktemp("offline")
    rows = []
    for task, (n, low, high) in OFFLINE.items():
        rows += build(BuildRequest(out=out, tasks=(task,), per_task=n, min_seconds=low, max_seconds=high, seed=0))
    write_manifest(out / "manifest.jsonl", rows)
    return read_manifest(out)


@pytest.fixture(scope="module")
def cuts(offline, tmp_path_factory) -> dict[str, Sample]:
    """long id -> short counterpart of every offline item but SCR (cut to CUT_S)."""
    long_items = [s for s in offline if s.task != "SCR"]
    return {s.meta["long_id"]: s for s in short_counterparts(long_items, tmp_path_factory.mktemp("short"), CUT_S)}


# ------------------------------------------------------------------ timelines recorded by the builders


def test_offline_timelines_lie_inside_the_audio_and_match_it(offline):
    assert {s.task for s in offline} == set(OFFLINE)
    for s in offline:
        line = s.meta["timeline"]
        wave = samples_int16(s.audio_path)
        spans = [bounds(seg) for seg in line["segments"]]
        assert line["layout"] == ("overlay" if s.task == "SED" else "sequence"), s.id
        assert spans and all(0 <= a < b <= wave.size for a, b in spans), s.id
        if line["layout"] == "sequence":
            assert all(b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:])), s.id
        assert all(np.any(wave[a:b]) for a, b in spans), s.id  # every segment holds sound
        if s.task in SILENT_GAPS:  # and between segments there is none: the bounds are exact
            assert not any(np.any(wave[b1:a2]) for (_, b1), (a2, _) in zip(spans, spans[1:])), s.id
            assert not np.any(wave[:spans[0][0]]) and not np.any(wave[spans[-1][1]:]), s.id


def test_offline_timelines_carry_texts_and_answer_segments(offline):
    for s in offline:
        line = s.meta["timeline"]
        texts = [seg.get("text") for seg in line["segments"]]
        if s.task == "ASR":
            assert " ".join(texts) == s.answer and not line["answer"], s.id
        if s.task in ("SCR", "SER"):
            assert " ".join(texts) == s.meta["transcript"], s.id
        if s.task == "SER":  # the one sentence that names the answer
            assert len(line["answer"]) == 1 and s.meta["label"] in texts[line["answer"][0]], s.id
        if s.task == "SCR":  # the story's key sentences, first and last included
            assert len(line["answer"]) >= 4 and line["answer"][0] == 0 and line["answer"][-1] == len(texts) - 1
        if s.task == "SED":  # every event is the target class
            assert line["answer"] == list(range(len(line["segments"]))), s.id
        if s.task == "SD":
            fake = [k for k, seg in enumerate(line["segments"]) if seg["fake"]]
            assert line["answer"] == fake and bool(fake) == (s.meta["label"] == "fake"), s.id
        if s.task == "SGR":  # bounds scaled by sox tempo's length ratio
            assert line["time_scaled"] == pytest.approx(1 / s.meta["tempo"], rel=0.03), s.id


def test_sed_timeline_marks_the_loud_events(offline):
    for s in (x for x in offline if x.task == "SED"):
        wave = samples_int16(s.audio_path).astype(float)
        inside = np.zeros(wave.size, bool)
        for seg in s.meta["timeline"]["segments"]:
            a, b = bounds(seg)
            inside[a:b] = True
        rms = lambda x: np.sqrt(np.mean(x ** 2))  # noqa: E731
        assert 20 * np.log10(rms(wave[inside]) / rms(wave[~inside])) > 6, s.id  # events 14-20 dB above the bed


# ------------------------------------------------------------------ short cuts of the offline items


def test_cuts_are_short_valid_and_linked(offline, cuts):
    long_items = {s.id: s for s in offline if s.task != "SCR"}
    assert set(cuts) == set(long_items)
    for long_id, short in cuts.items():
        long = long_items[long_id]
        assert short.id == long_id + SHORT_SUFFIX and short.task == long.task and short.source == long.source
        assert short.duration_s < CUT_S and short.duration_s < long.duration_s
        assert sf.info(str(short.audio_path)).duration <= CUT_S - MARGIN_S + 1e-9
        assert (short.question, short.choices) == (long.question, long.choices)
        if long.task != "ASR":
            assert short.answer == long.answer and short.meta["label"] == long.meta["label"]


def test_cut_audio_is_the_long_items_own_samples(offline, cuts):
    long_items = {s.id: s for s in offline}
    for long_id, short in cuts.items():
        long_wave, short_wave = samples_int16(long_items[long_id].audio_path), samples_int16(short.audio_path)
        (start, end), = short.meta["cut"]["ranges_s"]
        a, b = int(round(start * SAMPLE_RATE)), int(round(end * SAMPLE_RATE))
        assert np.array_equal(short_wave, long_wave[a:b]), long_id


def test_answer_segment_is_kept_whole(offline, cuts):
    long_items = {s.id: s for s in offline}
    for long_id, short in cuts.items():
        line, kept = long_items[long_id].meta["timeline"], short.meta["timeline"]
        (start, end), = short.meta["cut"]["ranges_s"]
        if long_items[long_id].task in ("SER", "SED") or line["answer"]:
            anchor = line["segments"][line["answer"][0]]
            assert start <= anchor["start_s"] and anchor["end_s"] <= end + 1e-6, long_id
            assert kept["answer"] and not any(kept["segments"][k].get("cropped") for k in kept["answer"][:1]), long_id
        if line["layout"] == "sequence" and short.meta["cut"]["segments"]:  # whole segments: cut at their bounds
            first, last = short.meta["cut"]["segments"][0], short.meta["cut"]["segments"][-1]
            edges = (bounds(line["segments"][first])[0], bounds(line["segments"][last])[1])
            assert bounds({"start_s": start, "end_s": end}) == edges, long_id


def test_asr_cut_reference_is_exactly_its_segments(offline, cuts):
    long_items = {s.id: s for s in offline}
    asr = [(long_items[i], s) for i, s in cuts.items() if s.task == "ASR"]
    assert len(asr) == 4
    for long, short in asr:
        kept = short.meta["cut"]["segments"]
        assert kept == list(range(kept[0], kept[-1] + 1)) and kept[0] == 0  # from the beginning, whole
        texts = [long.meta["timeline"]["segments"][k]["text"] for k in kept]
        assert short.answer == " ".join(texts) == " ".join(seg["text"] for seg in short.meta["timeline"]["segments"])
        assert long.answer.startswith(short.answer) and short.answer != long.answer


def test_scr_cut_keeps_every_story_sentence(offline, tmp_path):
    (scr,) = [s for s in offline if s.task == "SCR"]
    line = scr.meta["timeline"]
    keys = [line["segments"][k] for k in line["answer"]]
    joined_s = sum(k["end_s"] - k["start_s"] for k in keys) + JOIN_GAP_S * (len(keys) - 1)
    stretch_s = keys[-1]["end_s"] - keys[0]["start_s"]
    assert joined_s + 1.0 < stretch_s < 30.0
    (whole,) = short_counterparts([scr], tmp_path / "stretch", stretch_s + 0.5)  # the stretch fits: contiguous
    assert set(line["answer"]) <= set(whole.meta["cut"]["segments"]) and len(whole.meta["cut"]["ranges_s"]) == 1
    (short,) = short_counterparts([scr], tmp_path / "joined", joined_s + 0.5)  # it does not: key sentences only
    assert short.meta["cut"]["segments"] == line["answer"] and short.duration_s < joined_s + 0.5
    assert len(short.meta["cut"]["ranges_s"]) == len(keys) and short.answer == scr.answer
    assert [seg["text"] for seg in short.meta["timeline"]["segments"]] == [k["text"] for k in keys]
    with pytest.raises(ShortCutError, match=f"{scr.id}.*answer-carrying segments"):
        short_counterparts([scr], tmp_path / "tiny", joined_s - 0.5)
    assert not (tmp_path / "tiny").exists()  # planned before anything is written


def test_cuts_are_deterministic(offline, cuts, tmp_path):
    again = short_counterparts([s for s in offline if s.task != "SCR"], tmp_path, CUT_S)
    first_dir = next(iter(cuts.values())).audio_path.parent.parent
    assert (tmp_path / "manifest.jsonl").read_bytes() == (first_dir / "manifest.jsonl").read_bytes()
    for s in again:
        assert s.audio_path.read_bytes() == cuts[s.meta["long_id"]].audio_path.read_bytes()


# ------------------------------------------------------------------ the rules on hand-made items


def hand_item(root: Path, task: str, spans_s: list[tuple[float, float]], total_s: float, layout: str = "sequence",
              carrying=(), texts=None, **fields) -> Sample:
    """An item whose audio is a tone inside each span and silence elsewhere, with its timeline."""
    wave = np.zeros(int(total_s * SAMPLE_RATE), np.float32)
    spans = [(int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)) for a, b in spans_s]
    for a, b in spans:
        wave[a:b] = 0.1 * np.sin(np.arange(b - a) / 5)
    audio = f"audio/{task}.wav"
    write_audio(root / audio, wave)
    spec = get_task(task)
    choices = list(spec.fixed_choices or ([] if not spec.is_choice else ["one", "two", "three", "four"][:spec.n_options]))
    row = {"id": f"{task}-hand", "task": task, "audio": audio, "duration_s": total_s, "question": "q?",
           "choices": choices, "answer": "words" if not spec.is_choice else spec.letters[0], "source": "test",
           "split": "test", "meta": {"timeline": timeline(spans, layout, texts=texts, answer=carrying)}}
    row.update(fields)
    write_manifest(root / "manifest.jsonl", [row])
    return read_manifest(root)[0]


def test_sequence_cut_grows_around_the_anchor_by_whole_segments(tmp_path):
    spans = [(k * 4.0, k * 4.0 + 3.0) for k in range(10)]  # 3 s segments, 1 s pauses, 40 s
    item = hand_item(tmp_path / "in", "SER", spans, 40.0, carrying=[6])
    (short,) = short_counterparts([item], tmp_path / "out", 12.0)
    assert short.meta["cut"]["segments"] == [5, 6, 7]  # next, previous, next would make 15 s
    assert short.meta["cut"]["ranges_s"] == [[20.0, 31.0]] and short.duration_s == 11.0


def test_global_cut_takes_the_first_segments_and_crops_only_a_long_one(tmp_path):
    item = hand_item(tmp_path / "sgr", "SGR", [(1.0, 4.0), (5.0, 9.0), (10.0, 20.0)], 20.0)
    (short,) = short_counterparts([item], tmp_path / "sgr-out", 10.0)
    assert short.meta["cut"]["segments"] == [0, 1] and short.meta["cut"]["ranges_s"] == [[1.0, 9.0]]
    music = hand_item(tmp_path / "mc", "MC", [(0.0, 35.0), (35.5, 60.0)], 60.0)
    (short,) = short_counterparts([music], tmp_path / "mc-out", 30.0)
    assert short.meta["cut"]["segments"] == [] and "cropped" in short.meta["cut"]["rule"]
    (start, end), = short.meta["cut"]["ranges_s"]
    assert end - start == pytest.approx(30.0 - MARGIN_S) and (start + end) / 2 == pytest.approx(17.5)
    assert short.meta["timeline"]["segments"][0]["cropped"]
    words = hand_item(tmp_path / "asr", "ASR", [(0.0, 35.0)], 36.0, texts=["a long sentence"])
    with pytest.raises(ShortCutError, match="ASR-hand.*lose words"):
        short_counterparts([words], tmp_path / "asr-out", 30.0)


def test_overlay_window_is_centred_on_the_event_and_stays_inside(tmp_path):
    item = hand_item(tmp_path / "a", "SED", [(3.0, 5.0), (50.0, 52.0)], 60.0, layout="overlay", carrying=[0, 1])
    (short,) = short_counterparts([item], tmp_path / "a-out", 20.0)
    assert short.meta["cut"]["ranges_s"] == [[0.0, 19.99]]  # centred on 4 s would start before 0
    late = hand_item(tmp_path / "b", "SED", [(5.0, 6.0), (30.0, 32.0)], 60.0, layout="overlay", carrying=[1])
    (short,) = short_counterparts([late], tmp_path / "b-out", 20.0)
    (start, end), = short.meta["cut"]["ranges_s"]
    assert (start + end) / 2 == pytest.approx(31.0) and short.meta["timeline"]["answer"] == [0]
    end_item = hand_item(tmp_path / "d", "SED", [(57.0, 59.0)], 60.0, layout="overlay", carrying=[0])
    (short,) = short_counterparts([end_item], tmp_path / "d-out", 20.0)
    assert short.meta["cut"]["ranges_s"] == [[40.01, 60.0]]  # moved back inside the item
    scene = hand_item(tmp_path / "c", "ASC", [(25.0, 27.0)], 60.0, layout="overlay")
    (short,) = short_counterparts([scene], tmp_path / "c-out", 20.0)
    assert short.meta["cut"]["ranges_s"] == [[0.0, 19.99]] and short.meta["timeline"]["segments"] == []


def test_fake_sd_item_is_cut_around_a_fake_segment(tmp_path):
    spans = [(k * 4.0, k * 4.0 + 3.0) for k in range(10)]
    item = hand_item(tmp_path / "in", "SD", spans, 40.0, carrying=[8], choices=["fake", "real"], answer="A")
    (short,) = short_counterparts([item], tmp_path / "out", 8.0)
    assert 8 in short.meta["cut"]["segments"] and short.answer == "A"
    real = hand_item(tmp_path / "real", "SD", spans, 40.0, carrying=[8], choices=["fake", "real"], answer="B")
    with pytest.raises(ShortCutError, match="SD-hand.*labelled real"):
        short_counterparts([real], tmp_path / "real-out", 8.0)


# ------------------------------------------------------------------ bad input


def test_missing_timeline_names_every_item_and_the_fix(offline, tmp_path):
    old = [Sample(**{**s.to_json(), "meta": {k: v for k, v in s.meta.items() if k != "timeline"}}, root=s.root)
           for s in offline[:3]]
    with pytest.raises(ShortCutError, match=r"3 item\(s\) have no meta\['timeline'\]") as err:
        short_counterparts(old + offline[3:5], tmp_path)
    assert all(s.id in str(err.value) for s in old) and "build it again" in str(err.value)
    assert not (tmp_path / "manifest.jsonl").exists()  # nothing written, nothing skipped


def test_malformed_timelines_are_refused_naming_the_item(tmp_path):
    beyond = hand_item(tmp_path / "a", "SGR", [(1.0, 4.0)], 5.0)
    beyond.meta["timeline"]["segments"][0]["end_s"] = 9.0
    with pytest.raises(ShortCutError, match="SGR-hand.*ends at 9.0 s, after the audio's 5.0 s"):
        short_counterparts([beyond], tmp_path / "a-out")
    no_answer = hand_item(tmp_path / "b", "SER", [(1.0, 4.0)], 5.0)
    with pytest.raises(ShortCutError, match="SER-hand.*no answer-carrying segment"):
        short_counterparts([no_answer], tmp_path / "b-out")
    no_text = hand_item(tmp_path / "c", "ASR", [(1.0, 4.0)], 5.0)
    with pytest.raises(ShortCutError, match="ASR-hand.*lacks the text"):
        short_counterparts([no_text], tmp_path / "c-out")


# ------------------------------------------------------------------ real-source builders


def test_real_source_timelines_follow_the_clips(tmp_path):
    from test_sources_part1 import desed_tree, librispeech_tree, request
    from test_sources_part2 import had_tree

    from amlib.data.sources import desed, had, librispeech

    librispeech_tree(tmp_path / "ls")
    for row in librispeech.build(request(tmp_path / "a", tmp_path / "ls")):
        line = row["meta"]["timeline"]
        assert [(s["start_s"], s["end_s"]) for s in line["segments"]][:2] == [(0.0, 3.0), (3.0, 6.0)]
        assert " ".join(s["text"] for s in line["segments"]) == row["answer"]
    _, events = desed_tree(tmp_path / "desed")
    for row in desed.build(request(tmp_path / "b", tmp_path / "desed", split="validation", per_task=20)):
        holding = [k for k, clip in enumerate(row["meta"]["clips"]) if row["meta"]["label"] in events[clip]]
        assert holding and row["meta"]["timeline"]["answer"] == holding
    for row in had.build(request(tmp_path / "c", had_tree(tmp_path / "had"))):
        line, fake = row["meta"]["timeline"], row["meta"]["label"] == "fake"
        assert len(line["segments"]) == len(row["meta"]["utterances"])
        assert all(s["fake"] == fake for s in line["segments"]) and bool(line["answer"]) == fake


def test_real_source_items_can_be_cut(tmp_path):
    from test_sources_part1 import librispeech_tree, request

    from amlib.data.sources import librispeech

    librispeech_tree(tmp_path / "ls")
    req = request(tmp_path / "a", tmp_path / "ls")
    write_manifest(req.out / "manifest.jsonl", librispeech.build(req))
    for short in short_counterparts(read_manifest(req.out), tmp_path / "short", 7.0):
        assert short.duration_s == 6.0 and short.answer.count("WORDS OF") == 2


# ------------------------------------------------------------------ the duration table


def choice_rows(task: str, n: int, correct: int, suffix: str = "") -> list[dict]:
    spec = get_task(task)
    return [{"id": f"{task}-{i}{suffix}", "task": task, "answer": "A", "choices": list(spec.fixed_choices),
             "prediction": "A" if i < correct else "B", "error": None} for i in range(n)]


def test_duration_table_scores_both_sets_beside_the_paper():
    long_rows = choice_rows("SGR", 8, 8) + [{"id": "ASR-0", "task": "ASR", "answer": "one two three four",
                                              "prediction": "one two three four", "error": None}]
    short_rows = choice_rows("SGR", 8, 4, SHORT_SUFFIX) + [{"id": "ASR-0" + SHORT_SUFFIX, "task": "ASR",
                                                            "answer": "one two", "prediction": "one", "error": None}]
    table = duration_table(long_rows, short_rows)
    assert list(table.index) == ["ASR", "SGR", "Avg"]
    assert table.loc["SGR", "long"] == 100.0 and table.loc["SGR", "short"] < 100.0
    assert table.loc["SGR", "long_ci_low"] < 100.0 and table.loc["SGR", "short_ci_low"] < table.loc["SGR", "short"]
    assert table.loc["ASR", "long"] == 100.0 and table.loc["ASR", "short"] == 50.0  # WAR
    assert table.loc["SGR", "n"] == 8 and table.loc["ASR", "n"] == 1 and table.loc["Avg", "n"] == 9
    assert table.loc["SGR", "short_minus_long"] == table.loc["SGR", "short"] - 100.0
    assert table.loc["Avg", "long"] == pytest.approx(table.loc[["ASR", "SGR"], "long"].mean())
    paper = paper_duration_table()
    assert table.loc["SGR", "Qwen2.5-Omni-3B long"] == paper.loc["SGR", "Qwen2.5-Omni-3B long"] == 97.2
    assert table.loc["Avg", "Qwen2.5-Omni-3B short"] == pytest.approx((96.9 + 92.6) / 2)


def test_duration_table_refuses_unpaired_rows():
    with pytest.raises(ValueError, match="unpaired: SGR-7"):
        duration_table(choice_rows("SGR", 8, 8), choice_rows("SGR", 7, 4, SHORT_SUFFIX))


def test_short_manifest_reads_back_with_the_offline_version_check(cuts):
    first = next(iter(cuts.values()))
    rows = [json.loads(line) for line in (first.audio_path.parent.parent / "manifest.jsonl").read_text().splitlines()]
    assert all(r["meta"]["generator_version"] for r in rows if r["source"] == "offline")
