"""A decode step without transformers' modules: the same arithmetic in a few dozen ops (on a CPU eagerly,
and compiled, inside a CUDA graph on a GPU: the fused step).

On a 2-core CPU a decode step of the reference model through transformers' modules costs ~56 ms per
token at a 3,700-token context although its matrix-vector products take ~21 ms at the speed these
cores stream bfloat16 weights (profiled: the rest is per-module Python, hooks, masks and small ops).
`LeanStep` runs the step of a Llama/Qwen2-like decoder (the reference model's SmolLM2, Qwen2-Audio's
Qwen2, Qwen2.5-Omni's thinker) directly on the modules' weights, for the rows of a `BatchedDecoder`:

- query, key and value projections as ONE product (their weights concatenated, biases too), gate and
  up as one, so a layer is four weight reads;
- RMSNorm as transformers computes it (float32 variance, scaled in the input dtype), rotary for the
  rows' positions from the model's own rotary embedding, SiLU. M-RoPE (Qwen2.5-Omni) is 1-D rotary
  for generated text: its three position axes are equal there, so every section reads the same
  angles (the rotary embedding is called with the position repeated on each axis);
- attention per KV group over each row's buffer under its mask row (`gqa_decode_attention`'s
  arithmetic: scores in the weights' dtype, softmax in float32);
- the same `BatchedKV` buffers, masks and fills as the module path, so rows join, leave and grow alike.

`weights`: "model" keeps the model's own weights (same numbers as the module path; the products may
sum in another order, so logits agree to rounding, tested in float32); "int8" stores the layer
products as int8 with one scale per output row (weight-only: activations stay in the model's dtype;
half the bytes read), which changes numerics: measured on the book's answers, never assumed.

`compiled`: each layer's body (norms, products, rotary, the KV write, attention, gating) runs as one
`torch.compile`d function, the same compiled code for every layer (weights and buffers are its
arguments, so 36 layers compile once per shape); on CUDA the `BatchedDecoder` then captures the whole
step, compiled kernels included, as one CUDA graph: the fused decode step. Inductor may reorder
float sums, so logits agree to rounding (tested in float32 on the CPU; measured in bfloat16 at full
size by scripts/bench_gpu.py).

`supports(text_model, layers)` says why a model cannot take this path (sliding windows, q/k norms,
other activations, ...); there the module path runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

WEIGHT_FORMATS = ("model", "int8")
DECODE_FORMATS = ("model", "compiled", "int8")  # an adapter's `lean_decode`: weights, or compiled model weights


def is_mrope(text_model) -> bool:
    """Whether the decoder's rotary embedding takes positions per axis (temporal, height, width)."""
    config = getattr(text_model, "config", None)
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return isinstance(rope, dict) and bool(rope.get("mrope_section"))


def supports(text_model, layers) -> str | None:
    """None when every layer is a plain Llama/Qwen2 decoder layer with 1-D rotary, else why not."""
    config = getattr(text_model, "config", None)
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True) is not False \
            and type(text_model).__name__.startswith(("Mistral", "Gemma")):
        return "sliding-window attention"
    for i, layer in enumerate(layers):
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if attn is None or mlp is None or not all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")):
            return f"layer {i}: no separate q/k/v/o projections"
        if any(hasattr(attn, n) for n in ("q_norm", "k_norm")):
            return f"layer {i}: query/key norms"
        if not all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")):
            return f"layer {i}: not a gated MLP"
        act = getattr(mlp, "act_fn", None)
        if type(act).__name__ not in ("SiLU", "SiLUActivation"):
            return f"layer {i}: activation {type(act).__name__}, not SiLU"
        for norm in (getattr(layer, "input_layernorm", None), getattr(layer, "post_attention_layernorm", None)):
            if norm is None or not hasattr(norm, "variance_epsilon") or type(norm).__name__.startswith("Gemma"):
                return f"layer {i}: not an RMSNorm before attention and MLP"
        if getattr(attn, "sliding_window", None):
            return f"layer {i}: sliding-window attention"
    if type(getattr(text_model, "rotary_emb", None)).__name__ == "NoneType":
        return "no rotary embedding module"
    return None


@dataclass
class Product:
    """One weight product x @ W.T (+ b): the weight as the model has it, or int8 with row scales."""

    weight: torch.Tensor
    bias: torch.Tensor | None = None
    scales: torch.Tensor | None = None  # int8: one per output row, in the activations' dtype

    @classmethod
    def of(cls, weights: list[torch.Tensor], biases: list, fmt: str) -> "Product":
        w = torch.cat(weights) if len(weights) > 1 else weights[0]
        b = None if all(x is None for x in biases) else torch.cat(
            [x if x is not None else w.new_zeros(wi.shape[0]) for x, wi in zip(biases, weights)])
        if fmt == "model":
            return cls(w.contiguous(), b)
        wf = w.float()
        scales = wf.abs().amax(1).clamp_min(torch.finfo(torch.float32).tiny) / 127.0
        q = torch.round(wf / scales[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
        return cls(q, b, scales.to(w.dtype))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.scales is None:
            return F.linear(x, self.weight, self.bias)
        y = torch.ops.aten._weight_int8pack_mm(x, self.weight, self.scales)
        return y if self.bias is None else y + self.bias


class LeanStep:
    """The decode step of `text_model` + `lm_head` on a `BatchedKV` (see the module docstring)."""

    def __init__(self, text_model, lm_head, layers, weights: str = "model", compiled: bool = False):
        why = supports(text_model, layers)
        if why is not None:
            raise NotImplementedError(f"LeanStep: {why}")
        if weights not in WEIGHT_FORMATS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHT_FORMATS)}, got {weights!r}")
        if compiled and weights != "model":
            raise ValueError(f"the compiled step takes the model's own weights, not {weights!r}")
        self.text_model, self.weights, self.compiled = text_model, weights, compiled
        self.mrope = is_mrope(text_model)
        first = layers[0].self_attn
        self.heads, self.kv_heads, self.head_dim = (first.config.num_attention_heads, first.config.num_key_value_heads,
                                                    first.head_dim)
        self.scaling = first.scaling
        self.shape = {"heads": self.heads, "kv_heads": self.kv_heads, "dim": self.head_dim, "scaling": self.scaling}
        self.layers = []
        for layer in layers:
            a, m = layer.self_attn, layer.mlp
            self.layers.append((
                layer.input_layernorm,
                Product.of([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight],
                           [a.q_proj.bias, a.k_proj.bias, a.v_proj.bias], weights),
                Product.of([a.o_proj.weight], [a.o_proj.bias], weights),
                layer.post_attention_layernorm,
                Product.of([m.gate_proj.weight, m.up_proj.weight], [m.gate_proj.bias, m.up_proj.bias], weights),
                Product.of([m.down_proj.weight], [m.down_proj.bias], weights),
                m.gate_proj.weight.shape[0],
            ))
        self.lm_head = Product.of([lm_head.weight], [getattr(lm_head, "bias", None)], weights)
        self.layer_body = self.head_body = None
        if compiled:
            eps = {layer.input_layernorm.variance_epsilon for layer in layers}
            eps |= {layer.post_attention_layernorm.variance_epsilon for layer in layers}
            if len(eps) != 1:
                raise ValueError(f"the compiled step needs one RMSNorm epsilon for every layer, got {sorted(eps)}")
            self.shape["eps"] = eps.pop()
            if any(p.bias is not None for _, _, o, _, gu, d, _ in self.layers for p in (o, gu, d)):
                raise ValueError("the compiled step covers a bias on the q/k/v products only")
            norm = text_model.norm
            if getattr(norm, "variance_epsilon", None) != self.shape["eps"] or type(norm).__name__.startswith("Gemma"):
                raise ValueError("the compiled step needs the final norm to be an RMSNorm with the layers' epsilon")
            # dynamic=None: a second shape (rows, buffer length) compiles one symbolic-shape version, not
            # one version per shape (the decoder's buckets and buffer growth would exhaust dynamo's cache)
            self.layer_body = torch.compile(_layer_body, dynamic=None, fullgraph=True)
            self.head_body = torch.compile(_head_body, dynamic=None, fullgraph=True)

    @staticmethod
    def _rms(norm, x):
        return _rms_with(norm.weight, x, norm.variance_epsilon)

    @staticmethod
    def _rotate(x, cos, sin):
        half = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin

    def rotary(self, h: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin of shape (rows, 1, 1, head dim) in h's dtype, from the model's own rotary embedding."""
        if self.mrope:  # generated text: the same position on every axis, so any axis's angles will do
            cos, sin = self.text_model.rotary_emb(h[:, None], positions.view(1, -1, 1).expand(3, -1, -1))
            cos, sin = cos[0], sin[0]
        else:
            cos, sin = self.text_model.rotary_emb(h[:, None], positions.view(-1, 1))  # (rows, 1, d)
        return cos[:, None].to(h.dtype), sin[:, None].to(h.dtype)

    def __call__(self, ids: torch.Tensor, positions: torch.Tensor, kv) -> torch.Tensor:
        """Logits (rows, vocab) of the next token of each row; writes the rows' keys and values into
        `kv` at their fills (the caller advances the fills). ids (rows, 1), positions (rows,)."""
        h = self.text_model.embed_tokens(ids)[:, 0]  # (rows, hidden)
        cos, sin = self.rotary(h, positions)
        rows = kv.rows[:ids.shape[0]]
        for i, (norm1, qkv, out, norm2, gate_up, down, inter) in enumerate(self.layers):
            if self.layer_body is not None:
                h = self.layer_body(h, cos, sin, rows, kv.fill[i], kv.opened, kv.keys[i], kv.values[i], kv.masks[i],
                                    norm1.weight, qkv.weight, qkv.bias, out.weight, norm2.weight, gate_up.weight,
                                    down.weight, inter=inter, **self.shape)
                continue
            x = self._rms(norm1, h)
            q, k, v = self._split(qkv(x), **self.shape)
            q, k = self._rotate(q, cos, sin), self._rotate(k, cos, sin)
            kv.open_slots(i)
            attended = self._attend(q, k, v, rows, kv.fill[i], kv.keys[i], kv.values[i], kv.masks[i], **self.shape)
            h = h + out(attended)
            x = self._rms(norm2, h)
            gu = gate_up(x)
            h = h + down(F.silu(gu[:, :inter]) * gu[:, inter:])
        if self.head_body is not None:
            return self.head_body(h, self.text_model.norm.weight, self.lm_head.weight, self.lm_head.bias,
                                  eps=self.shape["eps"])
        h = self.text_model.norm(h)
        return self.lm_head(h)

    @staticmethod
    def _split(y, heads, kv_heads, dim, **_):
        rows = y.shape[0]
        q = y[:, :heads * dim].view(rows, heads, 1, dim)
        k = y[:, heads * dim:(heads + kv_heads) * dim].view(rows, kv_heads, 1, dim)
        v = y[:, (heads + kv_heads) * dim:].view(rows, kv_heads, dim)
        return q, k, v

    @staticmethod
    def _attend(q, k, v, rows, fill, keys, values, mask, heads, kv_heads, dim, scaling, **_):
        """Writes the new key and value at each row's fill, then attends over the row's buffer."""
        keys[rows, :, fill] = k[:, :, 0]
        values[rows, :, fill] = v
        n = q.shape[0]
        scores = torch.matmul(q.view(n, kv_heads, heads // kv_heads, dim), keys.transpose(-1, -2)) * scaling
        scores = scores + mask[:, :, -1:, :]
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(values.dtype)
        return torch.matmul(probs, values).reshape(n, heads * dim)


def _product(x, weight, bias, streamed: bool):
    """x @ weight.T (+ bias). `streamed` (one row on a CPU): as a float32 multiply-and-sum that inductor
    turns into one vectorised loop over the weight, which streams bfloat16 weights ~2.5x faster on these
    cores than the BLAS matrix-vector product (measured: the 49,152 x 576 lm_head, 2.1 vs 5.4 ms)."""
    if not streamed:
        return F.linear(x, weight, bias)
    y = (x.float()[:, None, :] * weight.float()[None]).sum(-1).to(x.dtype)
    return y if bias is None else y + bias


def _attend_streamed(q, k, v, rows, fill, keys, values, mask, heads, kv_heads, dim, scaling, **_):
    """`LeanStep._attend` for one row on a CPU: both products as multiply-and-sum loops (the BLAS
    batched products read the cache at a third of the streaming rate), scores rounded to the cache's
    dtype as the product would leave them."""
    keys[rows, :, fill] = k[:, :, 0]
    values[rows, :, fill] = v
    n = q.shape[0]
    grouped = q.view(n, kv_heads, heads // kv_heads, 1, dim).float()
    scores = (grouped * keys[:, :, None].float()).sum(-1).to(keys.dtype) * scaling  # (n, kv, group, capacity)
    scores = scores + mask[:, :, -1:, :]
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(values.dtype)
    attended = (probs.float()[..., None] * values[:, :, None].float()).sum(-2)  # (n, kv, group, dim)
    return attended.to(values.dtype).reshape(n, heads * dim)


def _rms_with(weight, x, eps):
    variance = x.float().pow(2).mean(-1, keepdim=True)
    return weight * (x.float() * torch.rsqrt(variance + eps)).to(x.dtype)


def _layer_body(h, cos, sin, rows, fill, opened, keys, values, mask, norm1_w, qkv_w, qkv_b, out_w, norm2_w,
                gate_up_w, down_w, *, inter, eps, heads, kv_heads, dim, scaling):
    """One decoder layer of the lean step as a function of tensors alone (what `torch.compile` fuses;
    the same arithmetic as `LeanStep.__call__`'s eager loop body, "model" weights)."""
    streamed = h.shape[0] == 1 and h.device.type == "cpu"
    shape = {"heads": heads, "kv_heads": kv_heads, "dim": dim, "scaling": scaling}
    q, k, v = LeanStep._split(_product(_rms_with(norm1_w, h, eps), qkv_w, qkv_b, streamed), **shape)
    q, k = LeanStep._rotate(q, cos, sin), LeanStep._rotate(k, cos, sin)
    mask.scatter_(-1, fill.view(-1, 1, 1, 1), opened)  # BatchedKV.open_slots
    attend = _attend_streamed if streamed else LeanStep._attend
    h = h + _product(attend(q, k, v, rows, fill, keys, values, mask, **shape), out_w, None, streamed)
    gu = _product(_rms_with(norm2_w, h, eps), gate_up_w, None, streamed)
    return h + _product(F.silu(gu[:, :inter]) * gu[:, inter:], down_w, None, streamed)


def _head_body(h, norm_w, head_w, head_b, *, eps):
    """The final norm and lm_head (compiled with the layers: for one row on a CPU, the streamed product)."""
    return _product(_rms_with(norm_w, h, eps), head_w, head_b, h.shape[0] == 1 and h.device.type == "cpu")
