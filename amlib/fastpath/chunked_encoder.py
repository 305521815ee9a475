"""Exact fast path for audio encoders whose attention never crosses a fixed window (block-diagonal).

Qwen2.5-Omni's audio encoder attends within 2 s chunks (`n_window` = 100 mel frames x 2). Under
SDPA/eager, transformers builds one dense (S, S) mask for all S encoder positions (15,000 for 300 s:
a 450 MB bfloat16 tensor, filled in a Python loop over the chunks) and runs attention over all of it,
S^2 work for what is S x 100. Under flash attention it passes `cu_seqlens` to the varlen kernel
instead, which needs flash-attn installed.

`ChunkedEncoderAttention` gives the encoder the flash path's contract without flash-attn: the encoder
builds no mask, and every attention call runs SDPA on the chunks as a batch (consecutive chunks of
equal length are one batched call: a 300 s window is 149 chunks of 100 and a shorter tail). Each
query sees exactly the keys it saw before (its own chunk), so outputs equal transformers' up to the
order of floating-point sums (tested in float32 on tiny instances; measured in bfloat16 at full size
by scripts/bench_gpu.py). The encoder's Python loops over chunks (`padded_and_mask_function`) are
replaced by the same padding done with tensor ops (identical values).

Which encoders have the pattern (transformers 5.2):
- Qwen2.5-Omni (`Qwen2_5OmniAudioEncoder`): yes, installed by its adapter (switch: `fast_encoder`).
- Qwen2-Audio, Audio Flamingo 3, Voxtral (Whisper encoders): long audio is already a batch of 30 s
  windows, each attending only to itself: nothing to gain.
- Phi-4-multimodal (conformer with chunked attention AND left context) and Gemma 3n (USM conformer,
  local attention with context): their masks are not block-diagonal; not covered.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F

IMPLEMENTATION = "amlib_chunked_sdpa"
SUPPORTED = ("Qwen2_5OmniAudioEncoder",)


def equal_length_runs(cu_seqlens: torch.Tensor) -> list[tuple[int, int, int]]:
    """(start position, chunk count, chunk length) for each run of consecutive equal-length chunks."""
    bounds = cu_seqlens.tolist()
    runs: list[tuple[int, int, int]] = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        length = end - start
        if length <= 0:
            continue
        if runs and runs[-1][2] == length:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1, length)
        else:
            runs.append((start, 1, length))
    return runs


_last_plan: tuple[torch.Tensor | None, list] = (None, [])  # every layer gets the same cu_seqlens tensor


def _plan(cu_seqlens: torch.Tensor) -> list[tuple[int, int, int]]:
    global _last_plan
    if _last_plan[0] is not cu_seqlens:  # one device->host copy per encoder call, not per layer
        _last_plan = (cu_seqlens, equal_length_runs(cu_seqlens))
    return _last_plan[1]


def chunked_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                 cu_seq_lens_q=None, cu_seq_lens_k=None, **kwargs):
    """Attention within the chunks `cu_seq_lens_q` delimits. query/key/value: (1, heads, S, d);
    returns (1, S, heads, d) like transformers' attention functions, and no weights."""
    if attention_mask is not None or cu_seq_lens_q is None or cu_seq_lens_k is not cu_seq_lens_q:
        raise ValueError("chunked_sdpa needs cu_seqlens (the same for queries and keys) and no mask: "
                         "it is installed by amlib.fastpath.chunked_encoder, not chosen by hand")
    _, heads, total, dim = query.shape
    out = query.new_empty(total, heads, dim)
    for start, count, length in _plan(cu_seq_lens_q):
        span = slice(start, start + count * length)

        def chunks(x):  # (heads, count * length, d) -> (count, heads, length, d)
            return x[0, :, span].unflatten(1, (count, length)).transpose(0, 1)

        o = F.scaled_dot_product_attention(chunks(query), chunks(key), chunks(value), dropout_p=dropout,
                                           scale=scaling)
        out[span] = o.transpose(1, 2).reshape(count * length, heads, dim)
    return out.unsqueeze(0), None


def _register() -> None:
    from transformers import AttentionInterface

    if IMPLEMENTATION not in AttentionInterface._global_mapping:
        AttentionInterface.register(IMPLEMENTATION, chunked_sdpa)


def _no_mask(self, inputs_tensor, cu_seqlens):
    return None  # chunked_sdpa reads cu_seqlens, as flash attention's varlen kernel does


def _padded_and_mask(self, tensor_list, tensor_len, padding_value=0, padding_side="right"):
    """`padded_and_mask_function` without its per-chunk Python loops (same three outputs)."""
    if padding_side != "right":
        raise ValueError("only right padding is used by the encoder")
    padded = torch.nn.utils.rnn.pad_sequence([t.transpose(0, 1) for t in tensor_list], batch_first=True,
                                             padding_value=padding_value).transpose(1, 2).to(self.dtype)
    positions = torch.arange(padded.shape[-1], device=tensor_len.device)
    mask = (positions[None, :] < tensor_len[:, None]).long()
    after_cnn = (tensor_len - 1) // 2 + 1
    mask_after_cnn = torch.arange(int(after_cnn.max()), device=tensor_len.device)[None, :] < after_cnn[:, None]
    return padded, mask.unsqueeze(1), mask_after_cnn


class ChunkedEncoderAttention:
    """Installs the fast path on every supported encoder inside `model`; `remove()` undoes it."""

    def __init__(self, model: torch.nn.Module):
        self.encoders = [m for m in model.modules() if type(m).__name__ in SUPPORTED]
        self._saved: list[tuple[torch.nn.Module, str]] = []

    @property
    def installed(self) -> bool:
        return bool(self._saved)

    def install(self) -> "ChunkedEncoderAttention":
        if self.installed:
            return self
        _register()
        for encoder in self.encoders:
            self._saved.append((encoder, encoder.config._attn_implementation))
            encoder.config._attn_implementation = IMPLEMENTATION
            encoder._prepare_attention_mask = types.MethodType(_no_mask, encoder)
            encoder.padded_and_mask_function = types.MethodType(_padded_and_mask, encoder)
        return self

    def remove(self) -> None:
        for encoder, implementation in self._saved:
            encoder.config._attn_implementation = implementation
            for name in ("_prepare_attention_mask", "padded_and_mask_function"):
                encoder.__dict__.pop(name, None)
        self._saved.clear()

    def __enter__(self):
        return self.install()

    def __exit__(self, *exc):
        self.remove()
        return False
