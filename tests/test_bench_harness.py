"""The benchmark harness (amlib.bench_harness) on a tiny random Qwen2.5-Omni thinker, on CPU: the
synthetic prompt's audio span against what the audio encoder really makes, the prefill timer's split
against a clock that counts work done, the clock's device wait and the warm-up median."""

import pytest
import torch

from amlib import bench_harness as harness
from amlib.models.qwen2_5_omni import tiny_qwen25_omni

# chat ids inside the tiny vocabulary (the published ones are beyond it)
SMALL_IDS = {"im_start": 1, "im_end": 2, "newline": 198, "system": 8948, "user": 872, "assistant": 7709, "filler": 100}


@pytest.fixture(scope="module")
def thinker():
    model, _ = tiny_qwen25_omni(seed=0)
    return model


def encoder_tokens(thinker, tensors) -> int:
    """Audio tokens as the model's own encoder makes them from the prompt's features."""
    with torch.inference_mode():
        out = thinker.get_audio_features(tensors["input_features"], tensors["feature_attention_mask"])
    return out.last_hidden_state.shape[0]


@pytest.mark.parametrize("seconds", [0.5, 1.03, 3.17, 30.0])
def test_synthetic_prompt_holds_one_audio_token_per_encoder_output(thinker, seconds):
    tensors, spans = harness.omni_prompt(thinker.config, seconds, chat_ids=SMALL_IDS)
    ids = tensors["input_ids"][0].tolist()
    [(start, end)] = spans
    assert [i for i, t in enumerate(ids) if t == thinker.config.audio_token_id] == list(range(start, end))
    assert ids[start - 1] == thinker.config.audio_start_token_id and ids[end] == thinker.config.audio_end_token_id
    assert end - start == encoder_tokens(thinker, tensors)
    with torch.inference_mode():
        thinker(**tensors, use_cache=False)  # the model itself accepts the layout


def test_a_prompt_one_audio_token_off_is_refused_and_the_naive_count_is_off(thinker):
    """The wrong variants: an extra <|AUDIO|> token makes the model's merge fail; frames // 4, the
    obvious guess for two stride-2 stages, is one token short at 1.03 s (103 frames: 26 tokens)."""
    tensors, [(start, end)] = harness.omni_prompt(thinker.config, 1.03, chat_ids=SMALL_IDS)
    assert encoder_tokens(thinker, tensors) == end - start == 26 != 103 // 4
    ids = tensors["input_ids"]
    longer = {**tensors, "input_ids": torch.cat([ids[:, :end], ids[:, start:start + 1], ids[:, end:]], dim=1),
              "attention_mask": torch.ones(1, ids.shape[1] + 1, dtype=torch.long)}
    with pytest.raises(RuntimeError, match="Number of elements of source < number of ones in mask"), torch.inference_mode():
        thinker(**longer, use_cache=False)


class WorkClock:
    """now() = work done so far: the hooks below add 100 per audio-encoder forward, 1 per decoder layer."""

    def __init__(self):
        self.t = 0

    def now(self) -> int:
        return self.t

    def add(self, amount: int):
        def hook(*_):
            self.t += amount
        return hook


def test_prefill_timer_splits_at_decoder_layer_0(thinker):
    clock, layers = WorkClock(), thinker.model.layers
    tensors, _ = harness.omni_prompt(thinker.config, 1.0, chat_ids=SMALL_IDS)
    handles = [thinker.audio_tower.register_forward_hook(clock.add(100))]
    handles += [layer.register_forward_hook(clock.add(1)) for layer in layers]
    try:
        total, before_lm = harness.time_prefill(thinker, tensors, layers, clock)
        wrong = harness.time_prefill(thinker, tensors, layers[1:], clock)  # marked at layer 1: wrong split
    finally:
        for handle in handles:
            handle.remove()
    assert (total, before_lm) == (100 + len(layers), 100)
    assert wrong == (100 + len(layers), 101)
    assert not layers[0]._forward_pre_hooks  # the mark is removed


def test_clock_waits_for_cuda_only_on_cuda(monkeypatch):
    waits = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *_: waits.append(1))
    harness.Clock("cpu").now()
    assert waits == []
    harness.Clock("cuda").now()
    harness.Clock(torch.device("cuda", 1)).now()
    assert waits == [1, 1]


def test_median_after_warmup_drops_the_first_call():
    calls = iter([(100.0, 7.0), (1.0, 1.0), (3.0, 2.0), (2.0, 9.0)])
    assert harness.median_after_warmup(lambda: next(calls), 3) == (2.0, 2.0)
    # with the warm-up counted the first element's median would be 2.5
    assert harness.statistics.median([100.0, 1.0, 3.0, 2.0]) == 2.5


def test_plain_lm_runs_the_decoder_stack_on_the_given_length(thinker):
    seen = []
    handle = thinker.model.layers[0].register_forward_pre_hook(lambda _, args, kwargs: seen.append(
        kwargs.get("hidden_states", args[0] if args else None).shape[1]), with_kwargs=True)
    try:
        harness.plain_lm_s(thinker.model, 37, harness.Clock("cpu"), reps=2)
    finally:
        handle.remove()
    assert seen == [37, 37, 37]  # a warm-up and two timed runs


def test_the_decode_bound_uses_the_bandwidth_of_the_gpu_that_ran():
    from amlib.bench_harness import hbm_bandwidth

    assert hbm_bandwidth("NVIDIA H100 80GB HBM3") == (3.35e12, "H100")
    assert hbm_bandwidth("NVIDIA H200") == (4.8e12, "H200")
    with pytest.raises(ValueError, match="no published HBM bandwidth"):
        hbm_bandwidth("NVIDIA GeForce RTX 4090")
