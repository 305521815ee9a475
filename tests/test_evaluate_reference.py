"""scripts/evaluate_reference.py: which ASR items count as real speech (the issue's real-speech figure)."""

from amlib.data.manifest import Sample
from conftest import load_script


def _script():
    return load_script("evaluate_reference")


def _asr(item_id, real, task="ASR"):
    assets = {"tts_speakers": [] if real else ["espeak-en-us"], "real_speakers": ["asterisk-allison"] if real else []}
    return Sample(id=item_id, task=task, audio="a.wav", duration_s=100.0, question="", choices=[], answer="x",
                  source="offline", split="test", meta={"assets": assets})


def test_real_speech_items_are_the_asr_items_with_a_real_speaker_in_their_assets():
    samples = [_asr("ASR-0", real=False), _asr("ASR-1", real=True), _asr("SD-0", real=True, task="SD")]
    assert _script().real_speech_ids(samples) == {"ASR-1"}
