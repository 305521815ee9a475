"""FastV: keep the audio tokens the last prompt token attends to most at layer K-1.

Score = layer K-1's attention weights of the last prompt token over the audio tokens, averaged over
heads. The one attention row is computed from the query and keys layer K-1's attention received
(`LayerAttentionInputs.last_row_weights`), so no attention implementation has to return weights:
it runs under SDPA and flash attention as under eager, at the cost of one row (T dot products per
head)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from amlib.pruning.base import PruningInputs, PruningMethod


@dataclass
class FastVPruning(PruningMethod):
    name = "fastv"
    needs_attention = True

    def scores(self, inputs: PruningInputs) -> torch.Tensor:
        """(L,) mean-over-heads attention of the last prompt token to each audio token."""
        row = inputs.attention.last_row_weights().mean(0)
        return row[inputs.audio_index.to(row.device)]

    def select(self, inputs: PruningInputs) -> torch.Tensor:
        return torch.topk(self.scores(inputs), inputs.n_keep, sorted=False).indices  # stays on the device
