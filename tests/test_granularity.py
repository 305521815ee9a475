import pytest

from amlib.models.granularity import beside_paper_table11, encoding_table, published_config


@pytest.fixture(scope="module")
def table():
    return encoding_table().set_index("checkpoint")


def test_rates_come_out_of_the_published_front_ends(table):
    assert table.loc["Qwen/Qwen2-Audio-7B-Instruct", "tokens_per_second"] == pytest.approx(25.0)
    assert table.loc["Qwen/Qwen2-Audio-7B-Instruct", "max_audio_seconds"] == pytest.approx(30.0)
    assert table.loc["Qwen/Qwen2-Audio-7B-Instruct", "max_audio_tokens"] == 750
    assert table.loc["Qwen/Qwen2.5-Omni-3B", "tokens_per_second"] == pytest.approx(25.0)
    assert table.loc["microsoft/Phi-4-multimodal-instruct", "tokens_per_second"] == pytest.approx(12.5)
    assert table.loc["mistralai/Voxtral-Mini-3B-2507", "tokens_per_second"] == pytest.approx(12.5)


def test_side_by_side_keeps_every_paper_row(table):
    merged = beside_paper_table11(table.reset_index())
    assert {"Qwen3-Omni", "Step-Audio 2", "Qwen2-Audio-Instruct"} <= set(merged["paper_row"].dropna())
    row = merged[merged["paper_row"] == "Qwen2-Audio-Instruct"].iloc[0]
    assert row["tokens_per_second"] == row["paper_tokens_per_second"]


def test_published_config_is_full_size():
    config = published_config("qwen2-audio-7b-instruct.json")
    assert config.text_config.num_hidden_layers == 32 and config.audio_config.num_mel_bins == 128
