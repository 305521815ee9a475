"""The lean decode step (amlib.fastpath.lean_step): transformers' decoder arithmetic without its modules.

Oracle: each row's own batch-1 decode (HF generate, the pruning hooks, the eviction loop), as in
tests/test_batched_decode.py, in float32 with sharpened attention and rows of different lengths and
configurations in fewer slots than rows, on Qwen2-Audio (1-D RoPE) and Qwen2.5-Omni (M-RoPE, prompts
with an image block: a nonzero rope delta). The step runs eagerly and compiled (torch.compile: each
layer's body; in one slot on a CPU, the streamed products). Wrong variants fail: rotary at the wrong
position, turning the wrong way, M-RoPE's height and width axes left at 0, and a compiled body that
never opens the new token's slot (which also shows the compiled code is what runs). The int8 weight
format changes numerics: its product is checked against the dequantised weights, and its effect on
answers is measured by the benchmark, not asserted here.
"""

from __future__ import annotations

import pytest
import torch

from amlib.fastpath import batched_decode as bd
from amlib.fastpath import lean_step as ls
from amlib.models import load_model

from oracles import max_diff, prepare
from test_batched_decode import ROWS, TOL, batch_one_logits, family, prefilled, sharp_family  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def qwen2():
    """Qwen2-Audio's text model: Qwen2 (q/k/v biases), the reference model's design (1-D RoPE)."""
    adapter = sharp_family("tiny-random-qwen2-audio")
    prompts = [(prepare(adapter, seconds), config) for seconds, config in ROWS]
    return adapter, prompts, [batch_one_logits(adapter, p, c) for p, c in prompts]


def lean_logits(adapter, prompts, lean, slots=3):
    decoder = bd.BatchedDecoder(adapter.model, *adapter.decode_modules(), adapter.decoder_layers(), slots=slots,
                                lean=lean)
    rows = (prefilled(adapter, p, c, i) for i, (p, c) in enumerate(prompts))
    done = decoder.run(rows, [], keep_logits=True)
    return {d.prefilled.payload: torch.stack(d.logits) for d in done}


@pytest.mark.parametrize("compiled,slots", [(False, 3), (True, 3), (True, 1)], ids=["eager", "compiled", "compiled-one-row"])
def test_lean_step_decodes_every_row_as_it_would_alone(family, compiled, slots):
    adapter, prompts, expected = family
    lean = ls.LeanStep(*adapter.decode_modules(), adapter.decoder_layers(), compiled=compiled)
    for i, logits in lean_logits(adapter, prompts, lean, slots=slots).items():
        n = len(expected[i])
        assert max_diff(logits[:n], expected[i]) < TOL, (i, ROWS[i])


def _unscaled_streamed(*args, scaling, **kwargs):
    return _STREAMED(*args, scaling=1.0, **kwargs)


_STREAMED = ls._attend_streamed


def test_one_row_on_a_cpu_takes_the_streamed_attention(family, monkeypatch):
    """A wrong streamed attention (scores unscaled) breaks the one-slot compiled decode: that path runs."""
    adapter, prompts, expected = family
    monkeypatch.setattr(ls, "_attend_streamed", _unscaled_streamed)
    torch._dynamo.reset()  # (compiled code of earlier tests holds the right one)
    try:
        lean = ls.LeanStep(*adapter.decode_modules(), adapter.decoder_layers(), compiled=True)
        got = lean_logits(adapter, prompts, lean, slots=1)
    finally:
        torch._dynamo.reset()
    assert max(max_diff(got[i][:len(expected[i])], expected[i]) for i in got) > 1e-3


def _closed_body(h, cos, sin, rows, fill, opened, *rest, **kwargs):
    """The compiled body, except that the new token's slot stays masked (it never sees itself)."""
    return ls._layer_body(h, cos, sin, rows, fill, torch.full_like(opened, torch.finfo(opened.dtype).min), *rest, **kwargs)


@pytest.mark.parametrize("slots", [1, 3])
def test_a_wrong_compiled_body_would_fail(family, slots):
    adapter, prompts, expected = family
    lean = ls.LeanStep(*adapter.decode_modules(), adapter.decoder_layers(), compiled=True)
    lean.layer_body = torch.compile(_closed_body, fullgraph=True)
    got = lean_logits(adapter, prompts, lean, slots=slots)
    assert max(max_diff(got[i][:len(expected[i])], expected[i]) for i in got) > 1e-3


class _MRopeTemporalOnly(ls.LeanStep):
    """M-RoPE with the position on the temporal axis alone (height and width left at 0)."""

    def rotary(self, h, positions):
        axes = torch.zeros(3, positions.shape[0], 1, dtype=positions.dtype, device=positions.device)
        axes[0, :, 0] = positions
        cos, sin = self.text_model.rotary_emb(h[:, None], axes)
        section = self.text_model.config.rope_parameters["mrope_section"] * 2
        cos = torch.cat([m[i % 3] for i, m in enumerate(cos.split(section, dim=-1))], dim=-1)
        sin = torch.cat([m[i % 3] for i, m in enumerate(sin.split(section, dim=-1))], dim=-1)
        return cos[:, None].to(h.dtype), sin[:, None].to(h.dtype)


@pytest.mark.parametrize("family", ["tiny-random-qwen2.5-omni"], indirect=True)
def test_m_rope_with_axes_apart_would_fail(family):
    adapter, prompts, expected = family
    assert ls.is_mrope(adapter.decode_modules()[0])
    got = lean_logits(adapter, prompts, _MRopeTemporalOnly(*adapter.decode_modules(), adapter.decoder_layers()))
    assert max(max_diff(got[i][:len(expected[i])], expected[i]) for i in got) > 1e-3


def test_the_streamed_product_is_the_product():
    torch.manual_seed(0)
    weight, bias, x = torch.randn(96, 64), torch.randn(96), torch.randn(1, 64)
    assert max_diff(ls._product(x, weight, bias, True), x @ weight.T + bias) < 1e-5
    assert max_diff(ls._product(x, weight, None, True), x @ weight.T) < 1e-5
    assert max_diff(ls._product(x, weight.T.contiguous().T, None, True), x @ weight.T) < 1e-5


class _RotaryOneAhead(ls.LeanStep):
    def __call__(self, ids, positions, kv):
        return super().__call__(ids, positions + 1, kv)


class _RotatedTheOtherWay(ls.LeanStep):
    @staticmethod
    def _rotate(x, cos, sin):
        half = x.shape[-1] // 2
        return x * cos + torch.cat((x[..., half:], -x[..., :half]), dim=-1) * sin


@pytest.mark.parametrize("wrong", [_RotaryOneAhead, _RotatedTheOtherWay])
def test_a_wrong_step_would_fail(qwen2, wrong):
    adapter, prompts, expected = qwen2
    got = lean_logits(adapter, prompts, wrong(*adapter.decode_modules(), adapter.decoder_layers()))
    assert max(max_diff(got[i][:len(expected[i])], expected[i]) for i in got) > 1e-3


def test_int8_products_equal_the_dequantised_weights():
    torch.manual_seed(0)
    weight, bias = torch.randn(96, 64, dtype=torch.bfloat16), torch.randn(96, dtype=torch.bfloat16)
    product = ls.Product.of([weight], [bias], "int8")
    assert product.weight.dtype == torch.int8 and product.scales.shape == (96,)
    dequantised = product.weight.float() * product.scales.float()[:, None]
    # a weight moves by at most half a step of its row's scale
    assert float((dequantised - weight.float()).abs().max()) <= float(product.scales.float().max()) / 2 + 1e-3
    x = torch.randn(3, 64, dtype=torch.bfloat16)
    expected = x.float() @ dequantised.T + bias.float()
    assert max_diff(product(x), expected) < 0.05 * float(expected.abs().max())


def test_which_decoders_it_covers():
    adapter = load_model("tiny-random-qwen2-audio")
    assert ls.supports(adapter.decode_modules()[0], adapter.decoder_layers()) is None
    omni = load_model("tiny-random-qwen2.5-omni")
    assert ls.supports(omni.decode_modules()[0], omni.decoder_layers()) is None and ls.is_mrope(omni.decode_modules()[0])
    gemma = load_model("tiny-random-gemma3n")  # query/key norms (and more): the module path
    assert ls.supports(gemma.language_model().model, gemma.decoder_layers()) == "layer 0: query/key norms"
    with pytest.raises(NotImplementedError, match="query/key norms"):
        ls.LeanStep(gemma.language_model().model, gemma.language_model().lm_head, gemma.decoder_layers())
    with pytest.raises(ValueError, match="weights must be one of"):
        ls.LeanStep(*adapter.decode_modules(), adapter.decoder_layers(), weights="fp8")
    with pytest.raises(ValueError, match="compiled step takes the model's own weights"):
        ls.LeanStep(*adapter.decode_modules(), adapter.decoder_layers(), weights="int8", compiled=True)
    adapter.lean_decode = "fp8"
    with pytest.raises(ValueError, match="lean_decode must be None, .auto. or one of"):
        adapter.lean_step()
    adapter.lean_decode = "compiled"
    assert adapter.lean_step().compiled and adapter.batched_fast_paths() == ["batched_decode", "lean_step_compiled"]


def test_by_default_a_cpu_decodes_through_the_lean_step_and_cuda_through_the_modules(monkeypatch):
    adapter = load_model("tiny-random-qwen2-audio")
    assert adapter.lean_decode == "auto"
    assert adapter.lean_step().weights == "model" and not adapter.lean_step().compiled
    assert adapter.batched_fast_paths() == ["batched_decode", "lean_step"]
    monkeypatch.setattr(type(adapter), "device", property(lambda self: torch.device("cuda")))
    assert adapter.lean_step() is None and adapter.batched_fast_paths() == ["batched_decode"]
    adapter.lean_decode = "compiled"  # asked for: the fused step on CUDA
    assert adapter.lean_step().compiled
    adapter.lean_decode = "int8"  # a CPU kernel
    assert adapter.lean_step() is None


def test_rows_name_the_lean_step_when_it_decoded_them(tmp_path):
    from amlib.data.manifest import read_manifest, write_manifest
    from amlib.runner import RunConfig, evaluate

    from conftest import make_item

    adapter = load_model("tiny-random-qwen2-audio")
    adapter.lean_decode = "model"
    data = tmp_path / "data"
    write_manifest(data / "manifest.jsonl", [make_item(data, f"s{i}", "SGR", 1.0 + i) for i in range(3)])
    samples = read_manifest(data)
    batched = evaluate(adapter, samples, tmp_path / "b.jsonl", RunConfig(), progress=False, batch_size=3)
    assert {tuple(r["provenance"]["fast_paths"]) for r in batched} == {("batched_decode", "lean_step")}
    one = evaluate(adapter, samples, tmp_path / "one.jsonl", RunConfig(), progress=False, batch_size=1)
    assert "lean_step" not in one[0]["provenance"].get("fast_paths", [])
    assert [r["prediction"] for r in batched] == [r["prediction"] for r in one]


def test_the_command_line_chooses_the_decode_step(tmp_path):
    from amlib import cli
    from amlib.data.manifest import write_manifest
    from amlib.runner import read_predictions

    from conftest import make_item

    data = tmp_path / "data"
    write_manifest(data / "manifest.jsonl", [make_item(data, f"s{i}", "SGR", 1.0 + i) for i in range(2)])
    paths = {}
    for step in ("modules", "compiled"):
        out = tmp_path / step
        cli.main(["eval", "--model", "tiny-random-qwen2-audio", "--data", str(data), "--out", str(out),
                  "--batch-size", "2", "--decode-step", step])
        rows = read_predictions(next(out.glob("*.jsonl")))
        paths[step] = {tuple(r["provenance"]["fast_paths"]) for r in rows}
    assert paths == {"modules": {("batched_decode",)}, "compiled": {("batched_decode", "lean_step_compiled")}}
    with pytest.raises(SystemExit):  # argparse refuses an unknown step
        cli.main(["eval", "--model", "m", "--data", str(data), "--out", str(tmp_path), "--decode-step", "fast"])
