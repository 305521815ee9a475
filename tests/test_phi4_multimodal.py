"""The tiny instance has no LoRA of its own: most tests exercise the base path. The speech-LoRA path
is exercised with a random LoRA made here with PEFT and saved as the release lays it out."""

import json

import numpy as np
import pytest
import torch

from amlib.data import load_audio
from amlib.data.audio import SAMPLE_RATE
from amlib.models.phi4_multimodal import (
    PUBLISHED_CONFIG, SPEECH_ADAPTER, SPEECH_LORA_SUBFOLDER, TINY_PHI4_MULTIMODAL, Phi4MultimodalAdapter,
    audio_tokens_for_samples, check_native_format, load_phi4_multimodal, tiny_phi4_multimodal,
)
from amlib.models.common import real_config_dict
from amlib.runner import evaluate
from amlib.tasks import TASKS
from conftest import noise

DECODER_LINEARS = r"model\.layers\.\d+\.(self_attn\.(qkv_proj|o_proj)|mlp\.(gate_up_proj|down_proj))"


@pytest.fixture(scope="module")
def phi():
    model, processor = tiny_phi4_multimodal(seed=0)
    return Phi4MultimodalAdapter(model, processor, model_id=TINY_PHI4_MULTIMODAL, revision="random-seed0")


@pytest.fixture(scope="module")
def embedded_rows(phi, embedded_items, tmp_path_factory):
    """One runner row per embedded item (separate files: both items carry the same id)."""
    out = tmp_path_factory.mktemp("phi4")
    return {name: evaluate(phi, [sample], out / f"{name}.jsonl", progress=False)
            for name, sample in embedded_items.items()}


@pytest.fixture(scope="module")
def checkpoint_with_speech_lora(phi, tmp_path_factory):
    """The tiny model saved as a checkpoint, with a random (non-zero) LoRA in speech-lora/."""
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("phi4-checkpoint")
    phi.model.save_pretrained(root)
    donor, _ = tiny_phi4_multimodal(seed=1)
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=DECODER_LINEARS, init_lora_weights=False)
    get_peft_model(donor, lora).save_pretrained(root / SPEECH_LORA_SUBFOLDER)
    return root


def test_published_config_gives_12_5_tokens_per_second_and_a_128k_context():
    from transformers import Phi4MultimodalConfig

    config = Phi4MultimodalConfig(**real_config_dict(PUBLISHED_CONFIG))
    assert config.num_attention_heads == 24 and config.audio_config.bias_max_distance == 500  # not the class defaults
    assert config.rope_parameters["rope_type"] == "longrope"
    granularity = Phi4MultimodalAdapter.encoding_granularity(config)
    assert granularity["tokens_per_second"] == 12.5
    assert granularity["max_audio_tokens"] == config.max_position_embeddings == 131072
    assert granularity["max_audio_seconds"] == pytest.approx(131072 / 12.5)


def test_token_count_matches_the_real_feature_extractor(phi):
    lengths = [400, 401, 560, 1680, 7 * SAMPLE_RATE + 3]
    audios = [noise(n / SAMPLE_RATE + 1)[:n] for n in lengths]
    sizes = phi.features(audios, sampling_rate=SAMPLE_RATE)["audio_embed_sizes"]
    assert sizes.tolist() == [audio_tokens_for_samples(n, phi.features) for n in lengths]
    with pytest.raises(ValueError, match="shorter than one"):
        audio_tokens_for_samples(399, phi.features)


@pytest.mark.parametrize("item", ["short", "long"])
def test_embedded_items_give_12_5_tokens_per_second_in_one_exact_span(phi, embedded_items, item):
    sample = embedded_items[item]
    audio = load_audio(sample.audio_path)
    seconds = len(audio) / SAMPLE_RATE
    prepared = phi.build_inputs(audio, TASKS[sample.task], sample.question, sample.choices)
    assert prepared.n_windows == 1 and len(prepared.audio_spans) == 1
    assert prepared.audio_tokens == phi.expected_audio_tokens(seconds)
    assert abs(prepared.audio_tokens - 12.5 * seconds) <= 1
    assert prepared.tensors["audio_input_features"].shape[-1] == 80  # (B, T, 80) log-mel
    ids = prepared.tensors["input_ids"][0]
    start, end = prepared.audio_spans[0]
    covered = np.zeros(len(ids), bool)
    covered[start:end] = True
    assert (covered == (ids == phi.model.config.audio_config.audio_token_id).numpy()).all()
    assert ids[start - 1] == phi.processor.tokenizer.convert_tokens_to_ids("<|user|>")


def test_runner_records_both_embedded_items(embedded_rows, embedded_items, phi):
    for name, sample in embedded_items.items():
        [row] = embedded_rows[name]
        assert row["id"] == sample.id and row["error"] is None and isinstance(row["prediction"], str)
        assert row["audio_tokens"] == phi.expected_audio_tokens(len(load_audio(sample.audio_path)) / SAMPLE_RATE)
        assert row["provenance"]["family"] == "phi4-multimodal" and row["provenance"]["speech_lora"] is None


def test_prompt_is_the_phi_chat_format(phi):
    prepared = phi.build_inputs(noise(2.0), TASKS["SGR"], "q", ["male", "female"])
    text = phi.processor.tokenizer.decode(prepared.tensors["input_ids"][0])
    user = TASKS["SGR"].user_prompt("q", ["male", "female"])
    assert text.startswith(f"<|system|>{TASKS['SGR'].system_prompt}<|end|><|user|><|audio|>")
    assert text.endswith(f"<|audio|>{user}<|end|><|assistant|>")


def test_generation_is_greedy_and_deterministic(phi):
    prepared = phi.build_inputs(noise(12.0), TASKS["SGR"], "q", ["male", "female"])
    first, second = phi.generate(prepared, 4), phi.generate(prepared, 4)
    assert first.text == second.text and 1 <= first.new_tokens <= 4


def test_too_long_audio_is_refused_before_any_work(phi):
    silence = np.broadcast_to(np.zeros(1, np.float32), (int((phi.max_audio_seconds + 1) * SAMPLE_RATE),))
    with pytest.raises(ValueError, match="exceeds the supported maximum"):
        phi.build_inputs(silence, TASKS["SGR"], "q", ["male", "female"])
    fits_alone = silence[: int(10480 * SAMPLE_RATE)]  # 131,000 audio tokens: no room for the ASR answer
    with pytest.raises(ValueError, match="context of 131072"):
        phi.build_inputs(fits_alone, TASKS["ASR"], "", [])


def test_language_model_exposes_the_decoder_layers_where_kvpress_looks(phi):
    lm = phi.language_model()
    inner = lm.model  # kvpress: model.model.language_model.layers if present, else model.model.layers
    layers = inner.language_model.layers if hasattr(inner, "language_model") else inner.layers
    assert layers is phi.decoder_layers() and len(layers) == lm.config.num_hidden_layers
    assert hasattr(inner, "rotary_emb") and all(hasattr(layer, "self_attn") for layer in layers)


def test_speech_lora_is_loaded_active_and_leaves_base_weights_alone(phi, checkpoint_with_speech_lora):
    from peft.tuners.lora import LoraLayer

    model = load_phi4_multimodal(str(checkpoint_with_speech_lora))
    assert model.active_adapters() == [SPEECH_ADAPTER]
    assert isinstance(model.model.layers[0].self_attn.qkv_proj, LoraLayer)
    base = {k: v for k, v in phi.model.state_dict().items()}
    for name, value in model.state_dict().items():
        if "lora_" not in name:
            assert torch.equal(value, base[name.replace(".base_layer", "")]), name
    adapter = Phi4MultimodalAdapter(model, phi.processor, "tiny-with-lora", speech_lora=SPEECH_LORA_SUBFOLDER)
    prepared = adapter.build_inputs(noise(4.0), TASKS["SGR"], "q", ["male", "female"])
    with torch.inference_mode():
        with_lora = model(**prepared.tensors).logits
        without = phi.model(**prepared.tensors).logits
    assert not torch.allclose(with_lora, without)  # the adapter takes part in the forward pass
    assert adapter.decoder_layers() is model.model.layers and adapter.provenance()["speech_lora"] == "speech-lora"


def test_missing_speech_lora_is_an_error_not_a_silent_base_run(phi, tmp_path):
    phi.model.save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no speech LoRA"):
        load_phi4_multimodal(str(tmp_path))
    assert load_phi4_multimodal(str(tmp_path), speech_lora=None).config.hidden_size == phi.model.config.hidden_size


def test_remote_code_checkpoint_format_is_refused_with_a_hint(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "phi4mm", "architectures": ["Phi4MMForCausalLM"]}))
    with pytest.raises(ValueError, match="refs/pr/70"):
        check_native_format(str(tmp_path))
