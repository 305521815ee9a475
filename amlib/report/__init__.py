"""Reports from prediction rows, by subject, and the paper's own tables beside them.

- `scores`: `score_table` (one row per task: score, interval, n, unparsed, errors, chance; the
  parser, "ours" by default, and the scoring, "ours" by default, named in columns), `beside_paper`
  (a run as one row on top of the paper's Table 3, with the paper's released parser and scoring),
  `headline_scores`, `compare_runs`, `random_baseline` (Table 6).
- `compression`: token pruning (Table 4, Figures 5, 6, 9-13) and KV-cache eviction (Table 7,
  Figure 7); a configuration whose rows all failed scores NaN with its error named, never 0.
- `overview`: every vanilla run of a folder (Table 3, Figure 8) and the blind baseline.
- `duration`: the duration ablation (Table 8). `asr`: ASR error patterns (Tables 9-10).
- `paper`: the paper's tables (`amlib/paper/tables/`, comparison material only, never results of
  this project) and this project's data and registries beside them (Tables 1, 2, 5, 6).
- `runs`: the one way to find runs in a predictions folder, by their rows' provenance.

Every public name is importable from `amlib.report` itself.
"""

from amlib.report.asr import FUNCTION_WORDS, asr_error_table, configuration_label, deletion_pattern, on_common_items
from amlib.report.compression import (
    CAPABILITIES,
    agreement_with_vanilla,
    capability_scores,
    configuration_of,
    differences_from_vanilla,
    eviction_configuration_of,
    eviction_memory,
    eviction_scores,
    eviction_table,
    paper_eviction_table,
    paper_pruning_table,
    protocol_comparison,
    pruning_scores,
    pruning_speedups,
    pruning_table,
)
from amlib.report.duration import duration_table, paper_duration_table
from amlib.report.overview import (
    PAPER_DATA,
    blind_flags,
    blind_report,
    category_averages,
    interval_cells,
    overview_scores,
    read_vanilla_runs,
    table3_overview,
)
from amlib.report.paper import (
    PAPER_MODEL_FAMILIES,
    PAPER_SECONDS,
    TABLE2_TASKS,
    benchmark_row,
    benchmarks_table,
    composition_table,
    coverage_table,
    manifest_frame,
    paper_table,
    random_baseline_beside_paper,
    runnable_table,
)
from amlib.report.runs import find_runs, run_files
from amlib.report.scores import (
    beside_paper,
    chance_macro_f1,
    compare_runs,
    headline_scores,
    random_baseline,
    score_table,
)

__all__ = [
    "CAPABILITIES", "FUNCTION_WORDS", "PAPER_DATA", "PAPER_MODEL_FAMILIES", "PAPER_SECONDS", "TABLE2_TASKS",
    "agreement_with_vanilla", "asr_error_table", "benchmark_row", "benchmarks_table", "beside_paper",
    "blind_flags", "blind_report", "capability_scores", "category_averages", "chance_macro_f1", "compare_runs",
    "composition_table", "configuration_label", "configuration_of", "coverage_table", "deletion_pattern",
    "differences_from_vanilla", "duration_table", "eviction_configuration_of", "eviction_memory",
    "eviction_scores", "eviction_table", "find_runs", "headline_scores", "interval_cells", "manifest_frame",
    "on_common_items", "overview_scores", "paper_duration_table", "paper_eviction_table", "paper_pruning_table",
    "paper_table", "protocol_comparison", "pruning_scores", "pruning_speedups", "pruning_table",
    "random_baseline", "random_baseline_beside_paper", "read_vanilla_runs", "run_files", "runnable_table",
    "score_table", "table3_overview",
]
