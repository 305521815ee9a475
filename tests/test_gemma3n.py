import dataclasses
import math

import numpy as np
import pytest
import torch

from amlib.data.audio import SAMPLE_RATE
from amlib.tasks import TASKS
from conftest import check_greedy_rerun, check_runner_rows, evaluate_embedded, kvpress_layers, noise


def real_config(variant: str):
    from transformers import Gemma3nConfig

    from amlib.models.gemma3n import REAL_CONFIGS
    from amlib.models.common import real_config_dict

    return Gemma3nConfig(**real_config_dict(REAL_CONFIGS[variant]))


@pytest.fixture(scope="module")
def adapter():
    from amlib.models import load_model

    return load_model("tiny-random-gemma3n", seed=0)


@pytest.fixture(scope="module")
def evaluated(adapter, embedded_items, tmp_path_factory):
    """One runner pass over the ~90 s and ~300 s embedded items: name -> (audio seconds, row, the
    PreparedInputs the adapter built for it)."""
    return evaluate_embedded(adapter, embedded_items, tmp_path_factory.mktemp("gemma3n") / "pred.jsonl")


@pytest.mark.parametrize("variant, layers, shared", [("e2b", 30, 10), ("e4b", 35, 15)])
def test_real_configs_give_188_tokens_per_30_s_clip(variant, layers, shared):
    from amlib.models.gemma3n import Gemma3nAdapter

    config = real_config(variant)
    assert (config.text_config.num_hidden_layers, config.text_config.num_kv_shared_layers) == (layers, shared)
    granularity = Gemma3nAdapter.encoding_granularity(config)
    # the real front end (mel frames -> SSCP strides -> reduction) fills exactly the 188 slots
    assert granularity["encoder_tokens_per_window"] == granularity["window_tokens"] == 188
    assert granularity["max_audio_seconds"] == granularity["window_seconds"] == 30.0
    assert granularity["tokens_per_second"] == pytest.approx(6.27, abs=0.01)
    assert granularity["adapter_max_audio_seconds"] == (32768 // 188) * 30.0


def test_tiny_instance_keeps_the_real_front_end(adapter):
    from amlib.models.gemma3n import Gemma3nAdapter

    real, tiny = real_config("e2b"), adapter.model.config
    for key in ("input_feat_size", "sscp_conv_stride_size", "conf_reduction_factor"):
        assert getattr(tiny.audio_config, key) == getattr(real.audio_config, key)
    assert Gemma3nAdapter.encoding_granularity(tiny) == Gemma3nAdapter.encoding_granularity(real)
    assert tiny.text_config.hidden_size < real.text_config.hidden_size


@pytest.mark.parametrize("name", ["short", "long"])
def test_each_30_s_window_is_one_block_of_188_tokens(adapter, evaluated, name):
    seconds, _, inputs = evaluated[name]
    windows = math.ceil(seconds / 30)
    assert inputs.n_windows == windows and len(inputs.audio_spans) == windows
    assert inputs.audio_tokens == adapter.expected_audio_tokens(seconds) == 188 * windows
    # 6.27 tokens/s over full windows; the last, partial window still costs a whole block
    assert 0 <= inputs.audio_tokens - 188 / 30 * seconds < 188


def test_every_sample_reaches_the_encoder(adapter, evaluated):
    """No cut: consecutive windows of at most 30 s hold all the samples, and the feature mask of
    each window marks every frame that starts inside its audio."""
    from amlib.models.gemma3n import mel_frames

    seconds, _, inputs = evaluated["long"]
    features = adapter.processor.feature_extractor
    window = int(adapter.window_seconds * SAMPLE_RATE)
    n_samples = round(seconds * SAMPLE_RATE)
    lengths = [min(window, n_samples - start) for start in range(0, n_samples, window)]
    valid = inputs.tensors["input_features_mask"].sum(dim=1).tolist()
    assert len(valid) == len(lengths) and lengths[-1] < window
    assert valid[:-1] == [mel_frames(features, window)] * (len(lengths) - 1)
    assert valid[-1] == math.ceil(lengths[-1] / features.hop_length)


def test_spans_cover_exactly_the_audio_placeholders(adapter, evaluated):
    tok = adapter.processor.tokenizer
    for _, _, inputs in evaluated.values():
        ids = inputs.tensors["input_ids"][0]
        covered = np.zeros(len(ids), bool)
        for start, end in inputs.audio_spans:
            covered[start:end] = True
        assert (covered == (ids == adapter.audio_token_id).numpy()).all()
        assert all(ids[start - 1] == tok.boa_token_id and ids[end] == tok.eoa_token_id
                   for start, end in inputs.audio_spans)


def test_prompt_puts_the_system_text_in_the_user_turn(adapter, evaluated):
    _, _, inputs = evaluated["short"]
    text = adapter.processor.tokenizer.decode(inputs.tensors["input_ids"][0])
    assert f"<start_of_turn>user\n{TASKS['SGR'].system_prompt}\n\n" in text
    assert "answer 'a'" in text and text.endswith("<start_of_turn>model\n")


def test_runner_rows_carry_text_and_the_audio_layout(evaluated):
    check_runner_rows(evaluated)


def test_generation_is_greedy_and_deterministic(adapter, evaluated):
    check_greedy_rerun(adapter, evaluated)


def test_audio_beyond_the_context_is_refused(adapter):
    too_long = np.zeros(int((adapter.max_audio_seconds + 1) * SAMPLE_RATE), np.float32)
    with pytest.raises(ValueError, match="exceeds the supported maximum of 5220 s"):
        adapter.build_inputs(too_long, TASKS["SGR"], "q", ["male", "female"])
    answer_fills_the_context = dataclasses.replace(TASKS["ASR"], max_new_tokens=adapter.context_tokens)
    with pytest.raises(ValueError, match="context of 32768 tokens"):
        adapter.build_inputs(noise(3.0), answer_fills_the_context, "", [])


def test_decoder_layers_are_what_kvpress_hooks(adapter):
    layers = adapter.decoder_layers()
    assert kvpress_layers(adapter.language_model()) is layers
    assert len(layers) == adapter.model.config.text_config.num_hidden_layers


def test_kv_shared_layers_have_no_cache_of_their_own(adapter):
    """What eviction must know: the cache holds only the layers that compute keys and values."""
    text_config = adapter.model.config.text_config
    first_shared = text_config.num_hidden_layers - text_config.num_kv_shared_layers
    assert adapter.kv_shared_layers() == list(range(first_shared, text_config.num_hidden_layers))
    ids = adapter.processor.tokenizer("a short text prompt", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        cache = adapter.model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
    assert len(cache.layers) == first_shared
