"""Benchmark validity of the offline suite (issue 12): train and test share no content, labels are not
decided by a shortcut the generator left (loudness, a fixed table, a question naming an option), and
data of older generator code or of the test split cannot be used by mistake.

Content is checked ON CONTENT: sha1 of the decoded samples of every packaged file an item used
(recomputed here, not trusted from meta), normalised texts, speakers and music-piece hashes. Every
item must record every field it is checked on (no test passes for an item lacking the field). And
without the generator's asset records at all: content this test computes from the built items
themselves (their decoded audio, the ASR references scored against, the SCR passages read aloud,
their sentences and 8-word runs) must not be shared by the splits; a leak planted into the train
split is shown to be found. Missing Debian packages make these tests FAIL (the build raises
AssetError naming the package), never skip.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from amlib.data import read_manifest
from amlib.data.manifest import write_manifest
from amlib.data.offline import assets, prosody, sound_tasks, stories
from amlib.data.offline.suite import GENERATOR_VERSION, GeneratorVersionError, build
from amlib.data.sources.common import BuildRequest
from amlib.tasks import AGE_GROUPS

# per task: (items per split, min_s, max_s); enough items for per-class variation where it is checked
SIZES = {"ASR": (4, 6, 12), "SCR": (4, 30, 40), "SER": (3, 18, 26), "SED": (5, 12, 18), "MC": (10, 6, 10),
         "ASC": (5, 8, 14), "SD": (6, 16, 24), "ER": (10, 6, 10), "SAR": (10, 8, 20), "SGR": (2, 6, 10)}
ASSET_KEYS = ("tts_speakers", "real_speakers", "texts", "files", "pieces", "generators")
# what each task must record (non-empty) in meta["assets"]; "speaker": tts_speakers or real_speakers
REQUIRED = {"ASR": ("speaker", "texts"), "SCR": ("tts_speakers", "texts"), "SER": ("tts_speakers", "texts"),
            "SED": ("files", "generators"), "MC": ("pieces",), "ASC": ("files",), "SD": ("real_speakers", "texts", "files"),
            "ER": ("tts_speakers", "texts"), "SAR": ("tts_speakers", "texts"), "SGR": ("tts_speakers", "texts")}


@pytest.fixture(scope="session")
def splits(tmp_path_factory):
    """{split: {task: [Sample]}}: a small build of every task in both splits, seed 0 for both."""
    out = {}
    for split in assets.SPLITS:
        root = tmp_path_factory.mktemp(f"leak-{split}")
        rows = []
        for task, (n, low, high) in SIZES.items():
            rows += build(BuildRequest(out=root, tasks=(task,), per_task=n, min_seconds=low, max_seconds=high,
                                       seed=0, split=split))
        write_manifest(root / "manifest.jsonl", rows)
        samples = read_manifest(root)
        out[split] = {t: [s for s in samples if s.task == t] for t in SIZES}
    return out


def _items(splits, split, tasks=None):
    return [s for t, items in splits[split].items() if tasks is None or t in tasks for s in items]


def test_every_item_records_its_assets(splits):
    for split in assets.SPLITS:
        for task, items in splits[split].items():
            assert len(items) == SIZES[task][0], (split, task)
            for s in items:
                a = s.meta.get("assets")
                assert a is not None and set(ASSET_KEYS) <= set(a), (s.id, a)
                assert s.meta["generator_version"] == GENERATOR_VERSION
                for key in REQUIRED[task]:
                    value = a["tts_speakers"] + a["real_speakers"] if key == "speaker" else a[key]
                    assert value, f"{s.id}: meta.assets.{key} is empty"
                if task == "SD" and s.meta["label"] == "fake":
                    assert a["tts_speakers"], s.id
                if task == "ASR" and s.meta["speech"] == "real":
                    assert a["files"] and a["real_speakers"], s.id


def _content(items) -> dict[str, set]:
    """Every kind of content the items used; file hashes RECOMPUTED from the files themselves."""
    out = {"tts_speakers": set(), "real_speakers": set(), "texts": set(), "file_paths": set(), "file_sha1": set(),
           "pieces": set()}
    for s in items:
        a = s.meta["assets"]
        out["tts_speakers"] |= set(a["tts_speakers"])
        out["real_speakers"] |= set(a["real_speakers"])
        out["texts"] |= {assets.text_key(t) for t in a["texts"]}
        out["pieces"] |= set(a["pieces"])
        for path, sha1 in a["files"].items():
            assert assets.audio_sha1(Path(path)) == sha1, (s.id, path)  # the meta is honest
            out["file_paths"].add(path)
            out["file_sha1"].add(sha1)
    return out


def assert_present_and_disjoint(train: dict[str, set], test: dict[str, set]) -> None:
    """Each kind of content is really present in both splits, and no value is in both."""
    for kind in train:
        assert train[kind] and test[kind], kind
        shared = train[kind] & test[kind]
        assert not shared, f"train and test share {kind}: {sorted(shared)[:5]}"


def test_train_and_test_share_no_content(splits):
    assert_present_and_disjoint(_content(_items(splits, "train")), _content(_items(splits, "test")))
    # per task too, so that no task leans on another task's assets
    for task in SIZES:
        a, b = _content(splits["train"][task]), _content(splits["test"][task])
        assert not any(a[k] & b[k] for k in a), task


NGRAM = 8  # words: a run this long shared by the splits is one split's sentence inside the other's text


def _words(text: str) -> list[str]:
    """Lower-case runs of letters and digits: this test's own normalisation (not assets.text_key)."""
    return re.findall(r"[a-z0-9]+", text.lower())


def _decoded_sha1(path: Path) -> str:
    """sha1 of the decoded samples and rate: the same sound whatever the file's container says."""
    wave, sr = sf.read(str(path), dtype="float32")
    return hashlib.sha1(np.ascontiguousarray(wave).tobytes() + str(sr).encode()).hexdigest()


def _spoken_text(s) -> str | None:
    """What an item says and is scored on: ASR's reference (the manifest's answer), SCR's passage."""
    if s.task == "ASR":
        return s.answer
    if s.task == "SCR":
        return s.meta["transcript"]
    return None


def computed_content(items) -> dict[str, set]:
    """Content computed here from the built items, none of it from meta["assets"]."""
    out = {"item audio": set(), "ASR reference": set(), "SCR passage": set(), "sentence": set(),
           f"{NGRAM}-word run": set()}
    for s in items:
        out["item audio"].add(_decoded_sha1(s.audio_path))
        text = _spoken_text(s)
        if text is None:
            continue
        words = _words(text)
        assert len(words) >= NGRAM, f"{s.id}: {text!r} is too short to compare"
        out["ASR reference" if s.task == "ASR" else "SCR passage"].add(" ".join(words))
        out["sentence"] |= {" ".join(_words(part)) for part in re.split(r"(?<=[.?!])\s+", text) if _words(part)}
        out[f"{NGRAM}-word run"] |= {tuple(words[i:i + NGRAM]) for i in range(len(words) - NGRAM + 1)}
    return out


def shared_content(train_items, test_items) -> dict[str, set]:
    """{kind: what both splits contain} for every kind of computed content."""
    train, test = computed_content(train_items), computed_content(test_items)
    return {kind: train[kind] & test[kind] for kind in train}


def test_train_and_test_share_no_content_computed_from_the_items(splits):
    assert_present_and_disjoint(computed_content(_items(splits, "train")), computed_content(_items(splits, "test")))


def test_a_leak_planted_into_train_is_found(splits, tmp_path):
    """The wrong variants: a train split holding one test item's content, each planted on its own,
    is found by the check of that kind (and the clean splits by none, the test above)."""
    train, test = _items(splits, "train"), _items(splits, "test")
    asr, scr = splits["test"]["ASR"][0], splits["test"]["SCR"][0]
    victim = splits["train"]["ASR"][0]
    copied_audio = tmp_path / "copy.wav"
    shutil.copyfile(asr.audio_path, copied_audio)
    longest = max(re.split(r"(?<=[.?!])\s+", scr.meta["transcript"]), key=lambda t: len(_words(t)))
    plants = {  # kind expected to be found: the train item carrying the leak
        "item audio": dataclasses.replace(victim, root=str(tmp_path), audio=copied_audio.name),
        # another case and punctuation: found only through the normalisation
        "ASR reference": dataclasses.replace(victim, answer=asr.answer.upper().replace(".", "!")),
        "SCR passage": dataclasses.replace(splits["train"]["SCR"][0],
                                           meta={**splits["train"]["SCR"][0].meta, "transcript": scr.meta["transcript"]}),
        # one test sentence inside a train reference: no whole text is shared
        "sentence": dataclasses.replace(victim, answer=f"{victim.answer} {longest}"),
    }
    for kind, planted in plants.items():
        found = shared_content([s for s in train if s.id != planted.id] + [planted], test)
        assert found[kind], f"a planted {kind} was not found"
        if kind == "sentence":
            assert found[f"{NGRAM}-word run"] and not found["ASR reference"] and not found["SCR passage"]


def test_real_speech_inventory_split_by_speaker_and_deduplicated_by_content():
    prompts, left_out = assets.asterisk_prompts()
    by_split = {s: [p for p in prompts if p.split == s] for s in assets.SPLITS}
    speakers = {s: {p.speaker for p in by_split[s]} for s in assets.SPLITS}
    assert not speakers["train"] & speakers["test"] and min(map(len, speakers.values())) >= 2
    for s in assets.SPLITS:  # every split's speakers are fixed by PROMPT_SETS
        assert speakers[s] == {ps.speaker for ps in assets.PROMPT_SETS if ps.split == s}
    hashes = [p.audio_sha1 for p in prompts]
    assert len(set(hashes)) == len(hashes), "two kept prompts are the same recording"
    for speaker in speakers["train"] | speakers["test"]:
        texts = [assets.text_key(p.text) for p in prompts if p.speaker == speaker]
        assert len(set(texts)) == len(texts), speaker
    assert not {assets.text_key(p.text) for p in by_split["train"]} & {assets.text_key(p.text) for p in by_split["test"]}
    # the recorded hash is the content of the file
    for p in prompts[::97]:
        assert assets.audio_sha1(p.path) == p.audio_sha1
    assert left_out["duplicate recording"] >= 1


def test_sd_not_decided_by_speaker(splits):
    for split in assets.SPLITS:
        real = [s for s in splits[split]["SD"] if s.meta["label"] == "real"]
        fake = [s for s in splits[split]["SD"] if s.meta["label"] == "fake"]
        real_speakers = {tuple(s.meta["assets"]["real_speakers"]) for s in real}
        fake_speakers = {tuple(s.meta["assets"]["real_speakers"]) for s in fake}
        assert len(real_speakers) >= 2, (split, real_speakers)  # several real speakers per split
        assert real_speakers == fake_speakers, split  # fakes splice the SAME speakers' recordings
        for s in fake:
            assert s.meta["fake_prompts"] and s.meta["assets"]["files"], s.id
            assert len(s.meta["assets"]["files"]) < len(s.meta["asterisk_prompts"]), s.id


def test_asr_real_speech_is_english_with_known_transcripts(splits):
    english = {p.id: p for p in assets.prompts_of_split("test", language="en")}
    real = [s for s in splits["test"]["ASR"] if s.meta["speech"] == "real"]
    assert real
    for s in real:
        assert s.meta["language"] == "en" and all(k in english for k in s.meta["asterisk_prompts"])
    # the train split has no real English speaker: its ASR items are all TTS
    assert not assets.prompts_of_split("train", language="en")
    assert all(s.meta["speech"] == "tts" for s in splits["train"]["ASR"])


def _lufs(path) -> float:
    import pyloudnorm

    wave, sr = sf.read(str(path), dtype="float64")
    return float(pyloudnorm.Meter(sr).integrated_loudness(wave))


def test_er_level_carries_no_label(splits):
    items = _items(splits, "train", ("ER",)) + _items(splits, "test", ("ER",))
    loud = {s.id: _lufs(s.audio_path) for s in items}
    # generator version 1 spread the emotions over -30..-16 LUFS; now every item is at -23
    assert max(loud.values()) - min(loud.values()) < 1.0, loud
    for s in items:
        assert not any("LUFS" in t for t in s.meta["transforms"]), s.id


def _peak_dbfs(path) -> float:
    wave, _ = sf.read(str(path), dtype="float64")
    return float(20 * np.log10(max(np.abs(wave).max(), 1e-12)))


@pytest.mark.parametrize("task", ["SED", "ASC"])
def test_level_carries_no_sound_class(splits, task):
    """Integrated loudness per class, both splits: every item within 1 LU of -23 LUFS, the class means
    within 1 LU of each other, no peak above write_item's -1 dBFS ceiling and none pinned AT it (the
    ceiling turning an item down is what made impulsive classes quiet). Generator version 2 ended
    gunshot, wolf and office items 7-12 LU below the target at exactly -1.0 dBFS."""
    from amlib.data.offline import level

    by_class: dict[str, list[float]] = {}
    for s in _items(splits, "train", (task,)) + _items(splits, "test", (task,)):
        loud, peak = _lufs(s.audio_path), _peak_dbfs(s.audio_path)
        assert abs(loud - level.TARGET_LUFS) < 1.0, (s.id, s.meta["label"], loud, peak)
        assert peak <= level.CEILING_DBFS + 0.01, (s.id, peak)
        assert peak < level.CEILING_DBFS - 0.5, f"{s.id}: peak {peak:.2f} dBFS at write_item's ceiling"
        by_class.setdefault(s.meta["label"], []).append(loud)
    assert len(by_class) == 5, by_class
    means = {label: float(np.mean(v)) for label, v in by_class.items()}
    assert max(means.values()) - min(means.values()) < 1.0, means


def test_limiter_reaches_the_target_where_the_ceiling_would_not():
    """An impulsive item (loud clicks over a quiet bed): loudness_normalize alone ends far below -23 LUFS
    (the v2 path); level.to_target lands on it with its peaks under LIMIT_DBFS, and write_item's
    normalisation afterwards keeps it there."""
    from amlib.data.concat import loudness_normalize
    from amlib.data.offline import level

    rng = np.random.default_rng(0)
    sr = 16_000
    wave = (0.003 * rng.standard_normal(30 * sr)).astype(np.float32)
    for at in range(sr, 29 * sr, 5 * sr):
        wave[at:at + 400] += (0.8 * rng.standard_normal(400) * np.exp(-np.arange(400) / 60)).astype(np.float32)
    meter = __import__("pyloudnorm").Meter(sr)
    old = meter.integrated_loudness(loudness_normalize(wave).astype(np.float64))
    assert old < level.TARGET_LUFS - 3.0, old  # the ceiling turned it down
    out, report = level.to_target(wave)
    assert abs(meter.integrated_loudness(out.astype(np.float64)) - level.TARGET_LUFS) < 0.1, report
    assert 20 * np.log10(np.abs(out).max()) <= level.LIMIT_DBFS + 1e-6 and report["limiter_max_gr_db"] > 0
    final = loudness_normalize(out)
    assert abs(meter.integrated_loudness(final.astype(np.float64)) - level.TARGET_LUFS) < 0.1
    assert 20 * np.log10(np.abs(final).max()) < level.CEILING_DBFS
    quiet = (0.05 * rng.standard_normal(sr * 5)).astype(np.float32)  # peaks fit: only scaled, no limiting
    out, report = level.to_target(quiet)
    assert report["limiter_max_gr_db"] == 0.0 and np.allclose(out / quiet, out[0] / quiet[0], rtol=1e-4)


def test_sgr_speaking_rate_drawn_per_item_from_one_range(splits):
    from amlib.data.offline import speech_tasks

    low, high = speech_tasks.SGR_TEMPO
    for split in assets.SPLITS:
        tempos = [s.meta["tempo"] for s in splits[split]["SGR"]]
        assert all(low <= t <= high for t in tempos) and len(set(tempos)) == len(tempos), (split, tempos)
    # one range for both genders, and it is wide against the per-voice onset-rate gap (~10 %)
    assert high / low > 1.4


def test_er_and_sar_draw_per_item_settings(splits):
    for split in assets.SPLITS:
        for task, key in (("ER", "prosody"), ("SAR", "proxy")):
            by_label: dict[str, list[dict]] = {}
            for s in splits[split][task]:
                assert key in s.meta, s.id
                by_label.setdefault(s.meta["label"], []).append(s.meta[key])
            for label, draws in by_label.items():
                assert len(draws) >= 2, (task, label)
                first = "rate" if task == "ER" else "words_per_s"
                assert len({d[first] for d in draws}) == len(draws), (split, task, label, draws)
    for s in _items(splits, "train", ("SAR",)) + _items(splits, "test", ("SAR",)):
        proxy, drawn = prosody.AGE_PROXIES[s.meta["label"]], s.meta["proxy"]
        for field in ("words_per_s", "cents", "tremor_f0", "tremor_amp", "breath_db"):
            low, high = getattr(proxy, field)
            assert low - 1e-6 <= drawn[field] <= high + 1e-6, (s.id, field)
    # neighbouring groups' ranges overlap: no single setting decides the group
    for young, old in zip(AGE_GROUPS, AGE_GROUPS[1:]):
        a, b = prosody.AGE_PROXIES[young], prosody.AGE_PROXIES[old]
        assert a.words_per_s[0] < b.words_per_s[1] and a.cents[0] < b.cents[1]
    for e in prosody.EMOTIONS.values():
        assert e.rate[1] > e.rate[0] and e.pitch[1] > e.pitch[0] and e.range[1] > e.range[0]


def test_mc_pieces_and_openings_unique_and_split_material(splits):
    pieces, openings = [], []
    for split in assets.SPLITS:
        for s in splits[split]["MC"]:
            for p in s.meta["pieces"]:
                assert p["root"] % 2 == (0 if split == "train" else 1), (s.id, p)
                pieces.append(p["sha1"])
            wave, sr = sf.read(str(s.audio_path), dtype="float32")
            openings.append(wave[: 2 * sr].tobytes())
    assert len(set(pieces)) == len(pieces), "a music piece occurs twice"
    assert len(set(openings)) == len(openings), "two MC items share their opening"


def test_asc_generators_differ_by_split_and_scenes_have_files_in_both(splits):
    for name, ranges in sound_tasks.GENERATOR_RANGES.items():
        for key in ranges["train"]:
            (a0, a1), (b0, b1) = ranges["train"][key], ranges["test"][key]
            assert a1 < b0 or b1 < a0, (name, key)  # the splits' parameter ranges do not overlap
    seen = Counter()
    for split in assets.SPLITS:
        for s in _items(splits, split, ("ASC", "SED")):
            for g in s.meta["assets"]["generators"]:
                for key, value in g["params"].items():
                    low, high = sound_tasks.GENERATOR_RANGES[g["name"]][split][key]
                    assert low <= value <= high, (s.id, g)
                seen[g["name"]] += 1
    assert seen["pink"] and seen["wind"]
    for scene in sound_tasks.SCENES.values():  # every scene's real events have files in both splits
        for group in scene.events:
            for split in assets.SPLITS:
                assert sound_tasks.group_files(group, split)


def test_scr_questions_name_no_option_and_count_rank_uniform(splits):
    for s in splits["test"]["SCR"] + splits["train"]["SCR"]:
        for option in s.choices:
            assert not re.search(rf"\b{re.escape(option.lower())}\b", s.question.lower()), (s.id, option)
    from amlib.data.offline.sentences import number_words

    value = {number_words(n): n for n in range(0, 40)}
    rng = np.random.default_rng(0)
    ranks = Counter()
    for i in range(600):
        for kind, answers in stories.scr_answers("test").items():
            answer = answers[i % len(answers)]
            _, question, wrong, _ = stories.story(kind, answer, rng, "test")
            for option in [answer, *wrong]:
                assert not re.search(rf"\b{re.escape(option.lower())}\b", question.lower()), (question, option)
            if kind == "count":
                ranks[sorted(value[o] for o in [answer, *wrong]).index(value[answer])] += 1
    # 600 draws: each rank 150 expected; generator version 1 had ranks 1 and 2 only
    assert set(ranks) == {0, 1, 2, 3} and all(110 <= c <= 190 for c in ranks.values()), ranks


def test_training_refuses_items_not_of_the_train_split(splits, tmp_path):
    from amlib.reference.train.loop import SplitError, load_samples

    root = splits["test"]["SGR"][0].root
    with pytest.raises(SplitError, match=r"manifest\.jsonl: item \S+-test-\d+ has split 'test'"):
        load_samples([root])
    assert load_samples([splits["train"]["SGR"][0].root])


def test_readme_training_seeds_exclude_the_test_seed():
    text = (Path(__file__).parents[1] / "data" / "README.md").read_text()
    loop = re.search(r"for seed in ([\d ]+); do\s+python -m amlib build-data --source offline --split train", text)
    assert loop, "data/README.md: the train-parts loop is missing"
    seeds = {int(x) for x in loop.group(1).split()}
    test_seed = 0  # the default test build (build-data --split test, seed 0)
    assert test_seed not in seeds
    assert "the test split is only evaluated, never used for a decision" in " ".join(text.lower().split())


def _copy_folder(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    rows = [json.loads(line) for line in (dst / "manifest.jsonl").read_text().splitlines() if line.strip()]
    for row in rows:
        edit(row["meta"])
    (dst / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dst


def test_folders_of_other_generator_versions_are_refused(splits, tmp_path):
    from amlib.data.build import ensure_dataset

    src = splits["test"]["SGR"][0].root
    old = _copy_folder(src, tmp_path / "old", lambda m: m.update(generator_version=1))
    with pytest.raises(GeneratorVersionError, match=rf"{re.escape(str(old))}: built by offline generator version 1, "
                                                    rf"but this code is generator version {GENERATOR_VERSION}"):
        read_manifest(old)
    missing = _copy_folder(src, tmp_path / "missing", lambda m: m.pop("generator_version"))
    with pytest.raises(GeneratorVersionError, match="version missing"):
        read_manifest(missing)
    # reuse by ensure_dataset: same settings recorded, older generator -> refused, not reused
    settings = {"tasks": ["SGR"], "per_task": 2, "min_seconds": 6, "max_seconds": 10, "seed": 0, "split": "test"}
    (old / "build.json").write_text(json.dumps({"source": "offline", "root": None, **settings}))
    with pytest.raises(GeneratorVersionError, match=re.escape(str(old))):
        ensure_dataset(old, source="offline", **settings)
