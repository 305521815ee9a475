"""Token pruning inside the LLM decoder (paper §4.1): drop audio tokens once, at decoder layer K.

    from amlib.pruning import METHODS, pruning
    with pruning(adapter, "frame", ratio=0.9, layer=2, seed=0):
        generation = adapter.generate(prepared, max_new_tokens=5)
    generation.efficiency  # audio tokens before/after, kept count, ...

One small class per method (`frame.py`, `random.py`, `fastv.py`, `dart.py`), each choosing which
audio tokens to keep; one mechanism (`mechanism.py`) that installs any of them at layer K of any
adapter. ratio 0 removes nothing (the output is exactly vanilla's).
"""

from __future__ import annotations

from contextlib import contextmanager

from amlib.pruning.base import PruningInputs, PruningMethod, n_keep
from amlib.pruning.dart import DARTPruning
from amlib.pruning.fastv import FastVPruning
from amlib.pruning.frame import FramePruning
from amlib.pruning.mechanism import TokenPruner
from amlib.pruning.random import RandomPruning

_CLASSES = {cls.name: cls for cls in (RandomPruning, FastVPruning, DARTPruning, FramePruning)}
METHODS: tuple[str, ...] = tuple(_CLASSES)
DEFAULT_LAYER = 2  # the paper's K


def make_method(name: str, seed: int = 0) -> PruningMethod:
    try:
        cls = _CLASSES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown pruning method {name!r}; choose one of {', '.join(METHODS)}") from None
    return cls(seed=seed) if cls is RandomPruning else cls()


@contextmanager
def pruning(adapter, method: str | PruningMethod, ratio: float, layer: int = DEFAULT_LAYER, seed: int = 0,
            prefix=None):
    """Inside the block, `adapter.generate(prepared, ...)` prunes `prepared.audio_spans` at `layer`;
    each Generation's `efficiency` holds what the prefill kept. Yields the installed TokenPruner.
    `prefix`: an `amlib.sweep.SharedPrefix` (layer K-1 may be replayed, not run: its recorded
    attention inputs are used)."""
    if not hasattr(adapter, "decoder_layers"):
        raise NotImplementedError(f"{type(adapter).__name__} exposes no decoder layers: token pruning cannot apply")
    try:
        adapter.decoder_layers()
    except (AttributeError, NotImplementedError) as err:
        raise NotImplementedError(f"{getattr(adapter, 'family', type(adapter).__name__)}: token pruning needs the "
                                  f"language model's decoder layers, which this model does not expose ({err})") from None
    method = make_method(method, seed) if isinstance(method, str) else method
    pruner = TokenPruner(adapter, method, ratio, layer, prefix=prefix)
    generate = adapter.generate

    def pruned_generate(prepared, max_new_tokens, **kwargs):
        pruner.set_audio_spans(prepared.audio_spans)
        gen = generate(prepared, max_new_tokens, **kwargs)
        rec = pruner.record
        gen.efficiency.update(
            method=method.name, ratio=ratio, layer=layer, audio_tokens_before=rec.audio_tokens,
            audio_tokens_after=rec.kept_audio_tokens, kept_tokens=rec.seq_len - rec.audio_tokens + rec.kept_audio_tokens,
            prompt_tokens_before=rec.seq_len)
        return gen

    own = adapter.__dict__.get("generate")  # an instance-level generate (a wrapper) to restore
    with pruner:
        adapter.generate = pruned_generate
        try:
            yield pruner
        finally:
            if own is None:
                del adapter.generate  # the class's method again
            else:
                adapter.generate = own


__all__ = ["METHODS", "DARTPruning", "FastVPruning", "FramePruning", "PruningInputs", "PruningMethod",
           "RandomPruning", "TokenPruner", "make_method", "n_keep", "pruning"]
