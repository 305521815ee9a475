"""The lean decode step (amlib.fastpath.lean_step): transformers' decoder arithmetic without its modules.

Oracle: each row's own batch-1 decode (HF generate, the pruning hooks, the eviction loop), as in
tests/test_batched_decode.py, in float32 with sharpened attention and rows of different lengths and
configurations in fewer slots than rows. Wrong variants (rotary at the wrong position, or turning
the wrong way) fail. The int8 weight format changes numerics: its product is checked against
the dequantised weights, and its effect on answers is measured by the benchmark, not asserted here.
"""

from __future__ import annotations

import pytest
import torch

from amlib.fastpath import batched_decode as bd
from amlib.fastpath import lean_step as ls
from amlib.models import load_model

from oracles import max_diff, prepare
from test_batched_decode import ROWS, TOL, batch_one_logits, prefilled, sharp_family


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


def test_lean_step_decodes_every_row_as_it_would_alone(qwen2):
    adapter, prompts, expected = qwen2
    lean = ls.LeanStep(*adapter.decode_modules(), adapter.decoder_layers())
    for i, logits in lean_logits(adapter, prompts, lean).items():
        n = len(expected[i])
        assert max_diff(logits[:n], expected[i]) < TOL, (i, ROWS[i])


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
    assert ls.supports(omni.decode_modules()[0], omni.decoder_layers()) == "M-RoPE (positions per axis)"
    with pytest.raises(NotImplementedError, match="M-RoPE"):
        ls.LeanStep(*omni.decode_modules(), omni.decoder_layers())
    omni.lean_decode = "model"
    assert omni.lean_step() is None  # the module path runs there
    with pytest.raises(ValueError, match="weights must be one of"):
        ls.LeanStep(*adapter.decode_modules(), adapter.decoder_layers(), weights="fp8")


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
