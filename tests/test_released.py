"""The paper's released parser and scoring (amlib.metrics.released), checked against expectations
worked out by hand from the released scripts' rules: a corpus of answers for every task
(tests/data/released_parser_corpus.jsonl, each case with the rule that gives it) and scores computed
by hand in the comments. Each test also shows a wrong variant failing."""

import json
from pathlib import Path

import pytest

from amlib.metrics import parse_choice
from amlib.metrics.released import RELEASED_TASKS, clean_asr_released, released_score, released_war
from amlib.tasks import AGE_GROUPS

CORPUS = [json.loads(line) for line in (Path(__file__).parent / "data" / "released_parser_corpus.jsonl").open()]
CHOICES = {"ASC": ["street traffic", "metro station", "public square - pedestrian area", "shopping mall"],
           "ER": ["angry", "happy", "sad", "fearful"], "SD": ["real", "fake"], "SGR": ["male", "female"],
           "SAR": list(AGE_GROUPS)}
N_OPTIONS = {"SD": 2, "SGR": 2, "SAR": 5}


def parse(case, parser="released"):
    task = case["task"]
    choices = case.get("choices") or CHOICES.get(task) or ["w", "x", "y", "z"]
    return parse_choice(case["text"], N_OPTIONS.get(task, 4), choices, parser=parser, task=task)


def mismatches(parser="released"):
    return [(c["task"], c["text"], c["expected"], parse(c, parser)) for c in CORPUS
            if parse(c, parser) != c["expected"]]


def test_the_corpus_covers_every_task():
    assert len(CORPUS) >= 150
    assert {c["task"] for c in CORPUS} == set(RELEASED_TASKS)
    assert all(c["rule"] for c in CORPUS)


def test_released_parser_reads_the_corpus_as_the_scripts_do():
    assert mismatches() == []
    # the paper's written rules and ours read many of these answers otherwise
    assert len(mismatches("paper")) > 30 and len(mismatches("ours")) > 30


def test_scr_reads_the_first_letter_anywhere():
    assert parse_choice("The answer is D.", 4, parser="released", task="SCR") == "A"
    assert parse_choice("The answer is D.", 4, parser="paper") == "D"


def test_released_parser_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match="pass task"):
        parse_choice("A", 4, parser="released")
    with pytest.raises(ValueError, match="released SAR script reads 5 options"):
        parse_choice("A", 4, ["a", "b", "c", "d"], parser="released", task="SAR")
    with pytest.raises(ValueError, match="matches option texts: pass choices"):
        parse_choice("A", 4, parser="released", task="ASC")
    with pytest.raises(ValueError, match="no released parser for task 'ASR'"):
        parse_choice("A", 4, parser="released", task="ASR")


def macro_over_present(truth, pred):
    """A wrong variant for SCR/MC and SAR: macro-F1 over the labels present only."""
    from amlib.metrics import macro_f1

    labels = sorted(set(truth) | set(pred))
    return macro_f1(truth, pred, labels)


def test_scr_and_mc_average_over_the_four_letters_of_parsed_items():
    truth, pred = ["A", "B", "C", "D", "A"], ["A", "B", None, "D", "B"]
    # parsed: (A,A) (B,B) (D,D) (A,B). F1: A 2/3, B 2/3, C 0 (never seen), D 1 -> (7/3) / 4
    assert released_score("SCR", truth, pred) == (pytest.approx(100 * 7 / 12), 4)
    kept = [(t, p) for t, p in zip(truth, pred) if p]
    wrong = macro_over_present([t for t, _ in kept], [p for _, p in kept])  # C dropped: (7/3) / 3
    assert wrong == pytest.approx(100 * 7 / 9) and wrong != pytest.approx(released_score("MC", truth, pred)[0])


def test_sed_and_ser_average_over_present_labels():
    # parsed (A,A) (B,A): A 2/3, B 0 -> 1/3 (over A-D it would be 1/6)
    assert released_score("SED", ["A", "B", "C"], ["A", "A", None])[0] == pytest.approx(100 / 3)
    assert released_score("SER", ["A", "B", "C"], ["A", "A", None])[0] == pytest.approx(100 / 3)


def test_asc_and_er_drop_answers_that_are_no_true_answer():
    # C is no true answer of the run: dropped. Kept (A,A) (A,B): A 2/3, B 0 -> 1/3
    assert released_score("ASC", ["A", "B", "A"], ["A", "C", "B"]) == (pytest.approx(100 / 3), 2)
    # kept with it (wrong): A 2/3, B 0, C 0 -> 2/9
    assert macro_over_present(["A", "B", "A"], ["A", "C", "B"]) == pytest.approx(200 / 9)


def test_sgr_is_weighted_f1():
    truth, pred = ["male", "male", "male", "female"], ["male", "male", "female", "female"]
    # male: P 1, R 2/3 -> 0.8 (3 items); female: P 1/2, R 1 -> 2/3 (1 item); weighted (2.4 + 2/3) / 4
    assert released_score("SGR", truth, pred)[0] == pytest.approx(100 * (2.4 + 2 / 3) / 4)
    assert macro_over_present(truth, pred) == pytest.approx(100 * (0.8 + 2 / 3) / 2)  # the macro variant differs


def test_sd_is_the_f1_of_fake_over_all_items():
    truth, pred = ["real", "real", "fake", "fake", "fake"], ["real", None, "fake", None, "real"]
    # tp 1; fp: real items not answered real = 1 (the unparsed one); fn: fake items not fake = 2
    # P 1/2, R 1/3 -> F1 2/5
    assert released_score("SD", truth, pred) == (pytest.approx(40.0), 5)
    kept = [(t, p) for t, p in zip(truth, pred) if p]  # wrong: parsed-only macro: 2/3 and 2/3
    assert macro_over_present([t for t, _ in kept], [p for _, p in kept]) == pytest.approx(200 / 3)


def test_sar_averages_over_every_true_label():
    young, senior, elderly = (g.lower() for g in (AGE_GROUPS[0], AGE_GROUPS[3], AGE_GROUPS[4]))
    # elderly is no true label: dropped. Kept (young, young); labels young, senior: 1 and 0 -> 50
    assert released_score("SAR", [young, young, senior], [young, None, elderly]) == (50.0, 1)
    assert macro_over_present([young], [young]) == 100.0


def test_asr_drops_empty_answers_and_cleans_the_marker():
    assert clean_asr_released("Sure. Spoken Content: a b <sep> junk") == "a b"
    assert clean_asr_released("Transcript: hello") == "hello"
    # the empty answer leaves the score: WER 0 on the one left -> 100 (ours: (100 + 0) / 2)
    assert released_war(["a b", "c d"], ["Spoken Content: a b", ""]) == (100.0, 1)
    from amlib.metrics import word_accuracy_rate

    assert word_accuracy_rate(["a b", "c d"], ["Spoken Content: a b", ""]) == 50.0


def test_score_table_released_scoring_names_itself_and_keeps_ours_as_default():
    from amlib.report import score_table

    rows = [{"id": f"s{i}", "task": "SCR", "answer": "ABCD"[i], "choices": ["w", "x", "y", "z"], "error": None,
             "prediction": ["A", "B", "none", "D"][i]} for i in range(4)]
    ours = score_table(rows, n_resamples=50)
    released = score_table(rows, n_resamples=50, parser="released", scoring="released")
    # released: parsed (A,A) (B,B) (D,D); C counts 0 over A-D -> 75. Ours keeps C's item as wrong: 75 too
    # over 4 classes (C's F1 0); its interval exists, released has none
    assert released.loc["SCR", "score"] == 75.0 and released.loc["SCR", "scored_items"] == 3
    assert (released.loc["SCR", "scoring"], ours.loc["SCR", "scoring"]) == ("released", "ours")
    assert ours.loc["SCR", "ci_low"] < 75.0 and released[["ci_low", "ci_high"]].isna().all(axis=None)
    with pytest.raises(ValueError, match="unknown scoring"):
        score_table(rows, scoring="paper")


def test_cli_score_takes_the_released_parser_and_scoring(tmp_path, capsys):
    from amlib.cli import main

    # "The answer is D." reads as A under the released SCR rule (first A-D letter anywhere), as D under ours
    rows = [{"id": "s0", "task": "SCR", "answer": "D", "choices": ["w", "x", "y", "z"], "error": None,
             "prediction": "The answer is D."}]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    main(["score", str(path)])
    ours = capsys.readouterr().out
    main(["score", str(path), "--parser", "released", "--scoring", "released"])
    released = capsys.readouterr().out
    assert "released" in released and "released" not in ours
    from amlib.report import score_table
    assert score_table(rows, n_resamples=20).loc["SCR", "accuracy"] == 100.0
    assert score_table(rows, n_resamples=20, parser="released", scoring="released").loc["SCR", "accuracy"] == 0.0
