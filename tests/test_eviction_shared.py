"""One prefill for every press (amlib.eviction.shared): a press replayed on a recorded prefill compresses
exactly what it compresses inside a prefill of its own.

The oracle is the same press run alone (`evicted_generate` without a prefix), on sharpened tiny models
in float32: per-step logits, kept tokens per layer and the answer must be equal, for every runnable
press under both protocols. Wrong replays (a record that a previous press compressed, the first query
rows instead of the last) are shown to differ.
"""

import pytest
import torch

from amlib.eviction import evicted_generate
from amlib.eviction import shared as shared_module
from amlib.eviction.install import PressInstallation
from amlib.eviction.presses import PRESS_SPECS, make_press, press_spec
from amlib.models import load_model
from amlib.sweep import SharedPrefix

from oracles import prepare, sharpen

RUNNABLE = [p for p, spec in PRESS_SPECS.items() if spec.unavailable is None]
PROTOCOLS = ("query_aware", "query_agnostic")
STEPS = 5


@pytest.fixture(scope="module")
def sharp():
    cache = {}

    def get(name):
        if name not in cache:
            adapter = load_model(name, seed=0)
            sharpen(adapter)
            cache[name] = adapter
        return cache[name]

    return get


def run(adapter, prepared, press, ratio, protocol, prefix=None):
    logits = []
    installation = PressInstallation(adapter, make_press(press, ratio, 0), press_spec(press))
    with installation:
        gen = evicted_generate(adapter, prepared, STEPS, installation, protocol, logits_out=logits, prefix=prefix)
    return gen, torch.stack(logits)


def same(a, b) -> bool:
    (gen_a, logits_a), (gen_b, logits_b) = a, b
    return gen_a.text == gen_b.text and torch.equal(logits_a, logits_b) and \
        gen_a.efficiency["kv_tokens_per_layer"] == gen_b.efficiency["kv_tokens_per_layer"]


@pytest.mark.parametrize("name", ["tiny-random-qwen2-audio", "tiny-random-qwen2.5-omni"])
def test_every_press_replayed_on_one_prefill_equals_its_own_prefill(sharp, name):
    adapter = sharp(name)
    prepared = prepare(adapter)
    with SharedPrefix(adapter, 0) as prefix:
        for protocol in PROTOCOLS:
            for press in RUNNABLE:
                alone = run(adapter, prepared, press, 0.5, protocol)
                replayed = run(adapter, prepared, press, 0.5, protocol, prefix)
                assert same(alone, replayed), (press, protocol)
                assert replayed[0].efficiency["kv_compression"] > 0.2, press  # something was evicted
        # one recorded prefill per protocol, replayed by every press
        assert sorted(k[0] for k in prefix.evictions) == sorted(PROTOCOLS)
        assert {record.replays for record in prefix.evictions.values()} == {len(RUNNABLE)}


def test_replayed_rows_say_what_they_shared(sharp):
    adapter = sharp("tiny-random-qwen2-audio")
    prepared = prepare(adapter)
    with SharedPrefix(adapter, 0) as prefix:
        first, _ = run(adapter, prepared, "knorm", 0.5, "query_aware", prefix)
        second, _ = run(adapter, prepared, "snapkv", 0.5, "query_aware", prefix)
        record = prefix.evictions[("query_aware", prepared.prompt_tokens)]
    assert first.shared_prefix is None  # it recorded: its own prefill time is the real one
    replayed, seconds = second.shared_prefix
    assert replayed and seconds == record.seconds + prefix.prefix_seconds * record.encoder_replayed


def test_a_record_compressed_by_a_previous_press_would_differ(sharp, monkeypatch):
    """The wrong variant: every press compresses what the previous one left (no fresh copy)."""
    adapter = sharp("tiny-random-qwen2-audio")
    prepared = prepare(adapter)
    original = shared_module.PrefillRecord.replay

    def replay_in_place(self, installation, cache):
        original(self, installation, cache)
        for attention in installation.attentions:
            layer = cache.layers[attention.layer_idx]
            self.layers[attention.layer_idx].keys = layer.keys.clone()
            self.layers[attention.layer_idx].values = layer.values.clone()

    monkeypatch.setattr(shared_module.PrefillRecord, "replay", replay_in_place)
    with SharedPrefix(adapter, 0) as prefix:
        run(adapter, prepared, "knorm", 0.5, "query_aware", prefix)
        wrong = run(adapter, prepared, "knorm", 0.3, "query_aware", prefix)
    assert not same(run(adapter, prepared, "knorm", 0.3, "query_aware"), wrong)


def test_first_query_rows_instead_of_the_last_would_differ(sharp, monkeypatch):
    """The wrong variant: TOVA scores with the recorded window's FIRST query row, not the prompt's last."""
    adapter = sharp("tiny-random-qwen2-audio")
    prepared = prepare(adapter)
    right = run(adapter, prepared, "tova", 0.5, "query_aware")
    monkeypatch.setattr(shared_module, "rows_of", lambda rec, rows: shared_module.replace(
        rec, last_query=rec.last_query[..., :rows, :],
        last_mask_row=None if rec.last_mask_row is None else rec.last_mask_row[..., :rows, :]))
    with SharedPrefix(adapter, 0) as prefix:
        wrong = run(adapter, prepared, "tova", 0.5, "query_aware", prefix)
    assert wrong[0].efficiency["kv_tokens_per_layer"] == right[0].efficiency["kv_tokens_per_layer"]  # same budget
    assert not same(right, wrong)


def test_a_record_replays_only_for_its_own_prompt(sharp):
    adapter = sharp("tiny-random-qwen2-audio")
    prepared, other = prepare(adapter), prepare(adapter, seconds=7.0)
    with SharedPrefix(adapter, 0, check_inputs=False) as prefix:
        run(adapter, prepared, "knorm", 0.5, "query_aware", prefix)
        prefix.evictions[("query_aware", other.prompt_tokens)] = prefix.evictions[("query_aware", prepared.prompt_tokens)]
        with pytest.raises(RuntimeError, match="replayed only for the prompt it was recorded on"):
            run(adapter, other, "knorm", 0.5, "query_aware", prefix)


def test_layers_a_press_leaves_alone_mean_a_prefill_per_configuration(sharp):
    """Gemma 3n's sliding-window and KV-shared layers are no plain appends: nothing is recorded, and the
    presses run inside prefills of their own (same results)."""
    adapter = sharp("tiny-random-gemma3n")
    prepared = prepare(adapter)
    with SharedPrefix(adapter, 0) as prefix:
        replayed = run(adapter, prepared, "knorm", 0.5, "query_aware", prefix)
        assert prefix.evictions == {}
    assert same(run(adapter, prepared, "knorm", 0.5, "query_aware"), replayed)
