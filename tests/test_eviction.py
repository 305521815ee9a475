"""KV-cache eviction (amlib.eviction) on tiny random-weight instances of the real model classes.

The oracle tests sharpen attention (q/k projections scaled), since near-uniform random attention
could hide a wrong position or a wrong kept set, and show in the test itself that a deliberately
wrong variant (shifted positions, a compressed question, reversed scores) differs. The oracle of
eviction is the uncompressed model whose later tokens are masked from the evicted prefill columns
(per layer and head); SnapKV's and TOVA's kept sets are re-derived from an eager forward's weights.
"""

import copy
import json

import pytest
import torch
from transformers import DynamicCache

import kvpress
from amlib.eviction import PAPER_PRESSES, PRESSES, context_end, eviction, evicted_generate, merge_mrope
from amlib.eviction.install import PressInstallation
from amlib.eviction.presses import PRESS_SPECS, SNAPKV_KERNEL, SNAPKV_WINDOW, make_press
from amlib.models import load_model
from amlib.runner import RunConfig, evaluate, read_predictions

from conftest import make_item, write_rows
from oracles import FAMILIES, STEPS, column_mask, eager_attention, eager_prefill, prefill_of, prepare, sharpen


RUNNABLE = [p for p in PRESSES if PRESS_SPECS[p].unavailable is None]


@pytest.fixture(scope="module")
def adapters():
    return {}


def get(adapters, name, sharp=False):
    key = (name, sharp)
    if key not in adapters:
        adapter = load_model(name, seed=0)
        if sharp:
            sharpen(adapter)
        adapters[key] = adapter
    return adapters[key]


def expected_failure(adapter, press: str) -> str | None:
    """Why `press` may not run on this family (None: it must run)."""
    if press == "expected_attention" and adapter.family in ("gemma3n", "phi4-multimodal"):
        return "projects queries itself"
    return None


# -- ratio 0 is vanilla; every press compresses every layer it may ---------------------------------

@pytest.mark.parametrize("name", FAMILIES)
def test_ratio_zero_is_vanilla_and_every_press_compresses_its_layers(adapters, name):
    adapter = get(adapters, name)
    prepared = prepare(adapter)
    vanilla = adapter.generate(prepared, max_new_tokens=3)
    for protocol in ("query_aware", "query_agnostic"):
        prefilled = prepared.prompt_tokens if protocol == "query_aware" else context_end(prepared)
        for press in RUNNABLE:
            reason = expected_failure(adapter, press)
            if reason:
                with pytest.raises(NotImplementedError, match=reason):
                    with eviction(adapter, press, 0.0, protocol=protocol):
                        pass
                continue
            with eviction(adapter, press, 0.0, protocol=protocol):
                gen = adapter.generate(prepared, max_new_tokens=3)
            assert (gen.text, gen.new_tokens) == (vanilla.text, vanilla.new_tokens), (press, protocol)
            assert gen.efficiency["kv_compression"] == 0.0
            if protocol == "query_agnostic" and press not in ("knorm", "snapkv"):
                continue  # the cache lengths depend on the protocol only through the prefilled length
            with eviction(adapter, press, 0.5, protocol=protocol) as inst:
                gen = adapter.generate(prepared, max_new_tokens=1)
            fx = gen.efficiency
            assert fx["prefilled_tokens"] == prefilled and fx["protocol"] == protocol and fx["ratio"] == 0.5
            kept = fx["kv_tokens_per_layer"]
            assert len(kept) == len(adapter.decoder_layers()) - sum(
                "KV sharing" in why for why in inst.skipped.values())
            for i, n in enumerate(kept):
                attention = adapter.decoder_layers()[i].self_attn
                if i in inst.skipped:
                    expected = prefilled
                elif press == "pyramidkv":  # a pyramid of per-layer budgets
                    expected = inst.press.get_layer_budget(attention, prefilled)
                else:
                    expected = int(prefilled * 0.5)
                assert n == expected, (press, protocol, i, kept)
            if not inst.skipped and press != "pyramidkv":
                assert fx["kv_bytes"] / fx["kv_bytes_uncompressed"] == pytest.approx(int(prefilled * 0.5) / prefilled)


def test_gemma3n_leaves_its_sliding_and_kv_shared_layers_alone(adapters):
    adapter = get(adapters, "tiny-random-gemma3n")
    with eviction(adapter, "knorm", 0.5) as inst:
        adapter.generate(prepare(adapter), max_new_tokens=2)
    layers = adapter.decoder_layers()
    for i, layer in enumerate(layers):
        attn = layer.self_attn
        if attn.is_kv_shared_layer:
            assert "KV sharing" in inst.skipped[i]
        elif attn.sliding_window:
            assert "sliding" in inst.skipped[i]
        else:
            assert i not in inst.skipped
    assert len(inst.skipped) < len(layers)


# -- positions after eviction: an independent oracle -------------------------------------------------

def _positions(adapter, value: int) -> torch.Tensor:
    pos = torch.tensor([[value]])
    return pos[None].expand(3, 1, 1) if adapter.family == "qwen2.5-omni" else pos


def masked_vanilla(adapter, prepared, protocol: str, prefill, keep: dict, steps: int, shift: int = 0):
    """Greedy logits of the UNcompressed model after `prefill` ((output, cache) of `prefill_of`), in which
    every later token attends to the prefilled columns `keep[layer]` only ((query heads, prefilled)
    booleans, per decoder layer; other layers attend to everything), at positions (original + 0) - shift.
    An eviction that kept those columns must equal shift = 0."""
    model = adapter.model
    tensors = prepared.tensors
    length = tensors["input_ids"].shape[-1]
    end = length if protocol == "query_aware" else context_end(prepared)
    out, cache = prefill
    cache, state = copy.deepcopy(cache), {"seen": end}
    layers = adapter.decoder_layers()
    handles = [layers[i].self_attn.register_forward_pre_hook(column_mask(columns, state), with_kwargs=True)
               for i, columns in keep.items()]
    logits = [out.logits[0, -1].float()]
    try:
        with torch.inference_mode():
            if end < length:
                q = tensors["input_ids"][..., end:]
                pos = torch.arange(end, length)[None] - shift
                pos = pos[None].expand(3, 1, -1) if adapter.family == "qwen2.5-omni" else pos
                out = model(input_ids=q, position_ids=pos, attention_mask=torch.ones(1, length, dtype=torch.long),
                            past_key_values=cache, use_cache=True)
                state["seen"] = length
                logits = [out.logits[0, -1].float()]
            for t in range(steps - 1):
                token = out.logits[:, -1].argmax(-1)
                out = model(input_ids=token[:, None], position_ids=_positions(adapter, length + t - shift),
                            attention_mask=torch.ones(1, state["seen"] + 1, dtype=torch.long),
                            past_key_values=cache, use_cache=True)
                state["seen"] += 1
                logits.append(out.logits[0, -1].float())
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(logits)


def all_layers_keep(adapter, prefilled: int, evicted: range) -> dict:
    """Every decoder layer, every head: the prefilled columns but `evicted` (StreamingLLM's cut)."""
    heads = adapter.language_model().config.get_text_config().num_attention_heads
    keep = torch.ones(heads, prefilled, dtype=torch.bool)
    keep[:, list(evicted)] = False
    return {i: keep for i in range(len(adapter.decoder_layers()))}


def evicted_logits(adapter, prepared, press, ratio, protocol, steps=STEPS):
    spec = PRESS_SPECS[press]
    inst = PressInstallation(adapter, make_press(press, ratio), spec)
    logits = []
    with inst:
        gen = evicted_generate(adapter, prepared, steps, inst, protocol, logits_out=logits)
    return gen, torch.stack(logits)


@pytest.mark.parametrize("protocol", ["query_aware", "query_agnostic"])
@pytest.mark.parametrize("name", ["tiny-random-qwen2-audio", "tiny-random-qwen2.5-omni"])
def test_decoding_after_eviction_is_at_the_original_positions(adapters, name, protocol):
    adapter = get(adapters, name, sharp=True)
    prepared = prepare(adapter)
    ratio = 0.6
    gen, logits = evicted_logits(adapter, prepared, "streaming_llm", ratio, protocol)
    prefilled = gen.efficiency["prefilled_tokens"]
    n_pruned = prefilled - int(prefilled * (1 - ratio))
    keep = all_layers_keep(adapter, prefilled, range(4, 4 + n_pruned))  # 4 sinks, then the oldest go
    prefill = prefill_of(adapter, prepared, prefilled)
    oracle = masked_vanilla(adapter, prepared, protocol, prefill, keep, STEPS)
    torch.testing.assert_close(logits, oracle, rtol=1e-4, atol=1e-4)
    # the wrong variant transformers 5.2's Qwen2.5-Omni generate() takes: positions shifted back
    shifted = masked_vanilla(adapter, prepared, protocol, prefill, keep, STEPS, shift=n_pruned)
    first_decoded = 1 if protocol == "query_aware" else 0  # query-aware: token 1 comes from the prefill
    assert not torch.allclose(shifted[first_decoded:], logits[first_decoded:], atol=1e-3)


# -- SnapKV and TOVA: the kept sets their rules pick from eager attention, then the logits --------------

def compressed_cache_readers(adapter) -> dict[int, int]:
    """Decoder layer -> the layer whose cache it attends to, for every layer attending to a cache that
    eviction compresses: the full-attention layers with their own cache, and Gemma 3n's KV-shared
    layers reading one of those (after the prefill they read its compressed cache). Sliding layers
    keep their rolling window (read from the model's config, not from amlib)."""
    config = adapter.language_model().config.get_text_config()
    types = getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers
    readers = {}
    for i, layer in enumerate(adapter.decoder_layers()):
        source = getattr(layer.self_attn, "kv_shared_layer_index", None)
        source = i if source is None else source
        if types[source] == "full_attention":
            readers[i] = source
    return readers


def top_columns(scores: torch.Tensor, count: int, largest: bool) -> torch.Tensor:
    return scores.topk(count, dim=-1, largest=largest).indices


def snapkv_rule(weights, kv_heads: int, kept: int, largest: bool = True) -> torch.Tensor:
    """kvpress 0.5.5 SnapKV, re-derived: the last `window` rows' weights on the earlier columns,
    averaged over the rows, smoothed by a `kernel`-wide moving average (zero padded, divided by the
    kernel), averaged over the query heads of each KV head; each KV head keeps the window and its top
    (kept - window) earlier columns. -> (kv_heads, kept) sorted positions."""
    window, kernel = SNAPKV_WINDOW, SNAPKV_KERNEL
    heads, length = weights.shape[0], weights.shape[-1]
    assert kept > window, "the oracle covers a budget beyond the observation window"
    rows = weights[:, -window:, :length - window].mean(1)
    half = kernel // 2
    smooth = torch.nn.functional.pad(rows, (half, half)).unfold(-1, kernel, 1).sum(-1) / kernel
    per_kv_head = smooth.view(kv_heads, heads // kv_heads, -1).mean(1)
    window_columns = torch.arange(length - window, length).expand(kv_heads, window)
    chosen = torch.cat([top_columns(per_kv_head, kept - window, largest), window_columns], dim=-1)
    return chosen.sort(-1).values


def tova_rule(weights, kv_heads: int, kept: int, largest: bool = True) -> torch.Tensor:
    """kvpress 0.5.5 TOVA, re-derived: the last row's weights on the earlier columns averaged over ALL
    query heads; every KV head keeps the last token and the same top (kept - 1) earlier columns."""
    length = weights.shape[-1]
    scores = weights[:, -1, :length - 1].mean(0)
    chosen = torch.cat([top_columns(scores, kept - 1, largest), torch.tensor([length - 1])])
    return chosen.sort().values.expand(kv_heads, kept)


RULES = {"snapkv": snapkv_rule, "tova": tova_rule}


def first_equal(rows: torch.Tensor, among: torch.Tensor) -> torch.Tensor:
    """(heads, n, d), (heads, L, d) -> (heads, n): the first position of `among` holding each row."""
    same = (rows[:, :, None, :] == among[:, None, :, :]).all(-1)
    assert same.any(-1).all(), "every row is one of `among`'s"
    return same.int().argmax(-1)


def evicted_with_kept(adapter, prepared, press: str, ratio: float, protocol: str):
    """(logits, kept, alias) of amlib's eviction. kept[layer]: the prefill positions whose (key, value)
    each KV head's compressed cache holds, sorted, found by matching the cache with the layer's keys and
    values before the press; a pair found at several positions (the tiny models' zero <|im_end|>
    embedding gives layer 0 equal keys) is named by its first, as alias[layer][head, position] is."""
    inst = PressInstallation(adapter, make_press(press, ratio), PRESS_SPECS[press])
    before, kept, alias, logits = {}, {}, {}, []

    def pairs(module, kwargs):
        layer = kwargs["past_key_values"].layers[module.layer_idx]
        return torch.cat([layer.keys[0], layer.values[0]], dim=-1).clone()

    def full(module, args, kwargs, output):
        before.setdefault(module.layer_idx, pairs(module, kwargs))

    def compressed(module, args, kwargs, output):
        if module.layer_idx not in kept:
            full_pairs = before[module.layer_idx]
            kept[module.layer_idx] = first_equal(pairs(module, kwargs), full_pairs).sort(-1).values
            alias[module.layer_idx] = first_equal(full_pairs, full_pairs)

    with inst:
        handles = []
        for attention in inst.attentions:  # around amlib's own hooks: first and last
            handles.append(attention.register_forward_hook(full, with_kwargs=True, prepend=True))
            handles.append(attention.register_forward_hook(compressed, with_kwargs=True))
        try:
            evicted_generate(adapter, prepared, STEPS, inst, protocol, logits_out=logits)
        finally:
            for handle in handles:
                handle.remove()
    return torch.stack(logits), kept, alias


def query_head_columns(kept: torch.Tensor, heads: int, prefilled: int) -> torch.Tensor:
    """(kv_heads, n) kept positions -> (query heads, prefilled) booleans (query head h reads KV head
    h // (heads / kv_heads), as repeat_kv lays them out)."""
    columns = torch.zeros(kept.shape[0], prefilled, dtype=torch.bool).scatter_(1, kept, True)
    return columns.repeat_interleave(heads // kept.shape[0], dim=0)


# SnapKV at 0.3: every family's budget exceeds its 64-token window. Gemma 3n runs both query-aware: its
# query-agnostic question goes token by token (its sliding layers keep their length), 58 full forwards.
RULE_CASES = [(name, "snapkv", "query_aware", 0.3) for name in FAMILIES] + [
    (name, "tova", "query_aware" if name == "tiny-random-gemma3n" else "query_agnostic", 0.5) for name in FAMILIES]


@pytest.mark.parametrize("name,press,protocol,ratio", RULE_CASES)
def test_snapkv_and_tova_keep_what_their_rule_picks_from_eager_attention(adapters, name, press, protocol, ratio):
    """The kept set from the press's rule applied to an independent eager forward's attention weights
    equals what amlib's installation (SDPA, rows recomputed) kept, per layer and KV head; decoding then
    equals the uncompressed model with the evicted columns masked, at the original positions."""
    adapter = get(adapters, name, sharp=True)
    prepared = prepare(adapter)
    assert expected_failure(adapter, press) is None  # both run on every family
    logits, kept, alias = evicted_with_kept(adapter, prepared, press, ratio, protocol)
    prefilled = prepared.prompt_tokens if protocol == "query_aware" else context_end(prepared)
    config = adapter.language_model().config.get_text_config()
    heads, kv_heads, budget = config.num_attention_heads, config.num_key_value_heads, int(prefilled * (1 - ratio))
    readers = compressed_cache_readers(adapter)

    def keep(sets):
        return {i: query_head_columns(sets[source], heads, prefilled) for i, source in readers.items()}

    with eager_attention(adapter):
        _, eager_kept, eager_alias = evicted_with_kept(adapter, prepared, press, ratio, protocol)
        prefill, weights = eager_prefill(adapter, prepared, prefilled)
        expected = {i: RULES[press](weights[i], kv_heads, budget) for i in set(readers.values())}
        reversed_scores = {i: RULES[press](weights[i], kv_heads, budget, largest=False) for i in expected}
        oracle = masked_vanilla(adapter, prepared, protocol, prefill, keep(expected), STEPS)
        # wrong variants: the reversed scores' kept set; the right set at positions shifted back
        wrong_set = masked_vanilla(adapter, prepared, protocol, prefill, keep(reversed_scores), STEPS)
        shifted = masked_vanilla(adapter, prepared, protocol, prefill, keep(expected), STEPS,
                                 shift=prefilled - budget)
    assert set(kept) == set(eager_kept) == set(expected)
    for i in expected:  # positions holding equal (key, value) pairs are named by the first
        assert torch.equal(kept[i], alias[i].gather(1, expected[i]).sort(-1).values), f"{press} layer {i}"
        assert not torch.equal(kept[i], alias[i].gather(1, reversed_scores[i]).sort(-1).values)
        # amlib under eager attention (the press reads the layer's own weights) keeps the same
        assert torch.equal(eager_kept[i], eager_alias[i].gather(1, expected[i]).sort(-1).values)
    torch.testing.assert_close(logits, oracle, rtol=1e-4, atol=1e-4)
    first_decoded = 1 if protocol == "query_aware" else 0  # query-aware: token 1 comes from the prefill
    assert not torch.allclose(wrong_set[first_decoded:], logits[first_decoded:], atol=1e-3)
    assert not torch.allclose(shifted[first_decoded:], logits[first_decoded:], atol=1e-3)


def test_query_agnostic_question_attends_to_the_compressed_cache_uncompressed(adapters):
    adapter = get(adapters, "tiny-random-qwen2-audio", sharp=True)
    prepared = prepare(adapter)
    agnostic, logits = evicted_logits(adapter, prepared, "knorm", 0.5, "query_agnostic")
    context = context_end(prepared)
    question = prepared.prompt_tokens - context
    assert agnostic.efficiency["prefilled_tokens"] == context and question > 5
    assert set(agnostic.efficiency["kv_tokens_per_layer"]) == {int(context * 0.5)}
    # the question compressed too (the query-aware protocol) gives other logits from the first token on
    aware, aware_logits = evicted_logits(adapter, prepared, "knorm", 0.5, "query_aware")
    assert set(aware.efficiency["kv_tokens_per_layer"]) == {int(prepared.prompt_tokens * 0.5)}
    assert not torch.allclose(aware_logits[0], logits[0], atol=1e-3)
    # and the paper's protocol cannot move the first answer token: it comes from the full prefill
    vanilla = adapter.generate(prepared, max_new_tokens=1)
    with eviction(adapter, "knorm", 0.9, protocol="query_aware"):
        first = adapter.generate(prepared, max_new_tokens=1)
    assert first.text == vanilla.text


def test_presses_compress_at_prefill_only(adapters):
    adapter = get(adapters, "tiny-random-qwen2-audio")
    prepared = prepare(adapter)
    inst = PressInstallation(adapter, make_press("snapkv", 0.5), PRESS_SPECS["snapkv"])
    caches = []
    original = DynamicCache.__init__

    def remember(self, *args, **kwargs):
        original(self, *args, **kwargs)
        caches.append(self)

    with inst, pytest.MonkeyPatch.context() as mp:
        mp.setattr(DynamicCache, "__init__", remember)
        gen = evicted_generate(adapter, prepared, 6, inst, "query_agnostic")
    kept = int(context_end(prepared) * 0.5)
    question = prepared.prompt_tokens - context_end(prepared)
    # after decoding: the compressed context + every question and answer token but the last answer's
    assert {layer.keys.shape[-2] for layer in caches[-1].layers} == {kept + question + gen.new_tokens - 1}


# -- kvpress's own query path on M-RoPE ----------------------------------------------------------------

def test_kvpress_own_query_path_fails_on_m_rope(adapters):
    """Why amlib computes the rows: kvpress's own SnapKV under SDPA (no attention weights) re-computes
    the window's queries with 1-D RoPE, whose `cos[:, -window:]` cuts Qwen2.5-Omni's (3, B, T, d) M-RoPE
    table along B instead of T: the window's 64 queries meet the angles of all T prompt positions."""
    adapter = get(adapters, "tiny-random-qwen2.5-omni")
    prepared = prepare(adapter)
    press = kvpress.SnapKVPress(compression_ratio=0.5)
    mismatch = (rf"size of tensor a \({press.window_size}\) must match the size of tensor b "
                rf"\({prepared.prompt_tokens}\) at non-singleton dimension 3")
    with pytest.raises(RuntimeError, match=mismatch) as failure:
        with torch.inference_mode(), press(adapter.language_model()):
            adapter.model(**prepared.tensors, use_cache=True,
                          past_key_values=DynamicCache(config=adapter.model.config.get_text_config()))
    assert failure.traceback[-1].name == "compute_window_attention"  # raised in kvpress's query path


def test_merged_mrope_table_is_what_the_attention_applies():
    from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import apply_multimodal_rotary_pos_emb, rotate_half

    g = torch.Generator().manual_seed(0)
    section = [2, 3, 3]
    cos, sin = torch.randn(3, 1, 7, 16, generator=g), torch.randn(3, 1, 7, 16, generator=g)
    q, k = torch.randn(1, 2, 7, 16, generator=g), torch.randn(1, 2, 7, 16, generator=g)
    q_ref, _ = apply_multimodal_rotary_pos_emb(q, k, cos, sin, section)
    c, s = merge_mrope(cos, section)[:, None], merge_mrope(sin, section)[:, None]
    torch.testing.assert_close(q * c + rotate_half(q) * s, q_ref)
    # a wrong merge (one axis for the whole head, as 1-D RoPE code reads it) differs
    assert not torch.allclose(q * cos[0][:, None] + rotate_half(q) * sin[0][:, None], q_ref)


# -- errors, runner, CLI -----------------------------------------------------------------------------

def test_clear_errors(adapters):
    adapter = get(adapters, "tiny-random-qwen2-audio")
    with pytest.raises(ValueError, match="unknown press"):
        make_press("h2o", 0.5)
    with pytest.raises(NotImplementedError, match="surrogate"):
        make_press("kvzap", 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        make_press("knorm", 1.0)
    with pytest.raises(ValueError, match="protocol"):
        with eviction(adapter, "knorm", 0.5, protocol="both"):
            pass
    with pytest.raises(ValueError, match="not both"):
        RunConfig(method="frame", ratio=0.5, press="knorm")
    assert set(PAPER_PRESSES) == {"random", "knorm", "tova", "snapkv"}
    assert PRESS_SPECS["snapkv"].build(0.5, 0).window_size == 64 and PRESS_SPECS["snapkv"].build(0.5, 0).kernel_size == 5


def test_runner_rows_record_eviction_and_a_failing_press_does_not_stop_the_run(tmp_path, adapters):
    root = tmp_path / "data"
    items = [make_item(root, f"s{i}", seconds=4.0) for i in range(2)]
    write_rows(root / "manifest.jsonl", items)
    from amlib.data import read_manifest

    samples = read_manifest(root)
    adapter = get(adapters, "tiny-random-qwen2-audio")
    config = RunConfig(press="snapkv", ratio=0.5, protocol="query_agnostic")
    out = tmp_path / "out" / config.file_name(adapter.model_id)
    assert out.name == "tiny-random-qwen2-audio__snapkv-r0.5-query_agnostic__seed0.jsonl"
    rows = evaluate(adapter, samples, out, config, progress=False)
    assert len(rows) == 2 and all(r["error"] is None for r in rows)
    for r in rows:
        assert r["provenance"]["press"] == "snapkv" and r["provenance"]["protocol"] == "query_agnostic"
        assert r["provenance"]["ratio"] == 0.5 and r["kv_bytes"] < r["kv_bytes_uncompressed"]
        assert r["kv_tokens_per_layer"] and r["prefilled_tokens"] < r["prompt_tokens"]
    # a press that cannot run on the family: every row records why, the run ends normally
    gemma = get(adapters, "tiny-random-gemma3n")
    bad = RunConfig(press="expected_attention", ratio=0.5)
    rows = evaluate(gemma, samples, tmp_path / "out" / bad.file_name(gemma.model_id), bad, progress=False)
    assert len(rows) == 2 and all("q_norm" in r["error"] for r in rows)


def test_cli_eval_with_a_press(tmp_path, capsys):
    from amlib.cli import main

    root = tmp_path / "data"
    write_rows(root / "manifest.jsonl", [make_item(root, "s0", seconds=4.0)])
    main(["eval", "--model", "tiny-random-qwen2-audio", "--data", str(root), "--out", str(tmp_path / "out"),
          "--press", "snapkv", "--ratio", "0.5", "--protocol", "query_agnostic"])
    path = tmp_path / "out" / "tiny-random-qwen2-audio__snapkv-r0.5-query_agnostic__seed0.jsonl"
    row = json.loads(path.read_text().splitlines()[0])
    assert row["provenance"]["press"] == "snapkv" and row["error"] is None and row["kv_compression"] > 0.4
    assert "SGR" in capsys.readouterr().out
    assert len(read_predictions(path)) == 1


def test_question_over_layers_of_different_lengths_in_one_forward_equals_token_by_token(adapters):
    adapter = get(adapters, "tiny-random-qwen2-audio", sharp=True)
    prepared = prepare(adapter)
    results = []
    for one_forward in (True, False):
        inst = PressInstallation(adapter, make_press("pyramidkv", 0.5), PRESS_SPECS["pyramidkv"],
                                 question_in_one_forward=one_forward)
        logits = []
        with inst:
            gen = evicted_generate(adapter, prepared, STEPS, inst, "query_agnostic", logits_out=logits)
        assert len(set(gen.efficiency["kv_tokens_per_layer"])) > 1  # a pyramid: lengths differ by layer
        results.append(torch.stack(logits))
    torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-4)
    # and the per-layer masks matter: the model's own mask (built for one length) would not even fit
    inst = PressInstallation(adapter, make_press("pyramidkv", 0.5), PRESS_SPECS["pyramidkv"])
    logits = []
    with eager_attention(adapter), inst:
        evicted_generate(adapter, prepared, STEPS, inst, "query_agnostic", logits_out=logits)
    torch.testing.assert_close(torch.stack(logits), results[0], rtol=1e-3, atol=1e-3)


def test_decode_positions_are_made_on_the_inputs_device():
    """A family that passes no position ids (Qwen2-Audio's LM): the probe's positions, from which every
    decode step's position ids are made, live where the inputs do (they were made on the CPU, which
    failed on a GPU: found by the batched-decode oracles run with AMLIB_TEST_DEVICE=cuda)."""
    from amlib.eviction.generate import PositionProbe

    module = torch.nn.Module()
    probe = PositionProbe(module)
    ids = torch.zeros(1, 5, dtype=torch.long, device="meta")
    probe._record(module, (), {"input_ids": ids, "cache_position": None})
    assert probe.positions.device.type == "meta"  # next_positions builds on this device
    assert probe.positions.shape == (1, 5)
