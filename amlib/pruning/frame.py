"""Frame: uniform temporal subsampling of the audio tokens (kept indices floor(i * L / n))."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from amlib.pruning.base import PruningInputs, PruningMethod


@dataclass
class FramePruning(PruningMethod):
    name = "frame"

    def select(self, inputs: PruningInputs) -> torch.Tensor:
        n, L = inputs.n_keep, inputs.n_audio
        return torch.div(torch.arange(n, dtype=torch.long) * L, n, rounding_mode="floor")
