"""The landing page's headline rules (amlib.report.headlines): each on hand-made numbers whose answer
is derived by hand, and a wrong rule shown to give another answer."""

import math

import pandas as pd
import pytest

from amlib.report.headlines import (above_chance_table, above_chance_tasks, agreement_sentence, duration_sentence,
                                    items_per_task, largest_shown_difference, paper_reading,
                                    paper_reading_sentence, released_zeros, trend_sentence,
                                    trends_sentence)


def comparisons():
    # frame/ER: gap 20, intervals [55, 75] vs [80, 95] apart; dart/SGR: gap 40 but [10, 70] overlaps [40, 90]
    return pd.DataFrame([
        {"label": "frame 0.9", "task": "ER", "n": 3, "score": 65.0, "ci_low": 55.0, "ci_high": 75.0,
         "ref_score": 85.0, "ref_ci_low": 80.0, "ref_ci_high": 95.0},
        {"label": "dart 0.9", "task": "SGR", "n": 3, "score": 30.0, "ci_low": 10.0, "ci_high": 70.0,
         "ref_score": 70.0, "ref_ci_low": 40.0, "ref_ci_high": 90.0},
    ])


def test_largest_shown_difference_picks_only_among_differences_shown():
    text = largest_shown_difference(comparisons())
    assert text.startswith("frame 0.9 below vanilla on ER: 65.0 [55.0, 75.0], n = 3 against 85.0 [80.0, 95.0], n = 3")
    assert "the largest of 1 differences shown among 2" in text
    # the wrong rule (largest gap, intervals ignored) would headline dart/SGR
    gaps = comparisons().assign(gap=lambda f: (f["score"] - f["ref_score"]).abs())
    assert gaps.sort_values("gap").iloc[-1]["task"] == "SGR" and "SGR" not in text
    none = largest_shown_difference(comparisons().iloc[[1]])
    assert none == "no difference from vanilla shown at this n (1 configuration-task pairs compared, n = 3 items each)"
    with pytest.raises(ValueError, match="no configuration"):
        largest_shown_difference(comparisons().iloc[[]])


def test_agreement_sentence_per_protocol_and_between():
    # 3/4: Wilson [30, 95] (by hand in test_claims); 1/4 is its mirror [5, 70]: they overlap
    text = agreement_sentence({"query_aware": (3, 4), "query_agnostic": (1, 4)})
    assert text == ("query_aware: 3 of 4 (75 % [30, 95]); query_agnostic: 1 of 4 (25 % [5, 70]); "
                    "query_aware and query_agnostic not distinguishable at this n")
    # 40/40 against 0/40: Wilson [91, 100] and [0, 9]: apart
    assert agreement_sentence({"a": (40, 40), "b": (0, 40)}).endswith("a above b")
    # the wrong rule (point estimates differ) would call 75 % against 25 % a difference
    assert 75 != 25 and "not distinguishable" in text


def scores_and_blind():
    scores = pd.DataFrame({"score": [67.0, 80.0, 20.0], "ci_low": [44.0, 60.0, 5.0], "ci_high": [90.0, 95.0, 50.0],
                           "n": [10, 10, 8], "chance": [50.0, 20.0, 25.0]}, index=["SGR", "MC", "SCR"])
    blind = pd.DataFrame({"n": [3], "blind_score": [100.0], "blind_ci_low": [55.0], "blind_ci_high": [100.0],
                          "chance": [50.0]}, index=["SGR"])
    return scores, blind


def test_above_chance_lists_the_tasks_whose_interval_excludes_chance_with_the_blind_verdict():
    scores, blind = scores_and_blind()
    # SGR: 44 < 50, not above chance; MC: 60 > 20, above; SCR: 5 < 25 < 50, not
    assert above_chance_tasks(scores) == "MC (1 of 3 tasks, n = 8-10)"
    table = above_chance_table(scores, blind)
    assert list(table.index) == ["MC"] and table.loc["MC", "silent audio against chance"] == "not run"
    assert table.loc["MC", "score [95 % interval]"] == "80.0 [60.0, 95.0], n = 10"
    scores.loc["SGR", "ci_low"] = 51.0
    table = above_chance_table(scores, blind)
    assert list(table.index) == ["SGR", "MC"] and above_chance_tasks(scores) == "SGR and MC (2 of 3 tasks, n = 8-10)"
    assert table.loc["SGR", "silent audio [95 % interval]"] == "100.0 [55.0, 100.0], n = 3"
    assert table.loc["SGR", "silent audio against chance"] == "above chance"  # 55 > 50
    # the wrong rule (point above chance) would list SGR at ci_low 44 (67 > 50)
    assert scores_and_blind()[0].loc["SGR", "score"] > 50 and "SGR" not in above_chance_tasks(scores_and_blind()[0])
    assert above_chance_tasks(scores.loc[["SCR"]]) == "no task above chance beyond its interval at this n (1 tasks, n = 8)"
    assert above_chance_table(scores.loc[["SCR"]]).empty


def test_items_per_task_gives_the_reason_for_each_smaller_n():
    built = {"ASR": 10, "SCR": 8, "SER": 8, "MC": 10, "SGR": 10}
    evaluated = {"ASR": 3, "SCR": 8, "SER": 8, "MC": 10, "SGR": 10}
    classes = {"ASR": 1, "SCR": 4, "SER": 4, "MC": 5, "SGR": 2}
    text = items_per_task(built, evaluated, 10, classes)
    # 10 // 4 * 4 = 8 for SCR and SER; ASR 3 < 10 built: the limit
    assert text == ("10 items per task for MC and SGR; ASR: 3 (limited on this page; the data has 10); SCR and SER: 8 "
                    "(balancing keeps an equal count of each of their 4 classes: 10 rounded down to a multiple of 4)")
    # with 3 classes, 10 rounds to 9, not 8: the reason is not balancing
    assert "balancing" not in items_per_task({"SCR": 8, "MC": 10}, {"SCR": 8, "MC": 10}, 10, {"SCR": 3, "MC": 5})
    with pytest.raises(ValueError, match="not in the data"):
        items_per_task({}, {"MC": 1}, 10, {})


def duration_table():
    return pd.DataFrame({
        "n": [3, 10, 10], "long": [10.0, 60.0, 70.0], "short": [40.0, 50.0, 72.0],
        "long_ci_low": [0.0, 40.0, 50.0], "long_ci_high": [20.0, 80.0, 90.0],
        "short_ci_low": [30.0, 30.0, 50.0], "short_ci_high": [50.0, 70.0, 90.0],
    }, index=["ASR", "SER", "MC"])


def test_duration_sentence_with_and_without_asr():
    text = duration_sentence(duration_table())
    # all: short (40+50+72)/3 = 54.0, long (10+60+70)/3 = 46.7, 23 pairs; without ASR 61.0 vs 65.0, 20 pairs
    assert text == ("short 54.0 against long 46.7 (mean over ASR, SER and MC, 23 pairs); without ASR: "
                    "short 61.0 against long 65.0 (mean over SER and MC, 20 pairs); short and long differ beyond "
                    "their intervals on: ASR (short above long)")
    # the wrong reading, the all-task mean alone, says short wins; without ASR long is higher
    assert 54.0 > 46.7 and 61.0 < 65.0


def test_paper_reading_on_the_papers_table8():
    from amlib.report import paper_duration_table

    fails = paper_reading(paper_duration_table(), hurts=("SER",), helps=("ASC",))
    # by hand from table8_duration.csv: Qwen SER 38.6 > 25.2, ASC 69.3 > 58.0; Phi-4 SER 14.0 < 18.4,
    # ASC 23.4 < 29.2; Aero SER 13.8 < 17.9, ASC 39.9 < 42.8
    assert fails == {"Qwen2.5-Omni-3B": [], "Phi-4-Multimodal": ["SER", "ASC"], "Aero-1-Audio": ["SER", "ASC"]}
    assert paper_reading_sentence(fails) == ("holds for Qwen2.5-Omni-3B (1 of the paper's 3 models); fails for "
                                             "Phi-4-Multimodal (not on SER and ASC) and Aero-1-Audio (not on SER and ASC)")
    # the wrong direction (long > short as "hurts") holds for the two others instead
    wrong = paper_reading(paper_duration_table(), hurts=("ASC",), helps=("SER",))
    assert [m for m, f in wrong.items() if not f] == ["Phi-4-Multimodal", "Aero-1-Audio"]


def test_trend_sentence_needs_several_ratios():
    one = trend_sentence({0.0: 90.0, 0.6: 95.0}, 1, "the deletion share")
    assert one == "no verdict at this n: the deletion share at 2 ratio(s) (0, 0.6) on 1 item(s); a trend needs at least 3"
    assert trend_sentence({0.0: 1.0, 0.3: 2.0, 0.6: 3.0}, 4, "x").startswith("x rises at every step (0: 1.0")
    assert "does not rise" in trend_sentence({0.0: 1.0, 0.3: 3.0, 0.6: 2.0}, 4, "x")


def test_released_zeros_counts_the_unparsed_answers():
    table = pd.DataFrame({"metric": ["macro_f1", "macro_f1", "war", "macro_f1"], "score": [0.0, 0.0, 0.0, 50.0],
                          "n": [2, 4, 3, 4], "unparsed": [2, 1, 0, 0]}, index=["SGR", "MC", "ASR", "SCR"])
    assert released_zeros(table) == ("0 under the released rules on SGR (unparsed by the released rules: 2 of 2 "
                                     "answers) and MC (unparsed by the released rules: 1 of 4 answers; the parsed "
                                     "ones all wrong)")
    assert released_zeros(table.loc[["SCR"]]) == "no task scores 0 under the released rules"
    assert not math.isnan(table["score"].sum())


def test_against_reference_pairs_each_row_with_its_tasks_reference():
    import pandas as pd

    from amlib.report.headlines import against_reference, largest_shown_difference

    scores = pd.DataFrame({"method": ["vanilla", "vanilla", "frame", "frame"], "task": ["SGR", "ER", "ER", "SGR"],
                           "n": [3, 3, 3, 3], "score": [90.0, 80.0, 20.0, 85.0],
                           "ci_low": [70.0, 60.0, 5.0, 60.0], "ci_high": [99.0, 95.0, 40.0, 99.0]})
    table = against_reference(scores, scores["method"] == "vanilla", scores["method"] + " 0.9")
    # ER's frame row beside ER's vanilla (80), not the first vanilla row (SGR's 90)
    assert table.set_index("task").loc["ER", "ref_score"] == 80.0 and table.set_index("task").loc["SGR", "ref_score"] == 90.0
    assert largest_shown_difference(table).startswith("frame 0.9 below vanilla on ER")


def test_trends_sentence_names_the_methods_without_a_verdict_once():
    few = {0.0: 90.0, 0.6: 95.0}
    text = trends_sentence({"dart": few, "frame": few, "random": {0.0: 1.0, 0.3: 2.0, 0.6: 3.0}}, 1, "deletion share")
    assert text == ("no verdict at this n for dart and frame: each has its deletion share at 2 ratio(s) (0, 0.6) on 1 "
                    "item(s); a trend needs at least 3; random's deletion share rises at every step (0: 1.0, 0.3: 2.0, "
                    "0.6: 3.0; 1 item(s), no interval)")
    assert "fewer than 3" in trends_sentence({"a": {0.0: 1.0}, "b": few}, 1, "x")
    assert trends_sentence({}, 1, "x") == "no pruned configuration"
