"""Greedy decoding of many prompts at once: slots of static KV buffers, rows that leave and join.

Decoding at batch 1 reads every weight once per generated token; with S rows in one step the same
read serves S tokens. `BatchedDecoder` decodes rows that were prefilled one by one (each under its
own configuration: vanilla, a pruning method, a press; see `Prefilled`) in a fixed number of
*slots*:

- per layer, one KV buffer of shape (slots, KV heads, capacity, head dim) and one additive mask row
  per slot (0 on the slot's filled positions, -inf elsewhere). A row keeps its own length per layer
  (pruned rows hold fewer tokens from layer K on; evicted rows hold what the press kept), its own
  write position per layer, its own position id (its prompt length + rope delta, or where the
  eviction protocol says) and its own stop;
- the step (embedding, decoder, norm, lm_head, argmax) is `GraphDecoder`'s with a batch of `slots`
  rows, one CUDA graph on CUDA (replayed per token), eager elsewhere;
- a row that stops frees its slot and the next prefilled row joins there (continuous batching):
  its cache is copied into the slot's buffers, the slot's mask row and positions are reset. A freed
  slot with no row to take it idles (its write position frozen) until the run ends. A joining row
  longer than the buffers grows them (and the graph is captured again).

Rows never see each other: attention reads one slot's buffer under that slot's mask, and the
per-row arithmetic is batch-1's (`gqa_decode_attention` per KV group). Answers and per-step logits
are tested equal to batch-1 HF `generate` in float32 on tiny families with rows of different lengths,
vanilla, pruned and evicted (tests/test_batched_decode.py).
"""

from __future__ import annotations

import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from amlib.fastpath.graph_decode import decode_attention


@dataclass
class Prefilled:
    """One prompt after its prefill, ready to decode: the prefill's cache (`cache.layers[i].keys`,
    `.values` of shape (1, KV, length_i, d)), the first generated token, the position id of the
    next token, the answer's token budget, and whatever the caller wants back (`payload`)."""

    cache: object
    first_token: int
    next_position: int
    max_new_tokens: int
    payload: object = None
    first_logits: torch.Tensor | None = field(default=None, repr=False)  # (vocab,) float32, checks only

    def lengths(self) -> list[int]:
        return [layer.keys.shape[-2] for layer in self.cache.layers]


@dataclass
class Decoded:
    """A finished row: its generated tokens (the first one included), the wall time of the decode
    steps it took part in (shared with the rows beside it; prefills of joining rows in between are
    not counted), the mean number of rows in those steps, and (when asked) each step's float32 logits."""

    prefilled: Prefilled
    tokens: list[int]
    decode_s: float
    rows_mean: float
    logits: list[torch.Tensor] | None = None


class BatchedKV:
    """Per-layer KV buffers for `slots` rows, each row with its own fill per layer."""

    def __init__(self, like_cache, slots: int, capacities: list[int], mask_dtype: torch.dtype):
        self.slots = slots
        self.keys, self.values, self.masks = [], [], []
        for layer, capacity in zip(like_cache.layers, capacities):
            k = layer.keys
            shape = (slots, k.shape[1], capacity, k.shape[-1])
            self.keys.append(k.new_zeros(shape))
            self.values.append(layer.values.new_zeros(shape))
            self.masks.append(torch.full((slots, 1, 1, capacity), torch.finfo(mask_dtype).min, dtype=mask_dtype,
                                         device=k.device))
        device = self.keys[0].device
        self.fill = torch.zeros(len(capacities), slots, dtype=torch.long, device=device)  # next write per layer, row
        self.active = torch.zeros(slots, dtype=torch.long, device=device)  # 1: the row advances
        # scattered into the masks (a scalar scatter fills a whole temporary of the mask's size)
        self.opened = torch.zeros(slots, 1, 1, 1, dtype=mask_dtype, device=device)
        self.rows = torch.arange(slots, device=device)

    @property
    def capacities(self) -> list[int]:
        return [k.shape[-2] for k in self.keys]

    def load(self, slot: int, cache) -> None:
        """A prefilled row's cache into `slot` (whatever the slot held before is masked away)."""
        for i, layer in enumerate(cache.layers):
            length = layer.keys.shape[-2]
            self.keys[i][slot, :, :length].copy_(layer.keys[0])
            self.values[i][slot, :, :length].copy_(layer.values[0])
            self.masks[i][slot].fill_(torch.finfo(self.masks[i].dtype).min)
            self.masks[i][slot, ..., :length] = 0
            self.fill[i, slot] = length
        self.active[slot] = 1

    def grown(self, capacities: list[int]) -> BatchedKV:
        """A copy with at least `capacities` positions per layer (the rows' contents kept)."""
        new = BatchedKV.__new__(BatchedKV)
        new.slots = self.slots
        new.keys, new.values, new.masks = [], [], []
        for k, v, m, capacity in zip(self.keys, self.values, self.masks, capacities):
            capacity = max(capacity, k.shape[-2])
            for old, out in ((k, new.keys), (v, new.values)):
                buffer = old.new_zeros(*old.shape[:2], capacity, old.shape[-1])
                buffer[:, :, :old.shape[-2]].copy_(old)
                out.append(buffer)
            mask = torch.full((*m.shape[:3], capacity), torch.finfo(m.dtype).min, dtype=m.dtype, device=m.device)
            mask[..., :m.shape[-1]].copy_(m)
            new.masks.append(mask)
        new.fill, new.active, new.opened, new.rows = self.fill, self.active, self.opened, self.rows
        return new

    def narrow(self, n: int) -> BatchedKV:
        """A view of the first `n` slots (the same memory: what the view writes, this cache holds)."""
        view = type(self).__new__(type(self))
        view.slots = n
        view.keys, view.values, view.masks = ([t[:n] for t in ts] for ts in (self.keys, self.values, self.masks))
        view.fill, view.active, view.opened, view.rows = self.fill[:, :n], self.active[:n], self.opened[:n], self.rows[:n]
        return view

    def move(self, source: int, target: int) -> None:
        """Slot `source`'s row into slot `target` (active rows are kept in the first slots)."""
        for tensors in (self.keys, self.values, self.masks):
            for t in tensors:
                t[target].copy_(t[source])
        self.fill[:, target] = self.fill[:, source]
        self.active[target] = self.active[source]

    def open_slots(self, layer_idx: int) -> None:
        """Each row's write position becomes visible to its own query (and every later one)."""
        self.masks[layer_idx].scatter_(-1, self.fill[layer_idx].view(-1, 1, 1, 1), self.opened)

    # the interface transformers' attention calls
    def update(self, key_states, value_states, layer_idx: int, cache_kwargs=None):
        at = self.fill[layer_idx]  # (an index put: a scatter along the sequence is 3,000x slower on a CPU)
        self.keys[layer_idx][self.rows, :, at] = key_states[:, :, 0]
        self.values[layer_idx][self.rows, :, at] = value_states[:, :, 0]
        return self.keys[layer_idx], self.values[layer_idx]

    def advance(self) -> None:
        self.fill.add_(self.active)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        raise RuntimeError("BatchedKV: positions are passed explicitly (cache_position), not read from the cache")


class BatchedDecoder:
    """Greedy decoding of prefilled rows in `slots` slots for a causal LM `model` whose decoder is
    `text_model` (embedding, layers, final norm) followed by `lm_head` (see the module docstring).
    `use_graph` None: a CUDA graph on CUDA only."""

    kv_class = BatchedKV

    def __init__(self, model, text_model, lm_head, layers, slots: int = 8, use_graph: bool | None = None,
                 capacity_step: int = 256, lean=None):
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        self.model, self.text_model, self.lm_head, self.layers = model, text_model, lm_head, list(layers)
        self.slots, self.use_graph = slots, use_graph
        self.lean = lean  # an `amlib.fastpath.lean_step.LeanStep`: the step without transformers' modules
        self.capacity_step = capacity_step  # buffers grow in steps of this many positions (fewer captures)
        self.captures = 0  # CUDA graphs captured by the last run (growth recaptures)
        self.steps = 0  # decode steps of the last run

    @torch.inference_mode()
    def run(self, rows: Iterable[Prefilled], eos_token_ids: Iterable[int],
            on_done: Callable[[Decoded], None] | None = None, keep_logits: bool = False) -> list[Decoded]:
        """Decode every row of `rows` (an iterable: rows are drawn when a slot is free, so a generator
        may prefill them lazily, between decode steps). Each finished row goes to `on_done` as soon as
        it stops, and all of them are returned in the order they finished."""
        eos = set(int(e) for e in eos_token_ids)
        source = iter(rows)
        done: list[Decoded] = []
        self.captures = self.steps = 0

        def finish(decoded: Decoded):
            done.append(decoded)
            if on_done is not None:
                on_done(decoded)

        def next_row():
            for row in source:  # rows that stop at their first token never take a slot
                first = [row.first_logits] if keep_logits else None
                if row.max_new_tokens <= 1 or row.first_token in eos:
                    finish(Decoded(row, [row.first_token], 0.0, 0.0, first))
                    continue
                return row
            return None

        first_row = next_row()
        if first_row is None:
            return done
        state = _State(self, first_row, keep_logits)
        waiting = deque([first_row])
        while True:
            while state.n_active < self.slots:
                row = waiting.popleft() if waiting else next_row()
                if row is None:
                    break
                state.join(row)
            if not state.n_active:
                return done
            entries = state.entries[:state.n_active]
            begin = time.perf_counter()
            tokens = state.step()  # (its tokens read back: the step has finished on the device too)
            took = time.perf_counter() - begin
            self.steps += 1
            stopped = []
            for slot, (entry, token) in enumerate(zip(entries, tokens)):
                entry.tokens.append(token)
                entry.decode_s += took
                if keep_logits:
                    entry.logits.append(state.logits[slot].float().clone())
                entry.rows += len(entries)
                if token in eos or len(entry.tokens) >= entry.row.max_new_tokens:
                    stopped.append(slot)
            for slot in reversed(stopped):  # the last active row moves into a freed slot: highest first
                finish(state.leave(slot))


@dataclass
class _Entry:
    row: Prefilled
    tokens: list[int]
    rows: int = 0
    decode_s: float = 0.0  # wall time of the steps it took part in (other rows' prefills in between not counted)
    logits: list | None = None


class _State:
    """One run's buffers and slots. Active rows occupy the first `n_active` slots (a row that leaves is
    replaced by the last one), so a step computes only those: all of them eagerly, or on CUDA the
    smallest power-of-two bucket that holds them, each bucket its own CUDA graph over views of the
    same buffers."""

    def __init__(self, decoder: BatchedDecoder, first: Prefilled, keep_logits: bool):
        self.decoder, self.keep_logits = decoder, keep_logits
        device = decoder.lm_head.weight.device
        self.device, self.dtype = device, decoder.lm_head.weight.dtype
        self.sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
        slots = decoder.slots
        self.kv = decoder.kv_class(first.cache, slots, self._capacities(first), self.dtype)
        self.ids = torch.zeros(slots, 1, dtype=torch.long, device=device)
        self.position = torch.zeros(slots, dtype=torch.long, device=device)
        self.placeholder = torch.zeros(slots, 1, 1, 1, dtype=self.dtype, device=device)  # replaced per layer
        self.logits = (torch.empty(slots, decoder.lm_head.weight.shape[0], dtype=self.dtype, device=device)
                       if keep_logits else None)
        self.entries: list[_Entry] = []
        self.graphs: dict[int, object] = {}

    def _capacities(self, row: Prefilled, current: list[int] | None = None) -> list[int]:
        """Per layer: the row's length + its new tokens + one parking position, rounded up to the
        growth step."""
        step = self.decoder.capacity_step
        needed = [length + row.max_new_tokens + 1 for length in row.lengths()]
        if current is not None and all(n <= c for n, c in zip(needed, current)):
            return current
        return [max(-(-n // step) * step, c) for n, c in zip(needed, current or [0] * len(needed))]

    @property
    def n_active(self) -> int:
        return len(self.entries)

    def join(self, row: Prefilled) -> None:
        if len(row.lengths()) != len(self.kv.keys):
            raise ValueError(f"a row's cache has {len(row.lengths())} layers, the decoder's buffers "
                             f"{len(self.kv.keys)}")
        capacities = self._capacities(row, self.kv.capacities)
        if capacities != self.kv.capacities:  # a longer row: larger buffers, new graphs
            self.kv = self.kv.grown(capacities)
            self.graphs = {}
        slot = self.n_active
        self.kv.load(slot, row.cache)
        self.ids[slot, 0] = row.first_token
        self.position[slot] = row.next_position
        self.sync()
        self.entries.append(_Entry(row, [row.first_token], logits=[row.first_logits] if self.keep_logits else None))

    def leave(self, slot: int) -> Decoded:
        entry = self.entries[slot]
        last = self.n_active - 1
        if slot != last:  # keep the active rows in the first slots
            self.kv.move(last, slot)
            self.ids[slot] = self.ids[last]
            self.position[slot] = self.position[last]
            self.entries[slot] = self.entries[last]
        self.entries.pop()
        self.kv.active[last] = 0
        steps = len(entry.tokens) - 1
        return Decoded(entry.row, entry.tokens, entry.decode_s, entry.rows / steps if steps else 0.0, entry.logits)

    def _bucket(self) -> int:
        if not self._wants_graph():
            return self.n_active
        bucket = 1
        while bucket < self.n_active:
            bucket *= 2
        return min(bucket, self.decoder.slots)

    def step(self) -> list[int]:
        """One decode step of the active rows; their new tokens, in slot order."""
        n = self._bucket()
        kv = self.kv.narrow(n)

        def open_mask(i):
            kv.open_slots(i)
            return kv.masks[i]

        with (decode_attention(self.decoder.text_model, self.decoder.layers, open_mask)
              if self.decoder.lean is None else nullcontext()):
            if self._wants_graph():
                if n not in self.graphs:
                    self.graphs[n] = self._capture(n, kv)
                self.graphs[n].replay()
            else:
                self._forward(n, kv)
        return self.ids[:self.n_active, 0].tolist()

    def _forward(self, n: int, kv: BatchedKV) -> None:
        ids, position = self.ids[:n], self.position[:n]
        if self.decoder.lean is not None:
            logits = self.decoder.lean(ids, position, kv)[:, None]
        else:
            hidden = self.decoder.text_model(input_ids=ids, position_ids=position.view(-1, 1), past_key_values=kv,
                                             attention_mask=self.placeholder[:n], cache_position=position[:1],
                                             use_cache=True).last_hidden_state
            logits = self.decoder.lm_head(hidden[:, -1:])
        ids.copy_(logits.argmax(-1))
        if self.logits is not None:
            self.logits[:n].copy_(logits[:, -1])
        kv.advance()
        position.add_(kv.active)

    def _wants_graph(self) -> bool:
        use = self.decoder.use_graph
        return self.device.type == "cuda" if use is None else use

    def _capture(self, n: int, kv: BatchedKV):
        """The step of the first `n` slots captured as a CUDA graph, after a warm-up on a side stream
        whose effects are undone."""
        saved = (self.ids.clone(), self.position.clone(), self.kv.fill.clone(), [m.clone() for m in self.kv.masks])
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._forward(n, kv)  # warm-up: allocations and library handles happen outside the capture
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._forward(n, kv)
        self._restore(saved)
        torch.cuda.synchronize()
        self.decoder.captures += 1
        return graph

    def _restore(self, saved) -> None:
        ids, position, fill, masks = saved
        self.ids.copy_(ids)
        self.position.copy_(position)
        self.kv.fill.copy_(fill)
        for mask, old in zip(self.kv.masks, masks):
            mask.copy_(old)


# --- the adapter side: prefill now, decode batched later ---------------------------------------------

@dataclass
class _Deferral:
    keep_logits: bool = False


class deferred_decoding:  # noqa: N801 (a context manager, used like a function)
    """Inside the block, `adapter.generate` (and the pruning and eviction wrappers around it) only
    prefills: it returns a `Generation` whose `pending` is the `Prefilled` prompt and whose text is
    not yet known; `complete` fills it in from the `BatchedDecoder`'s `Decoded` row."""

    def __init__(self, adapter, keep_logits: bool = False):
        self.adapter, self.keep_logits = adapter, keep_logits

    def __enter__(self):
        if getattr(self.adapter, "deferred", None) is not None:
            raise RuntimeError("deferred_decoding does not nest")
        self.adapter.deferred = _Deferral(self.keep_logits)
        return self

    def __exit__(self, *exc):
        self.adapter.deferred = None
        return False


def complete(generation, decoded: Decoded, tokenizer) -> None:
    """A pending Generation (from `deferred_decoding`) with its decoded answer: text, token count,
    the decode's wall time in the batch, and how many rows shared its steps on average."""
    from amlib.efficiency import GenerationTiming

    timing = generation.timing
    generation.text = tokenizer.decode(decoded.tokens, skip_special_tokens=True).strip()
    generation.new_tokens = len(decoded.tokens)
    generation.timing = GenerationTiming(timing.prefill_s, decoded.decode_s, timing.peak_memory_mb, timing.memory_kind)
    generation.efficiency["decode_rows_mean"] = decoded.rows_mean
    generation.pending = None
