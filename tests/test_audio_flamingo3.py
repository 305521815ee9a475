import copy
import math

import numpy as np
import pytest

from amlib.data.audio import SAMPLE_RATE
from amlib.tasks import TASKS
from conftest import check_greedy_rerun, check_runner_rows, evaluate_embedded, kvpress_layers, noise


def real_config():
    from transformers import AudioFlamingo3Config

    from amlib.models.audio_flamingo3 import REAL_CONFIG
    from amlib.models.common import real_config_dict

    return AudioFlamingo3Config(**real_config_dict(REAL_CONFIG))


@pytest.fixture(scope="module")
def adapter():
    from amlib.models import load_model

    return load_model("tiny-random-audio-flamingo-3", seed=0)


@pytest.fixture(scope="module")
def evaluated(adapter, embedded_items, tmp_path_factory):
    """One runner pass over the ~90 s and ~300 s embedded items: name -> (audio seconds, row, the
    PreparedInputs the adapter built for it)."""
    return evaluate_embedded(adapter, embedded_items, tmp_path_factory.mktemp("audio_flamingo3") / "pred.jsonl")


def test_real_config_gives_25_tokens_per_second_up_to_10_minutes():
    from amlib.models.audio_flamingo3 import AudioFlamingo3Adapter

    granularity = AudioFlamingo3Adapter.encoding_granularity(real_config())
    assert granularity["tokens_per_second"] == 25.0
    assert (granularity["window_seconds"], granularity["window_tokens"]) == (30.0, 750)
    assert granularity["max_audio_seconds"] == 600.0  # the paper: long audio up to 10 minutes
    assert granularity["max_audio_tokens"] == 20 * 750 < granularity["context_tokens"]


def test_tiny_instance_keeps_the_real_front_end(adapter):
    from amlib.models.audio_flamingo3 import AudioFlamingo3Adapter

    real, tiny = real_config(), adapter.model.config
    for key in ("num_mel_bins", "max_source_positions"):
        assert getattr(tiny.audio_config, key) == getattr(real.audio_config, key)
    assert AudioFlamingo3Adapter.encoding_granularity(tiny) == AudioFlamingo3Adapter.encoding_granularity(real)
    assert tiny.text_config.hidden_size < real.text_config.hidden_size


@pytest.mark.parametrize("name", ["short", "long"])
def test_audio_tokens_follow_the_duration(adapter, evaluated, name):
    seconds, _, inputs = evaluated[name]
    assert inputs.audio_tokens == adapter.expected_audio_tokens(seconds)
    assert inputs.n_windows == math.ceil(seconds / 30)
    assert abs(inputs.audio_tokens - 25 * seconds) <= 2 * inputs.n_windows  # rounding per window


def test_spans_cover_exactly_the_audio_placeholders(adapter, evaluated):
    for _, _, inputs in evaluated.values():
        ids = inputs.tensors["input_ids"][0]
        covered = np.zeros(len(ids), bool)
        for start, end in inputs.audio_spans:
            covered[start:end] = True
        assert (covered == (ids == adapter.audio_token_id).numpy()).all()
        assert len(inputs.audio_spans) == 1  # all windows of one audio form one run


def test_prompt_is_chatml_with_the_task_text(adapter, evaluated):
    _, _, inputs = evaluated["short"]
    text = adapter.processor.tokenizer.decode(inputs.tensors["input_ids"][0])
    assert text.startswith(f"<|im_start|>system\n{TASKS['SGR'].system_prompt}<|im_end|>\n<|im_start|>user\n<sound>")
    assert "answer 'a'" in text and text.endswith("<|im_start|>assistant\n")


def test_runner_rows_carry_text_and_the_audio_layout(evaluated):
    check_runner_rows(evaluated)


def test_generation_is_greedy_and_deterministic(adapter, evaluated):
    check_greedy_rerun(adapter, evaluated)


def test_audio_beyond_the_processor_limit_is_refused_not_cut(adapter):
    # the processor alone keeps the first max_audio_len seconds and drops the rest with a warning
    limited = copy.copy(adapter.processor)
    limited.max_audio_len = 60
    cut = limited(text="<sound>", audio=noise(61.0), return_tensors="pt")
    assert cut["input_features"].shape[0] == 2  # 61 s became two 30 s windows
    from amlib.models.audio_flamingo3 import AudioFlamingo3Adapter

    guarded = AudioFlamingo3Adapter(adapter.model, limited, model_id=adapter.model_id)
    with pytest.raises(ValueError, match="exceeds the supported maximum of 60 s"):
        guarded.build_inputs(noise(61.0), TASKS["SGR"], "q", ["male", "female"])
    too_long = np.zeros(int((adapter.max_audio_seconds + 1) * SAMPLE_RATE), np.float32)
    with pytest.raises(ValueError, match="exceeds the supported maximum of 600 s"):
        adapter.build_inputs(too_long, TASKS["SGR"], "q", ["male", "female"])


def test_audio_too_short_for_one_token_is_refused(adapter):
    with pytest.raises(ValueError, match="too short"):
        adapter.build_inputs(noise(0.01), TASKS["SGR"], "q", ["male", "female"])


def test_decoder_layers_are_what_kvpress_hooks(adapter):
    layers = adapter.decoder_layers()
    assert kvpress_layers(adapter.language_model()) is layers
    assert len(layers) == adapter.model.config.text_config.num_hidden_layers
