"""Tests for amlib.report's score tables on hand-made prediction rows (no model needed)."""

import numpy as np
import pandas as pd
import pytest

from amlib.report import beside_paper, score_table


def sd_rows(n=40, answer="fake", seed=0):
    """Balanced SD items with shuffled options; the model always answers with `answer`'s letter."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        options = ["real", "fake"] if rng.random() < 0.5 else ["fake", "real"]
        rows.append({"id": f"sd{i}", "task": "SD", "choices": options, "error": None,
                     "answer": "AB"[options.index(["real", "fake"][i % 2])],
                     "prediction": "AB"[options.index(answer)]})
    return rows


def test_sd_is_scored_over_label_text_with_label_chance():
    table = score_table(sd_rows())
    assert table.loc["SD", "f1_over"] == "label text"
    assert table.loc["SD", "score"] == pytest.approx(100 / 3)
    assert 45.0 < table.loc["SD", "chance"] < 55.0  # a uniform guesser over the two labels
    assert table.loc["SD", "ci_low"] < table.loc["SD", "score"] < table.loc["SD", "ci_high"]


def test_rows_without_choices_are_refused_where_needed_and_named():
    rows = sd_rows(4)
    rows[2].pop("choices")
    with pytest.raises(ValueError, match="row 'sd2' \\(SD\\) has no 'choices'"):
        score_table(rows)
    sgr = [{"id": "g", "task": "SGR", "answer": "B", "prediction": "female", "error": None}]
    assert score_table(sgr).loc["SGR", "score"] == 100.0  # fixed options: the task knows them


def test_errors_count_as_wrong_and_asr_shows_capped_beside_uncapped():
    rows = [{"id": "x", "task": "ASR", "answer": "a b", "prediction": "a b c d e f", "choices": [], "error": None},
            {"id": "y", "task": "ASR", "answer": "a b", "prediction": None, "choices": [], "error": "OSError"},
            {"id": "z", "task": "ASR", "answer": "a b", "prediction": "a b", "choices": [], "error": None}]
    table = score_table(rows)
    assert table.loc["ASR", "score"] == pytest.approx(100 - 100 * (2.0 + 1.0 + 0.0) / 3)
    assert table.loc["ASR", "war_capped"] == pytest.approx(100 - 100 * 2.0 / 3)
    assert table.loc["ASR", "errors"] == 1 and table.loc["ASR", "unparsed"] == 1


def test_beside_paper_uses_the_released_parser_and_scoring():
    rows = [{"id": f"g{i}", "task": "SGR", "answer": "AB"[i % 2], "choices": ["male", "female"],
             "prediction": ["A cat", "b"][i % 2], "error": None} for i in range(4)]
    for parser, scoring in (("ours", "ours"), ("paper", "ours"), ("released", "ours"), ("paper", "released")):
        with pytest.raises(ValueError, match="parser='released', scoring='released'"):
            beside_paper(score_table(rows, parser=parser, scoring=scoring), "us")
    table = beside_paper(rows, "us")
    label = "us [released parser and scoring]"
    assert table.index[0] == label
    # released SGR script: "a cat" matches none of its rules (unparsed, dropped); "b" -> female, right:
    # weighted F1 over the 2 parsed items = 100. Ours keeps the 2 unparsed items as wrong: below 100.
    assert table.loc[label, "SGR"] == 100.0
    assert score_table(rows).loc["SGR", "score"] < 100.0
    assert beside_paper(score_table(rows, parser="released", scoring="released"), "us").equals(table)


def test_random_baseline_is_at_chance_and_reproducible():
    from types import SimpleNamespace

    from amlib.report import random_baseline

    samples = [SimpleNamespace(task="MC", answer="ABCD"[i % 4], choices=["rock", "jazz", "pop", "folk"])
               for i in range(200)]
    samples += [SimpleNamespace(task="SGR", answer="AB"[i % 2], choices=["male", "female"]) for i in range(200)]
    samples += [SimpleNamespace(task="ASR", answer="words", choices=[]) for _ in range(3)]
    table = random_baseline(samples, guessers=100, seed=0).set_index("task")
    assert list(table.index) == ["MC", "SGR"]  # ASR has no options
    assert table.loc["MC", "acc_mean"] == pytest.approx(25, abs=1.5)
    assert table.loc["SGR", "macro_f1_mean"] == pytest.approx(50, abs=2)
    assert table.loc["MC", "acc_sd"] > 0
    again = random_baseline(samples, guessers=100, seed=0)
    assert again.equals(random_baseline(samples, guessers=100, seed=0))
    assert not again.equals(random_baseline(samples, guessers=100, seed=1))


def test_compare_runs_on_common_items():
    from amlib.report import compare_runs

    def row(i, pred, prefill, error=None):
        return {"id": f"SGR-{i}", "task": "SGR", "answer": "AB"[i % 2], "prediction": pred, "error": error,
                "choices": ["male", "female"], "prefill_s": prefill, "decode_s": 0.1, "new_tokens": 1,
                "provenance": {"method": "vanilla", "ratio": 0.0}}

    a = [row(i, "AB"[i % 2], 2.0) for i in range(20)]
    b = [row(i, "AB"[i % 2] if i < 18 else "AB"[(i + 1) % 2], 1.0) for i in range(20)] + [row(99, "A", 1.0)]
    b[0] = row(0, None, 1.0, error="RuntimeError: x")  # an error in b: item 0 left out of both
    table = compare_runs(a, b, labels=("fp32", "bf16"))
    assert table.loc["SGR", "n"] == 19
    assert table.loc["SGR", "same_answer_pct"] == pytest.approx(100 * 17 / 19)
    assert table.loc["SGR", "score_fp32"] == 100 and table.loc["SGR", "score_bf16"] < 100
    assert bool(table.loc["SGR", "intervals_overlap"])
    assert table.loc["SGR", "prefill_s_fp32"] == 2.0 and table.loc["SGR", "prefill_s_bf16"] == 1.0
    with pytest.raises(ValueError, match="no item in common"):
        compare_runs(a[:1], [row(5, "A", 1.0)])


def test_differences_from_vanilla_flags_only_disjoint_intervals():
    import pandas as pd

    from amlib.report import differences_from_vanilla

    scores = pd.DataFrame([
        {"method": "vanilla", "ratio": 0.0, "task": "SGR", "score": 90.0, "ci_low": 80.0, "ci_high": 95.0, "n": 20},
        {"method": "frame", "ratio": 0.9, "task": "SGR", "score": 50.0, "ci_low": 40.0, "ci_high": 60.0, "n": 20},
        {"method": "dart", "ratio": 0.9, "task": "SGR", "score": 75.0, "ci_low": 55.0, "ci_high": 85.0, "n": 20},
    ])
    diff = differences_from_vanilla(scores).set_index("method")
    assert diff.loc["frame", "shown"] and diff.loc["frame", "minus_vanilla"] == -40.0
    assert not diff.loc["dart", "shown"]  # 85 >= 80: the intervals overlap
    with pytest.raises(ValueError, match="no vanilla"):
        differences_from_vanilla(scores[scores["method"] != "vanilla"])


def _asr_row(id_, answer, prediction, method="vanilla"):
    return {"id": id_, "task": "ASR", "answer": answer, "prediction": prediction, "error": None,
            "provenance": {"method": method, "ratio": 0.5 if method != "vanilla" else 0.0, "layer": 2, "press": None}}


def test_on_common_items_and_deletion_pattern():
    from amlib.report import deletion_pattern, on_common_items

    vanilla = [_asr_row("a", "the cat sat on the mat", "the cat sat on the mat"),
               _asr_row("b", "one two", "one two")]
    frame = [_asr_row("a", "the cat sat on the mat", "cat sat on mat", method="frame"),
             _asr_row("c", "one two", "one two three", method="frame")]
    runs = on_common_items([vanilla, frame])
    assert [[r["id"] for r in rows] for rows in runs] == [["a"], ["a"]]
    table = deletion_pattern(runs).set_index("configuration")
    assert table.loc["frame 0.5 (K2)", "errors"] == 2  # 'the' deleted twice (item c, with its insertion, is not common)
    assert table.loc["frame 0.5 (K2)", "deletion share %"] == 100.0
    assert table.loc["frame 0.5 (K2)", "function-word share of deletions %"] == 100.0
    uncommon = deletion_pattern([frame]).set_index("configuration")  # + 'three' inserted in c
    assert uncommon.loc["frame 0.5 (K2)", "errors"] == 3
    assert abs(uncommon.loc["frame 0.5 (K2)", "deletion share %"] - 200 / 3) < 1e-9
    assert table.loc["vanilla", "errors"] == 0 and np.isnan(table.loc["vanilla", "deletion share %"])
    with pytest.raises(ValueError, match="share no item"):
        on_common_items([vanilla, [_asr_row("z", "x", "x")]])


def test_headline_scores_reads_as_score_interval_n_and_chance():
    from amlib.report import headline_scores

    scores = pd.DataFrame({"metric": ["macro-F1", "WAR"], "score": [61.25, 40.0], "ci_low": [40.0, 20.04],
                           "ci_high": [80.0, 55.5], "n": [10, 3], "chance": [50.0, float("nan")]},
                          index=pd.Index(["SGR", "ASR"], name="task"))
    table = headline_scores(scores)
    assert table.loc["SGR"].tolist() == ["macro-F1", "61.2 [40.0, 80.0]", 10, "50.0"]
    assert table.loc["ASR", "chance"] == ""
