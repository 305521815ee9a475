"""The offline suite (source "offline"): all ten tasks from Debian-packaged assets, tiny durations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from amlib.data import read_manifest
from amlib.data.offline import assets, music, sound_tasks, stories, voices
from amlib.data.offline.suite import MAX_PER_PART, RECIPES, build, plan_labels
from amlib.data.sources.common import BuildRequest
from amlib.tasks import AGE_GROUPS, get_task

NEEDED = {"espeak-ng": "espeak-ng", "flite": "flite", "text2wave": "festival", "sox": "sox", "fluidsynth": "fluidsynth"}
NEEDED_PATHS = [p for s in assets.PROMPT_SETS for p in (s.wav_dir, s.transcripts)] + [
    assets.WESNOTH_SOUNDS, assets.FREEDESKTOP_SOUNDS, assets.DRASCULA_DIR, assets.SOUNDFONT]


def test_debian_assets_installed():
    """No test of the suite is skipped when assets are missing: this one names what to install."""
    missing = [f"{b} (package {p})" for b, p in NEEDED.items() if shutil.which(b) is None]
    missing += [f"{p} (package {assets.PACKAGE_OF.get(p, '?')})" for p in NEEDED_PATHS if not p.exists()]
    assert not missing, "missing Debian assets, run `make setup` (apt-packages.txt): " + ", ".join(missing)

# per task: (items, min_s, max_s); SCR and SER need room for their key sentences
SMALL = {"ASR": (4, 6, 12), "SED": (5, 6, 12), "MC": (5, 6, 12), "ASC": (5, 6, 12), "SD": (2, 16, 24),
         "ER": (5, 6, 12), "SAR": (5, 8, 20), "SGR": (2, 6, 12), "SCR": (4, 30, 40), "SER": (3, 18, 26)}


def small_request(out: Path, task: str, seed: int = 0, split: str = "test") -> BuildRequest:
    n, low, high = SMALL[task]
    return BuildRequest(out=out, tasks=(task,), per_task=n, min_seconds=low, max_seconds=high, seed=seed, split=split)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """{task: rows} of one small test-split build of every task (written with write_manifest)."""
    from amlib.data.manifest import write_manifest

    out = tmp_path_factory.mktemp("offline")
    rows = []
    for task in SMALL:
        rows += build(small_request(out, task))
    write_manifest(out / "manifest.jsonl", rows)
    samples = read_manifest(out / "manifest.jsonl")
    return {t: [s for s in samples if s.task == t] for t in SMALL}


def test_every_task_valid_with_honest_durations(built):
    for task, samples in built.items():
        n, low, high = SMALL[task]
        assert len(samples) == n, task
        for s in samples:
            info = sf.info(str(s.audio_path))
            assert info.samplerate == 16000 and info.channels == 1
            assert low <= s.duration_s <= high, (s.id, s.duration_s)
            assert s.source == "offline" and s.split == "test" and s.meta["split"] == "test"
            assert isinstance(s.meta["synthetic"], bool)
            spec = get_task(task)
            if spec.is_choice:  # the label is the text of the correct option
                assert s.choices[spec.letters.index(s.answer)] == s.meta["label"], s.id


def test_classes_each_built_and_options_from_other_classes(built):
    for task in ("SED", "MC", "ASC", "ER", "SAR", "SGR", "SD"):
        classes = RECIPES[task].classes("test")
        assert sorted(s.meta["label"] for s in built[task]) == sorted(classes), task
        for s in built[task]:
            assert set(s.choices) <= set(classes)
    assert all(s.choices == list(AGE_GROUPS) for s in built["SAR"])
    assert all(s.choices == ["male", "female"] for s in built["SGR"])


def test_voices_split_by_speaker_with_both_genders():
    train, test = voices.voices_of("train"), voices.voices_of("test")
    assert not {v.speaker for v in train} & {v.speaker for v in test}
    assert not {v.id for v in train} & {v.id for v in test}
    for split in (train, test):
        assert {v.gender for v in split} == {"male", "female"}
    for v in train + test:
        if v.engine == "espeak-ng":
            accent, variant = v.name.split("+")
            assert accent in voices.ESPEAK_ACCENTS[v.split]
            assert variant in voices.ESPEAK_VARIANTS[v.split][v.gender]


def test_every_voice_sounds_its_gender_and_variants_apply():
    import librosa

    heard = {}
    for v in voices.all_voices():
        wave = voices.speak("The baker carried two baskets to the market.", v)
        heard[v.id] = wave
        f0 = librosa.yin(wave, fmin=60, fmax=400, sr=16000)
        level = librosa.feature.rms(y=wave)[0][: f0.size]
        median = float(np.median(f0[: level.size][level > 0.2 * level.max()]))
        assert (median < 165) == (v.gender == "male"), (v.id, median)
    # espeak-ng silently ignores some variants (en-gb+f1 == en-gb+m1): every voice must sound different
    assert len({w.tobytes() for w in heard.values()}) == len(heard)
    content = voices.content_voices("train") + voices.content_voices("test")
    assert content and all(not v.name.startswith(voices.UNCLEAR_FOR_CONTENT) for v in content)


def test_assets_split_disjoint():
    for group, files in sound_tasks.SOUND_GROUPS.items():
        train = set(sound_tasks.group_files(group, "train", required=False))
        test = set(sound_tasks.group_files(group, "test"))
        assert (train or len(files) == 1) and test and not train & test, group
        assert train | test == set(files)
    prompts = {s: {p.id for p in assets.prompts_of_split(s)} for s in assets.SPLITS}
    assert prompts["train"] and prompts["test"] and not prompts["train"] & prompts["test"]
    speakers = {s: {p.speaker for p in assets.prompts_of_split(s)} for s in assets.SPLITS}
    assert len(speakers["train"]) >= 2 and len(speakers["test"]) >= 2 and not speakers["train"] & speakers["test"]
    tracks = assets.alternate_split(sound_tasks.drascula_tracks())
    assert {"train", "test"} == set(tracks.values())
    for words in (stories.FIRST_NAMES, stories.SURNAMES, stories.CITIES, stories.ORGANISATIONS, stories.STORY_PLACES,
                  stories.KEY_OBJECTS, stories.COUNTABLES):
        assert not set(stories.pool(words, "train")) & set(stories.pool(words, "test"))
    for kind in stories.ENTITY_TYPES:
        assert not set(stories.entity_pool(kind, "train")) & set(stories.entity_pool(kind, "test"))


def test_built_items_use_only_test_assets(built):
    test_voices = {v.name for v in voices.voices_of("test")}
    test_prompts = {p.id for p in assets.prompts_of_split("test")}
    test_files = {str(root / rel) for g in sound_tasks.SOUND_GROUPS
                  for root, rel in sound_tasks.group_files(g, "test", required=False)}
    for samples in built.values():
        for s in samples:
            if "voice" in s.meta:
                assert s.meta["voice"] in test_voices, s.id
            assert set(s.meta.get("asterisk_prompts", [])) <= test_prompts, s.id
            assert set(s.meta.get("event_files", [])) <= test_files, s.id


def test_generated_text_belongs_to_its_split(built):
    for task in ("SGR", "ER", "SAR"):
        for s in built[task]:
            sentences = s.meta["transcript"].replace(". ", ".|").replace("? ", "?|").split("|")
            assert all(assets.hash_split(f"sentence:{t}") == "test" for t in sentences), s.id


def test_asr_references(built):
    kinds = {s.meta["speech"] for s in built["ASR"]}
    assert kinds == {"tts", "real"}
    by_key = {p.id: p.text for p in assets.asterisk_prompts()[0]}
    for s in built["ASR"]:
        assert s.choices == [] and s.answer.strip()
        if s.meta["speech"] == "real":
            assert s.meta["synthetic"] is False
            words = " ".join(by_key[k] for k in s.meta["asterisk_prompts"]).replace(".", "").split()
            assert s.answer.replace(".", "").split() == words
        else:
            assert s.meta["n_sentences"] >= 1 and not any(c.isdigit() for c in s.answer)


def test_prompt_transcripts_normalised():
    norm = assets.normalize_prompt_text
    assert norm("Please press 1 to continue.") == "Please press one to continue."
    assert norm("Call-Forward on Busy.") == "Call-Forward on Busy."  # the metric drops hyphens on both sides
    assert norm("...has joined the conference.") == "has joined the conference."
    assert norm("[ascending tones]") is None and norm("3D audio enabled") is None
    assert norm("dial 500 now") is None and norm("press * to pause") is None
    assert norm("Désolé, ce numéro n'est pas valide.", "fr") == "Désolé, ce numéro n'est pas valide."
    assert norm("Введите номер оператора.", "ru") == "Введите номер оператора."
    assert norm("Marque 5 ahora", "es") is None and norm("participantes...", "es") is None
    prompts, left_out = assets.asterisk_prompts()
    assert len(prompts) > 1500 and left_out["no transcript spelled as words"] > 0
    assert left_out["duplicate recording"] + left_out["duplicate transcript"] > 0


def test_sd_fakes_spliced_only_in_fake_items(built):
    for s in built["SD"]:
        if s.meta["label"] == "fake":
            assert s.meta["synthetic"] is True and s.meta["fake_prompts"]
            assert set(s.meta["fake_prompts"]) <= set(s.meta["asterisk_prompts"])
            fake_voice = next(v for v in list(voices.all_voices()) + [
                v for ps in assets.PROMPT_SETS for v in voices.language_voices(ps.tts_language, "test", ps.gender)]
                if v.name == s.meta["voice"])
            assert fake_voice.gender == s.meta["gender"] and fake_voice.split == "test"
        else:
            assert s.meta["synthetic"] is False and "fake_prompts" not in s.meta


def test_scr_facts_in_order_and_options_mentioned(built):
    for s in built["SCR"]:
        text = s.meta["transcript"]
        facts = s.meta["facts"]
        kind = s.meta["question_kind"]
        assert kind in stories.SCR_KINDS and s.answer in "ABCD"
        if kind in ("final_place", "final_holder", "day"):
            for option in s.choices:  # every option is said in the story: the question needs reasoning
                assert option in text, (s.id, option)
            # the first fact (about the first character) comes before the answer is said
            assert text.index(facts["characters"][0]) < text.rindex(s.meta["label"])
    kinds = [s.meta["question_kind"] for s in built["SCR"]]
    assert sorted(kinds) == sorted(stories.SCR_KINDS)


def test_ser_answer_said_and_distractors_not(built):
    for s in built["SER"]:
        text = s.meta["transcript"]
        assert s.meta["label"] in text or s.meta["label"][0].upper() + s.meta["label"][1:] in text
        for option in s.choices:
            if option != s.meta["label"]:
                assert not stories._mentions(option, text), (s.id, option)
        assert s.question == f"Which {s.meta['entity_type']} is mentioned in the audio?"


def test_sed_events_audible_above_bed(built):
    for s in built["SED"]:
        wave, sr = sf.read(str(s.audio_path), dtype="float32")
        frame = int(0.5 * sr)
        energy = np.array([np.mean(wave[i:i + frame] ** 2) for i in range(0, wave.size - frame, frame)])
        onset = int(s.meta["event_onsets_s"][0] * sr) // frame
        bed = np.percentile(energy, 20)  # the quietest frames: the bed between events
        assert energy[onset:onset + 3].max() > 10 * bed, s.id  # >= 10 dB above the bed


def test_prosody_cues_measurable(built):
    from amlib.data.offline.prosody import AGE_PROXIES

    er_rate = {s.meta["label"]: len(s.meta["transcript"].split()) / s.duration_s for s in built["ER"]}
    assert er_rate["fearful"] > er_rate["sad"] and er_rate["happy"] > er_rate["sad"]
    rate = {}
    for s in built["SAR"]:
        rate[s.meta["label"]] = len(s.meta["transcript"].split()) / s.duration_s
        assert s.meta["age_proxy"] is True
    young, old = AGE_GROUPS[0], AGE_GROUPS[-1]
    assert rate[young] > rate[old]
    assert AGE_PROXIES[young].words_per_s[0] > AGE_PROXIES[old].words_per_s[1]


def test_sgr_voice_gender_by_pitch(built):
    import librosa

    for s in built["SGR"]:
        wave, sr = sf.read(str(s.audio_path), dtype="float32")
        f0 = librosa.yin(wave, fmin=60, fmax=400, sr=sr, frame_length=2048, hop_length=512)
        level = librosa.feature.rms(y=wave, frame_length=2048, hop_length=512)[0][: f0.size]
        median = float(np.median(f0[: level.size][level > 0.2 * level.max()]))  # voiced, loud frames
        assert (median < 165) == (s.meta["label"] == "male"), (s.id, s.meta["voice"], median)


def test_deterministic_and_seed_parts(tmp_path):
    a = build(small_request(tmp_path / "a", "SED", seed=1))
    b = build(small_request(tmp_path / "b", "SED", seed=1))
    assert json.dumps(a) == json.dumps(b)
    for row in a:
        assert (tmp_path / "a" / row["audio"]).read_bytes() == (tmp_path / "b" / row["audio"]).read_bytes()
    assert [row["id"] for row in a] == [f"SED-test-{MAX_PER_PART + i:04d}" for i in range(len(a))]
    c = build(small_request(tmp_path / "c", "SED", seed=2))
    assert not {r["id"] for r in a} & {r["id"] for r in c}  # parts can be concatenated
    assert [r["meta"]["event_onsets_s"] for r in a] != [r["meta"]["event_onsets_s"] for r in c]


def test_train_split_uses_train_assets(tmp_path):
    rows = build(small_request(tmp_path, "SGR", split="train"))
    train_voices = {v.name for v in voices.voices_of("train")}
    assert rows and all(r["meta"]["voice"] in train_voices and r["split"] == "train" for r in rows)


def test_plan_rounds_to_class_multiples_and_cycles_answers(caplog):
    req = BuildRequest(out=Path("/nonexistent"), per_task=7, split="test")
    assert len(plan_labels(req, "SGR")) == 6 and "not a multiple" in caplog.text
    scr = plan_labels(BuildRequest(out=Path("/x"), per_task=20, split="test"), "SCR")
    assert len(set(scr)) == 20  # distinct answers while the pool lasts
    many = plan_labels(BuildRequest(out=Path("/x"), per_task=56, split="test"), "SCR")
    assert set(np.unique(many, return_counts=True)[1]) == {2}  # then equal counts


def test_bad_requests_and_missing_assets(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="splits"):
        build(BuildRequest(out=tmp_path, tasks=("SGR",), split="dev"))
    with pytest.raises(ValueError, match="min_seconds <= max_seconds"):
        build(BuildRequest(out=tmp_path, tasks=("SGR",), min_seconds=20, max_seconds=10))
    with pytest.raises(assets.AssetError, match="asterisk-core-sounds-en-wav"):
        assets.require_path(assets.ASTERISK_WAV_DIR, "no-such-prompt.wav")
    monkeypatch.setattr(assets.shutil, "which", lambda name: None)
    with pytest.raises(assets.AssetError, match=r"apt-get install -y fluidsynth"):
        music.render(music.Score(120))
