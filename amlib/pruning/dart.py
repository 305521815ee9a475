"""DART: keep audio tokens that duplicate the chosen pivots least (key cosine similarity, layer K-1).

Features are layer K-1's keys after RoPE, all KV heads concatenated per token. Pivots are the
`audio_pivots` audio tokens with the largest key L1 norm plus the `text_pivots` text tokens right
after the last audio token; pivots that are audio tokens are kept. Every pivot then claims the audio
tokens LEAST cosine-similar to it among those not yet kept.

Budget: the paper's code gives each pivot int(n / 8) tokens, which with duplicates between pivots
keeps a varying number (up to 4 + n). Here the kept count is exactly n like every other method:
the n - (audio pivots) remaining slots are dealt out to the pivots in turn (the first pivots get the
remainder), and a token claimed by one pivot is not available to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from amlib.pruning.base import PruningInputs, PruningMethod


@dataclass
class DARTPruning(PruningMethod):
    name = "dart"
    needs_attention = True
    audio_pivots: int = 4
    text_pivots: int = 4

    def features(self, inputs: PruningInputs) -> torch.Tensor:
        keys = inputs.attention.keys[0]  # (kv_heads, T, d)
        return keys.permute(1, 0, 2).reshape(keys.shape[1], -1).float()

    def pivots(self, inputs: PruningInputs, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(audio pivots as indices into audio_index, text pivots as sequence positions)."""
        audio = feats[inputs.audio_index.to(feats.device, non_blocking=True)]
        n_audio_pivots = min(self.audio_pivots, inputs.n_keep)
        audio_piv = torch.topk(audio.abs().sum(-1), n_audio_pivots).indices  # on the features' device
        after = int(inputs.audio_index[-1]) + 1
        text_piv = torch.arange(after, min(after + self.text_pivots, inputs.seq_len), device=feats.device)
        return audio_piv, text_piv

    def select(self, inputs: PruningInputs) -> torch.Tensor:
        raw = self.features(inputs)
        audio_piv, text_piv = self.pivots(inputs, raw)  # by the keys' L1 norm
        feats = torch.nn.functional.normalize(raw, dim=-1)  # cosine similarity from here on
        device = feats.device  # stays on the model's device: no copy of the features to the host
        audio = feats[inputs.audio_index.to(device, non_blocking=True)]
        pivot_vecs = torch.cat([audio[audio_piv], feats[text_piv]])
        taken = torch.zeros(inputs.n_audio, dtype=torch.bool, device=device)
        taken[audio_piv] = True
        slots = inputs.n_keep - len(audio_piv)
        n_pivots = len(pivot_vecs)
        quotas = [slots // n_pivots + (1 if j < slots % n_pivots else 0) for j in range(n_pivots)] if n_pivots else []
        kept = [audio_piv]
        for vec, quota in zip(pivot_vecs, quotas):
            if quota == 0:
                continue
            similarity = (audio @ vec).masked_fill(taken, float("inf"))
            chosen = torch.topk(similarity, quota, largest=False).indices
            taken[chosen] = True
            kept.append(chosen)
        return torch.cat(kept)
