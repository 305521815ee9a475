"""The verdict sentences of amlib.claims: each rule checked on both sides of its edge."""

import math

import pytest

from amlib.claims import listing, times, versus
from amlib.data.probes import cue_verdict, probe_key, probe_settings


def test_versus_needs_the_interval_to_exclude_the_reference():
    assert versus(0.30, 0.50, 0.25) == "above chance"
    assert versus(0.10, 0.20, 0.25) == "below chance"
    # a point estimate far above chance with an interval that reaches it is no verdict
    assert versus(0.24, 0.90, 0.25) == "not distinguishable from chance at this n"
    # the edges: an interval ending exactly at the reference does not exclude it
    assert versus(0.25, 0.40, 0.25).startswith("not distinguishable")
    assert versus(0.10, 0.25, 0.25).startswith("not distinguishable")
    assert versus(70.0, 80.0, 85.0, "vanilla") == "below vanilla"
    assert versus(math.nan, 1.0, 0.5) == "no verdict (no interval)"
    with pytest.raises(ValueError, match="low end above"):
        versus(0.5, 0.4, 0.1)


def test_listing_and_times():
    assert listing([]) == "none" and listing(["SER"]) == "SER"
    assert listing(["MC", "ASC"]) == "MC and ASC" and listing(["MC", "ASC", "SD"]) == "MC, ASC and SD"
    assert times(1.0, 2.0) == "2.0x faster" and times(3.0, 1.0) == "3.0x slower" and times(1.0, 1.005) == "the same"
    with pytest.raises(ValueError):
        times(0.0, 1.0)


def test_probe_glue_helpers():
    assert probe_key("SCR", "text: options") == "probe_SCR_text_options"
    assert probe_key("ASC", "shortcut audio") == "probe_ASC_shortcut_audio"
    row = {"accuracy": 0.62, "ci_low": 0.47, "ci_high": 0.76, "chance": 0.5}
    assert cue_verdict(row) == "62 [47-76] %, chance 50: not distinguishable from chance at this n"
    assert cue_verdict({**row, "ci_low": 0.55}).endswith("above chance")
    s = {"train_per_task": 40, "test_per_task": 40, "train_seed": 1, "test_seed": 0, "min_seconds": 30.0,
         "max_seconds": 90.0}
    assert probe_settings({"settings": s}, {"settings": s}) == (
        "40 train items per task, seed 1; 40 test items, seed 0; 30-90 s, both runs")
    assert "(before: 20 train items" in probe_settings({"settings": {**s, "train_per_task": 20}}, {"settings": s})


def test_apart_needs_the_intervals_not_to_overlap():
    from amlib.claims import apart

    assert apart(60, 80, 20, 50, "frame", "vanilla") == "frame above vanilla"
    assert apart(10, 30, 40, 90, "short", "long") == "short below long"
    # touching intervals overlap: no verdict
    assert apart(50, 80, 20, 50) == "A and B not distinguishable at this n"
    assert apart(math.nan, 1, 0, 1) == "no verdict (no interval)"
    with pytest.raises(ValueError, match="low end above"):
        apart(0, 1, 2, 1)

    # a wrong variant, the point estimate of A inside B's interval as the test, calls these apart
    def point_outside(a_low, a_high, b_low, b_high):
        mid = (a_low + a_high) / 2
        return not (b_low <= mid <= b_high)
    assert point_outside(40, 100, 0, 60) and apart(40, 100, 0, 60).endswith("not distinguishable at this n")


def test_with_interval_and_share():
    from amlib.claims import share, with_interval

    assert with_interval(67.0, 44.0, 100.0, 3) == "67.0 [44.0, 100.0], n = 3"
    assert with_interval(5.0, math.nan, math.nan, 2) == "5.0 (no interval), n = 2"
    # Wilson for 3 of 4 by hand: p=.75, z=1.96, z2=3.8416: centre (.75+.4802)/1.9604=.62753,
    # half 1.96/1.9604*sqrt(.046875+.060025)=.32683 -> [30.07, 95.44]
    pct, low, high = share(3, 4)
    assert pct == 75.0 and abs(low - 30.07) < 0.05 and abs(high - 95.44) < 0.05
    # a wrong variant, the normal (Wald) interval, ends above 100 % here: .75+1.96*sqrt(.75*.25/4)=1.174
    assert 100 * (0.75 + 1.96 * (0.75 * 0.25 / 4) ** 0.5) > 100 >= high
    with pytest.raises(ValueError, match="n >= 1"):
        share(0, 0)
