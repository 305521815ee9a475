"""A decode step without transformers' modules, for the CPU: the same arithmetic in a few dozen ops.

On a 2-core CPU a decode step of the reference model through transformers' modules costs ~56 ms per
token at a 3,700-token context although its matrix-vector products take ~21 ms at the speed these
cores stream bfloat16 weights (profiled: the rest is per-module Python, hooks, masks and small ops).
`LeanStep` runs the step of a Llama/Qwen2-like decoder (the reference model's SmolLM2, Qwen2-Audio's
Qwen2) directly on the modules' weights, for the rows of a `BatchedDecoder`:

- query, key and value projections as ONE product (their weights concatenated, biases too), gate and
  up as one, so a layer is four weight reads;
- RMSNorm as transformers computes it (float32 variance, scaled in the input dtype), rotary for the
  rows' positions from the model's own rotary embedding, SiLU;
- attention per KV group over each row's buffer under its mask row (`gqa_decode_attention`'s
  arithmetic: scores in the weights' dtype, softmax in float32);
- the same `BatchedKV` buffers, masks and fills as the module path, so rows join, leave and grow alike.

`weights`: "model" keeps the model's own weights (same numbers as the module path; the products may
sum in another order, so logits agree to rounding, tested in float32); "int8" stores the layer
products as int8 with one scale per output row (weight-only: activations stay in the model's dtype;
half the bytes read), which changes numerics: measured on the book's answers, never assumed.

`supports(text_model, layers)` says why a model cannot take this path (M-RoPE, sliding windows, q/k
norms, other activations, ...); there the module path runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

WEIGHT_FORMATS = ("model", "int8")


def supports(text_model, layers) -> str | None:
    """None when every layer is a plain Llama/Qwen2 decoder layer with 1-D rotary, else why not."""
    config = getattr(text_model, "config", None)
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if isinstance(rope, dict) and rope.get("mrope_section"):
        return "M-RoPE (positions per axis)"
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

    def __init__(self, text_model, lm_head, layers, weights: str = "model"):
        why = supports(text_model, layers)
        if why is not None:
            raise NotImplementedError(f"LeanStep: {why}")
        if weights not in WEIGHT_FORMATS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHT_FORMATS)}, got {weights!r}")
        self.text_model, self.weights = text_model, weights
        first = layers[0].self_attn
        self.heads, self.kv_heads, self.head_dim = (first.config.num_attention_heads, first.config.num_key_value_heads,
                                                    first.head_dim)
        self.scaling = first.scaling
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

    @staticmethod
    def _rms(norm, x):
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return norm.weight * (x.float() * torch.rsqrt(variance + norm.variance_epsilon)).to(x.dtype)

    @staticmethod
    def _rotate(x, cos, sin):
        half = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin

    def __call__(self, ids: torch.Tensor, positions: torch.Tensor, kv) -> torch.Tensor:
        """Logits (rows, vocab) of the next token of each row; writes the rows' keys and values into
        `kv` at their fills (the caller advances the fills). ids (rows, 1), positions (rows,)."""
        rows = ids.shape[0]
        h = self.text_model.embed_tokens(ids)[:, 0]  # (rows, hidden)
        cos, sin = self.text_model.rotary_emb(h[:, None], positions.view(-1, 1))  # (rows, 1, d)
        cos, sin = cos[:, None].to(h.dtype), sin[:, None].to(h.dtype)  # (rows, 1, 1, d): over heads
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        group = heads // kv_heads
        slot = torch.arange(rows, device=ids.device)
        for i, (norm1, qkv, out, norm2, gate_up, down, inter) in enumerate(self.layers):
            x = self._rms(norm1, h)
            y = qkv(x)
            q = y[:, :heads * dim].view(rows, heads, 1, dim)
            k = y[:, heads * dim:(heads + kv_heads) * dim].view(rows, kv_heads, 1, dim)
            v = y[:, (heads + kv_heads) * dim:].view(rows, kv_heads, dim)
            q, k = self._rotate(q, cos, sin), self._rotate(k, cos, sin)
            kv.open_slots(i)
            at = kv.fill[i]
            kv.keys[i][slot, :, at] = k[:, :, 0]
            kv.values[i][slot, :, at] = v
            keys, values, mask = kv.keys[i], kv.values[i], kv.masks[i]
            scores = torch.matmul(q.view(rows, kv_heads, group, dim), keys.transpose(-1, -2)) * self.scaling
            scores = scores + mask[:, :, -1:, :]
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(values.dtype)
            attended = torch.matmul(probs, values).reshape(rows, heads * dim)
            h = h + out(attended)
            x = self._rms(norm2, h)
            gu = gate_up(x)
            h = h + down(F.silu(gu[:, :inter]) * gu[:, inter:])
        h = self.text_model.norm(h)
        return self.lm_head(h)
