"""What every dataset builder shares: the build request, item writing and layout errors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from amlib.data.audio import SAMPLE_RATE, write_audio
from amlib.data.concat import loudness_normalize
from amlib.tasks import get_task


class LayoutError(FileNotFoundError):
    """The source folder is not in the layout the builder expects; the message says what is missing."""


@dataclass(frozen=True)
class BuildRequest:
    out: Path
    root: Path | None = None  # the source data set's folder, in its native published layout
    tasks: tuple[str, ...] = ()  # empty: every task the source provides
    per_task: int = 20
    min_seconds: float = 90.0
    max_seconds: float = 300.0
    seed: int = 0
    split: str = "test"
    gap_seconds: float = 0.0  # silence between merged clips
    options: dict = field(default_factory=dict)  # builder-specific settings (CLI: --option key=value)

    def rng(self, *salt: int | str) -> np.random.Generator:
        """A Generator for one purpose: same request + same salt -> same stream."""
        return np.random.default_rng([self.seed] + [_salt_word(s) for s in salt])

    def require(self, *relative: str) -> Path:
        """The root, after checking that each of `relative` exists under it (else a LayoutError)."""
        if self.root is None:
            raise LayoutError("this source needs --root pointing at its data folder")
        for rel in relative:
            if not (self.root / rel).exists():
                raise LayoutError(f"{self.root}: expected '{rel}' (see the builder's docstring for the layout)")
        return self.root


def _salt_word(salt: int | str) -> int:
    if isinstance(salt, int):
        return salt
    return int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "little")


def item_id(task: str, split: str, index: int) -> str:
    return f"{task}-{split}-{index:04d}"


def write_item(req: BuildRequest, task: str, index: int, wave: np.ndarray, *, question: str, choices: list[str],
               answer: str, source: str, meta: dict, normalize: bool = True) -> dict:
    """Write one item's audio (16 kHz mono, loudness-normalised) and return its manifest row.

    `meta["label"]` should hold the class name (the correct option's text) so finalisation can balance.
    """
    spec = get_task(task)
    if spec.is_choice and meta.get("label") is None:
        raise ValueError(f"{task} item {index}: meta['label'] (the class) is required for balancing")
    wave = loudness_normalize(wave) if normalize else np.asarray(wave, dtype=np.float32)
    id_ = item_id(task, req.split, index)
    rel = f"audio/{id_}.wav"
    write_audio(req.out / rel, wave)
    return {"id": id_, "task": task, "audio": rel, "duration_s": round(len(wave) / SAMPLE_RATE, 3),
            "question": question, "choices": choices, "answer": answer, "source": source, "split": req.split,
            "meta": meta}
