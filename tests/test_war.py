"""Tests for amlib.metrics.war (Word Accuracy Rate)."""

import pytest

from amlib.metrics.war import EmptyReferenceWarning, normalize_transcript, utterance_wer, word_accuracy_rate


def test_one_substitution_in_four_words_is_75():
    # "cat" -> "dog": 1 error / 4 reference words = WER 0.25 -> WAR 75
    assert utterance_wer("the cat sat down", "the dog sat down") == pytest.approx(0.25)
    assert word_accuracy_rate(["the cat sat down"], ["the dog sat down"]) == pytest.approx(75.0)


@pytest.mark.parametrize("hyp", ["", "   ", None, "Spoken Content:", "?!"])
def test_empty_hypothesis_scores_zero(hyp):
    assert utterance_wer("the cat sat down", hyp) == 1.0
    assert word_accuracy_rate(["the cat sat down"], [hyp]) == 0.0


def test_empty_reference_scores_100_percent_wer_with_a_warning():
    with pytest.warns(EmptyReferenceWarning, match="empty reference"):
        assert utterance_wer("  .  ", "hello") == 1.0
    with pytest.warns(EmptyReferenceWarning):
        assert word_accuracy_rate(["the cat", "..."], ["the cat", ""]) == pytest.approx(50.0)


def test_prefix_is_stripped_before_colon_becomes_space():
    assert normalize_transcript("Spoken Content: The cat sat down.") == "the cat sat down"
    assert normalize_transcript("  spoken content :the cat") == "the cat"
    assert normalize_transcript("**Spoken Content:** the cat") == "the cat"
    # Only a leading prefix is removed.
    assert normalize_transcript("I like spoken content: yes") == "i like spoken content yes"
    assert word_accuracy_rate(["The cat sat down."], ["Spoken Content: the cat sat down"]) == 100.0


def test_punctuation_rules():
    assert normalize_transcript('Hello, world! "Really"? (yes) [no] {maybe}; ok: fine.') == \
        "hello world really yes no maybe ok fine"
    assert normalize_transcript("It's a well-known fact") == "its a wellknown fact"
    assert normalize_transcript("don’t") == normalize_transcript("don't") == "dont"
    assert normalize_transcript("  many \n\t spaces  ") == "many spaces"
    assert utterance_wer("It's well-known.", "its wellknown") == 0.0


def test_runaway_insertions_are_not_capped_by_default_as_in_the_paper():
    # 2 reference words, 4 inserted words -> WER 4/2 = 2.0
    assert utterance_wer("a b", "a b c d e f") == pytest.approx(2.0)
    assert utterance_wer("a b", "a b c d e f", cap=True) == 1.0
    assert word_accuracy_rate(["a b"], ["a b c d e f"]) == pytest.approx(-100.0)
    assert word_accuracy_rate(["a b"], ["a b c d e f"], cap=True) == 0.0


def test_corpus_war_is_mean_of_utterance_wers():
    refs = ["the cat sat down", "hello world", "a b"]
    hyps = ["the dog sat down", "hello world", "a b c d e f"]
    # WERs 0.25, 0.0, 2.0 -> mean 0.75 -> WAR 25; capped 0.25, 0, 1.0 -> mean 0.41667 -> WAR 58.33
    assert word_accuracy_rate(refs, hyps) == pytest.approx(25.0)
    assert word_accuracy_rate(refs, hyps, cap=True) == pytest.approx(100 - 100 * 1.25 / 3)


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="refs has 2 utterances but hyps has 1"):
        word_accuracy_rate(["a", "b"], ["a"])
