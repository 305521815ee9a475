"""Command line: `python -m amlib build-data | eval | sweep | score | train-reference ...`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _build_data(args) -> None:
    start = time.perf_counter()
    if args.source == "skeleton":
        from amlib.data.offline.skeleton import build_skeleton

        out = build_skeleton(args.out, per_task=args.per_task, min_seconds=args.min_seconds,
                             max_seconds=args.max_seconds, seed=args.seed, split=args.split)
        print(f"built {out} in {time.perf_counter() - start:.1f} s")
        return
    import json

    from amlib.data.build import build_dataset

    stats = build_dataset(args.source, args.out, root=args.root, tasks=args.tasks, per_task=args.per_task,
                          min_seconds=args.min_seconds, max_seconds=args.max_seconds, seed=args.seed,
                          split=args.split, gap_seconds=args.gap_seconds, options=_parse_options(args.option))
    print(json.dumps(stats["per_task"], indent=1))
    print(f"built {args.out} in {time.perf_counter() - start:.1f} s; review sheet: {args.out / 'review.html'}")


def _parse_options(pairs: list[str]) -> dict:
    """`key=value` strings -> dict; values parsed as JSON when they can be (numbers, true/false)."""
    import json

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--option expects key=value, got {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _eval(args) -> None:
    from amlib.distributed import current
    from amlib.report import score_table
    from amlib.runner import run_eval

    rows = run_eval(args.model, args.data, args.out, tasks=args.tasks, limit=args.limit,
                    seed=args.seed, device=args.device, family=args.family, dtype=args.dtype,
                    method=args.method, ratio=args.ratio, layer=args.layer, press=args.press,
                    protocol=args.protocol, device_map=args.device_map, fast_paths=not args.no_fast_paths,
                    batch_size=args.batch_size, workers=args.workers, decode_step=args.decode_step,
                    loader=args.loader)
    if current(args.device).is_main:  # every process holds the merged rows; one prints them
        print(score_table(rows, seed=args.seed, parser=args.parser).round(2).to_string())


def _sweep(args) -> None:
    from amlib.data import read_manifest
    from amlib.distributed import current
    from amlib.report import score_table
    from amlib.runner import load_for, select
    from amlib.sweep import run_sweep, sweep_configs

    samples = select(read_manifest(args.data), args.tasks, args.limit)
    ranks = current(args.device)
    adapter = load_for(args.model, args.device, ranks, seed=args.seed, family=args.family, dtype=args.dtype,
                       device_map=args.device_map, fast_paths=not args.no_fast_paths, decode_step=args.decode_step)
    configs = sweep_configs(args.methods, args.ratios, layer=args.layer, seed=args.seed, vanilla=not args.no_vanilla)
    files = run_sweep(adapter, samples, args.out, configs, ranks=ranks, batch_size=args.batch_size,
                      workers=args.workers, loader=args.loader)
    wanted = {s.id for s in samples}
    for name, rows in files.items() if ranks.is_main else ():
        print(f"\n{name}")
        print(score_table([r for r in rows if r["id"] in wanted], seed=args.seed, parser=args.parser).round(2).to_string())


def _score(args) -> None:
    from amlib.report import score_table
    from amlib.runner import read_predictions

    print(score_table(read_predictions(args.predictions), seed=args.seed, parser=args.parser,
                      scoring=args.scoring).round(2).to_string())


def _model_arguments(p) -> None:
    p.add_argument("--model", required=True, help="hub id, local directory or tiny-random-qwen2-audio")
    p.add_argument("--data", type=Path, required=True, help="folder with manifest.jsonl")
    p.add_argument("--out", type=Path, required=True, help="folder for predictions JSONL")
    p.add_argument("--tasks", nargs="*", default=None)
    p.add_argument("--limit", type=int, default=None, help="samples per task")
    p.add_argument("--seed", type=int, default=0, help="model seed (tiny models) and Random pruning's seed")
    p.add_argument("--device", default="cpu",
                   help="cpu, cuda, cuda:1, or auto; under accelerate launch / torchrun, cuda and auto are "
                        "each process's own GPU")
    p.add_argument("--device-map", type=_device_map, default=None,
                   help="transformers' device_map for one model over several GPUs (one process): auto, "
                        "balanced, sequential, or a JSON object {module: device}")
    p.add_argument("--dtype", default=None, help="e.g. bfloat16 (default: the checkpoint's)")
    p.add_argument("--no-fast-paths", action="store_true",
                   help="transformers' own code paths: no chunked encoder, no CUDA-graph decoding (amlib/fastpath)")
    p.add_argument("--decode-step", default="auto", choices=["auto", "modules", "lean", "compiled", "int8"],
                   help="the batched decoder's step (amlib/fastpath): auto = the lean step on a CPU, transformers' "
                        "modules on CUDA; compiled = the lean step compiled (on CUDA: the fused step, "
                        "benchmarks/fused_decode_gpu.json); int8 = int8 weights (CPU; other numerics)")
    p.add_argument("--family", default=None,
                   help="for models without a transformers config: aero-1-audio, baichuan-omni-1.5, "
                        "audio-flamingo-2, gpt-4o-audio, gemini")
    p.add_argument("--parser", default="ours", choices=["ours", "paper"], help="answer parser of the printed table")
    p.add_argument("--batch-size", type=int, default=None,
                   help="rows decoded together (amlib.pipeline); default: 16 on CUDA, 4 on a CPU (sweep: at least "
                        "the configurations of one sample); 1: one row at a time (HF generate where no fast path applies)")
    p.add_argument("--workers", type=int, default=2,
                   help="processes (or threads: --loader) preparing the next samples' inputs (batched runs)")
    p.add_argument("--loader", default=None, choices=["process", "thread"],
                   help="what prepares inputs ahead of the compute: forked processes (the default where the "
                        "platform forks; they do not compete with the compute for the GIL) or threads")


def _device_map(text: str) -> str | dict:
    """"auto" stays a string; a JSON object ({"": "cpu"}, {"audio_tower": 0, ...}) becomes a dict."""
    if not text.lstrip().startswith("{"):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not a JSON object: {err.msg}") from None


def _task_weights(pairs: list[str] | None) -> dict[str, float] | None:
    """["ASR=0.6", "SED=0.1"] -> {"ASR": 0.6, "SED": 0.1}; a malformed pair is an error naming it."""
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        task, _, value = pair.partition("=")
        try:
            out[task.strip().upper()] = float(value)
        except ValueError:
            raise SystemExit(f"--task-weights: {pair!r} is not TASK=WEIGHT (e.g. ASR=0.6)") from None
    return out


def _build_asr_corpus(args) -> None:
    from amlib.reference.asr_corpus import build_corpus

    out = build_corpus(args.out, args.clips, args.holdout, seed=args.seed, workers=args.workers)
    print(f"built {out}: {(out / 'corpus.json').read_text()}")


def _join_asr(args) -> None:
    from amlib.reference.train.long_form import write_joined
    from amlib.reference.train.loop import load_samples

    out = write_joined(load_samples(args.data), args.out, args.n, args.min_s, args.max_s, args.seed)
    print(f"wrote {args.n} joined ASR items to {out}")


def _train_reference(args) -> None:
    from amlib.reference.model import load_reference_adapter
    from amlib.reference.train.loop import TrainConfig, train

    adapter = load_reference_adapter(device=args.device, encoder_file=args.encoder)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, lora_lr=args.lora_lr,
                      warmup=args.warmup, lora=args.lora, lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                      seed=args.seed, save_every=args.save_every,
                      workers=args.workers, data=[str(d) for d in args.data],
                      val_data=[str(d) for d in args.val_data], val_long=[str(d) for d in args.val_long],
                      eval_every=args.eval_every,
                      init=str(args.init) if args.init else None, time_limit_s=args.time_limit,
                      task_weights=_task_weights(args.task_weights), joined_asr=args.joined_asr,
                      selection=args.selection, eval_at_start=args.eval_at_start, choice_guard=args.choice_guard)
    out = train(adapter, cfg, args.out, device=args.device)
    if (out / "checkpoint.pt").is_file():
        print(f"paused past the time limit: checkpoint in {out}; the same command resumes")
    else:
        print(f"trained weights in {out}")


def _book_pages(args) -> None:
    from amlib.book import book_pages, run_pages
    from amlib.book_plan import benchmark_rates, page_plans, plan_rows, plan_text
    from amlib.book_settings import SettingsError, load_settings, settings_dict

    try:
        model = args.model[0] if args.model and len(args.model) == 1 else args.model
        # a dry run only plans: a GPU build may be planned on a machine without one
        settings = load_settings(args.profile, args.settings, {"model": model, "device": args.device,
                                                               "dtype": args.dtype, "data": args.data},
                                 check_device=not args.dry_run)
    except SettingsError as err:
        raise SystemExit(f"book settings: {err}") from None
    print("book settings:", json.dumps(settings_dict(settings)), flush=True)
    pages = [p for p in book_pages(settings) if not args.only or any(p.notebook.startswith(o) for o in args.only)]
    benchmark = benchmark_rates(settings.model, settings.device)
    print(plan_text(plan_rows(page_plans(pages, args.notebooks), args.executed / "timing.json", benchmark)), flush=True)
    if args.dry_run:
        return
    for row in run_pages(pages, args.notebooks, args.executed, progress_every=args.progress_every):
        print(f"{row['page']}: {row['seconds'] / 60:.1f} min, {row['rows_computed'] or 0} rows computed", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m amlib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build-data", help="build an embedded dataset (manifest.jsonl + audio)")
    build.add_argument("--source", default="skeleton",
                       help="skeleton, offline, or a real source (see amlib/data/sources/__init__.py)")
    build.add_argument("--root", type=Path, default=None, help="the source data set's folder (real sources)")
    build.add_argument("--tasks", nargs="*", default=None, help="task codes (default: all the source has)")
    build.add_argument("--gap-seconds", type=float, default=0.0, help="silence between merged clips")
    build.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="builder-specific setting (see the builder's docstring), repeatable")
    build.add_argument("--out", type=Path, required=True, help="output folder")
    build.add_argument("--per-task", type=int, default=4)
    build.add_argument("--min-seconds", type=float, default=90.0)
    build.add_argument("--max-seconds", type=float, default=300.0)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--split", default="test")
    build.set_defaults(func=_build_data)

    corpus = sub.add_parser("build-asr-corpus", help="the reference model's ASR training clips: packaged English text "
                                                   "(fortunes, WordNet glosses) read by many TTS voices")
    corpus.add_argument("--out", type=Path, required=True)
    corpus.add_argument("--clips", type=int, required=True)
    corpus.add_argument("--holdout", default="train", choices=["train", "val"],
                        help="which texts: the training ones or the held-out validation ones (split by text hash)")
    corpus.add_argument("--seed", type=int, default=0)
    corpus.add_argument("--workers", type=int, default=2)
    corpus.set_defaults(func=_build_asr_corpus)

    ev = sub.add_parser("eval", help="evaluate a model on a manifest (resumable), optionally with token pruning "
                                     "or KV-cache eviction")
    _model_arguments(ev)
    ev.add_argument("--method", default="vanilla", help="vanilla or a token pruning method: random, fastv, dart, frame")
    ev.add_argument("--ratio", type=float, default=0.0,
                    help="pruning: share of audio tokens pruned (0.9: keep 10 %%); eviction: share of KV pairs evicted")
    ev.add_argument("--layer", type=int, default=None, help="decoder layer K where pruning happens (default 2)")
    ev.add_argument("--press", default=None, help="KV-cache eviction with this kvpress press: random, knorm, tova, "
                                                  "snapkv, streaming_llm, expected_attention, keydiff, pyramidkv, lagkv, cur")
    ev.add_argument("--protocol", default=None, choices=["query_aware", "query_agnostic"],
                    help="eviction: compress the whole prompt (query_aware, the paper's; default) or the audio "
                         "context before the question (query_agnostic)")
    ev.set_defaults(func=_eval)

    sw = sub.add_parser("sweep", help="a grid of pruning methods x ratios (+ vanilla), encoder and layers < K "
                                      "computed once per sample; one predictions file per configuration")
    _model_arguments(sw)
    sw.add_argument("--methods", nargs="+", default=["random", "fastv", "dart", "frame"])
    sw.add_argument("--ratios", nargs="+", type=float, default=[0.3, 0.6, 0.9])
    sw.add_argument("--layer", type=int, default=2)
    sw.add_argument("--no-vanilla", action="store_true", help="leave the unpruned configuration out")
    sw.set_defaults(func=_sweep)

    sc = sub.add_parser("score", help="score a predictions JSONL")
    sc.add_argument("predictions", type=Path)
    sc.add_argument("--parser", default="ours", choices=["ours", "paper", "released"],
                    help="ours (default), the paper's written rules, or its released per-task scripts")
    sc.add_argument("--scoring", default="ours", choices=["ours", "released"],
                    help="ours: macro-F1 over all items (default); released: as the paper's scripts compute it "
                         "(parsed answers only, SGR weighted F1, SD binary F1 of 'fake')")
    sc.add_argument("--seed", type=int, default=0)
    sc.set_defaults(func=_score)

    tr = sub.add_parser("train-reference", help="train the reference model's projector (+ LoRA)")
    tr.add_argument("--data", type=Path, nargs="+", required=True, help="dataset folders (train split)")
    tr.add_argument("--val-data", type=Path, nargs="*", default=[], help="held-out folders (validation loss)")
    tr.add_argument("--eval-every", type=int, default=50, help="validation loss every N steps")
    tr.add_argument("--out", type=Path, required=True, help="folder for the trained weights and the log")
    tr.add_argument("--steps", type=int, default=1000)
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--lr", type=float, default=1e-3, help="projector learning rate")
    tr.add_argument("--lora-lr", type=float, default=2e-4)
    tr.add_argument("--warmup", type=int, default=50)
    tr.add_argument("--lora", action="store_true",
                    help="also train LoRA adapters on the LM's linear layers (reference.LORA_TARGETS)")
    tr.add_argument("--lora-r", type=int, default=8)
    tr.add_argument("--lora-alpha", type=int, default=16)
    tr.add_argument("--lora-dropout", type=float, default=0.0)
    tr.add_argument("--save-every", type=int, default=200, help="checkpoint (resume point) every N steps")
    tr.add_argument("--init", type=Path, default=None,
                    help="start from these trained weights (a save_trained folder, e.g. the committed ones)")
    tr.add_argument("--time-limit", type=float, default=None,
                    help="seconds: checkpoint and stop after the step that passes it (resume with the same command)")
    tr.add_argument("--task-weights", nargs="*", default=None, metavar="TASK=WEIGHT",
                    help="draw each batch slot's task by these weights (unnamed tasks: none); default: uniform over items")
    tr.add_argument("--joined-asr", nargs=3, type=float, default=None, metavar=("N", "MIN_S", "MAX_S"),
                    help="add N long ASR examples joined from one speaker's short ASR clips (their task weight: JOINED-ASR)")
    tr.add_argument("--val-long", type=Path, nargs="*", default=[],
                    help="long ASR validation folders (join-asr): each evaluation transcribes them greedily and "
                         "logs their WAR and the answers that reach the budget")
    tr.add_argument("--selection", default="task_mean", choices=["task_mean", "item_mean", "long_war"],
                    help="the validation number that picks the kept weights (out/best/): mean over tasks of each "
                         "task's mean loss (default), mean over items, or the highest WAR on --val-long")
    tr.add_argument("--eval-at-start", action="store_true",
                    help="evaluate the starting weights before the first step (logged as step 0, a candidate too)")
    tr.add_argument("--choice-guard", type=float, default=None,
                    help="with --selection long_war: a candidate's mean choice-task validation loss may be at most "
                         "this many times step 0's")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--workers", type=int, default=4)
    tr.add_argument("--device", default="cpu")
    tr.add_argument("--encoder", type=Path, default=None,
                    help="encoder safetensors (export_encoder) where the Whisper package is not installed")
    tr.set_defaults(func=_train_reference)

    join = sub.add_parser("join-asr", help="long ASR items joined from one speaker's short clips (train split), "
                                           "written as a data folder: long-form validation for train-reference")
    join.add_argument("--data", type=Path, nargs="+", required=True, help="folders of short ASR clips (train split)")
    join.add_argument("--out", type=Path, required=True)
    join.add_argument("--n", type=int, required=True)
    join.add_argument("--min-s", type=float, default=90.0)
    join.add_argument("--max-s", type=float, default=300.0)
    join.add_argument("--seed", type=int, default=0)
    join.set_defaults(func=_join_asr)

    bk = sub.add_parser("book-pages", help="execute the book's notebooks in dependency order with the main job's "
                                           "parameters (amlib/book.py), timing each page")
    bk.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    bk.add_argument("--executed", type=Path, default=Path("book/executed"))
    bk.add_argument("--only", nargs="*", default=None, help="page prefixes to run (e.g. 03 07); default: all")
    bk.add_argument("--profile", default=None, help="sizes: cpu (default), gpu or full (amlib/book_settings.py)")
    bk.add_argument("--settings", type=Path, default=None, help="a YAML or JSON file of book settings")
    bk.add_argument("--model", nargs="+", default=None,
                    help="hub id, local checkpoint folder or built-in model; several: page 02 evaluates each (Table 3)")
    bk.add_argument("--device", default=None, help="cpu, cuda or cuda:N")
    bk.add_argument("--dtype", default=None, help="float32, bfloat16 or float16")
    bk.add_argument("--data", default=None,
                    help="offline (default), <source>:<folder> (released:<folder> = the released benchmark) or "
                         "built:<folder> (a folder with a manifest.jsonl)")
    bk.add_argument("--dry-run", action="store_true",
                    help="print the settings and the plan (rows to compute, estimated time) and stop")
    bk.add_argument("--progress-every", type=float, default=60.0, help="seconds between progress lines")
    bk.set_defaults(func=_book_pages)

    args = parser.parse_args(argv)
    args.func(args)
