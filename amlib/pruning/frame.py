"""Frame: uniform temporal subsampling of the audio tokens (kept indices floor(i * L / n)).

The L audio tokens are those of every audio span in order (a prompt of several 30 s windows has
several spans): one subsampling runs over all of them, not one per span."""

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
