"""Fast paths that change how a model computes, never what: each one's output equals transformers'
(tested on tiny instances; measured at full size by scripts/bench_gpu.py).

- `chunked_encoder`: audio encoders whose attention stays inside fixed chunks run it per chunk,
  without the dense block-diagonal mask (Qwen2.5-Omni).
- `graph_decode`: greedy decoding with static per-layer KV buffers, one CUDA graph per token.
"""

from amlib.fastpath.chunked_encoder import ChunkedEncoderAttention
from amlib.fastpath.graph_decode import GraphDecoder, StaticKV

__all__ = ["ChunkedEncoderAttention", "GraphDecoder", "StaticKV"]
