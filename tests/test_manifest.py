import json

import numpy as np
import pytest

from amlib.data import ManifestError, load_audio, read_manifest, write_manifest
from conftest import make_item, write_rows


def test_valid_manifest_reads_back(tmp_path):
    rows = [make_item(tmp_path, "a"), make_item(tmp_path, "b", task="ASR")]
    samples = read_manifest(write_manifest(tmp_path / "manifest.jsonl", rows))
    assert [s.id for s in samples] == ["a", "b"]
    assert samples[1].choices == [] and samples[1].answer == "hello world"
    assert samples[0].audio_path.is_file()


@pytest.mark.parametrize(
    "change, line, field, why",
    [
        (lambda r: r.pop("answer"), 2, "answer", "missing"),
        (lambda r: r.update(task="XYZ"), 2, "task", "unknown task"),
        (lambda r: r.update(answer="C"), 2, "answer", "not one of the letters A, B"),
        (lambda r: r.update(audio="audio/none.wav"), 2, "audio", "file not found"),
        (lambda r: r.update(id="a"), 2, "id", "duplicate id"),
        (lambda r: r.update(choices=["female", "male"]), 2, "choices", "fixes the options"),
        (lambda r: r.update(duration_s="long"), 2, "duration_s", "expected"),
        (lambda r: r.update(meta=[]), 2, "meta", "expected dict"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, change, line, field, why):
    rows = [make_item(tmp_path, "a"), make_item(tmp_path, "b")]
    change(rows[1])
    path = write_rows(tmp_path / "manifest.jsonl", rows)
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    message = str(err.value)
    assert f"{path}:{line}" in message and f"'{field}'" in message and why in message


def test_wrong_option_count_and_duplicates(tmp_path):
    row = make_item(tmp_path, "a", task="MC", choices=["rock", "jazz", "rock", "pop"], answer="B")
    with pytest.raises(ManifestError, match="duplicate options"):
        read_manifest(write_rows(tmp_path / "manifest.jsonl", [row]))
    row["choices"] = ["rock", "jazz"]
    with pytest.raises(ManifestError, match="needs 4 options, got 2"):
        read_manifest(write_rows(tmp_path / "manifest.jsonl", [row]))


def test_invalid_json_line_is_named(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text(json.dumps(make_item(tmp_path, "a")) + "\n{not json\n")
    with pytest.raises(ManifestError, match=r"manifest.jsonl:2: not valid JSON"):
        read_manifest(path)


def test_asr_needs_reference_and_no_choices(tmp_path):
    row = make_item(tmp_path, "a", task="ASR", answer="  ")
    with pytest.raises(ManifestError, match="'answer': empty reference"):
        read_manifest(write_rows(tmp_path / "manifest.jsonl", [row]))


def test_audio_loads_as_16k_mono_float32(tmp_path):
    import soundfile as sf

    stereo = np.stack([np.linspace(-0.5, 0.5, 44100), np.zeros(44100)], axis=1)
    sf.write(tmp_path / "x.wav", stereo, 44100)
    wave = load_audio(tmp_path / "x.wav")
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - 16000) <= 1


def test_unreadable_audio_names_the_file(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    with pytest.raises(OSError, match="bad.wav"):
        load_audio(bad)
