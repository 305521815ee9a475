"""ASR error patterns (amlib.metrics.asr_errors): counts from jiwer's alignment, rates, loops."""

import jiwer
import pytest

from amlib.metrics.asr_errors import error_patterns, repetition_loop


def test_each_error_kind_is_counted_as_aligned():
    p = error_patterns(["the cat sat on the mat", "a b c d", "a b c"],
                       ["Spoken Content: the cat sit on the mat", "a c d", "a b z c"])
    assert dict(p.substitutions) == {("sat", "sit"): 1}
    assert dict(p.deletions) == {"b": 1}
    assert dict(p.insertions) == {"z": 1}
    assert p.reference_words == 13 and p.utterances == 3
    rates = p.rates()
    assert rates["sub_rate"] == pytest.approx(100 / 13) and rates["wer"] == pytest.approx(300 / 13)
    assert p.top("substitutions") == "'sat' -> 'sit': 1" and p.top("deletions") == "'b': 1"


def test_rates_sum_to_jiwers_corpus_wer():
    refs = ["one two three four five", "the quick brown fox", "jumps over the lazy dog"]
    hyps = ["one too three four four five", "the quick fox", "jumps over over the lazy lazy dog dog"]
    p = error_patterns(refs, hyps)
    assert p.rates()["wer"] == pytest.approx(100 * jiwer.wer(refs, hyps))


def test_empty_hypothesis_deletes_everything_and_empty_reference_is_an_error():
    p = error_patterns(["the the cat"], [None])
    assert dict(p.deletions) == {"the": 2, "cat": 1} and p.rates()["del_rate"] == 100
    with pytest.raises(ValueError, match="utterance 1"):
        error_patterns(["fine", "..."], ["fine", "x"])
    with pytest.raises(ValueError, match="2 utterances"):
        error_patterns(["a", "b"], ["a"])


def test_repetition_loops():
    assert repetition_loop("we went home we went home we went home and slept") == ("we went home", 3)
    assert repetition_loop("the the cat") is None
    assert repetition_loop("la la la la la") == ("la", 5)
    assert repetition_loop("") is None and repetition_loop(None) is None


def _row(config: dict, answer: str, prediction: str, new_tokens: int = 10, task: str = "ASR") -> dict:
    return {"task": task, "answer": answer, "prediction": prediction, "new_tokens": new_tokens, "error": None,
            "provenance": {"method": "vanilla", "ratio": 0.0, "layer": None, "press": None, **config}}


def test_asr_error_table_per_configuration():
    from amlib.report import asr_error_table

    vanilla = [_row({}, "a b c d", "a b c d"), _row({}, "x y", "x y"), _row({}, "A", "A", task="MC")]
    frame = [_row({"method": "frame", "ratio": 0.9, "layer": 2}, "a b c d", "a b b b b b c"),
             _row({"method": "frame", "ratio": 0.9, "layer": 2}, "x y", "x", new_tokens=1100)]
    press = [_row({"press": "snapkv", "ratio": 0.5, "protocol": "query_aware"}, "a b c d", "")]
    table = asr_error_table([vanilla, frame, press]).set_index("configuration")
    assert list(table.index) == ["vanilla", "frame 0.9 (K2)", "snapkv 0.5 query_aware"]
    assert table.loc["vanilla", "wer"] == 0 and table.loc["vanilla", "n"] == 2
    assert table.loc["frame 0.9 (K2)", "loops"] == 1 and table.loc["frame 0.9 (K2)", "truncated"] == 1
    assert table.loc["frame 0.9 (K2)", "insertions"] == "'b': 4" and table.loc["frame 0.9 (K2)", "deletions"] == "'d': 1, 'y': 1"
    assert table.loc["snapkv 0.5 query_aware", "del_rate"] == 100
