import numpy as np
import pytest

from amlib.data.audio import SAMPLE_RATE
from amlib.models.qwen2_audio import split_windows, token_runs, tokens_for_samples
from amlib.tasks import TASKS


def noise(seconds: float) -> np.ndarray:
    return (0.05 * np.random.default_rng(0).standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def test_one_full_window_is_750_tokens():
    assert tokens_for_samples(30 * SAMPLE_RATE) == 750  # 25 tokens per second


@pytest.mark.parametrize("seconds, windows", [(90.0, 3), (95.3, 4), (300.0, 10), (12.0, 1)])
def test_long_audio_is_windowed_not_truncated(tiny_adapter, seconds, windows):
    prepared = tiny_adapter.build_inputs(noise(seconds), TASKS["SGR"], "q", ["male", "female"])
    assert prepared.n_windows == windows == len(prepared.audio_spans)
    assert prepared.audio_tokens == tiny_adapter.expected_audio_tokens(seconds)
    assert abs(prepared.audio_tokens - 25 * seconds) <= 2 * windows
    # every window's samples are fed: their lengths add up to the whole audio
    assert sum(len(w) for w in split_windows(noise(seconds))) == int(seconds * SAMPLE_RATE)


def test_spans_cover_exactly_the_audio_placeholders(tiny_adapter):
    prepared = tiny_adapter.build_inputs(noise(65.0), TASKS["MC"], "", ["a", "b", "c", "d"])
    ids = prepared.tensors["input_ids"][0]
    audio_id = tiny_adapter.processor.audio_token_id
    covered = np.zeros(len(ids), bool)
    for start, end in prepared.audio_spans:
        covered[start:end] = True
    assert (covered == (ids == audio_id).numpy()).all()
    bos = tiny_adapter.processor.tokenizer.convert_tokens_to_ids("<|audio_bos|>")
    assert all(ids[start - 1] == bos for start, _ in prepared.audio_spans)


def test_prompt_holds_the_task_text(tiny_adapter):
    prepared = tiny_adapter.build_inputs(noise(3.0), TASKS["SGR"], "q", ["male", "female"])
    text = tiny_adapter.processor.tokenizer.decode(prepared.tensors["input_ids"][0])
    assert TASKS["SGR"].system_prompt in text and "answer 'a'" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_generation_is_greedy_and_deterministic(tiny_adapter):
    prepared = tiny_adapter.build_inputs(noise(31.0), TASKS["SGR"], "q", ["male", "female"])
    first, second = tiny_adapter.generate(prepared, 4), tiny_adapter.generate(prepared, 4)
    assert first.text == second.text and 1 <= first.new_tokens <= 4
    assert first.timing.prefill_s > 0


def test_token_runs():
    import torch

    assert token_runs(torch.tensor([5, 7, 7, 5, 7]), 7) == [(1, 3), (4, 5)]
    assert token_runs(torch.tensor([5, 5]), 7) == []


def test_decoder_layers_and_language_model(tiny_adapter):
    layers = tiny_adapter.decoder_layers()
    assert len(layers) == tiny_adapter.model.config.text_config.num_hidden_layers
    assert tiny_adapter.language_model().model.layers is layers
