"""Long-form transcription on validation data, measured as the book measures it: greedy answers
through the runner with the task's answer budget (1,100 tokens), WAR uncapped as the paper, and the
answers that ran to the budget (loops).

Why: run 12's validation loss on long ASR items was low (1.33, teacher-forced) while its long answers
drifted into training-text sentences and looped to the budget on the test split; a loss over the
reference's own tokens does not see a model that loses its place once it writes on its own. The
validation items are long examples joined from held-out clips (`write_joined`: train-split clips whose
texts training never reads, e.g. `val-asrc`), written as a data folder like any other.
"""

from __future__ import annotations

from pathlib import Path

import torch

from amlib.data import Sample, read_manifest, write_manifest
from amlib.data.audio import SAMPLE_RATE, write_audio
from amlib.reference.train.joined_asr import plan_joined


def write_joined(samples: list[Sample], out: str | Path, n: int, min_s: float, max_s: float, seed: int) -> Path:
    """`n` long ASR examples joined from `samples`' short clips (`plan_joined`), written as a data folder
    (WAV + manifest.jsonl, split "train": validation data is train-split data held out)."""
    out = Path(out)
    rows = []
    for item in plan_joined(samples, n, min_s, max_s, seed):
        sample, audio = item.sample(), item.audio()
        rel = f"audio/{sample.id}.wav"
        write_audio(out / rel, audio)
        rows.append({**sample.to_json(), "audio": rel, "duration_s": round(len(audio) / SAMPLE_RATE, 3),
                     "split": "train"})
    write_manifest(out / "manifest.jsonl", rows)
    read_manifest(out)  # validates the written folder
    return out


def long_form_validation(adapter, samples: list[Sample], out_file: str | Path, batch_size: int = 16) -> dict:
    """Transcribe `samples` greedily through the runner into `out_file` (a fresh file per call) and
    score them: {"war", "war_capped", "budget_hits", "items"}. Decodes through the model's modules
    (the lean step reads the base weights, which do not hold an unmerged LoRA), in eval mode."""
    from amlib.metrics.war import word_accuracy_rate
    from amlib.runner import RunConfig, decode_step, evaluate

    if Path(out_file).exists():
        raise FileExistsError(f"{out_file}: long-form validation writes a fresh file per evaluation")
    model, was_training = adapter.model, adapter.model.training
    model.eval()
    try:
        with torch.no_grad(), decode_step(adapter, "modules"):
            rows = evaluate(adapter, samples, out_file, RunConfig(), progress=False, batch_size=batch_size, workers=0)
    finally:
        model.train(was_training)
    failed = [r["id"] for r in rows if r["error"]]
    if failed:
        raise RuntimeError(f"long-form validation: rows {failed} failed: {rows[0]['error'] or ''}")
    refs, hyps = [r["answer"] for r in rows], [r["prediction"] for r in rows]
    return {"war": word_accuracy_rate(refs, hyps), "war_capped": word_accuracy_rate(refs, hyps, cap=True),
            "budget_hits": sum(r["new_tokens"] >= r["max_new_tokens"] for r in rows), "items": len(rows)}
