import numpy as np
import pytest
import torch

from amlib.data.audio import SAMPLE_RATE
from amlib.models.qwen2_audio import split_windows, token_runs, tokens_for_samples
from amlib.tasks import TASKS
from conftest import noise


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


def real_qwen2_audio_config(overrides: dict | None = None):
    from transformers import Qwen2AudioConfig

    from amlib.models.common import real_config_dict, scaled_down
    from amlib.models.qwen2_audio import REAL_CONFIG

    return Qwen2AudioConfig(**scaled_down(real_config_dict(REAL_CONFIG), overrides or {}))


def table11_row(model: str) -> dict:
    import csv
    from pathlib import Path

    import amlib.paper

    with (Path(amlib.paper.__file__).parent / "tables" / "table11_encoding_granularity.csv").open() as fh:
        return next(row for row in csv.DictReader(fh) if row["model"] == model)


def test_real_config_gives_the_papers_table11_row():
    from amlib.models.qwen2_audio import Qwen2AudioAdapter

    granularity = Qwen2AudioAdapter.encoding_granularity(real_qwen2_audio_config())
    row = table11_row("Qwen2-Audio-Instruct")
    assert granularity["max_audio_seconds"] == 60 * float(row["max_audio_minutes"])
    assert granularity["max_audio_tokens"] == int(row["max_audio_tokens"])
    assert granularity["tokens_per_second"] == float(row["tokens_per_second"]) == Qwen2AudioAdapter.tokens_per_second
    # beyond the native window this adapter windows (module docstring), bounded by the LM context
    assert granularity["adapter_windows_longer_audio"] and granularity["context_tokens"] == 8192


def test_tiny_from_the_real_config_keeps_the_real_front_end():
    from transformers import Qwen2AudioForConditionalGeneration, WhisperFeatureExtractor

    from amlib.models.qwen2_audio import Qwen2AudioAdapter

    tiny_config = real_qwen2_audio_config({
        "audio_config": {"d_model": 16, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 32},
        "text_config": {"vocab_size": 256, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                        "num_attention_heads": 4, "num_key_value_heads": 2},
    })
    torch.manual_seed(0)
    tower = Qwen2AudioForConditionalGeneration(tiny_config).eval().audio_tower
    assert tower.conv1.in_channels == 128 and tower.embed_positions.num_embeddings == 1500
    real = Qwen2AudioAdapter.encoding_granularity(real_qwen2_audio_config())
    assert Qwen2AudioAdapter.encoding_granularity(tiny_config) == real
    features = WhisperFeatureExtractor(feature_size=128)(noise(30.0), sampling_rate=SAMPLE_RATE, return_tensors="pt")
    with torch.no_grad():
        encoded = tower(features["input_features"]).last_hidden_state
    assert encoded.shape[1] == real["max_audio_tokens"]  # one full window through the real front end


def test_a_saved_checkpoint_loads_by_local_path_through_load_model(tiny_adapter, tmp_path):
    from amlib.models import load_model

    tiny_adapter.model.save_pretrained(tmp_path)
    tiny_adapter.processor.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path), local_files_only=True)
    assert type(loaded).__name__ == "Qwen2AudioAdapter" and loaded.revision == "local"
    prepared = loaded.build_inputs(noise(31.0), TASKS["SGR"], "q", ["male", "female"])
    reference = tiny_adapter.build_inputs(noise(31.0), TASKS["SGR"], "q", ["male", "female"])
    assert loaded.generate(prepared, 4).text == tiny_adapter.generate(reference, 4).text
