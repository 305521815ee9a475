"""The GPU benchmark tables read the committed JSON faithfully, and a missed target shows as missed."""

import copy
import json
from pathlib import Path

import pytest

from amlib.bench_report import (gpu_decode_table, gpu_encoder_agreement, gpu_prefill_table, gpu_profile_table,
                                gpu_targets, read_gpu_bench)

BENCH = "benchmarks/bench_gpu.json"


@pytest.fixture(scope="module")
def bench():
    return read_gpu_bench(BENCH)


def test_tables_cover_every_run_and_configuration(bench):
    prefill = gpu_prefill_table(bench)
    assert len(prefill) == sum(len(run["rows"]) for run in bench["runs"])
    assert len(gpu_decode_table(bench)) == sum(len(run["decode"]) for run in bench["runs"])
    assert len(gpu_encoder_agreement(bench)) == len(gpu_profile_table(bench)) == len(bench["runs"])
    run = bench["runs"][0]
    first = run["rows"][0]
    assert prefill.iloc[0]["prefill ms"] == pytest.approx(1e3 * first["prefill_s"])


def test_targets_are_read_from_the_3b_300s_run(bench):
    targets = gpu_targets(bench).set_index("target")
    run = next(r for r in bench["runs"] if r["model"].startswith("qwen2.5-omni-3b") and r["audio_seconds"] == 300.0)
    frame = next(r for r in run["rows"] if r["method"] == "frame" and r["ratio"] == 0.9 and not r["host_waits_at_layer_k"])
    assert targets.loc["whole prefill at Frame 0.9", "measured"] == frame["prefill_s"]
    assert targets.loc["whole prefill at Frame 0.9", "met"] == (frame["prefill_s"] <= 0.08)


def test_a_missed_target_is_reported_missed(bench, tmp_path):
    slow = copy.deepcopy(bench)
    run = next(r for r in slow["runs"] if r["model"].startswith("qwen2.5-omni-3b") and r["audio_seconds"] == 300.0)
    next(d for d in run["decode"] if d["pruning"] == "none")["graph"]["per_token_s"] = 0.009
    path = tmp_path / "slow.json"
    path.write_text(json.dumps(slow))
    decode = gpu_targets(read_gpu_bench(path)).iloc[-1]
    assert decode["measured"] == pytest.approx(9.0) and not decode["met"]
    with pytest.raises(ValueError, match="no run of qwen2.5-omni-3b at 60 s"):
        gpu_targets(bench, seconds=60.0)


def test_speedup_rows_leave_out_vanilla_and_the_host_wait_row(bench):
    from amlib.bench_report import gpu_speedup_rows

    rows = gpu_speedup_rows(bench)
    assert len(rows) == len(bench["runs"])
    for run in bench["runs"]:
        table = rows[(run["model"].split(" ")[0], run["audio_seconds"])]
        pruned = [r for r in run["rows"] if r["method"] != "vanilla" and not r["host_waits_at_layer_k"]]
        assert len(table) == len(pruned) and "vanilla" not in set(table["method"])
        assert list(table.columns) == ["method", "ratio", "speedup", "bound"]


def _pruning_result():
    def row(method, ratio, share, kept=100, encoder=0.2, prefill=0.25):
        return {"method": method, "ratio": ratio, "lm_fraction_of_bound": share, "kept_tokens": kept,
                "lm_speedup": 3.2, "lm_speedup_bound": 7.0, "plain_lm_s_at_kept_length": 0.0276,
                "encoder_s": encoder, "prefill_s": prefill}
    return {"rows": [row("vanilla", 0.0, 1.0), row("frame", 0.3, 0.9), row("dart", 0.3, 0.7),
                     row("frame", 0.9, 0.46, kept=825), row("fastv", 0.9, 0.5, kept=825)]}


def test_pruning_bench_reading_is_computed_from_the_rows():
    from amlib.bench_report import pruning_bench_reading

    reading = pruning_bench_reading(_pruning_result())
    assert reading["bound_shares"] == "0.3: 0.70 (dart) to 0.90 (frame); 0.9: 0.46 (frame) to 0.50 (fastv)"
    assert reading["kept_tokens"] == "825" and reading["top_ratio"] == "0.9"
    assert (reading["speedup"], reading["bound"], reading["plain_lm_ms"]) == ("3.2x", "7.0x", "27.6")
    assert reading["encoder_share"] == "80 %"  # 0.2 of 0.25 s


def test_encoder_and_decode_readings():
    from amlib.bench_report import decode_against_bound, encoder_speedups

    def vanilla(encoder, prefill):
        return {"method": "vanilla", "ratio": 0.0, "encoder": encoder, "prefill_s": prefill}
    run = {"model": "qwen2.5-omni-3b thinker", "audio_seconds": 300.0, "decode_lower_bound_s": 0.0015,
           "rows": [vanilla("hf", 0.33), vanilla("chunked", 0.15),
                    {**vanilla("hf", 9.0), "host_waits_at_layer_k": True}],
           "decode": [{"pruning": "none", "context_tokens": 7575, "graph": {"per_token_s": 0.0075}},
                      {"pruning": "frame 0.9 K2", "context_tokens": 7575, "graph": {"per_token_s": 0.007}}]}
    assert encoder_speedups({"runs": [run]}) == "3B at 300 s: 2.20x"
    assert decode_against_bound({"runs": [run]}) == "3B at 7575 tokens: 7.50 ms, 5.0x the bound of 1.50 ms"


def test_gpu_bound_shares_take_the_worst_method_per_ratio():
    from amlib.bench_report import gpu_bound_shares

    def row(method, ratio, share, waits=False):
        return {"method": method, "ratio": ratio, "lm_fraction_of_bound": share, "host_waits_at_layer_k": waits}
    run = {"model": "qwen2.5-omni-7b thinker", "audio_seconds": 90.0,
           "rows": [row("vanilla", 0.0, 1.0), row("frame", 0.3, 0.9), row("dart", 0.3, 0.8),
                    row("frame", 0.9, 0.5), row("frame", 0.9, 0.1, waits=True)]}
    assert gpu_bound_shares({"runs": [run]}) == "7B at 90 s: 0.3 0.80, 0.9 0.50"


def test_decode_check_summary_reports_disagreement_and_missed_controls():
    from amlib.bench_report import decode_check_summary

    def run(diff, equal=True, early=True):
        return {"graph_vs_hf": {"max_logit_diff": diff, "tokens_equal": equal},
                "eager_static_vs_hf": {"max_logit_diff": diff / 2, "tokens_equal": True},
                "negative_controls_detected": {"position_plus_one": True, "slot_opened_early": early}}
    check = {"device": "GPU", "dtype": "float32", "new_tokens": 32, "tolerance": 1e-3,
             "runs": [run(5e-6), run(7e-6, early=False)]}
    text = decode_check_summary(check)
    assert "equal to HF's tokens, largest logit difference 7.0e-06" in text
    assert "position plus one detected in 2 of 2 runs; slot opened early detected in 1 of 2 runs" in text
    check["runs"][1]["graph_vs_hf"]["tokens_equal"] = False
    assert "NOT equal" in decode_check_summary(check)


def throughput_result(grid=True):
    """A scripts/bench_throughput.py result with round numbers (the expected values below by hand)."""
    def mode(name, batch, items_per_s, minutes, same, wait=None):
        return {"mode": name, "batch_size": batch, "items_per_s": items_per_s, "projection_vanilla": {"projected_min": minutes},
                "agreement_with_first_mode": {"same": same, "of": 30},
                "pipeline": None if wait is None else {"input_wait_share": wait}}
    result = {"workload": {"items": 30}, "modes": [mode("hf_batch1", 1, 0.5, 120.0, 30), mode("fast_batch1", 1, 1.5, 40.0, 29),
                                                   mode("batched_pipelined", 16, 6.0, 9.0, 28, wait=0.2)],
              "decode_microbenchmark": {"rows": 16, "context_tokens": 5000, "batched_tokens_per_s": 2500.0}}
    if grid:
        result["pruning_grid"] = {"projection": {"projected_min": 75.0}}
    return result


def test_throughput_table_gives_each_mode_against_the_first():
    from amlib.bench_report import throughput_table

    table = throughput_table(throughput_result())
    assert list(table["x over (a)"]) == [1.0, 3.0, 12.0]  # 1.5 / 0.5, 6.0 / 0.5
    assert list(table["same answer as (a)"]) == ["30 of 30", "29 of 30", "28 of 30"]
    assert list(table["vanilla pass, projected min"]) == [120.0, 40.0, 9.0]
    assert table["waiting for input"].iloc[2] == 0.2 and table["waiting for input"].iloc[:2].isna().all()


def test_throughput_targets_say_which_are_met():
    from amlib.bench_report import throughput_targets

    table = throughput_targets(throughput_result()).set_index("target")
    # 9 <= 10 min; 75 > 60 min; 12x >= 10x; 0.8 < 0.85 not waiting; 2500 >= 2000 tokens/s
    assert table["met"].tolist() == [True, False, True, False, True]
    assert table.loc["not waiting for input, (c)", "measured"] == 0.8
    assert len(throughput_targets(throughput_result(grid=False))) == 4  # no grid run: no grid target


def test_throughput_targets_come_from_the_batched_mode_with_the_shortest_pass():
    from amlib.bench_report import throughput_reading, throughput_targets

    result = throughput_result()
    fused = {"mode": "batched_fused", "batch_size": 16, "items_per_s": 7.5, "items": 30,
             "projection_vanilla": {"projected_min": 8.0}, "agreement_with_first_mode": {"same": 28, "of": 30},
             "pipeline": {"input_wait_share": 0.05}}
    result["modes"].append(fused)
    result["decode_microbenchmark"]["fused_tokens_per_s"] = 1900.0
    table = throughput_targets(result).set_index("target")
    assert table.loc["(d) items/s over (a)", "measured"] == 15.0  # 7.5 / 0.5, not (c)'s 12
    assert table.loc["not waiting for input, (d)", "met"]  # 0.95
    assert table.loc["vanilla pass over the 6,567 items, projected, (d)", "measured"] == 8.0
    assert not table.loc["batched decode, 16 rows at 5000 tokens, fused step", "met"]  # 1900 < 2000
    assert table.loc["batched decode, 16 rows at 5000 tokens, modules", "met"]
    result["modes"][0]["items"] = 30
    assert throughput_reading(result)["speedup"].startswith("(d): 15.0x")
    fused["projection_vanilla"]["projected_min"] = 9.5  # slower than (c): (c) is the one measured against
    assert "(c) items/s over (a)" in throughput_targets(result).set_index("target").index


def test_throughput_reading_is_computed_from_the_run():
    from amlib.bench_report import throughput_reading

    result = throughput_result()
    result["modes"][0]["items"] = 30
    result["modes"][2]["projection_vanilla"]["per_task_runs"] = {
        "SGR": {"wall_s": 6.0, "pipeline": {"prefill_s": 4.0, "input_wait_s": 0.5}},
        "ASR": {"wall_s": 4.0, "pipeline": {"prefill_s": 1.0, "input_wait_s": 0.5}}}
    reading = throughput_reading(result)
    assert reading["speedup"].startswith("(c): 12.0x the items/s of (a)") and "same 30 items" in reading["speedup"]
    # prefill 5 of 10 s, waits 1 of 10 s, the rest 4 of 10 s
    assert reading["where"] == ("prefill 50% of the batched per-task runs' wall time, decoding and the rest 40%, "
                                "waiting for input 10%")
    assert reading["projected"].endswith("(c) amlib, batched and pipelined: 9.0 min")


def _fused_result():
    def mode(name, rows, ms, equal):
        return {"mode": name, "rows": rows, "ms_per_step": ms, "ms_per_row_token": ms / rows, "tokens_per_s": rows / ms * 1e3,
                "text_equals_graph": equal}
    run = {"model": "random-qwen2.5-omni-3b", "context_tokens": 7575, "bound_ms": 1.9, "new_tokens": 64,
           "modes": [mode("graph", 1, 9.0, None), mode("hf_generate", 1, 30.0, True), mode("batched_modules", 1, 9.5, True),
                     mode("lean", 1, 6.0, True), mode("fused", 1, 3.0, False), mode("fused", 16, 8.0, True)],
           "profile_modules_step": {"kernels_per_step": 900, "kernel_time_ms": 8.0,
                                    "top": [{"name": "gemv", "ms": 4.0, "calls": 252, "share": 0.5}]},
           "profile_fused_step": {"kernels_per_step": 400, "kernel_time_ms": 2.9,
                                  "top": [{"name": "triton_red", "ms": 1.0, "calls": 36, "share": 0.34}]}}
    seven = {**run, "model": "random-qwen2.5-omni-7b", "modes": [dict(m) for m in run["modes"]]}
    seven["modes"][4] = mode("fused", 1, 6.5, True)
    run["modes"][4]["tokens_equal_batched_modules_prefix"] = 40
    return {"device": "NVIDIA H100 80GB HBM3", "runs": [run, seven, {"model": "random-x", "error": "OOM"}]}


def test_the_fused_decode_tables_are_computed_from_the_run(tmp_path):
    from amlib.bench_report import fused_decode_table, fused_decode_targets, fused_profile_table, read_fused_decode

    path = tmp_path / "fused.json"
    path.write_text(json.dumps(_fused_result()))
    result = read_fused_decode(path)
    table = fused_decode_table(result)
    fused = table.loc[("qwen2.5-omni-3b", "fused step (lean, compiled)", 1)]
    assert fused["x over HF"] == pytest.approx(10.0) and fused["text equals graph's"] == "no"
    assert fused["tokens equal to modules'"] == "40 of 65"
    batched = table.loc[("qwen2.5-omni-3b", "fused step (lean, compiled)", 16)]
    assert batched["ms/row-token"] == pytest.approx(0.5) and batched["x over HF"] == pytest.approx(60.0)
    assert "random-x" not in " ".join(map(str, table.index.get_level_values(0)))  # the failed run is left out
    targets = fused_decode_targets(result).set_index("target")
    assert targets["met"].tolist() == [True, False]  # 3.0 <= 3.0; 6.5 > 6.0
    assert targets["limit ms/token"].tolist() == [3.0, 6.0]
    profile = fused_profile_table(result, "random-qwen2.5-omni-3b")
    assert profile.index.get_level_values(0)[0] == "modules (900 kernels, 8.00 ms in all)"
    with pytest.raises(ValueError, match="not a scripts/bench_fused_decode.py result"):
        (tmp_path / "other.json").write_text(json.dumps({"runs": [{"model": "m"}]}))
        read_fused_decode(tmp_path / "other.json")


def test_the_cpu_decode_table_reads_the_committed_benchmark():
    from amlib.bench_report import cpu_decode_table

    result = json.loads((Path(__file__).parent.parent / "benchmarks" / "cpu_decode.json").read_text())
    table = cpu_decode_table(result)
    compiled = table.loc[("lean step, compiled", 1)]
    mode = next(m for m in result["modes"] if m["mode"] == "lean_compiled" and m["rows"] == 1)
    assert compiled["ms/step"] == mode["ms_per_token"] and compiled["bound ms"] == mode["bound_ms"]
    assert table.loc[("HF generate", 1)]["same tokens as modules"] == ""
