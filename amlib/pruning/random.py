"""Random: a uniform random subset of n audio tokens, seeded.

The draw is numpy's PCG64 seeded with (seed, L): the same seed and sample give the same kept set on
any machine and torch version (the paper's code set no seed at all)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from amlib.pruning.base import PruningInputs, PruningMethod


@dataclass
class RandomPruning(PruningMethod):
    name = "random"
    seed: int = 0

    def select(self, inputs: PruningInputs) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, inputs.n_audio])
        return torch.from_numpy(rng.permutation(inputs.n_audio)[: inputs.n_keep].copy())
