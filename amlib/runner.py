"""Evaluate a model on a manifest: one append-only JSONL row per sample, resumable.

A row holds the prediction text, the parsed answer, correctness, prefill/decode seconds, peak
memory, audio tokens, duration, the item's choices, an input fingerprint and full provenance.
Re-running skips ids already finished with the same settings and the same inputs (the fingerprint:
audio bytes, question, choices, answer; `check_same_inputs`); a sample that raises (unreadable,
empty or NaN audio included) is recorded with its error and the run goes on.

Public pieces for other drivers of runs (`amlib.sweep`): `RunFile` (one configuration's file while a
run writes it: what is still to do, where this process appends, the final merge) and
`evaluate_sample` (one sample under one configuration -> its row). The file format itself (reading,
shards, merging): `amlib.predictions`; `read_predictions` is re-exported here.
"""

from __future__ import annotations

import traceback
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

import amlib
from amlib.data import Sample, load_audio
from amlib.data.manifest import input_fingerprint
from amlib import distributed, predictions
from amlib.distributed import SINGLE, Ranks
from amlib.efficiency import device_name
from amlib.metrics import PARSER_VERSION, parse_choice
from amlib.models.base import AudioLMAdapter, PreparedInputs
from amlib.predictions import read_predictions  # re-exported: notebooks, scripts and amlib.report use it
from amlib.tasks import PROMPT_VERSION, TASK_ORDER, get_task

# Settings that must match for a resumed file to be continued rather than mixed.
RUN_KEYS = ("model", "model_revision", "dtype", "method", "ratio", "layer", "press", "protocol", "seed",
            "prompt_version", "parser_version")


@dataclass
class RunConfig:
    """What identifies a run besides the model: the efficiency method and its settings
    (token pruning: method, ratio, layer; KV eviction: press, ratio, protocol)."""

    method: str = "vanilla"  # token pruning method, or "vanilla"
    ratio: float = 0.0
    layer: int | None = None
    press: str | None = None  # kvpress press name for KV eviction
    protocol: str | None = None  # eviction: query_aware (the paper's) or query_agnostic
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.press is not None:
            from amlib.eviction import PROTOCOLS, press_spec

            if self.method not in (None, "vanilla"):
                raise ValueError("a run prunes tokens (method) or evicts KV pairs (press), not both")
            self.press = press_spec(self.press).name  # validates the name
            self.protocol = self.protocol or "query_aware"
            if self.protocol not in PROTOCOLS:
                raise ValueError(f"unknown protocol {self.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
            if not 0.0 <= self.ratio < 1.0:
                raise ValueError(f"compression ratio must be in [0, 1), got {self.ratio}")
        elif self.protocol is not None:
            raise ValueError("protocol applies to KV eviction only: name a press")
        if self.method not in (None, "vanilla"):
            from amlib.pruning import DEFAULT_LAYER, make_method, n_keep

            self.method = make_method(self.method).name  # validates the name
            n_keep(1, self.ratio)  # validates the ratio
            self.layer = DEFAULT_LAYER if self.layer is None else self.layer

    def file_name(self, model: str) -> str:
        """The predictions file of this configuration: `<model>__vanilla__seed0.jsonl`,
        `<model>__frame-r0.9-K2__seed0.jsonl`, `<model>__snapkv-r0.5-query_aware__seed0.jsonl`."""
        if self.press is not None:
            tag = f"{self.press}-r{self.ratio:g}-{self.protocol}"
        else:
            tag = "vanilla" if self.method in (None, "vanilla") else f"{self.method}-r{self.ratio:g}-K{self.layer}"
        return f"{Path(model).name}__{tag}__seed{self.seed}.jsonl"


def provenance(adapter: AudioLMAdapter, config: RunConfig, ranks: Ranks = SINGLE, batch_size: int = 1) -> dict:
    """What made a row; `rank`/`world_size`: which process of a launch wrote it (0 of 1 alone);
    `batch_size`: the rows decoded together (`amlib.pipeline`; answers do not depend on it)."""
    own = adapter.provenance()
    if batch_size > 1:  # decoded by amlib.fastpath.batched_decode (and its lean step, where it runs)
        batched = adapter.batched_fast_paths() if hasattr(adapter, "batched_fast_paths") else ["batched_decode"]
        own["fast_paths"] = [*own.get("fast_paths", []), *batched]
    return {
        **own, "method": config.method, "ratio": config.ratio, "layer": config.layer,
        "press": config.press, "protocol": config.protocol, "seed": config.seed, "prompt_version": PROMPT_VERSION,
        "parser_version": PARSER_VERSION, "amlib_version": amlib.__version__,
        "device": device_name(adapter.device), "torch": torch.__version__,
        "rank": ranks.rank, "world_size": ranks.world_size, "batch_size": batch_size, **config.extra,
    }


def _check_same_run(existing: list[dict], prov: dict, path: Path) -> None:
    for row in existing:
        for key in RUN_KEYS:
            if row["provenance"].get(key) != prov.get(key):
                raise ValueError(
                    f"{path}: row {row['id']} was made with {key}={row['provenance'].get(key)!r}, this run "
                    f"has {key}={prov.get(key)!r}; use another output file"
                )


def _fingerprint_or_none(sample: Sample) -> dict | None:
    """`input_fingerprint` of the sample, or None when its audio cannot be read (an error row)."""
    try:
        return input_fingerprint(sample)
    except OSError:
        return None


def check_same_inputs(existing: list[dict], samples: list[Sample], path: Path,
                      retry_errors: bool = False) -> None:
    """Refuse to resume `path` when a row was made from other inputs than the sample of its id.

    Compares each existing row's "input_fingerprint" with the sample's (audio file bytes, task,
    question, choices, answer; see `amlib.data.manifest.input_fingerprint`), hashing each audio file
    once per check. Error rows that `retry_errors` will re-run are not compared.
    """
    rows = {r["id"]: r for r in existing}
    for sample in samples:
        row = rows.get(sample.id)
        if row is None or (retry_errors and row.get("error")):
            continue
        if "input_fingerprint" not in row:
            raise ValueError(f"{path}: row {sample.id} has no input_fingerprint (written by an older amlib), "
                             "so it cannot be matched to its inputs; use another output file")
        stored, current = row["input_fingerprint"], _fingerprint_or_none(sample)
        if stored == current:
            continue
        stored, now = stored or {"audio_sha256": "unreadable"}, current or {"audio_sha256": "unreadable"}
        differs = [f"{key} ({str(stored.get(key))[:12]} in the file, {str(now.get(key))[:12]} now)"
                   for key in sorted(set(stored) | set(now)) if stored.get(key) != now.get(key)]
        raise ValueError(f"{path}: row {sample.id} was made from other inputs than {sample.audio_path} and its "
                         f"manifest row: {'; '.join(differs)} differ(s); use another output file"
                         + (" (or retry_errors to re-run error rows)" if row.get("error") else ""))


def prepare_inputs(adapter: AudioLMAdapter, sample: Sample) -> PreparedInputs:
    """The model's inputs for `sample`: its audio read and laid out with the task's prompt."""
    audio = load_audio(sample.audio_path)
    return adapter.build_inputs(audio, get_task(sample.task), sample.question, sample.choices)


def predict_one(adapter: AudioLMAdapter, sample: Sample) -> dict:
    """The result fields of `sample` (inside whatever efficiency context the caller entered)."""
    return answer_row(adapter, sample, prepare_inputs(adapter, sample))


def answer_row(adapter: AudioLMAdapter, sample: Sample, prepared) -> dict:
    """Generate from already prepared inputs and make the row's result fields."""
    return answer_fields(adapter, sample, prepared, start_answer(adapter, sample, prepared))


def start_answer(adapter: AudioLMAdapter, sample: Sample, prepared):
    """The sample's Generation within its task's budget (under `deferred_decoding`: prefilled only,
    its text filled in when the batched decoder finishes it)."""
    return adapter.generate(prepared, max_new_tokens=answer_budget(adapter, get_task(sample.task)))


def answer_fields(adapter: AudioLMAdapter, sample: Sample, prepared, gen) -> dict:
    """The row's result fields from a finished Generation."""
    spec = get_task(sample.task)
    parsed = parse_choice(gen.text, spec.n_options, sample.choices) if spec.is_choice else gen.text
    return {
        "prediction": gen.text, "parsed": parsed,
        "correct": (parsed == sample.answer) if spec.is_choice else None,
        "prefill_s": gen.timing.prefill_s, "decode_s": gen.timing.decode_s,
        "new_tokens": gen.new_tokens, "max_new_tokens": answer_budget(adapter, spec),
        "peak_memory_mb": gen.timing.peak_memory_mb,
        "memory_kind": gen.timing.memory_kind, "audio_tokens": prepared.audio_tokens,
        "prompt_tokens": prepared.prompt_tokens, "audio_windows": prepared.n_windows,
        # remote APIs: only the HTTP round trip is known, and a cached response costs nothing
        **{k: getattr(gen.timing, k) for k in ("round_trip_s", "cached") if hasattr(gen.timing, k)},
        **efficiency_fields(adapter, gen),
        # what a replayed eviction prefill shared (read and removed by the sweep's timing fields)
        **({"_shared_prefix": gen.shared_prefix} if getattr(gen, "shared_prefix", None) else {}),
    }


def answer_budget(adapter: AudioLMAdapter, spec) -> int:
    """The answer's token budget: the task's (the paper's), or less where the adapter caps it."""
    cap = getattr(adapter, "answer_token_cap", None)
    return spec.max_new_tokens if cap is None else min(cap, spec.max_new_tokens)


def efficiency_fields(adapter: AudioLMAdapter, gen) -> dict:
    """What pruning did to this prompt (audio tokens before/after, kept tokens) and the theoretical
    LM prefill FLOPs ratio of that configuration (1.0 without pruning)."""
    fields = dict(gen.efficiency)
    if "kept_tokens" in fields and fields.get("prompt_tokens_before"):
        from amlib.efficiency import pruned_prefill_flops_ratio, text_config_of

        fields["prefill_flops_ratio"] = pruned_prefill_flops_ratio(
            text_config_of(adapter.language_model()), fields["prompt_tokens_before"], fields["kept_tokens"],
            fields["layer"])
    return {k: v for k, v in fields.items() if k not in ("method", "ratio", "layer", "press", "protocol")}  # provenance


def efficiency_context(adapter: AudioLMAdapter, config: RunConfig, prefix=None):
    """The context inside which `adapter.generate` runs this configuration (token pruning, KV eviction
    or none). `prefix`: a `amlib.sweep.SharedPrefix` of the sample, whose recorded layer K-1 attention FastV/DART
    may read, and where a press records or replays the sample's prefill (`amlib.eviction.shared`)."""
    from contextlib import nullcontext

    if config.press is not None:
        from amlib.eviction import eviction

        return eviction(adapter, config.press, config.ratio, protocol=config.protocol, seed=config.seed, prefix=prefix)
    if config.method in (None, "vanilla"):
        return nullcontext()
    from amlib.pruning import DEFAULT_LAYER, pruning

    layer = DEFAULT_LAYER if config.layer is None else config.layer
    return pruning(adapter, config.method, config.ratio, layer=layer, seed=config.seed, prefix=prefix)


class RunFile:
    """One configuration's predictions file while a run writes it. `RunFile.open` checks the rows
    already there (and an earlier launch's shard files) against this run's settings and inputs and
    says what is left: `needs(sample)`; inside `with`, `write(row)` appends to this process's target
    (the file itself alone, else its shard: `amlib.distributed`); after the `with`, `finish` merges
    the shards of every process and returns all rows of the file."""

    def __init__(self, path: Path, config: RunConfig, prov: dict, todo: list[Sample], target: Path, ranks: Ranks):
        self.path, self.config, self.provenance, self.todo = path, config, prov, todo
        self.target, self.ranks = target, ranks
        self._todo_ids = {s.id for s in todo}
        self._fh = None

    @classmethod
    def open(cls, adapter: AudioLMAdapter, samples: list[Sample], path: str | Path, config: RunConfig,
             retry_errors: bool = False, ranks: Ranks | None = None, batch_size: int = 1) -> RunFile:
        """Every process of a launch gets the same `todo`; shards an earlier launch left are merged."""
        path = Path(path)
        ranks = ranks or distributed.current(adapter.device)
        target = distributed.write_target(path, ranks)  # asked before the leftovers are merged away
        path.parent.mkdir(parents=True, exist_ok=True)
        prov = provenance(adapter, config, ranks, batch_size)
        leftovers = bool(predictions.shard_files(path))
        existing = predictions.read_done(path)
        _check_same_run(existing, prov, path)
        check_same_inputs(existing, samples, path, retry_errors)
        done = {r["id"] for r in existing if not (retry_errors and r["error"])}
        distributed.settle_leftovers(path, [s.id for s in samples], leftovers, ranks)
        return cls(path, config, prov, [s for s in samples if s.id not in done], target, ranks)

    def needs(self, sample: Sample) -> bool:
        return sample.id in self._todo_ids

    def __enter__(self) -> RunFile:
        # created even when this process has nothing to write: the main process waits for every shard
        self._fh = predictions.append_to(self.target)
        return self

    def __exit__(self, *exc) -> bool:
        self._fh.close()
        return False

    def write(self, row: dict) -> None:
        predictions.write_row(self._fh, row)

    def finish(self, samples: list[Sample]) -> list[dict]:
        """Once every process wrote its share: the file merged in the order of `samples`, all its rows
        (rows a batched run wrote in the order they finished are put in that order too)."""
        ids = [s.id for s in samples]
        distributed.finish(self.path, ids, self.ranks, self.target)
        rows = read_predictions(self.path)
        if self.ranks.is_main and [r["id"] for r in rows] != [r["id"] for r in predictions.in_order(rows, ids)]:
            rows = predictions.merge(self.path, ids)
        self.ranks.barrier()
        return rows


def sample_fields(sample: Sample) -> dict:
    return {"id": sample.id, "task": sample.task, "answer": sample.answer, "duration_s": sample.duration_s,
            "source": sample.source, "split": sample.split, "choices": sample.choices,
            "input_fingerprint": _fingerprint_or_none(sample)}


def error_fields(sample: Sample, err: Exception) -> dict:
    """The result fields of a sample that raised (recorded, not hidden: the row carries the traceback)."""
    return {"prediction": None, "parsed": None, "correct": False if get_task(sample.task).is_choice else None,
            "error": f"{type(err).__name__}: {err}\n{_traceback_of(err)}"}


def _traceback_of(err: Exception) -> str:
    """Where `err` was raised: from the exception itself, or as the loader that caught it (in a worker
    process or thread) wrote it down; the handler's own traceback otherwise."""
    if getattr(err, "amlib_traceback", None):
        return err.amlib_traceback
    if err.__traceback__ is not None:
        return "".join(traceback.format_exception(type(err), err, err.__traceback__, limit=3))
    return traceback.format_exc(limit=3)


def file_row(sample: Sample, result: dict, prov: dict) -> dict:
    """A row as a predictions file holds it: the sample's fields, the result (or error) fields, provenance."""
    return {**sample_fields(sample), **result, "provenance": prov}


def error_row(sample: Sample, err: Exception, prov: dict) -> dict:
    return file_row(sample, error_fields(sample, err), prov)


def evaluate_sample(adapter: AudioLMAdapter, sample: Sample, config: RunConfig, prov: dict,
                    prepared: PreparedInputs | None = None, prefix=None) -> dict:
    """The row of one sample under `config`, as `evaluate` writes it (`prov`: `RunFile.provenance`).
    The inputs are built from the sample's audio, or taken from `prepared` when the caller built them
    once for several configurations; generation runs inside `efficiency_context(adapter, config,
    prefix)`. Anything that raises becomes an error row naming it. (`evaluate` enters the context
    once for all samples instead, so it does not call this.)"""
    try:
        prepared = prepare_inputs(adapter, sample) if prepared is None else prepared
        with efficiency_context(adapter, config, prefix=prefix):
            result = {**answer_row(adapter, sample, prepared), "error": None}
    except Exception as err:
        result = error_fields(sample, err)
    return file_row(sample, result, prov)


def evaluate(adapter: AudioLMAdapter, samples: list[Sample], out_path: str | Path,
             config: RunConfig | None = None, retry_errors: bool = False, progress: bool = True,
             ranks: Ranks | None = None, batch_size: int | None = None, workers: int = 0,
             stats=None, loader: str | None = None) -> list[dict]:
    """Run `adapter` on `samples`, appending rows to `out_path`; return all rows of the file. In a
    launch of several processes (`ranks`, default: accelerate's), each does its share of the samples
    into its own shard file, merged into `out_path` at the end (`amlib.distributed`). `batch_size`
    (None: `amlib.sweep.default_batch_size`): rows decoded together through `amlib.pipeline`, with `workers`
    processes or threads (`loader`, None: `amlib.pipeline.default_loader()`) preparing the next samples'
    inputs; 1: one sample at a time. `stats`: an
    `amlib.pipeline.PipelineStats` that a batched run adds its time split to."""
    from amlib.pipeline import batched_decoder_of, prefetched, run_pipelined
    from amlib.sweep import default_batch_size

    config = config or RunConfig()
    batch_size = default_batch_size(adapter) if batch_size is None else batch_size
    batched = batched_decoder_of(adapter, batch_size) is not None
    run = RunFile.open(adapter, samples, out_path, config, retry_errors, ranks, batch_size=batch_size if batched else 1)
    torch.manual_seed(config.seed)
    todo = distributed.my_share(run.todo, run.ranks)
    with run:
        if batched:
            label = run.config.press or run.config.method
            shown = tqdm(todo, desc=f"{adapter.model_id} {label} batch {batch_size}", disable=not progress)
            run_pipelined(adapter, prefetched(shown, lambda s: prepare_inputs(adapter, s), workers, stats=stats,
                                              loader=loader), [run], batch_size, stats=stats)
        else:
            _evaluate_into(run, adapter, todo, progress)
    return run.finish(samples)


def _evaluate_into(run: RunFile, adapter, todo: list[Sample], progress: bool) -> None:
    with ExitStack() as stack:
        try:
            stack.enter_context(efficiency_context(adapter, run.config))
        except Exception as err:  # the configuration cannot run on this model: every row says why
            for sample in todo:
                run.write(error_row(sample, err, run.provenance))
            return
        label = run.config.press or run.config.method
        rank = f" rank {run.ranks.rank}/{run.ranks.world_size}" if run.ranks.world_size > 1 else ""
        for sample in tqdm(todo, desc=f"{adapter.model_id} {label}{rank}", disable=not progress):
            try:
                result = {**predict_one(adapter, sample), "error": None}
            except Exception as err:
                result = error_fields(sample, err)
            run.write(file_row(sample, result, run.provenance))


def select(samples: list[Sample], tasks: list[str] | None = None, limit: int | dict | None = None) -> list[Sample]:
    """The first `limit` samples of each requested task, in manifest order (errors on unknown tasks).
    `limit` may differ per task: {"ASR": 5, "*": 10} (a task missing from it, with no "*": all)."""
    wanted = [get_task(t).code for t in tasks] if tasks else None
    limits = _task_limits(limit)
    counts: dict[str, int] = {}
    chosen = []
    for s in samples:
        if wanted is not None and s.task not in wanted:
            continue
        cap = limits(s.task)
        if cap is not None and counts.get(s.task, 0) >= cap:
            continue
        counts[s.task] = counts.get(s.task, 0) + 1
        chosen.append(s)
    missing = [t for t in (wanted or []) if t not in counts]
    if missing:
        raise ValueError(f"no samples of task(s) {', '.join(missing)} in the manifest")
    return chosen


def _task_limits(limit: int | dict | None):
    if not isinstance(limit, dict):
        return lambda task: limit
    unknown = [k for k in limit if k != "*" and k not in TASK_ORDER]
    if unknown:
        raise ValueError(f"limit names unknown task(s) {', '.join(unknown)} (known: {', '.join(TASK_ORDER)}, or '*')")
    return lambda task: limit.get(task, limit.get("*"))


def run_eval(model: str, data_dir: str | Path, output_dir: str | Path | None, tasks: list[str] | None = None,
             limit: int | None = None, seed: int = 0, device: str = "cpu", progress: bool = True,
             family: str | None = None, dtype: str | None = None, method: str = "vanilla",
             ratio: float = 0.0, layer: int | None = None, press: str | None = None,
             protocol: str | None = None, device_map: str | dict | None = None, fast_paths: bool = True,
             batch_size: int | None = None, workers: int = 2, decode_step: str = "auto",
             loader: str | None = None) -> list[dict]:
    """Load `model`, evaluate it on `data_dir`'s manifest; rows of the selected samples, in order.
    `method`/`ratio`/`layer`: token pruning (amlib.pruning.METHODS) at decoder layer `layer`;
    `press`/`ratio`/`protocol`: KV-cache eviction (amlib.eviction.PRESSES). Under `accelerate launch`
    or `torchrun` the samples are split over the processes (`amlib.distributed`); `device` "cuda" or
    "auto" is then each process's own GPU. `device_map` (e.g. "auto"): one model over several GPUs.
    `fast_paths=False`: transformers' own code paths (no amlib.fastpath), e.g. to compare.
    `decode_step`: the batched decoder's step (`DECODE_STEPS`). `batch_size`/`workers`/`loader`: see `evaluate`.

    `output_dir=None` writes to a fresh temporary folder, so nothing is resumed (regression runs).
    """
    import tempfile

    from amlib.data import read_manifest

    ranks = distributed.current(device)
    if output_dir is None and ranks.world_size > 1:
        raise ValueError("a run of several processes needs an output folder (they meet in its files)")
    output_dir = output_dir if output_dir is not None else tempfile.mkdtemp(prefix="amlib-run-")

    samples = select(read_manifest(data_dir), tasks, limit)
    adapter = load_for(model, device, ranks, seed=seed, family=family, dtype=dtype, device_map=device_map,
                       fast_paths=fast_paths, decode_step=decode_step)
    config = RunConfig(method=method, ratio=ratio, layer=layer, press=press, protocol=protocol, seed=seed)
    out = Path(output_dir) / config.file_name(model)
    rows = {r["id"]: r for r in evaluate(adapter, samples, out, config, progress=progress, ranks=ranks,
                                         batch_size=batch_size, workers=workers, loader=loader)}
    return [rows[s.id] for s in samples]


# the batched decoder's step, as the command line names it -> `AudioLMAdapter.lean_decode`
DECODE_STEPS = {"auto": "auto", "modules": None, "lean": "model", "compiled": "compiled", "int8": "int8"}


@contextmanager
def decode_step(adapter: AudioLMAdapter, step: str | None):
    """The batched decoder's step (`DECODE_STEPS`) inside the block, restored after; None: as it is."""
    if step is not None and step not in DECODE_STEPS:
        raise ValueError(f"decode_step must be one of {', '.join(DECODE_STEPS)}, got {step!r}")
    before = adapter.lean_decode
    if step is not None:
        adapter.lean_decode = DECODE_STEPS[step]
    try:
        yield adapter
    finally:
        adapter.lean_decode = before


def load_for(model: str, device: str, ranks: Ranks, device_map: str | dict | None = None, fast_paths: bool = True,
             decode_step: str = "auto", **kwargs) -> AudioLMAdapter:
    """`load_model` on this process's device (`distributed.resolve_device`). A device map spreads one
    model over all GPUs it sees, so it is refused in a launch of several processes. `fast_paths`
    False turns amlib.fastpath off (transformers' own code paths). `decode_step` (`DECODE_STEPS`): the
    batched decoder's step: "auto" (the lean step on a CPU, the modules on CUDA), "modules", "lean",
    "compiled" (on CUDA: the fused step) or "int8" (CPU)."""
    if decode_step not in DECODE_STEPS:
        raise ValueError(f"decode_step must be one of {', '.join(DECODE_STEPS)}, got {decode_step!r}")
    from amlib.models import load_model

    if device_map is not None and ranks.world_size > 1:
        raise ValueError("device_map spreads one model over the GPUs; with several processes each would take "
                         "all of them: launch one process (--num_processes 1) for a device map")
    adapter = load_model(model, device=distributed.resolve_device(device, ranks), device_map=device_map, **kwargs)
    if not fast_paths:
        adapter.set_fast_paths(False)
    adapter.lean_decode = DECODE_STEPS[decode_step]
    return adapter
