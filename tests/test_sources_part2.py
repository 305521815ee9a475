"""Real-source builders (TAU, HAD, VESUS, VoxCeleb, released AudioMarathon) on small fixture trees
written in each source's published layout, with short synthetic audio and a 5-7 s item window."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from amlib.data import read_manifest
from amlib.data.audio import SAMPLE_RATE
from amlib.data.sources.common import BuildRequest, LayoutError
from amlib.tasks import AGE_GROUPS, get_task

WINDOW = {"min_seconds": 5.0, "max_seconds": 7.0}


def tone(path: Path, seconds: float = 2.0, sr: int = SAMPLE_RATE, freq: float = 220.0, channels: int = 1) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.1 * np.sin(2 * np.pi * freq * t)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([wave] * channels, axis=1) if channels > 1 else wave, sr)
    return path


def request(tmp_path: Path, root: Path, per_task: int = 4, **kw) -> BuildRequest:
    return BuildRequest(out=tmp_path / "out", root=root, per_task=per_task, **{**WINDOW, **kw})


def check_choice_row(row: dict) -> str:
    """The answer letter points at meta['label']; returns the label."""
    spec = get_task(row["task"])
    assert row["choices"][spec.letters.index(row["answer"])] == row["meta"]["label"]
    assert len(row["choices"]) == spec.n_options and len(set(row["choices"])) == spec.n_options
    return row["meta"]["label"]


# ---------------------------------------------------------------- TAU Urban Acoustic Scenes 2019


def tau_tree(root: Path, scenes=("airport", "tram"), locations=(0, 1), segments=4) -> Path:
    """TAU-urban-acoustic-scenes-2019-development/{meta.csv,audio/} with 2 s stereo segments."""
    folder = root / "TAU-urban-acoustic-scenes-2019-development"
    lines = ["filename\tscene_label\tidentifier\tsource_label"]
    for s, scene in enumerate(scenes):
        for loc in locations:
            for seg in range(segments):
                name = f"audio/{scene}-barcelona-{loc}-{seg}-a.wav"
                tone(folder / name, 2.0, freq=200 + 50 * s + 10 * seg, channels=2)
                lines.append(f"{name}\t{scene}\tbarcelona-{loc}\ta")
    (folder / "meta.csv").write_text("\n".join(lines) + "\n")
    return root


def test_tau_groups_one_location_in_segment_order(tmp_path):
    from amlib.data.sources import tau2019

    rows = tau2019.build(request(tmp_path, tau_tree(tmp_path / "tau")))
    assert len(rows) == 4 and Counter(r["meta"]["label"] for r in rows) == {"Airport": 2, "Travelling by a tram": 2}
    for row in rows:
        label = check_choice_row(row)
        segments = row["meta"]["segments"]
        # greedy fill to <= 7 s: three 2 s segments of one location, in segment order
        assert [Path(s).name.split("-")[3] for s in segments] == ["0", "1", "2"]
        assert len({Path(s).name.rsplit("-", 2)[0] for s in segments}) == 1
        assert tau2019.SCENES[row["meta"]["scene_label"]] == label
        assert row["duration_s"] == pytest.approx(6.0, abs=0.01)
    report = json.loads((tmp_path / "out" / "build_report.json").read_text())["ASC"]
    assert report["unplaced_segments"] == {"group shorter than 5 s": 4}  # the 4th segment of each location


def test_tau_wrong_layout_names_what_is_missing(tmp_path):
    from amlib.data.sources import tau2019

    with pytest.raises(LayoutError, match="meta.csv"):
        tau2019.build(request(tmp_path, tmp_path))
    root = tau_tree(tmp_path / "tau", scenes=("park",), locations=(0,), segments=1)
    meta = root / "TAU-urban-acoustic-scenes-2019-development" / "meta.csv"
    meta.write_text(meta.read_text().replace("scene_label", "scene"))
    with pytest.raises(LayoutError, match=r"missing columns \['scene_label'\]"):
        tau2019.build(request(tmp_path, root))


# ---------------------------------------------------------------- HAD (Half-truth Audio Detection)


def had_tree(root: Path, n_real: int = 6, n_fake: int = 6, split: str = "test") -> Path:
    """HAD_<split>/HAD_<split>_label.txt + HAD_<split>/<split>/*.wav, 2 s utterances."""
    folder = root / f"HAD_{split}"
    lines = []
    for kind, n in (("real", n_real), ("fake", n_fake)):
        for i in range(1, n + 1):
            name = f"HAD_{split}_{kind}_{i:08d}"
            tone(folder / split / f"{name}.wav", 2.0, freq=300 + 20 * i)
            segments = "0.00-2.00-T" if kind == "real" else "0.00-0.80-T/0.80-1.30-F/1.30-2.00-T"
            lines.append(f"{name} {segments} {1 if kind == 'real' else 0}")
    (folder / f"HAD_{split}_label.txt").write_text("\n".join(lines) + "\n")
    return root


def test_had_items_hold_only_real_or_only_fake_utterances(tmp_path):
    from amlib.data.sources import had

    rows = had.build(request(tmp_path, had_tree(tmp_path / "had")))
    assert Counter(r["meta"]["label"] for r in rows) == {"real": 2, "fake": 2}
    for row in rows:
        label = check_choice_row(row)
        assert sorted(row["choices"]) == ["fake", "real"] and row["question"] == had.QUESTION
        assert all(f"_{label}_" in u for u in row["meta"]["utterances"])
        assert row["meta"]["fake_utterances"] == (3 if label == "fake" else 0)
        assert row["meta"]["fake_seconds"] == pytest.approx(1.5 if label == "fake" else 0.0)
        assert not row["meta"]["padded_by_repetition"] and 5.0 <= row["duration_s"] <= 7.0
    # answer letters balanced within each class
    assert Counter((r["meta"]["label"], r["answer"]) for r in rows) == {(c, a): 1 for c in ("real", "fake") for a in "AB"}


def test_had_pads_by_repetition_only_when_asked(tmp_path):
    from amlib.data.sources import had

    root = had_tree(tmp_path / "had", n_real=4)  # real: one 6 s item + a 2 s tail
    plain = had.build(request(tmp_path, root))
    assert Counter(r["meta"]["label"] for r in plain) == {"real": 1, "fake": 1}
    report = json.loads((tmp_path / "out" / "build_report.json").read_text())["SD"]
    assert report["unplaced_utterances"]["real"] == {"group shorter than 5 s": 1}
    assert report["classes_short_of_quota"] == {"real": 1}
    padded = had.build(request(tmp_path, root, seed=1), pad_by_repetition=True)
    tail = [r for r in padded if r["meta"]["padded_by_repetition"]]
    assert len(tail) == 1 and tail[0]["meta"]["unpadded_seconds"] == pytest.approx(2.0)
    assert tail[0]["duration_s"] == pytest.approx(5.0, abs=0.01)


def test_had_bad_label_line_and_missing_audio_are_named(tmp_path):
    from amlib.data.sources import had

    with pytest.raises(LayoutError, match="HAD_test/HAD_test_label.txt"):
        had.build(request(tmp_path, tmp_path))
    root = had_tree(tmp_path / "had", n_real=1, n_fake=1)
    labels = root / "HAD_test" / "HAD_test_label.txt"
    labels.write_text(labels.read_text().replace("0.80-1.30-F", "0.80-1.30-X"))
    with pytest.raises(ValueError, match=r"HAD_test_label.txt:2: segment '0.80-1.30-X'"):
        had.build(request(tmp_path, root))
    labels.write_text("HAD_test_real_00000009 0.00-2.00-T 1\n")
    with pytest.raises(LayoutError, match="1 labelled utterances have no audio"):
        had.build(request(tmp_path, root))


# ---------------------------------------------------------------- VESUS


def vesus_tree(root: Path, actors=("Actor01", "Actor02"), emotions=("Angry", "Sad"), phrases=3) -> Path:
    """VESUS/Audio/<actor>/<Emotion>/<n>.wav, 2 s clips."""
    for a, actor in enumerate(actors):
        for e, emotion in enumerate(emotions):
            for n in range(1, phrases + 1):
                tone(root / "VESUS" / "Audio" / actor / emotion / f"{n}.wav", 2.0, freq=150 + 40 * e + 5 * n + a)
    return root


def test_vesus_items_are_one_actor_one_emotion(tmp_path):
    from amlib.data.sources import vesus

    rows = vesus.build(request(tmp_path, vesus_tree(tmp_path / "vesus")))
    assert Counter(r["meta"]["label"] for r in rows) == {"angry": 2, "sad": 2}
    assert {r["meta"]["actor"] for r in rows} == {"Actor01", "Actor02"}  # round-robin over actors
    for row in rows:
        label = check_choice_row(row)
        assert set(row["choices"]) <= set(vesus.EMOTIONS) and row["question"] == vesus.QUESTION
        clips = row["meta"]["clips"]
        assert {Path(c).parts[1:3] for c in clips} == {(row["meta"]["actor"], label.capitalize())}
        assert [Path(c).stem for c in clips] == ["1", "2", "3"]


def test_vesus_agreement_filter_and_layout_errors(tmp_path):
    from amlib.data.sources import vesus

    root = vesus_tree(tmp_path / "vesus")
    ratings = ["file,agreement"] + [f"Audio/{a}/{e}/{n}.wav,{0.2 if (a, e, n) == ('Actor01', 'Sad', 2) else 0.9}"
                                    for a in ("Actor01", "Actor02") for e in ("Angry", "Sad") for n in (1, 2, 3)]
    (root / "VESUS" / "ratings.csv").write_text("\n".join(ratings) + "\n")
    rows = vesus.build(request(tmp_path, root, per_task=8), min_agreement=0.5)
    assert all("Actor01/Sad/2.wav" not in c for r in rows for c in r["meta"]["clips"])
    report = json.loads((tmp_path / "out" / "build_report.json").read_text())["ER"]
    assert report["clips_below_agreement"] == 1 and report["unplaced_clips"] == {"group shorter than 5 s": 2}
    assert report["candidates_per_class"] == {"angry": 2, "sad": 1} and len(rows) == 2
    with pytest.raises(LayoutError, match="VESUS/Audio"):
        vesus.build(request(tmp_path, tmp_path / "nowhere"))
    (root / "VESUS" / "Audio" / "Actor01" / "Bored").mkdir()
    with pytest.raises(LayoutError, match="Bored: unknown emotion folder"):
        vesus.build(request(tmp_path, root))


# ---------------------------------------------------------------- VoxCeleb1/2 + age enrichment

VOX1 = [  # speaker, name, gender, age of each of its two videos
    ("id10001", "A.J._Buckley", "m", (25.0, 26.0)),
    ("id10002", "Aaron_Tveit", "m", (35.0, 36.0)),
    ("id10003", "Aamir_Khan", "f", (27.0, 44.0)),  # two videos in two age groups
    ("id10004", "Aaron_Yoo", "f", (75.0, 75.0)),
]


def vox_tree(root: Path, clip_seconds: float = 3.0) -> Path:
    """vox1_meta.csv (tab), wav/<speaker>/<video>/<nnnnn>.wav (2 videos x 2 clips), enrichment csv."""
    meta = ["VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet"]
    enrichment = ["Name,VoxCeleb_ID,video_id,birth_year,recording_year,speaker_age"]
    for s, (speaker, name, gender, ages) in enumerate(VOX1):
        meta.append(f"{speaker}\t{name}\t{gender}\tUSA\ttest")
        for v, age in enumerate(ages):
            video = f"vid{s}{v}xxxxxx"
            enrichment.append(f"{name},{speaker},{video},1980.0,{1980 + age},{age}")
            for n in (1, 2):
                tone(root / "wav" / speaker / video / f"{n:05d}.wav", clip_seconds, freq=120 + 30 * s + 7 * v + n)
    (root / "vox1_meta.csv").write_text("\n".join(meta) + "\n")
    (root / "final_dataframe_extended.csv").write_text("\n".join(enrichment) + "\n")
    return root


def test_voxceleb_gender_items_are_one_speaker_with_fixed_options(tmp_path):
    from amlib.data.sources import voxceleb

    rows = voxceleb.build(request(tmp_path, vox_tree(tmp_path / "vox"), tasks=("SGR",)))
    assert Counter(r["meta"]["label"] for r in rows) == {"male": 2, "female": 2}
    for row in rows:
        check_choice_row(row)
        assert row["choices"] == ["male", "female"] and row["answer"] == ("A" if row["meta"]["label"] == "male" else "B")
        assert {Path(c).parts[1] for c in row["meta"]["clips"]} == {row["meta"]["speaker"]}
        assert 5.0 <= row["duration_s"] <= 7.0
    assert len({r["meta"]["speaker"] for r in rows}) == 4  # one item per speaker before any second


def test_voxceleb_age_groups_from_age_at_recording(tmp_path):
    from amlib.data.sources import voxceleb

    root = vox_tree(tmp_path / "vox")
    rows = voxceleb.build(request(tmp_path, root, per_task=10, tasks=("SAR",)))
    for row in rows:
        check_choice_row(row)
        assert row["choices"] == list(AGE_GROUPS)
        ages = row["meta"]["age_at_recording"]
        assert len(ages) == 1 and voxceleb.age_group(next(iter(ages.values()))) == row["meta"]["label"]
    # groups with speakers: young (id10001, id10003), early career, mid career, elderly -> 1 item each
    assert Counter(r["meta"]["label"] for r in rows) == {AGE_GROUPS[i]: 1 for i in (0, 1, 2, 4)}
    report = json.loads((tmp_path / "out" / "build_report.json").read_text())["SAR"]
    assert report["classes_without_items"] == [AGE_GROUPS[3]] and report["quota_per_class"] == 2
    # id10003's 44-year-old video alone (2 clips, 6 s) gives the only Mid Career item
    assert report["classes_short_of_quota"] == {AGE_GROUPS[2]: 1} and report["kept_per_class"] == 1
    # the only elderly speaker keeps 3 s of audio: no item, so that group is left out, not the whole task
    for clip in sorted((root / "wav" / "id10004").glob("*/*.wav"))[1:]:
        clip.unlink()
    rows = voxceleb.build(request(tmp_path, root, per_task=10, tasks=("SAR",)))
    report = json.loads((tmp_path / "out" / "build_report.json").read_text())["SAR"]
    assert report["classes_without_items"] == [AGE_GROUPS[3], AGE_GROUPS[4]] and report["quota_per_class"] == 3
    assert Counter(r["meta"]["label"] for r in rows) == {AGE_GROUPS[i]: 1 for i in (0, 1, 2)}


def test_voxceleb2_meta_spelling_and_undecodable_m4a(tmp_path, monkeypatch):
    from amlib.data.sources import voxceleb

    root = tmp_path / "vox2"
    (root / "aac" / "id00012" / "21Uxsk56VDQ").mkdir(parents=True)
    (root / "aac" / "id00012" / "21Uxsk56VDQ" / "00001.m4a").write_bytes(b"not really aac")
    (root / "vox2_meta.csv").write_text("VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set \nid00012 ,n000012 ,m ,test \n")
    speakers = voxceleb.read_speakers(root, "test")
    assert speakers.to_dict("records") == [{"speaker": "id00012", "gender": "male", "set": "test"}]
    with pytest.raises(OSError, match=r"00001\.m4a: cannot decode this VoxCeleb2 \.m4a"):
        voxceleb.build(request(tmp_path, root, tasks=("SGR",)))
    with pytest.raises(ValueError, match="no speaker of VoxCeleb set 'dev'"):
        voxceleb.read_speakers(root, "dev")
    with pytest.raises(LayoutError, match="vox1_meta.csv and/or vox2_meta.csv"):
        voxceleb.build(request(tmp_path, tmp_path / "empty"))
    (root / "vox2_meta.csv").unlink()
    vox_tree(root)
    (root / "final_dataframe_extended.csv").unlink()
    with pytest.raises(LayoutError, match="SAR needs the age enrichment csv"):
        voxceleb.build(request(tmp_path, root, tasks=("SAR",)))


# ---------------------------------------------------------------- released AudioMarathon test.csv

RELEASED = [  # uniq_id, task_name, dataset_name, choices, answer_gt
    ("vox_gender_0007", "Speaker Gender Recognition", "VoxCeleb-Gender", ["Female", "Male"], "B"),
    ("had_0003", "Speech Detection (SD)", "HAD", ["Real", "Fake"], "Fake"),
    ("vox_age_0011", "Speaker Age Recognition", "Vox_age", list(reversed(AGE_GROUPS)), "(a)"),
    ("libri_0001", "Automatic Speech Recognition", "LibriSpeech-long", [], "hello world"),
    ("tau_0042", "Acoustic_Scene_Classification", "TAU_Urban_Acoustic_Scenes",
     ["Airport", "Urban park", "Travelling by a bus", "Public square"], "c"),
]


def released_tree(root: Path, rows=RELEASED) -> Path:
    """test.csv with the authors' metadata field names + audio/ (8 kHz stereo, to be resampled)."""
    header = ["uniq_id", "task_name", "dataset_name", "path", "question"] + [f"choice_{c}" for c in "abcde"] + ["answer_gt"]
    lines = [header]
    for i, (uid, task, dataset, choices, answer) in enumerate(rows):
        tone(root / "audio" / f"{uid}.wav", 1.0, sr=8000, freq=200 + 50 * i, channels=2)
        lines.append([uid, task, dataset, f"{uid}.wav", "Which one?"] + (choices + [""] * 5)[:5] + [answer])
    import pandas as pd

    pd.DataFrame(lines[1:], columns=lines[0]).to_csv(root / "test.csv", index=False)
    return root


def test_released_rows_map_to_our_conventions_without_rebalancing(tmp_path):
    from amlib.data.finalize import finalize
    from amlib.data.sources import released

    req = request(tmp_path, released_tree(tmp_path / "am"))
    rows = {r["meta"]["original_id"]: r for r in released.build(req)}
    assert {k: (v["task"], v["choices"], v["answer"]) for k, v in rows.items() if k != "tau_0042"} == {
        "vox_gender_0007": ("SGR", ["male", "female"], "A"),
        "had_0003": ("SD", ["real", "fake"], "B"),
        "vox_age_0011": ("SAR", list(AGE_GROUPS), "E"),
        "libri_0001": ("ASR", [], "hello world"),
    }
    assert rows["tau_0042"]["answer"] == "C" and rows["tau_0042"]["meta"]["label"] == "Travelling by a bus"
    assert rows["vox_age_0011"]["meta"]["original_choices"] == list(reversed(AGE_GROUPS))
    for row in rows.values():
        if row["choices"]:
            check_choice_row(row)
        info = sf.info(str(req.out / row["audio"]))
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1) and info.duration == pytest.approx(1.0)
    finalize(req.out, list(rows.values()), balance_classes=False, review=False)
    assert len(read_manifest(req.out)) == 5


def test_released_csv_errors_list_columns_and_rows(tmp_path):
    from amlib.data.sources import released

    root = tmp_path / "am"
    root.mkdir()
    (root / "test.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(LayoutError, match=r"no column for \['id', 'audio', 'answer', 'task or dataset'\]; "
                                          r"columns found: \['foo', 'bar'\]"):
        released.build(request(tmp_path, root))
    released_tree(root, [("x1", "Mystery task", "unknown", ["a", "b"], "A")])
    with pytest.raises(ValueError, match=r"test.csv:2: cannot tell the task from 'Mystery task unknown'"):
        released.build(request(tmp_path, root))
    released_tree(root, [("x2", "SGR", "VoxCeleb", ["Male", "Female"], "Neither")])
    with pytest.raises(ValueError, match=r"test.csv:2: answer 'Neither' is neither a letter nor one of the options"):
        released.build(request(tmp_path, root))


def test_registry_builds_and_finalises_a_real_source(tmp_path):
    from amlib.data.build import build_dataset

    stats = build_dataset("had", tmp_path / "out", root=had_tree(tmp_path / "had"), per_task=4, seed=3, review=False,
                          **WINDOW)
    samples = read_manifest(tmp_path / "out")
    assert stats["per_task"]["SD"]["items"] == 4 and stats["removed_by_balancing"] == {"SD": 0}
    assert Counter(s.meta["label"] for s in samples) == {"real": 2, "fake": 2}
    assert "SD" in json.loads((tmp_path / "out" / "build_report.json").read_text())
