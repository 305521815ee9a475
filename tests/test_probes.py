"""Shortcut probes (amlib.data.probes): feature extractors, the planted-shortcut check, tables."""

import json

import numpy as np
import pytest

from amlib.data.audio import SAMPLE_RATE, write_audio
from amlib.data.probes import (
    FeatureCache, ProbeItem, audio_features, chance_level, compare_flags, flags, is_legitimate, legitimacy_table,
    probe_table, run_probes, wilson,
)

SR = SAMPLE_RATE
EMOTIONS = ["neutral", "happy", "sad", "angry", "fearful"]


def tone(freq: float, seconds: float, amp: float = 0.1) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def bursts(rate_hz: float, seconds: float, seed: int = 0) -> np.ndarray:
    """Short noise bursts `rate_hz` times a second over silence (onset-rate test signal)."""
    rng = np.random.default_rng(seed)
    wave = np.zeros(int(seconds * SR), np.float32)
    step, burst = int(SR / rate_hz), int(0.03 * SR)
    for start in range(step // 2, len(wave) - burst, step):
        wave[start:start + burst] = 0.3 * rng.standard_normal(burst)
    return wave


def test_loudness_and_duration():
    quiet, loud = audio_features(tone(440, 5, 0.02)), audio_features(tone(440, 5, 0.2))
    assert loud["loudness_lufs"] == pytest.approx(quiet["loudness_lufs"] + 20, abs=0.5)
    assert quiet["duration_s"] == pytest.approx(5.0, abs=1e-3)


def test_pitch_of_tones():
    assert audio_features(tone(200, 4))["f0_median_hz"] == pytest.approx(200, rel=0.02)
    assert audio_features(tone(110, 4))["f0_median_hz"] == pytest.approx(110, rel=0.02)


def test_centroid_and_onset_rate():
    assert audio_features(tone(3000, 3))["centroid_hz"] > 2 * audio_features(tone(500, 3))["centroid_hz"]
    slow, fast = audio_features(bursts(1.0, 10)), audio_features(bursts(4.0, 10))
    assert slow["onset_rate_hz"] == pytest.approx(1.0, abs=0.3)
    assert fast["onset_rate_hz"] == pytest.approx(4.0, abs=0.8)
    assert slow["syllable_rate_hz"] == pytest.approx(1.0, abs=0.3)
    assert fast["syllable_rate_hz"] == pytest.approx(4.0, abs=0.8)
    assert audio_features(tone(1000, 5))["syllable_rate_hz"] < 0.5  # a steady tone has no nuclei


def test_long_items_are_analysed_in_windows():
    """A 200 s tone: only 60 s are analysed for pitch, but loudness and duration see the whole item."""
    feats = audio_features(tone(150, 200))
    assert feats["duration_s"] == pytest.approx(200, abs=1e-3)
    assert feats["f0_median_hz"] == pytest.approx(150, rel=0.02)


def test_cache_is_keyed_by_audio_content(tmp_path):
    write_audio(tmp_path / "a.wav", tone(200, 2))
    write_audio(tmp_path / "b.wav", tone(200, 2))  # same bytes: one entry
    cache = FeatureCache(tmp_path / "cache.json")
    first = cache.features(tmp_path / "a.wav")
    assert cache.features(tmp_path / "b.wav") == first and (cache.hits, cache.misses) == (1, 1)
    cache.save()
    again = FeatureCache(tmp_path / "cache.json")
    assert again.features(tmp_path / "a.wav") == first and again.hits == 1
    assert len(json.loads((tmp_path / "cache.json").read_text())) == 1
    key = next(iter(again.data))
    del again.data[key]["syllable_rate_hz"]  # an entry cached before that feature existed
    assert again.features(tmp_path / "a.wav") == first  # completed without recomputing the rest


def test_wilson():
    lo, hi = wilson(10, 20)
    assert lo == pytest.approx(0.299, abs=1e-3) and hi == pytest.approx(0.701, abs=1e-3)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0


def synthetic_er(n: int, seed: int, split_offset: int = 0) -> list[ProbeItem]:
    """ER items whose loudness is set by the emotion (a planted shortcut); pitch is random noise,
    labels and answer letters balanced and in random order, options shuffled, like the suite's."""
    rng = np.random.default_rng(seed)
    labels = [EMOTIONS[j % 5] for j in rng.permutation(n)]  # balanced, in random order
    positions = [j % 4 for j in rng.permutation(n)]
    items = []
    for i in range(n):
        label, pos = labels[i], positions[i]
        others = [e for e in EMOTIONS if e != label]
        picked = [others[j] for j in rng.permutation(4)[:3]]
        choices = picked[:pos] + [label] + picked[pos:]
        feats = {"loudness_lufs": -30 + 3 * EMOTIONS.index(label) + rng.normal(0, 0.3),
                 "duration_s": float(rng.uniform(30, 90)), "f0_median_hz": float(rng.uniform(90, 250)),
                 "onset_rate_hz": float(rng.uniform(2, 5)),
                 "syllable_rate_hz": float(rng.uniform(2, 5)), "centroid_hz": float(rng.uniform(800, 2500))}
        items.append(ProbeItem("ER", split_offset + i, "What emotion does the speaker express?", choices,
                               "ABCD"[pos], feats))
    return items


def test_position_shortcut_is_flagged():
    """Labels in round-robin order (label = index mod 5): the position probe finds it."""
    train, test = synthetic_er(50, seed=1), synthetic_er(30, seed=2)
    for items in (train, test):
        for i, it in enumerate(sorted(items, key=lambda it: EMOTIONS.index(it.label))):
            it.index = (i % 10) * 5 + EMOTIONS.index(it.label)
    by = {r["probe"]: r for r in run_probes(train, test, probes=["position", "pitch"])}
    assert by["position"]["accuracy"] == 1.0 and by["position"]["flagged"]
    assert not by["pitch"]["flagged"]


def test_planted_loudness_shortcut_is_flagged_and_noise_is_not():
    rows = run_probes(synthetic_er(100, seed=1), synthetic_er(60, seed=2))
    by = {r["probe"]: r for r in rows}
    assert by["loudness"]["accuracy"] > 0.9 and by["loudness"]["flagged"]
    assert not by["loudness"]["legitimate"]
    assert by["shortcut audio"]["flagged"] and not by["legit audio"]["beats_chance"]
    for probe in ("pitch", "duration", "onsets", "syllables", "centroid", "position", "letter", "text: options", "text: question"):
        assert not by[probe]["beats_chance"], (probe, by[probe])
    assert by["pitch"]["chance"] == pytest.approx(0.2)
    listed = flags(rows)
    assert [line.split(":")[0] for line in listed] == ["ER loudness", "ER shortcut audio"]
    r = by["loudness"]
    assert listed[0] == f"ER loudness: {100 * r['accuracy']:.0f} [{100 * r['ci_low']:.0f}-{100 * r['ci_high']:.0f}] > chance 20"


def test_legitimate_cue_beats_chance_without_a_flag():
    """SGR decided by pitch: beats chance, legitimate, not flagged."""
    rng = np.random.default_rng(0)

    def sgr(n, seed_off):
        out = []
        for i, j in enumerate(rng.permutation(n)):
            label = ["male", "female"][j % 2]
            f0 = rng.normal(110 if label == "male" else 200, 10)
            feats = {"loudness_lufs": -23.0, "duration_s": float(rng.uniform(30, 90)), "f0_median_hz": f0,
                     "onset_rate_hz": float(rng.uniform(2, 5)),
                 "syllable_rate_hz": float(rng.uniform(2, 5)), "centroid_hz": float(rng.uniform(800, 2500))}
            out.append(ProbeItem("SGR", seed_off + i, "Is this a male or female voice?", ["male", "female"],
                                 "AB"[j % 2], feats))
        return out

    by = {r["probe"]: r for r in run_probes(sgr(60, 0), sgr(40, 1000))}
    assert by["pitch"]["beats_chance"] and by["pitch"]["legitimate"] and not by["pitch"]["flagged"]
    assert not any(r["flagged"] for r in by.values())


def test_text_probe_finds_a_question_naming_a_wrong_option():
    """SCR-like items where the question names one wrong option: the text probe learns to avoid it."""
    rng = np.random.default_rng(3)
    names = ["Anna", "Ben", "Carl", "Dora", "Emil", "Fay", "Gus", "Hana", "Ivan", "Jill"]

    def items(n, off):
        out = []
        for i in range(n):
            opts = [names[j] for j in rng.permutation(len(names))[:4]]
            answer = i % 4
            named = (answer + 1 + int(rng.integers(3))) % 4  # a wrong option, named in the question
            out.append(ProbeItem("SCR", off + i, f"Who ended up with the key that {opts[named]} bought?", opts,
                                 "ABCD"[answer]))
        return out

    by = {r["probe"]: r for r in run_probes(items(120, 0), items(80, 1000), tasks=["SCR"])}
    assert set(by) == {"position", "letter", "text: options"}  # no audio and no question probe for SCR
    assert by["text: options"]["accuracy"] > 0.28 and by["text: options"]["beats_chance"]
    assert by["text: options"]["flagged"]
    assert chance_level("letter", items(8, 0)) == pytest.approx(0.25)


def test_tables():
    rows = run_probes(synthetic_er(50, seed=1), synthetic_er(25, seed=2))
    table = probe_table(rows)
    assert table.loc["ER", "loudness"].endswith("!") and table.loc["ER", "n train/test"] == "50/25"
    legit = legitimacy_table()
    assert "pitch" in legit.loc["SGR", "legitimate cues"] and "loudness" in legit.loc["ER", "shortcuts (never legitimate)"]
    assert is_legitimate("SGR", "pitch") and is_legitimate("ER", "legit audio") and not is_legitimate("SGR", "shortcut audio") and not is_legitimate("ER", "loudness") and not is_legitimate("MC", "duration")


def test_compare_flags_before_and_after():
    before = run_probes(synthetic_er(50, seed=1), synthetic_er(25, seed=2), probes=["loudness", "pitch"])
    fixed = synthetic_er(50, seed=1), synthetic_er(25, seed=2)
    for items in fixed:
        for it in items:
            it.features["loudness_lufs"] = -23.0  # the generator fix: one level for every emotion
    after = run_probes(*fixed, probes=["loudness", "pitch"])
    table = compare_flags(before, after)
    assert list(table["probe"]) == ["loudness"]
    assert table.loc[0, "flagged before"] and not table.loc[0, "flagged after"]
    assert table.loc[0, "status"] == "fixed"
    # the other way round the same cue is a new flag, and a cue flagged in both runs is still flagged
    assert compare_flags(after, before).loc[0, "status"] == "new flag"
    assert compare_flags(before, before).loc[0, "status"] == "still flagged"
