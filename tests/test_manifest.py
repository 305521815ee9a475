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


# --- bad input: unknown fields, durations, empty references, bad audio ------------------------

from amlib.data.audio import AudioError  # noqa: E402
from amlib.data.manifest import input_fingerprint  # noqa: E402


def test_unknown_field_is_rejected_not_dropped(tmp_path):
    rows = [make_item(tmp_path, "a"), make_item(tmp_path, "b", speaker="spk1")]
    path = write_rows(tmp_path / "manifest.jsonl", rows)
    with pytest.raises(ManifestError, match=r"manifest.jsonl:2: field 'speaker': unknown field.*'meta'"):
        read_manifest(path)
    rows[1].pop("speaker")
    rows[1]["meta"] = {"speaker": "spk1"}  # where it belongs
    assert read_manifest(write_rows(path, rows))[1].meta == {"speaker": "spk1"}


def test_duration_disagreeing_with_the_audio_by_more_than_1s_is_an_error(tmp_path):
    rows = [make_item(tmp_path, "a", seconds=2.0), make_item(tmp_path, "b", seconds=2.0)]
    rows[1]["duration_s"] = 3.5
    path = write_rows(tmp_path / "manifest.jsonl", rows)
    with pytest.raises(ManifestError, match=r"manifest.jsonl:2: field 'duration_s': sample 'b'.*3.50 s.*2.00 s"):
        read_manifest(path)
    assert len(read_manifest(path, check_audio=False)) == 2  # the audio is not looked at
    rows[1]["duration_s"] = 2.9  # within 1 s
    assert read_manifest(write_rows(path, rows))[1].duration_s == 2.9


def test_empty_audio_file_fails_at_the_manifest_and_at_load(tmp_path):
    import soundfile as sf

    row = make_item(tmp_path, "a", seconds=2.0)
    sf.write(tmp_path / row["audio"], np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(ManifestError, match="sample 'a'.*holds 0.00 s"):
        read_manifest(write_rows(tmp_path / "manifest.jsonl", [row]))
    with pytest.raises(AudioError, match=r"a\.wav: no audio samples"):
        load_audio(tmp_path / row["audio"])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_name_the_file(tmp_path, bad):
    import soundfile as sf

    wave = np.zeros(16000, dtype=np.float32)
    wave[8000] = bad
    sf.write(tmp_path / "nan.wav", wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: 1 non-finite sample.*0\.500 s"):
        load_audio(tmp_path / "nan.wav")


def test_unreadable_audio_header_is_a_manifest_error(tmp_path):
    row = make_item(tmp_path, "a")
    (tmp_path / row["audio"]).write_bytes(b"not audio")
    with pytest.raises(ManifestError, match="field 'audio': sample 'a': cannot read the header"):
        read_manifest(write_rows(tmp_path / "manifest.jsonl", [row]))


def test_reference_empty_after_normalisation_is_rejected(tmp_path):
    row = make_item(tmp_path, "a", task="ASR", answer=" ... ")
    with pytest.raises(ManifestError, match="field 'answer'.*empty after WAR normalisation"):
        read_manifest(write_rows(tmp_path / "manifest.jsonl", [row]))


def test_input_fingerprint_changes_with_audio_and_text(tmp_path):
    rows = [make_item(tmp_path, "a"), make_item(tmp_path, "b")]
    a, b = read_manifest(write_manifest(tmp_path / "manifest.jsonl", rows))
    fp = input_fingerprint(a)
    assert fp == input_fingerprint(a) and fp["task"] == "SGR" and len(fp["audio_sha256"]) == 64
    assert fp == input_fingerprint(b)  # same tone, same question: same inputs
    import dataclasses

    assert input_fingerprint(dataclasses.replace(a, answer="B"))["answer_sha256"] != fp["answer_sha256"]
    assert input_fingerprint(dataclasses.replace(a, question="?"))["question_sha256"] != fp["question_sha256"]
    (tmp_path / a.audio).write_bytes((tmp_path / a.audio).read_bytes()[:-2] + b"\x01\x00")
    assert input_fingerprint(a)["audio_sha256"] != fp["audio_sha256"]
