import numpy as np
import pytest
import torch

from amlib.data import load_audio
from amlib.data.audio import SAMPLE_RATE
from amlib.models.qwen2_5_omni import (
    PUBLISHED_CONFIGS, SPECIAL_TOKENS, TINY_QWEN25_OMNI, Qwen25OmniAdapter, load_thinker, mel_frames,
    tiny_processor, tiny_qwen25_omni, tiny_thinker_config, tokens_for_frames,
)
from amlib.models.common import real_config_dict
from amlib.runner import evaluate
from amlib.tasks import TASKS


def noise_samples(n: int) -> np.ndarray:
    return (0.05 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)


def noise(seconds: float) -> np.ndarray:
    return noise_samples(int(seconds * SAMPLE_RATE))


def silence(seconds: float) -> np.ndarray:
    """A zero-copy all-zero signal of any length (for the guards, which reject it before any work)."""
    return np.broadcast_to(np.zeros(1, np.float32), (int(seconds * SAMPLE_RATE),))


@pytest.fixture(scope="module")
def omni():
    model, processor = tiny_qwen25_omni(seed=0)
    return Qwen25OmniAdapter(model, processor, model_id=TINY_QWEN25_OMNI, revision="random-seed0")


@pytest.fixture(scope="module")
def embedded_rows(omni, embedded_items, tmp_path_factory):
    """One runner row per embedded item (separate files: both items carry the same id)."""
    out = tmp_path_factory.mktemp("omni")
    return {name: evaluate(omni, [sample], out / f"{name}.jsonl", progress=False)
            for name, sample in embedded_items.items()}


@pytest.mark.parametrize("filename", sorted(PUBLISHED_CONFIGS.values()))
def test_published_configs_give_25_tokens_per_second_and_a_32k_context(filename):
    from transformers import Qwen2_5OmniThinkerConfig

    config = Qwen2_5OmniThinkerConfig(**real_config_dict(filename))
    text = config.text_config
    assert config.audio_config.output_dim == text.hidden_size  # the projector feeds the LM
    assert sum(text.rope_parameters["mrope_section"]) * 2 == text.hidden_size // text.num_attention_heads
    granularity = Qwen25OmniAdapter.encoding_granularity(config)
    assert granularity["tokens_per_second"] == 25.0
    assert granularity["max_audio_tokens"] == text.max_position_embeddings == 32768
    assert granularity["max_audio_seconds"] == pytest.approx(1310.72)  # the paper's Table 11: 21 minutes
    assert granularity["processor_window_seconds"] == 300.0 and granularity["processor_window_tokens"] == 7500


def test_frame_count_matches_the_real_feature_extractor(omni):
    features = omni.processor.feature_extractor
    lengths = [159, 160, 161, 7 * SAMPLE_RATE + 3]
    # padded to a fixed length as the processor pads (to 300 s there, to 8 s here to stay fast)
    masks = features([noise_samples(n) for n in lengths], sampling_rate=SAMPLE_RATE, padding="max_length",
                     max_length=8 * SAMPLE_RATE, return_attention_mask=True)["attention_mask"]
    assert masks.sum(-1).tolist() == [mel_frames(n, features.hop_length) for n in lengths]


@pytest.mark.parametrize("item", ["short", "long"])
def test_embedded_items_give_25_tokens_per_second_in_exact_spans(omni, embedded_items, item):
    sample = embedded_items[item]
    audio = load_audio(sample.audio_path)
    seconds = len(audio) / SAMPLE_RATE
    prepared = omni.build_inputs(audio, TASKS[sample.task], sample.question, sample.choices)
    assert prepared.n_windows == 1  # AudioMarathon items are at most the processor's 300 s
    assert prepared.audio_tokens == omni.expected_audio_tokens(seconds)
    assert abs(prepared.audio_tokens - 25 * seconds) <= 1
    ids = prepared.tensors["input_ids"][0]
    tok = omni.processor.tokenizer
    covered = np.zeros(len(ids), bool)
    for start, end in prepared.audio_spans:
        covered[start:end] = True
        assert ids[start - 1] == tok.convert_tokens_to_ids(SPECIAL_TOKENS["audio_bos_token"])
        assert ids[end] == tok.convert_tokens_to_ids(SPECIAL_TOKENS["audio_eos_token"])
    assert (covered == (ids == omni.model.config.audio_token_id).numpy()).all()


def test_runner_records_both_embedded_items(embedded_rows, embedded_items, omni):
    for name, sample in embedded_items.items():
        [row] = embedded_rows[name]
        assert row["id"] == sample.id and row["error"] is None and isinstance(row["prediction"], str)
        assert row["audio_windows"] == 1
        seconds = len(load_audio(sample.audio_path)) / SAMPLE_RATE
        assert row["audio_tokens"] == omni.expected_audio_tokens(seconds)
        assert row["provenance"]["family"] == "qwen2.5-omni"


def test_prompt_is_the_chat_format_with_audio_before_the_task_text(omni):
    prepared = omni.build_inputs(noise(3.0), TASKS["SGR"], "q", ["male", "female"])
    text = omni.processor.tokenizer.decode(prepared.tensors["input_ids"][0])
    system, user = TASKS["SGR"].system_prompt, TASKS["SGR"].user_prompt("q", ["male", "female"])
    assert text.startswith(f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n<|audio_bos|>")
    assert text.endswith(f"<|audio_eos|>{user}<|im_end|>\n<|im_start|>assistant\n")


def test_audio_only_generation_is_greedy_deterministic_with_1d_positions(omni):
    prepared = omni.build_inputs(noise(12.0), TASKS["SGR"], "q", ["male", "female"])
    first, second = omni.generate(prepared, 4), omni.generate(prepared, 4)
    assert first.text == second.text and 1 <= first.new_tokens <= 4
    # with audio only, M-RoPE gives every token one position on all three axes: no offset
    assert omni.model.rope_deltas.abs().sum().item() == 0


def test_audio_beyond_the_processor_window_is_split_not_cut(omni):
    seconds = 610.0
    prepared = omni.build_inputs(noise(seconds), TASKS["SGR"], "q", ["male", "female"])
    assert prepared.n_windows == 3 == len(prepared.audio_spans)
    assert [end - start for start, end in prepared.audio_spans] == [7500, 7500, 250]
    assert prepared.audio_tokens == omni.expected_audio_tokens(seconds) == 25 * seconds
    assert prepared.tensors["feature_attention_mask"].sum().item() == seconds * 100  # every frame fed
    # a last window under 0.5 s is zero-padded to 0.5 s rather than dropped
    assert omni.expected_audio_tokens(300.01) == 7500 + tokens_for_frames(mel_frames(int(0.5 * SAMPLE_RATE), 160))


def test_too_long_audio_is_refused_before_any_work(omni):
    with pytest.raises(ValueError, match="exceeds the supported maximum"):
        omni.build_inputs(silence(omni.max_audio_seconds + 1), TASKS["SGR"], "q", ["male", "female"])
    # fits the positions alone, but not with the ASR answer budget of 1,100 tokens
    with pytest.raises(ValueError, match="context of 32768"):
        omni.build_inputs(silence(1300.0), TASKS["ASR"], "", [])


def test_language_model_is_the_thinker_where_kvpress_finds_the_layers(omni):
    lm = omni.language_model()
    assert lm is omni.model
    inner = lm.model  # kvpress: model.model.language_model.layers if present, else model.model.layers
    layers = inner.language_model.layers if hasattr(inner, "language_model") else inner.layers
    assert layers is omni.decoder_layers() and len(layers) == lm.config.text_config.num_hidden_layers
    assert hasattr(inner, "rotary_emb") and all(hasattr(layer, "self_attn") for layer in layers)


def test_a_full_omni_checkpoint_loads_only_the_thinker(tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import Qwen2_5OmniConfig, Qwen2_5OmniForConditionalGeneration

    config = tiny_thinker_config(tiny_processor().tokenizer)
    full_config = Qwen2_5OmniConfig(thinker_config=config.to_dict(), enable_audio_output=False)
    full = Qwen2_5OmniForConditionalGeneration(full_config)
    full.save_pretrained(tmp_path)
    weights_file = tmp_path / "model.safetensors"
    weights = load_file(weights_file)
    assert all(key.startswith("thinker.") for key in weights)
    weights["talker.model.embed_tokens.weight"] = torch.zeros(4, 4)  # as a full release also ships a talker
    save_file(weights, weights_file, metadata={"format": "pt"})

    thinker = load_thinker(str(tmp_path))
    expected = full.thinker.state_dict()
    assert thinker.state_dict().keys() == expected.keys()
    assert all(torch.equal(value, expected[key]) for key, value in thinker.state_dict().items())
    placed = load_thinker(str(tmp_path), device_map={"": "cpu"})  # --device-map reaches from_pretrained
    assert all(torch.equal(value, expected[key]) for key, value in placed.state_dict().items())

    del weights["thinker.model.layers.0.mlp.up_proj.weight"]
    save_file(weights, weights_file, metadata={"format": "pt"})
    with pytest.raises(RuntimeError, match="missing from the checkpoint"):
        load_thinker(str(tmp_path))


def test_random_3b_has_the_published_sizes_and_the_processors_ids():
    """Built on the meta device: the published sizes without allocating 12 GB."""
    from amlib.models.common import real_config_dict
    from amlib.models.qwen2_5_omni import PAPER_CONFIG, random_qwen25_omni_3b

    model, processor = random_qwen25_omni_3b(device="meta")
    published = real_config_dict(PAPER_CONFIG)
    text = model.config.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.vocab_size) == tuple(
        published["text_config"][k] for k in ("hidden_size", "num_hidden_layers", "vocab_size"))
    assert model.config.audio_config.d_model == published["audio_config"]["d_model"]
    assert model.config.audio_token_id == processor.tokenizer.convert_tokens_to_ids(processor.audio_token)
    assert sum(p.numel() for p in model.model.parameters()) > 3e9  # the language model alone
