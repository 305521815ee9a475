"""The kvpress presses amlib accepts, by name, with the settings the paper used.

Each entry builds a kvpress press (the library's own class: nothing here re-implements a scorer) and
says what the installation must provide: `attention_rows`, the number of last prompt rows of attention
weights the press reads (SnapKV's window, TOVA's last row; amlib computes them exactly from the
layer's own queries, see `amlib.eviction.install`), and `prerope_queries` when the press projects
queries itself through kvpress's `get_prerope_query_states`, which knows only Llama-like, Qwen3,
Gemma3 and Phi-3 attention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import kvpress


@dataclass(frozen=True)
class PressSpec:
    name: str
    build: Callable[[float, int], "kvpress.BasePress"]  # (compression ratio, seed) -> press
    attention_rows: int = 0
    prerope_queries: bool = False
    unavailable: str | None = None  # why the press cannot run anywhere here (raised on use)
    paper: bool = False  # one of the paper's four (Table 7)


SNAPKV_WINDOW, SNAPKV_KERNEL = 64, 5  # the paper's SnapKV settings (kvpress's defaults too)

_SPECS = [
    PressSpec("random", lambda r, seed: kvpress.RandomPress(compression_ratio=r, seed=seed), paper=True),
    PressSpec("knorm", lambda r, seed: kvpress.KnormPress(compression_ratio=r), paper=True),
    PressSpec("tova", lambda r, seed: kvpress.TOVAPress(compression_ratio=r), attention_rows=1, paper=True),
    PressSpec("snapkv", lambda r, seed: kvpress.SnapKVPress(compression_ratio=r, window_size=SNAPKV_WINDOW,
                                                            kernel_size=SNAPKV_KERNEL),
              attention_rows=SNAPKV_WINDOW, paper=True),
    PressSpec("streaming_llm", lambda r, seed: kvpress.StreamingLLMPress(compression_ratio=r, n_sink=4)),
    PressSpec("expected_attention", lambda r, seed: kvpress.ExpectedAttentionPress(compression_ratio=r),
              prerope_queries=True),
    PressSpec("keydiff", lambda r, seed: kvpress.KeyDiffPress(compression_ratio=r)),
    PressSpec("pyramidkv", lambda r, seed: kvpress.PyramidKVPress(compression_ratio=r, window_size=SNAPKV_WINDOW,
                                                                  kernel_size=SNAPKV_KERNEL),
              attention_rows=SNAPKV_WINDOW),
    PressSpec("lagkv", lambda r, seed: kvpress.LagKVPress(compression_ratio=r, n_sink=4, lag_size=128)),
    PressSpec("cur", lambda r, seed: kvpress.CURPress(compression_ratio=r)),
    PressSpec("kvzip", lambda r, seed: kvpress.KVzipPress(compression_ratio=r),
              unavailable="KVzip scores KV pairs by re-feeding the context's input ids to reconstruct it; an audio "
                          "LM's context is audio features merged into embeddings, which input ids cannot replay"),
    PressSpec("kvzap", lambda r, seed: kvpress.KVzapPress(compression_ratio=r),
              unavailable="KVzap scores KV pairs with a small surrogate network trained per text LLM and downloaded "
                          "from the hub as nvidia/KVzap-<type>-<model name>; none is trained for an audio LM's decoder "
                          "(its hidden states differ from the text model's), so its scores would be meaningless here"),
]

PRESS_SPECS: dict[str, PressSpec] = {spec.name: spec for spec in _SPECS}
PRESSES: tuple[str, ...] = tuple(PRESS_SPECS)
PAPER_PRESSES: tuple[str, ...] = tuple(s.name for s in _SPECS if s.paper)


def press_spec(name: str) -> PressSpec:
    try:
        return PRESS_SPECS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown press {name!r}; choose one of {', '.join(PRESSES)}") from None


def make_press(name: str, ratio: float, seed: int = 0) -> "kvpress.BasePress":
    """The kvpress press `name` at compression ratio `ratio` (the share of KV pairs evicted)."""
    spec = press_spec(name)
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"compression ratio must be in [0, 1), got {ratio}")
    if spec.unavailable:
        raise NotImplementedError(f"press {spec.name!r} cannot run on audio LMs: {spec.unavailable}")
    return spec.build(ratio, seed)
