"""Evaluate a model on a manifest: one append-only JSONL row per sample, resumable.

A row holds the prediction text, the parsed answer, correctness, prefill/decode seconds, peak
memory, audio tokens, duration and full provenance. Re-running skips ids already finished with the
same settings; a sample that raises is recorded with its error and the run goes on.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

import amlib
from amlib.data import Sample, load_audio
from amlib.efficiency import device_name
from amlib.metrics import PARSER_VERSION, parse_choice
from amlib.models.base import AudioLMAdapter
from amlib.tasks import PROMPT_VERSION, get_task

# Settings that must match for a resumed file to be continued rather than mixed.
RUN_KEYS = ("model", "model_revision", "method", "ratio", "layer", "press", "seed",
            "prompt_version", "parser_version")


@dataclass
class RunConfig:
    """What identifies a run besides the model: the efficiency method and its settings."""

    method: str = "vanilla"  # token pruning method, or "vanilla"
    ratio: float = 0.0
    layer: int | None = None
    press: str | None = None  # kvpress press name for KV eviction
    seed: int = 0
    extra: dict = field(default_factory=dict)


def provenance(adapter: AudioLMAdapter, config: RunConfig) -> dict:
    return {
        **adapter.provenance(), "method": config.method, "ratio": config.ratio, "layer": config.layer,
        "press": config.press, "seed": config.seed, "prompt_version": PROMPT_VERSION,
        "parser_version": PARSER_VERSION, "amlib_version": amlib.__version__,
        "device": device_name(adapter.device), "torch": torch.__version__, **config.extra,
    }


def read_predictions(path: str | Path) -> list[dict]:
    """All rows of a predictions file; for an id seen twice (a retried error) the last row wins."""
    path = Path(path)
    if not path.is_file():
        return []
    rows: dict[str, dict] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg}); truncated write?") from None
            rows[row["id"]] = row
    return list(rows.values())


def _check_same_run(existing: list[dict], prov: dict, path: Path) -> None:
    for row in existing:
        for key in RUN_KEYS:
            if row["provenance"].get(key) != prov.get(key):
                raise ValueError(
                    f"{path}: row {row['id']} was made with {key}={row['provenance'].get(key)!r}, this run "
                    f"has {key}={prov.get(key)!r}; use another output file"
                )


def predict_one(adapter: AudioLMAdapter, sample: Sample) -> dict:
    spec = get_task(sample.task)
    audio = load_audio(sample.audio_path)
    prepared = adapter.build_inputs(audio, spec, sample.question, sample.choices)
    gen = adapter.generate(prepared, max_new_tokens=spec.max_new_tokens)
    parsed = parse_choice(gen.text, spec.n_options, sample.choices) if spec.is_choice else gen.text
    return {
        "prediction": gen.text, "parsed": parsed,
        "correct": (parsed == sample.answer) if spec.is_choice else None,
        "prefill_s": gen.timing.prefill_s, "decode_s": gen.timing.decode_s,
        "new_tokens": gen.new_tokens, "peak_memory_mb": gen.timing.peak_memory_mb,
        "memory_kind": gen.timing.memory_kind, "audio_tokens": prepared.audio_tokens,
        "prompt_tokens": prepared.prompt_tokens, "audio_windows": prepared.n_windows,
        # remote APIs: only the HTTP round trip is known, and a cached response costs nothing
        **{k: getattr(gen.timing, k) for k in ("round_trip_s", "cached") if hasattr(gen.timing, k)},
    }


def evaluate(adapter: AudioLMAdapter, samples: list[Sample], out_path: str | Path,
             config: RunConfig | None = None, retry_errors: bool = False, progress: bool = True) -> list[dict]:
    """Run `adapter` on `samples`, appending rows to `out_path`; return all rows of the file."""
    config = config or RunConfig()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    prov = provenance(adapter, config)
    existing = read_predictions(out_path)
    _check_same_run(existing, prov, out_path)
    done = {r["id"] for r in existing if not (retry_errors and r["error"])}
    todo = [s for s in samples if s.id not in done]
    torch.manual_seed(config.seed)
    with out_path.open("a", encoding="utf-8") as fh:
        for sample in tqdm(todo, desc=f"{adapter.model_id} {config.method}", disable=not progress):
            base = {"id": sample.id, "task": sample.task, "answer": sample.answer,
                    "duration_s": sample.duration_s, "source": sample.source, "split": sample.split}
            try:
                result, error = predict_one(adapter, sample), None
            except Exception as err:  # recorded, not hidden: the row carries the traceback
                result = {"prediction": None, "parsed": None, "correct": False if get_task(sample.task).is_choice else None}
                error = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}"
            fh.write(json.dumps({**base, **result, "error": error, "provenance": prov}) + "\n")
            fh.flush()
    return read_predictions(out_path)


def select(samples: list[Sample], tasks: list[str] | None = None, limit: int | None = None) -> list[Sample]:
    """The first `limit` samples of each requested task, in manifest order (errors on unknown tasks)."""
    wanted = [get_task(t).code for t in tasks] if tasks else None
    counts: dict[str, int] = {}
    chosen = []
    for s in samples:
        if wanted is not None and s.task not in wanted:
            continue
        if limit is not None and counts.get(s.task, 0) >= limit:
            continue
        counts[s.task] = counts.get(s.task, 0) + 1
        chosen.append(s)
    missing = [t for t in (wanted or []) if t not in counts]
    if missing:
        raise ValueError(f"no samples of task(s) {', '.join(missing)} in the manifest")
    return chosen


def run_eval(model: str, data_dir: str | Path, output_dir: str | Path | None, tasks: list[str] | None = None,
             limit: int | None = None, seed: int = 0, device: str = "cpu", progress: bool = True,
             family: str | None = None, dtype: str | None = None) -> list[dict]:
    """Load `model`, evaluate it on `data_dir`'s manifest; rows of the selected samples, in order.

    `output_dir=None` writes to a fresh temporary folder, so nothing is resumed (regression runs).
    """
    import tempfile

    from amlib.data import read_manifest
    from amlib.models import load_model

    output_dir = output_dir if output_dir is not None else tempfile.mkdtemp(prefix="amlib-run-")

    samples = select(read_manifest(data_dir), tasks, limit)
    adapter = load_model(model, device=device, seed=seed, family=family, dtype=dtype)
    out = Path(output_dir) / f"{Path(model).name}__vanilla__seed{seed}.jsonl"
    rows = {r["id"]: r for r in evaluate(adapter, samples, out, RunConfig(seed=seed), progress=progress)}
    return [rows[s.id] for s in samples]
