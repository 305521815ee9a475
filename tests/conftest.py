import json
from pathlib import Path

import numpy as np
import pytest

from amlib.data.audio import SAMPLE_RATE, write_audio


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    """Quiet white noise of `seconds` at 16 kHz (seeded): audio of a given length for the adapters."""
    return (0.05 * np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def kvpress_layers(module):
    """The layers kvpress 0.5.5 hooks (BasePress.__call__) in the module it is given."""
    inner = module.model
    return (inner.language_model if hasattr(inner, "language_model") else inner).layers


def make_item(root: Path, id_: str, task: str = "SGR", seconds: float = 2.0, **fields) -> dict:
    """A manifest row whose audio (a quiet tone) really exists under `root`."""
    audio = f"audio/{id_}.wav"
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    write_audio(root / audio, 0.1 * np.sin(2 * np.pi * 220 * t))
    row = {"id": id_, "task": task, "audio": audio, "duration_s": seconds,
           "question": "Is this a male or female voice?", "choices": ["male", "female"], "answer": "A",
           "source": "test", "split": "test", "meta": {}}
    if task == "ASR":
        row.update(question="", choices=[], answer="hello world")
    row.update(fields)
    return row


def load_script(name: str):
    """scripts/<name>.py as a module (the scripts are not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def tiny_adapter():
    from amlib.models import TINY_QWEN2_AUDIO, load_model

    return load_model(TINY_QWEN2_AUDIO, seed=0)


@pytest.fixture(scope="session")
def embedded_items(tmp_path_factory):
    """Two real items of the embedded offline data: SGR of ~90 s and of ~300 s (session-built once)."""
    from amlib.data import read_manifest
    from amlib.data.offline.skeleton import build_skeleton

    items = {}
    for name, (low, high) in {"short": (90.0, 92.0), "long": (296.0, 300.0)}.items():
        out = tmp_path_factory.mktemp(f"embedded-{name}")
        build_skeleton(out, per_task=1, min_seconds=low, max_seconds=high, seed=0, split=name)
        items[name] = next(s for s in read_manifest(out) if s.task == "SGR")
    return items


def evaluate_embedded(adapter, embedded_items: dict, out_path: Path) -> dict:
    """One runner pass over the embedded items: name ("short"/"long") -> (audio seconds, row, the
    PreparedInputs the adapter built for it)."""
    import dataclasses

    from amlib.data import load_audio
    from amlib.runner import evaluate

    built = []
    build = adapter.build_inputs

    def build_and_keep(*args, **kwargs):
        built.append(build(*args, **kwargs))
        return built[-1]

    samples = [dataclasses.replace(sample, id=name) for name, sample in embedded_items.items()]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(adapter, "build_inputs", build_and_keep)
        rows = evaluate(adapter, samples, out_path, progress=False)
    seconds = [len(load_audio(sample.audio_path)) / SAMPLE_RATE for sample in samples]
    return {row["id"]: (sec, row, inputs) for sec, row, inputs in zip(seconds, rows, built, strict=True)}


def check_runner_rows(evaluated: dict) -> None:
    """Every runner row of `evaluate_embedded` has text, no error, and the adapter's audio layout."""
    for _, row, inputs in evaluated.values():
        assert row["error"] is None and isinstance(row["prediction"], str)
        assert (row["audio_tokens"], row["audio_windows"]) == (inputs.audio_tokens, inputs.n_windows)


def check_greedy_rerun(adapter, evaluated: dict) -> None:
    """Generating again from the same inputs gives the runner's answer (greedy, deterministic)."""
    from amlib.tasks import TASKS

    _, row, inputs = evaluated["short"]
    again = adapter.generate(inputs, TASKS["SGR"].max_new_tokens)
    assert again.text == row["prediction"] and again.new_tokens == row["new_tokens"] >= 1
