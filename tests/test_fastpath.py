"""Fast paths compute what transformers computes: the chunked audio encoder and the static-KV greedy
decoder against HF's own paths on tiny random thinkers (float32, CPU); the decoder step by step on
logits, on sharpened attention, with two wrong variants shown failing. The CUDA graph capture itself
needs a GPU: scripts/check_gpu_decode.py compares graph replay, the eager static path and HF there."""

from contextlib import nullcontext

import numpy as np
import pytest
import torch

from amlib.fastpath.chunked_encoder import IMPLEMENTATION, ChunkedEncoderAttention, equal_length_runs
from amlib.fastpath.graph_decode import GraphDecoder, supports
from amlib.models import load_model
from amlib.models.cache import preallocated_cache
from amlib.pruning import make_method
from amlib.pruning.mechanism import TokenPruner
from amlib.tasks import TASKS

from oracles import (generate_logits, max_diff, prepare, sharpen, static_decoder_logits, with_image_block,
                     wrong_decoders)


@pytest.fixture(scope="module")
def omni():
    adapter = load_model("tiny-random-qwen2.5-omni")
    audio = (0.1 * np.random.default_rng(0).standard_normal(16_000 * 6)).astype(np.float32)
    return adapter, adapter.build_inputs(audio, TASKS["ASR"], "", [])


def test_equal_length_runs_groups_consecutive_chunks():
    cu = torch.tensor([0, 100, 200, 300, 350, 450, 550, 560], dtype=torch.int32)
    assert equal_length_runs(cu) == [(0, 3, 100), (300, 1, 50), (350, 2, 100), (550, 1, 10)]


def _encode(encoder, lengths):
    torch.manual_seed(1)
    feats = torch.randn(encoder.config.num_mel_bins, sum(lengths))
    lens = torch.tensor(lengths)
    with torch.no_grad():
        return encoder(feats, feature_lens=lens, aftercnn_lens=(lens - 1) // 2 + 1).last_hidden_state


@pytest.mark.parametrize("lengths", [[30_000], [199], [401, 3_001, 777]])
def test_chunked_encoder_equals_transformers(omni, lengths):
    """Whole 2 s chunks, a tail chunk, one chunk, and several audio items (windows) in one call."""
    adapter, _ = omni
    encoder = adapter.model.audio_tower
    adapter.set_fast_encoder(False)
    try:
        assert encoder.config._attn_implementation == "sdpa"
        reference = _encode(encoder, lengths)
    finally:
        adapter.set_fast_encoder(True)
    assert encoder.config._attn_implementation == IMPLEMENTATION
    fast = _encode(encoder, lengths)
    assert fast.shape == reference.shape
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-6)


def test_chunked_encoder_is_installed_by_the_adapter_and_removable(omni):
    adapter, _ = omni
    assert "chunked_encoder" in adapter.provenance()["fast_paths"]
    other = ChunkedEncoderAttention(adapter.model)
    assert len(other.encoders) == 1
    adapter.set_fast_encoder(False)
    encoder = adapter.model.audio_tower
    assert "_prepare_attention_mask" not in encoder.__dict__ and encoder.config._attn_implementation == "sdpa"
    assert "chunked_encoder" not in adapter.fast_paths()
    adapter.set_fast_encoder(True)


def _hf_tokens(adapter, tensors, n):
    model = adapter.model
    out = model.generate(**tensors, max_new_tokens=n, do_sample=False, pad_token_id=adapter.pad_token_id,
                         past_key_values=preallocated_cache(model.config, n))
    return out[0, tensors["input_ids"].shape[1]:].tolist()


def _graph_tokens(adapter, tensors, n, eos):
    model = adapter.model
    decoder = GraphDecoder(model, model.model, model.lm_head, model.model.layers)
    tokens, timing = decoder.generate(tensors, n, eos, preallocated_cache(model.config, n))
    assert timing.memory_kind == "process_max_rss"  # timed through amlib.efficiency, as HF's path
    return tokens


@pytest.mark.parametrize("method", [None, "frame", "fastv"])
def test_static_kv_decoding_equals_hf_generate(omni, method):
    """Vanilla, and pruned (layers >= K hold fewer tokens: per-layer write slots and masks)."""
    adapter, prepared = omni
    tensors = dict(prepared.tensors)
    eos = adapter.stop_token_ids()

    def both():
        return _hf_tokens(adapter, tensors, 16), _graph_tokens(adapter, tensors, 16, eos)

    if method is None:
        hf, fast = both()
    else:
        with TokenPruner(adapter, make_method(method), 0.6, 2) as pruner:
            pruner.set_audio_spans(prepared.audio_spans)
            hf, fast = both()
    assert len(hf) == 16 and fast == hf


def test_static_kv_decoding_stops_at_eos_like_hf(omni):
    adapter, prepared = omni
    tensors = dict(prepared.tensors)
    free = _hf_tokens(adapter, tensors, 12)
    config = adapter.model.generation_config
    saved = config.eos_token_id
    config.eos_token_id = [free[4]]  # make the 5th greedy token a stop token
    try:
        hf = _hf_tokens(adapter, tensors, 12)
        fast = _graph_tokens(adapter, tensors, 12, adapter.stop_token_ids())
    finally:
        config.eos_token_id = saved
    assert hf == free[:hf.index(free[4]) + 1] and fast == hf


def test_adapter_generate_through_the_fast_decoder(omni):
    adapter, prepared = omni
    adapter.fast_decode = True
    try:
        assert "graph_decode" in adapter.fast_paths()
        fast = adapter.generate(prepared, 16)
    finally:
        adapter.fast_decode = None
    assert adapter.graph_decoder() is None  # CPU default: HF's generate
    plain = adapter.generate(prepared, 16)
    assert (fast.text, fast.new_tokens) == (plain.text, plain.new_tokens)


def test_processors_that_change_greedy_choices_keep_hf_generate(omni):
    adapter, _ = omni
    config = adapter.model.generation_config
    assert supports(config) is None
    config.repetition_penalty = 1.1
    adapter.fast_decode = True
    try:
        assert "repetition_penalty" in supports(config)
        assert adapter.graph_decoder() is None
    finally:
        config.repetition_penalty = 1.0
        adapter.fast_decode = None


@pytest.mark.parametrize("length", [40, 768])
def test_gqa_decode_attention_equals_eager_attention(length):
    from transformers.models.qwen2.modeling_qwen2 import eager_attention_forward

    from amlib.fastpath.graph_decode import gqa_decode_attention

    torch.manual_seed(0)
    query, key, value = torch.randn(1, 8, 1, 16), torch.randn(1, 2, length, 16), torch.randn(1, 2, length, 16)
    mask = torch.zeros(1, 1, 1, length)
    mask[..., length - 10:] = torch.finfo(torch.float32).min
    module = torch.nn.Module()
    module.num_key_value_groups, module.training = 4, False
    expected, _ = eager_attention_forward(module, query, key, value, mask, scaling=0.25)
    got, _ = gqa_decode_attention(module, query, key, value, mask, scaling=0.25)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, gqa_decode_attention(module, query, key, value, None, scaling=0.25)[0])


def test_fast_paths_switch_off_and_on_through_the_runner_loader():
    from amlib.distributed import SINGLE
    from amlib.runner import load_for

    adapter = load_for("tiny-random-qwen2.5-omni", "cpu", SINGLE, fast_paths=False)
    assert adapter.fast_paths() == [] and "fast_paths" not in adapter.provenance()
    assert adapter.model.audio_tower.config._attn_implementation == "sdpa"
    adapter.set_fast_paths(True)
    assert adapter.fast_paths() == ["chunked_encoder"]  # CUDA-graph decoding: on CUDA only


# -- per-step logits on sharpened attention, against HF generate (the wrong variants must fail) ------

LOGITS_TOL = 1e-5  # float32: the decoder agrees with HF to ~3e-7; each wrong variant misses by > 1.5e-3


class _RopeDeltaIgnored(GraphDecoder):
    """Wrong on purpose: decoding continues at the prompt length (right only where the delta is 0)."""

    def _rope_delta(self) -> int:
        return 0


def _sharp_family(name: str, image: bool):
    adapter = load_model(name)
    sharpen(adapter)
    prepared = prepare(adapter, seconds=2.0)
    return adapter, with_image_block(adapter, prepared) if image else prepared


@pytest.fixture(scope="module", params=["tiny-random-qwen2.5-omni", "tiny-random-qwen2-audio"])
def sharp(request):
    """Only Qwen2.5-Omni's adapter decodes through GraphDecoder; Qwen2-Audio's Qwen2 LM shows the
    decoder is not Omni-specific (1-D RoPE, another decoder class). The Omni prompt carries an image,
    so its M-RoPE delta is nonzero (-2, see `with_image_block`)."""
    return _sharp_family(request.param, image=request.param == "tiny-random-qwen2.5-omni")


@pytest.mark.parametrize("method", [None, "frame"])
def test_decoder_logits_equal_hf_generate_per_step(sharp, method):
    """Every step's logits equal HF's, vanilla and pruned at layer K (per-layer slots and masks);
    a position off by one and a mask slot opened one step early both miss by far more."""
    adapter, prepared = sharp
    pruner = TokenPruner(adapter, make_method(method), 0.6, 2) if method else nullcontext()
    with pruner:
        if method:
            pruner.set_audio_spans(prepared.audio_spans)
        _, expected = generate_logits(adapter, prepared)
        wrong_classes = wrong_decoders()
        if "image_grid_thw" in prepared.tensors:
            assert adapter.model.rope_deltas.flatten().tolist() == [-2]  # M-RoPE: positions != 1-D
            wrong_classes["rope_delta_ignored"] = _RopeDeltaIgnored
        got = static_decoder_logits(adapter, prepared)
        wrong = {name: static_decoder_logits(adapter, prepared, decoder_class=cls)
                 for name, cls in wrong_classes.items()}
    assert got.shape == expected.shape
    assert max_diff(got, expected) < LOGITS_TOL
    for name, logits in wrong.items():
        assert max_diff(logits[0], expected[0]) < LOGITS_TOL  # the prefill is not the decoder's: same
        assert max_diff(logits, expected) > 30 * LOGITS_TOL, name
