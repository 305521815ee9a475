"""The one mechanism that installs any pruning method at decoder layer K of any adapter.

During prefill, a forward pre-hook on layer K asks the method which audio tokens to keep and gathers
the kept positions (prefix text + kept audio + suffix text, ascending) out of everything the layer
receives that runs along the sequence: hidden states (also AltUp-stacked ones), rotary cos/sin
(1-D, or M-RoPE's (3, B, T, d)), position ids, cache positions, per-layer inputs and the causal
mask (rows and columns). Pre-hooks on the layers after K gather their (still full-length)
arguments the same way. Kept tokens therefore keep their ORIGINAL positions; layers < K keep the
full KV cache and layers >= K a cache of the kept tokens only. A layer >= K that reuses the keys and
values of a layer < K (Gemma 3n's KV sharing) reads them cut to the kept tokens as well.

Decoding needs nothing from the method: generate() counts positions from the full prompt length
(layer 0's cache is full whenever K >= 1; for K = 0 the cache reports the original length, so
families that derive positions from it, like Qwen2.5-Omni, still continue at the original next
position), and a materialized decode mask is cut to the kept columns for layers >= K.

Methods that read layer K-1 (FastV, DART) get its attention inputs from `AttentionCapture`, which
wraps transformers' attention dispatch (`ALL_ATTENTION_FUNCTIONS.get_interface`) for that one module
during prefill: the query and keys after RoPE, whatever the attention implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from amlib.pruning.base import LayerAttentionInputs, PruningInputs, PruningMethod, n_keep


class AttentionCapture:
    """Records attention inputs during prefill: the last `rows` query rows, the keys and the mask rows
    of each module in `modules` (pruning: layer K-1's last row; eviction: every layer's window).
    `inputs` is the record of the single module; `by_module` holds one per module (pop to free).
    Captures nest: an inner one wraps the enclosing one's patch (both record) and restores it on exit."""

    def __init__(self, modules, rows: int = 1):
        self.modules = [modules] if isinstance(modules, torch.nn.Module) else list(modules)
        self.rows = rows
        self.by_module: dict[torch.nn.Module, LayerAttentionInputs] = {}
        self._interface = None
        self._previous = None

    @property
    def module(self) -> torch.nn.Module:
        return self.modules[0]

    @property
    def inputs(self) -> LayerAttentionInputs | None:
        return self.by_module.get(self.modules[0])

    def __enter__(self):
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

        self._interface = ALL_ATTENTION_FUNCTIONS
        # an enclosing capture's patch (an instance attribute) is wrapped, not bypassed, and put back on exit
        self._previous = ALL_ATTENTION_FUNCTIONS.__dict__.get("get_interface")
        original = ALL_ATTENTION_FUNCTIONS.get_interface
        capture, watched = self, {id(m) for m in self.modules}

        def get_interface(attn_implementation, default):
            fn = original(attn_implementation, default)

            def recording(module, query, key, value, attention_mask, *args, **kwargs):
                if id(module) in watched and query.shape[-2] > 1:  # prefill only
                    capture.record(module, query, key, attention_mask, kwargs)
                return fn(module, query, key, value, attention_mask, *args, **kwargs)

            return recording

        ALL_ATTENTION_FUNCTIONS.get_interface = get_interface
        return self

    def record(self, module, query, key, attention_mask, kwargs) -> None:
        rows = min(self.rows, query.shape[-2])
        extra = {k: v for k, v in kwargs.items() if k not in ("dropout", "scaling")}
        mask_rows = attention_mask[..., -rows:, :] if isinstance(attention_mask, torch.Tensor) else None
        self.by_module[module] = LayerAttentionInputs(
            module=module, last_query=query[..., -rows:, :].detach().clone(), keys=key.detach(),
            last_mask_row=mask_rows, scaling=kwargs.get("scaling", module.scaling), extra=extra)

    def __exit__(self, *exc):
        if self._previous is None:
            self._interface.__dict__.pop("get_interface", None)  # back to the class's method
        else:
            self._interface.get_interface = self._previous  # back to the enclosing capture's patch
        return False


@dataclass
class PruningRecord:
    """What one prefill did (read by the runner for its rows)."""

    seq_len: int = 0
    audio_tokens: int = 0
    kept_audio_tokens: int = 0
    kept_index: torch.Tensor | None = field(default=None, repr=False)  # sequence positions kept


def _gather_seq(value, index: torch.Tensor, seq_len: int, name: str = ""):
    """`value` with its sequence dimension (of size seq_len) cut to `index`; other values as they are."""
    if isinstance(value, (tuple, list)):
        return type(value)(_gather_seq(v, index, seq_len) for v in value)
    if not isinstance(value, torch.Tensor) or value.dim() == 0:
        return value
    idx = index.to(value.device)
    if name == "attention_mask":
        if value.dim() == 4 and value.shape[-2] == seq_len and value.shape[-1] == seq_len:
            return value.index_select(-2, idx).index_select(-1, idx)
        if value.dim() == 2 and value.shape[-1] == seq_len:
            return value.index_select(-1, idx)
        return value
    if not value.is_floating_point():  # position ids (B, T) / (3, B, T), cache positions (T,)
        return value.index_select(-1, idx) if value.shape[-1] == seq_len else value
    if value.dim() >= 2 and value.shape[-2] == seq_len:  # hidden states, cos/sin, per-layer inputs
        return value.index_select(-2, idx)
    return value


def _gaps(spans: list[tuple[int, int]], seq_len: int) -> list[tuple[int, int]]:
    """The [start, end) runs of a sequence of `seq_len` positions outside the sorted `spans`."""
    bounds = [0] + [x for span in spans for x in span] + [seq_len]
    return [(a, b) for a, b in zip(bounds[::2], bounds[1::2]) if b > a]


def _positions(spans: list[tuple[int, int]], device) -> torch.Tensor:
    parts = [torch.arange(a, b, device=device) for a, b in spans]
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long, device=device)


class TokenPruner:
    """Installs `method` at decoder layer `layer` of `adapter` (see the module docstring)."""

    def __init__(self, adapter, method: PruningMethod, ratio: float, layer: int = 2, prefix=None):
        self.layers = adapter.decoder_layers()
        if not 0 <= layer < len(self.layers):
            raise ValueError(f"pruning layer {layer} is outside the model's {len(self.layers)} decoder layers")
        if method.needs_attention and layer < 1:
            raise ValueError(f"{method.name} scores tokens with layer K-1's attention: layer must be >= 1, got {layer}")
        n_keep(1, ratio)  # validates the ratio
        self.adapter, self.method, self.ratio, self.layer = adapter, method, ratio, layer
        if prefix is not None and prefix.layer != layer:
            raise ValueError(f"the shared prefix ends at layer {prefix.layer}, pruning is at layer {layer}")
        self.prefix = prefix
        self.audio_spans: list[tuple[int, int]] | None = None
        self.record = PruningRecord()
        self._handles: list = []
        self._capture = None
        self._cache_patch = None
        self._in_prefill = False
        self._gathered: dict = {}
        self._shared_full: dict = {}  # source layer -> its full (keys, values) while a layer >= K reads a cut

    # -- installation ---------------------------------------------------------------------------
    def __enter__(self):
        if self.method.needs_attention and self.prefix is None:
            attention = getattr(self.layers[self.layer - 1], "self_attn", None)
            if attention is None:
                raise NotImplementedError(f"{type(self.layers[self.layer - 1]).__name__} has no self_attn: "
                                          f"{self.method.name} cannot read layer K-1's attention")
            self._capture = AttentionCapture(attention).__enter__()
        self._handles.append(self.layers[0].register_forward_pre_hook(self._start, with_kwargs=True))
        for i in range(self.layer, len(self.layers)):
            self._handles.append(self.layers[i].register_forward_pre_hook(
                lambda module, args, kwargs, i=i: self._gather(i, args, kwargs), with_kwargs=True))
        for attention, source in self._shared_kv_readers():
            self._handles.append(attention.register_forward_pre_hook(
                lambda module, args, kwargs, source=source: self._cut_shared_kv(source, kwargs), with_kwargs=True))
            self._handles.append(attention.register_forward_hook(
                lambda module, args, kwargs, out, source=source: self._restore_shared_kv(source, kwargs),
                with_kwargs=True))
        return self

    def _shared_kv_readers(self):
        """(attention, source layer) of the layers >= K that reuse the keys/values of a layer < K
        (Gemma 3n's KV sharing, `past_key_values.shared_layers`): the source holds every token."""
        for layer in self.layers[self.layer:]:
            attention = getattr(layer, "self_attn", None)
            source = getattr(attention, "kv_shared_layer_index", None)
            if getattr(attention, "is_kv_shared_layer", False) and source is not None and source < self.layer:
                yield attention, source

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._capture is not None:
            self._capture.__exit__(*exc)
        self._undo_cache_patch()
        return False

    # -- hooks --------------------------------------------------------------------------------
    def _start(self, module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        if hidden.shape[-2] > 1:  # a new prompt: prefill
            batch = hidden.shape[-3]
            if batch != 1:
                raise ValueError(f"token pruning runs at batch size 1, got {batch}")
            if self.audio_spans is None:
                raise RuntimeError("TokenPruner.set_audio_spans() was not called before generate()")
            self._undo_cache_patch()
            self.record = PruningRecord(seq_len=hidden.shape[-2])
            self._gathered = {}
        self._in_prefill = hidden.shape[-2] > 1
        return None

    def _gather(self, i: int, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        rec = self.record
        if i == self.layer and hidden.shape[-2] == rec.seq_len and rec.kept_index is None:
            rec.kept_index = self._select(hidden, kwargs.get("past_key_values")).to(hidden.device)
        if rec.kept_index is None or rec.kept_audio_tokens == rec.audio_tokens:
            return None  # nothing removed (ratio 0): the layer runs exactly as without pruning
        if not self._in_prefill:
            return args, self._cut_decode_mask(kwargs)
        # every layer receives the same position/mask objects: gather each once per prefill
        memo = self._gathered

        def gather(value, name=""):
            key = (id(value), name)
            if key not in memo:
                memo[key] = (value, _gather_seq(value, rec.kept_index, rec.seq_len, name))  # keeps value alive
            return memo[key][1]

        args = (args[0],) + tuple(gather(a) for a in args[1:]) if i > self.layer else tuple(
            _gather_seq(a, rec.kept_index, rec.seq_len) for a in args)
        kwargs = {k: gather(v, k) for k, v in kwargs.items()}
        return args, kwargs

    def _cut_shared_kv(self, source: int, kwargs) -> None:
        """Before a layer >= K reads the keys/values of a layer < K: cut them to the kept tokens
        (and the decoded ones), as if that layer's cache had been pruned too; restored after."""
        cache, rec = kwargs.get("past_key_values"), self.record
        if cache is None or rec.kept_index is None or rec.kept_audio_tokens == rec.audio_tokens:
            return None
        key, value = cache.shared_layers[source]
        # original positions so far (the source is unpruned; a prefill's cache positions are gathered already)
        seen = rec.seq_len if self._in_prefill else int(kwargs["cache_position"][-1]) + 1
        if key.shape[-2] != seen:
            raise NotImplementedError(f"layer {source}'s shared keys hold {key.shape[-2]} of {seen} positions (a "
                                      f"rolled-over sliding window): pruning at layer {self.layer}, above it, "
                                      "cannot cut them to the kept tokens")
        cols = torch.cat([rec.kept_index.to(key.device), torch.arange(rec.seq_len, seen, device=key.device)])
        self._shared_full[source] = (key, value)
        cache.shared_layers[source] = (key.index_select(-2, cols), value.index_select(-2, cols))
        return None

    def _restore_shared_kv(self, source: int, kwargs) -> None:
        if source in self._shared_full:
            kwargs["past_key_values"].shared_layers[source] = self._shared_full.pop(source)

    def _cut_decode_mask(self, kwargs):
        mask = kwargs.get("attention_mask")
        rec = self.record
        if isinstance(mask, torch.Tensor) and mask.shape[-1] >= rec.seq_len:
            tail = torch.arange(rec.seq_len, mask.shape[-1], device=mask.device)
            cols = torch.cat([rec.kept_index.to(mask.device), tail])
            kwargs = {**kwargs, "attention_mask": mask.index_select(-1, cols)}
        return kwargs

    # -- selection ------------------------------------------------------------------------------
    def set_audio_spans(self, spans: list[tuple[int, int]]) -> None:
        if not spans:
            raise ValueError("the prompt has no audio tokens to prune")
        self.audio_spans = list(spans)

    def _select(self, hidden: torch.Tensor, cache) -> torch.Tensor:
        """Sequence positions kept, ascending, on the model's device. Nothing here waits for the
        device (no .item(), nonzero or unique on device tensors): on a GPU the host goes on queueing
        layers >= K while layers < K still run, which is where a pruned prefill's time goes."""
        rec = self.record
        audio = _positions(self.audio_spans, torch.device("cpu"))
        if int(audio[-1]) >= rec.seq_len:
            raise ValueError(f"audio spans {self.audio_spans} exceed the prompt of {rec.seq_len} tokens")
        n = n_keep(len(audio), self.ratio)
        attention = None
        if self.method.needs_attention:
            attention = (self.prefix.attention if self.prefix is not None else self._capture.inputs)
            if attention is None:
                raise RuntimeError(f"{self.method.name}: layer {self.layer - 1}'s attention was not captured")
        chosen = torch.as_tensor(self.method.select(PruningInputs(audio, n, rec.seq_len, hidden, attention)),
                                 dtype=torch.long)
        self._check_choice(chosen, n, len(audio))
        rec.audio_tokens, rec.kept_audio_tokens = len(audio), n
        if cache is not None and n < len(audio):
            self._patch_cache_length(cache, len(audio) - n)
        device = chosen.device  # where the method chose: the host (Frame, Random) or the model's device
        others = _positions(_gaps(self.audio_spans, rec.seq_len), device)
        kept = torch.sort(torch.cat([others, audio.to(device, non_blocking=True)[chosen]])).values
        if kept.device != hidden.device and hidden.device.type == "cuda":  # one asynchronous copy
            return kept.pin_memory().to(hidden.device, non_blocking=True)
        return kept.to(hidden.device)

    def _check_choice(self, chosen: torch.Tensor, n: int, n_audio: int) -> None:
        """Exactly n distinct indices in [0, n_audio): checked at once on the host, and on a GPU as a
        device-side assertion (fails the run at the next synchronisation, without waiting now)."""
        problem = f"{self.method.name} returned {chosen.numel()} indices, expected {n} distinct in [0, {n_audio})"
        if chosen.dim() != 1 or chosen.numel() != n:
            raise RuntimeError(problem)
        if chosen.device.type == "cpu":
            if torch.unique(chosen).numel() != n or int(chosen.min()) < 0 or int(chosen.max()) >= n_audio:
                raise RuntimeError(problem)
            return
        in_range = (chosen.min() >= 0) & (chosen.max() < n_audio)
        counts = torch.zeros(n_audio + 1, dtype=torch.long, device=chosen.device)
        counts.index_add_(0, chosen.clamp(0, n_audio), torch.ones_like(chosen))
        torch._assert_async(in_range & (counts.max() <= 1), problem)

    def _patch_cache_length(self, cache, removed: int) -> None:
        """Make `cache.get_seq_length(i)` report positions seen (the original length) for i >= K:
        families that place the next token at the cache length then continue at the original
        next position. The cache tensors themselves hold the kept tokens only."""
        original = cache.get_seq_length
        layer = self.layer

        def get_seq_length(layer_idx: int = 0):
            return original(layer_idx) + (removed if layer_idx >= layer else 0)

        cache.get_seq_length = get_seq_length
        self._cache_patch = cache

    def _undo_cache_patch(self) -> None:
        if self._cache_patch is not None:
            self._cache_patch.__dict__.pop("get_seq_length", None)
            self._cache_patch = None
