"""The offline TTS skeleton set (SGR + ASR). Needs the Debian packages espeak-ng and flite."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from amlib.data import read_manifest
from amlib.data.offline import DEBIAN_PACKAGES, VOICES, TTSError, Voice, make_sentences, synthesize
from amlib.data.offline.skeleton import SkeletonError, build_skeleton



def test_tts_engines_installed():
    """Not skipped when the engines are missing: this fails and names the packages."""
    missing = [p for p in ("espeak-ng", "flite") if shutil.which(p) is None]
    assert not missing, f"needs the Debian packages: apt-get install -y {' '.join(DEBIAN_PACKAGES)}"

SMALL = dict(per_task=2, min_seconds=8, max_seconds=15)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("skel")
    path = build_skeleton(out, seed=3, **SMALL)
    return out, path


def test_manifest_valid_and_durations_honest(built):
    out, path = built
    assert path == out / "manifest.jsonl"
    samples = read_manifest(path)
    assert [s.id for s in samples] == ["SGR-test-0000", "SGR-test-0001", "ASR-test-0000", "ASR-test-0001"]
    for s in samples:
        info = sf.info(str(s.audio_path))
        assert info.samplerate == 16000 and info.channels == 1
        assert s.duration_s == info.frames / info.samplerate
        assert 8 <= s.duration_s <= 15
        assert s.source == "offline-tts" and s.split == "test"
        assert s.meta["n_sentences"] >= 1 and s.meta["seed"] == 3
        wave, _ = sf.read(str(s.audio_path), dtype="float32")
        assert 20 * np.log10(np.abs(wave).max()) == pytest.approx(-1.0, abs=0.05)


def test_sgr_balanced_and_labelled(built):
    sgr = [s for s in read_manifest(built[1]) if s.task == "SGR"]
    assert [s.meta["gender"] for s in sgr] == ["male", "female"]
    for s in sgr:
        assert s.choices == ["male", "female"]
        assert s.question == "Is this a male or female voice?"
        assert s.answer == {"male": "A", "female": "B"}[s.meta["gender"]]
        assert any(v.engine == s.meta["engine"] and v.name == s.meta["voice"] and v.gender == s.meta["gender"] for v in VOICES)


def test_asr_transcript(built):
    asr = [s for s in read_manifest(built[1]) if s.task == "ASR"]
    for s in asr:
        assert s.choices == [] and s.question == "Transcribe the audio."
        assert s.answer[0].isupper() and s.answer[-1] in ".?"
        assert not any(ch.isdigit() for ch in s.answer)
        ends = sum(s.answer.count(p + " ") for p in ".?") + 1
        assert ends == s.meta["n_sentences"]


def test_deterministic_and_seed_dependent(built, tmp_path):
    out, path = built
    again = build_skeleton(tmp_path / "again", seed=3, workers=1, **SMALL)
    assert again.read_bytes() == path.read_bytes()
    for s in read_manifest(again):
        assert s.audio_path.read_bytes() == (out / s.audio).read_bytes()
    other = build_skeleton(tmp_path / "other", seed=4, **SMALL)
    a = {s.id: (s.answer, s.meta["voice"], s.duration_s) for s in read_manifest(path)}
    b = {s.id: (s.answer, s.meta["voice"], s.duration_s) for s in read_manifest(other)}
    assert a != b
    assert a["ASR-test-0000"][0] != b["ASR-test-0000"][0]


def test_sentences():
    first = make_sentences(50, np.random.default_rng(0))
    assert first == make_sentences(50, np.random.default_rng(0))
    assert first != make_sentences(50, np.random.default_rng(1))
    assert len(set(first)) == 50
    assert all(8 <= len(s.split()) <= 20 for s in first)
    assert all(8 <= len(s.split()) <= 9 for s in make_sentences(20, 5, max_words=9))


def test_synthesize_16k_float32():
    wave = synthesize("The quiet baker carried two baskets to the market.", VOICES[0])
    assert wave.dtype == np.float32 and wave.ndim == 1 and 1.0 < wave.size / 16000 < 10.0


def test_bad_voice_and_engine_raise_clearly(tmp_path):
    with pytest.raises(TTSError, match=r"flite has no voice 'nosuch'"):
        synthesize("Hello there, this is a test.", Voice("flite", "nosuch", "male", "bad"))
    with pytest.raises(TTSError, match=r"espeak-ng has no voice variant 'zz9'"):
        synthesize("Hello there, this is a test.", Voice("espeak-ng", "en-us+zz9", "female", "bad"))
    with pytest.raises(TTSError, match=r"espeak-ng has no voice 'xx-nowhere'"):
        synthesize("Hello there, this is a test.", Voice("espeak-ng", "xx-nowhere", "female", "bad"))
    with pytest.raises(TTSError, match=r"unknown TTS engine 'festivalx'"):
        Voice("festivalx", "kal", "male", "bad")
    with pytest.raises(TTSError, match=r"nosuch"):
        build_skeleton(tmp_path / "bad", voices=[VOICES[0], Voice("flite", "nosuch", "female", "bad")], **SMALL)
    assert not (tmp_path / "bad" / "manifest.jsonl").exists()


def test_impossible_bounds_raise(tmp_path):
    with pytest.raises(SkeletonError, match="below min_seconds"):
        build_skeleton(tmp_path / "tight", per_task=1, min_seconds=1.0, max_seconds=1.2)
    with pytest.raises(ValueError, match="min_seconds <= max_seconds"):
        build_skeleton(tmp_path / "x", min_seconds=20, max_seconds=10)


def test_missing_engine_names_apt_package(monkeypatch):
    import amlib.data.offline.tts as tts

    monkeypatch.setattr(tts.shutil, "which", lambda name: None)
    with pytest.raises(TTSError, match=r"apt-get install -y flite"):
        synthesize("Hello there, this is a test.", Voice("flite", "slt", "female", "x"))
