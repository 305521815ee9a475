import dataclasses
import math

import numpy as np
import pytest
import torch

from amlib.data.audio import SAMPLE_RATE
from amlib.tasks import TASKS
from conftest import check_greedy_rerun, check_runner_rows, evaluate_embedded, kvpress_layers, noise


def real_config():
    from transformers import VoxtralConfig

    from amlib.models.common import real_config_dict
    from amlib.models.voxtral import REAL_CONFIG

    return VoxtralConfig(**real_config_dict(REAL_CONFIG))


@pytest.fixture(scope="module")
def adapter():
    from amlib.models import load_model

    return load_model("tiny-random-voxtral", seed=0)


@pytest.fixture(scope="module")
def evaluated(adapter, embedded_items, tmp_path_factory):
    """One runner pass over the ~90 s and ~300 s embedded items: name -> (audio seconds, row, the
    PreparedInputs the adapter built for it)."""
    return evaluate_embedded(adapter, embedded_items, tmp_path_factory.mktemp("voxtral") / "pred.jsonl")


def test_real_config_gives_the_published_granularity():
    from amlib.models.voxtral import VoxtralAdapter

    granularity = VoxtralAdapter.encoding_granularity(real_config())
    assert granularity["tokens_per_second"] == 12.5  # model card: one audio token per 80 ms
    assert (granularity["window_seconds"], granularity["window_tokens"]) == (30.0, 375)
    assert granularity["max_audio_seconds"] == 40 * 60  # model card: 40 min for understanding
    assert granularity["max_audio_tokens"] <= granularity["context_tokens"] == 32_768


def test_tiny_instance_keeps_the_real_front_end(adapter):
    from amlib.models.voxtral import VoxtralAdapter

    real, tiny = real_config(), adapter.model.config
    for key in ("num_mel_bins", "max_source_positions"):
        assert getattr(tiny.audio_config, key) == getattr(real.audio_config, key)
    assert VoxtralAdapter.encoding_granularity(tiny) == VoxtralAdapter.encoding_granularity(real)
    assert tiny.text_config.hidden_size < real.text_config.hidden_size


@pytest.mark.parametrize("name", ["short", "long"])
def test_audio_tokens_follow_the_duration(adapter, evaluated, name):
    seconds, _, inputs = evaluated[name]
    assert inputs.audio_tokens == adapter.expected_audio_tokens(seconds)
    assert inputs.n_windows == math.ceil(seconds / 30)
    # whole 30 s chunks at 12.5 tokens/s: the zero-padded tail adds less than one chunk
    assert 0 <= inputs.audio_tokens - 12.5 * seconds < 375


def test_spans_cover_exactly_the_audio_placeholders(adapter, evaluated):
    tok = adapter.processor.tokenizer
    for _, _, inputs in evaluated.values():
        ids = inputs.tensors["input_ids"][0]
        covered = np.zeros(len(ids), bool)
        for start, end in inputs.audio_spans:
            covered[start:end] = True
        assert (covered == (ids == adapter.audio_token_id).numpy()).all()
        [(start, end)] = inputs.audio_spans  # all chunks form one run
        assert ids[start - 1] == tok.convert_tokens_to_ids("[BEGIN_AUDIO]")


def test_prompt_is_one_user_turn_with_the_task_text(adapter, evaluated):
    _, _, inputs = evaluated["short"]
    text = adapter.processor.tokenizer.decode(inputs.tensors["input_ids"][0])
    assert text.startswith("<|im_start|>[INST][BEGIN_AUDIO][AUDIO]") and text.endswith("[/INST]")
    assert f"{TASKS['SGR'].system_prompt}\n\n" in text and "answer 'a'" in text  # no system turn


def test_runner_rows_carry_text_and_the_audio_layout(evaluated):
    check_runner_rows(evaluated)


def test_generation_is_greedy_and_deterministic(adapter, evaluated):
    check_greedy_rerun(adapter, evaluated)


def test_audio_beyond_the_model_card_limit_is_refused(adapter):
    too_long = np.zeros(int((adapter.max_audio_seconds + 1) * SAMPLE_RATE), np.float32)
    with pytest.raises(ValueError, match="exceeds the supported maximum of 2400 s"):
        adapter.build_inputs(too_long, TASKS["SGR"], "q", ["male", "female"])


def test_prompt_beyond_the_context_is_refused(adapter):
    answer_fills_the_context = dataclasses.replace(TASKS["ASR"], max_new_tokens=adapter.context_tokens)
    with pytest.raises(ValueError, match="context of 32768 tokens"):
        adapter.build_inputs(noise(3.0), answer_fills_the_context, "", [])


def test_decoder_layers_are_what_kvpress_hooks(adapter):
    layers = adapter.decoder_layers()
    assert kvpress_layers(adapter.language_model()) is layers
    assert len(layers) == adapter.model.config.text_config.num_hidden_layers


def tiny_tekken_tokenizer(folder):
    """A real mistral-common tokenizer (MistralCommonBackend over a tekken file) with a byte-level
    vocabulary and the Voxtral control tokens at the real ids ([AUDIO] 24, [BEGIN_AUDIO] 25) and the
    checkpoint's audio settings. Offline stand-in for the checkpoint's tekken.json."""
    import base64
    import json

    from transformers.tokenization_mistral_common import MistralCommonBackend

    named = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
             "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]",
             "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]", "[ARGS]",
             "[CALL_ID]", "<SPECIAL_22>", "<SPECIAL_23>", "[AUDIO]", "[BEGIN_AUDIO]", "[TRANSCRIBE]"]
    n_special = 32
    tekken = {
        "config": {"pattern": r"[^\s]+|\s+", "num_vocab_tokens": 256, "default_vocab_size": 256 + n_special,
                   "default_num_special_tokens": n_special, "version": "v7"},
        "vocab": [{"rank": i, "token_bytes": base64.b64encode(bytes([i])).decode(), "token_str": None}
                  for i in range(256)],
        "special_tokens": [{"rank": i, "token_str": token, "is_control": True} for i, token in enumerate(named)],
        "audio": {"sampling_rate": SAMPLE_RATE, "frame_rate": 12.5, "chunk_length_s": 30.0,
                  "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400}},
    }
    (folder / "tekken.json").write_text(json.dumps(tekken))
    return MistralCommonBackend.from_pretrained(folder)


def test_real_tokenizer_path_gives_the_offline_layout(adapter, tmp_path):
    """With a mistral-common tokenizer the adapter takes the real checkpoint's path; it must lay out
    the audio exactly as the offline path of the tiny instance does. mistral-common is pinned in
    requirements-nodeps.txt: missing, this fails (no skip)."""
    import mistral_common  # noqa: F401
    from transformers import VoxtralConfig, VoxtralForConditionalGeneration, VoxtralProcessor

    from amlib.models.common import real_config_dict, scaled_down
    from amlib.models.voxtral import REAL_CONFIG, TINY_OVERRIDES, VoxtralAdapter

    tok = tiny_tekken_tokenizer(tmp_path)
    processor = VoxtralProcessor(feature_extractor=adapter.processor.feature_extractor, tokenizer=tok)
    config = VoxtralConfig(**scaled_down(real_config_dict(REAL_CONFIG),
                                         scaled_down(TINY_OVERRIDES, {"text_config": {"vocab_size": len(tok)}})))
    torch.manual_seed(0)
    real_path = VoxtralAdapter(VoxtralForConditionalGeneration(config), processor, model_id="tiny-tekken-voxtral")
    audio = noise(35.0)
    real = real_path.build_inputs(audio, TASKS["SGR"], "q", ["male", "female"])
    offline = adapter.build_inputs(audio, TASKS["SGR"], "q", ["male", "female"])
    ids = real.tensors["input_ids"][0].tolist()
    control = [tok.convert_tokens_to_ids(token) for token in ("[INST]", "[BEGIN_AUDIO]", "[/INST]")]
    assert ids[:3] == [tok.bos_token_id, *control[:2]] and ids[-1] == control[2]
    assert real.audio_spans == offline.audio_spans == [(3, 3 + 2 * 375)]
    torch.testing.assert_close(real.tensors["input_features"], offline.tensors["input_features"])
    assert real_path.generate(real, 3).new_tokens >= 1
