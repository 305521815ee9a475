"""Token pruning (amlib.pruning) on tiny random-weight instances of the real model classes.

Random tiny models attend almost uniformly, so a wrong position id or a wrong kept set could leave
their output unchanged: the oracle tests sharpen attention (q/k projections scaled) and show, in the
test itself, that a deliberately wrong variant changes what the oracle is compared on.
"""

import copy

import numpy as np
import pytest
import torch

from amlib.models import load_model
from amlib.pruning import METHODS, DARTPruning, FastVPruning, FramePruning, RandomPruning, n_keep, pruning
from amlib.pruning import mechanism
from amlib.pruning.base import PruningInputs
from amlib.pruning.mechanism import AttentionCapture

from oracles import FAMILIES, STEPS, generate_logits, masked_oracle_logits, max_diff, prepare, sharpen


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


def layer_for(adapter) -> int:
    return min(2, len(adapter.decoder_layers()) - 1)


# kept sets by hand: what each method must keep, in sequence positions, derived without amlib.pruning

def audio_positions(spans) -> list[int]:
    """Every audio token's sequence position, span after span (the order methods index them in)."""
    return [p for start, end in spans for p in range(start, end)]


def kept_by_hand(prepared, chosen) -> list[int]:
    """Sequence positions kept when the audio tokens `chosen` (indices into audio_positions) stay:
    every text token, the chosen audio tokens, ascending."""
    audio = audio_positions(prepared.audio_spans)
    text = sorted(set(range(prepared.prompt_tokens)) - set(audio))
    return sorted(text + [audio[int(i)] for i in chosen])


def pruned_kept(adapter, prepared, method, ratio, layer, seed=0) -> list[int]:
    """The sequence positions the pruner kept in one prefill."""
    with pruning(adapter, method, ratio, layer=layer, seed=seed) as pruner:
        pruner.set_audio_spans(prepared.audio_spans)
        generate_logits(adapter, prepared, steps=1)
    return pruner.record.kept_index.cpu().tolist()


def shifted_into_dropped(keep: torch.Tensor, spans) -> torch.Tensor:
    """A wrong kept set of the same size: each kept audio position p moved to p + 1 where that is a
    dropped audio token (a gather off by one)."""
    audio, kept = set(audio_positions(spans)), set(keep.tolist())
    moved = [p + 1 if p in audio and p + 1 in audio and p + 1 not in kept else p for p in keep.tolist()]
    assert moved != keep.tolist(), "nothing to shift"
    return torch.tensor(moved, dtype=keep.dtype, device=keep.device)


# -- budget and the simple methods ----------------------------------------------------------------

def test_budget_is_the_papers_with_float_rounding_absorbed():
    assert n_keep(7500, 0.9) == 750 and n_keep(7500, 0.3) == 5250 and n_keep(7500, 0.0) == 7500
    assert n_keep(3, 0.9) == 1 and n_keep(10, 1.0) == 1
    with pytest.raises(ValueError):
        n_keep(10, 1.5)


def _inputs(L=50, n=10, T=80, start=5):
    return PruningInputs(torch.arange(start, start + L), n, T, torch.zeros(1, T, 4), None)


def test_frame_keeps_floor_i_L_over_n():
    kept = FramePruning().select(_inputs(L=50, n=15))
    assert kept.tolist() == [int(np.floor(i * 50 / 15)) for i in range(15)]


def test_random_is_reproducible_and_changes_with_the_seed():
    a, b, c = (RandomPruning(seed=s).select(_inputs()) for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(torch.sort(a).values, torch.sort(c).values)
    assert len(set(a.tolist())) == 10
    # pinned: the same seed and sample give this kept set on any machine (numpy PCG64)
    assert sorted(RandomPruning(seed=0).select(_inputs(L=20, n=4)).tolist()) == sorted(
        np.random.default_rng([0, 20]).permutation(20)[:4].tolist())


def test_random_is_uniform_over_the_audio_tokens():
    from scipy.stats import chisquare

    L, n, seeds = 12, 3, 4000

    def counts(draw) -> np.ndarray:
        tally = np.zeros(L)
        for seed in range(seeds):
            tally[np.asarray(draw(seed))] += 1
        return tally

    ours = counts(lambda seed: RandomPruning(seed=seed).select(_inputs(L=L, n=n, T=20, start=4)).numpy())
    assert ours.sum() == seeds * n and chisquare(ours).pvalue > 1e-3
    # the check can fail: a draw biased to early tokens (smallest n of n + 1) is rejected
    biased = counts(lambda seed: np.sort(np.random.default_rng([seed, L]).permutation(L)[: n + 1])[:n])
    assert chisquare(biased).pvalue < 1e-6


@pytest.mark.parametrize("seconds", [6.0, 31.0])  # 31 s: two 30 s windows, two audio spans
def test_frame_keeps_every_text_token_and_audio_floor_i_L_over_n_across_spans(adapters, seconds):
    adapter = get(adapters, "tiny-random-qwen2-audio")
    prepared = prepare(adapter, seconds)
    spans = prepared.audio_spans
    assert len(spans) == (2 if seconds > 30 else 1)
    L = prepared.audio_tokens
    n = n_keep(L, 0.7)
    kept = pruned_kept(adapter, prepared, "frame", 0.7, layer=2)
    # one subsampling over the audio tokens of all spans together (prefix + kept audio + suffix)
    assert kept == kept_by_hand(prepared, [i * L // n for i in range(n)])
    # the comparison can fail: rounding instead of the floor, or each span subsampled on its own
    assert kept != kept_by_hand(prepared, [min(L - 1, round(i * L / n)) for i in range(n)])
    if len(spans) > 1:
        per_span, offset = [], 0
        for start, end in spans:
            length = end - start
            k = n_keep(length, 0.7)
            per_span += [offset + i * length // k for i in range(k)]
            offset += length
        assert kept != kept_by_hand(prepared, per_span[:n])


def test_random_keeps_the_seeded_draw_and_every_text_token(adapters):
    adapter = get(adapters, "tiny-random-qwen2-audio")
    prepared = prepare(adapter)
    L = prepared.audio_tokens
    n = n_keep(L, 0.6)
    text = set(range(prepared.prompt_tokens)) - set(audio_positions(prepared.audio_spans))
    kept_sets = []
    for seed in (0, 7):
        kept = pruned_kept(adapter, prepared, "random", 0.6, layer=2, seed=seed)
        assert text <= set(kept)
        # numpy PCG64 seeded [seed, L]: the first n of a permutation of the L audio tokens
        assert kept == kept_by_hand(prepared, np.random.default_rng([seed, L]).permutation(L)[:n])
        # the comparison can fail: a generator seeded with the seed alone draws another set
        assert kept != kept_by_hand(prepared, np.random.default_rng(seed).permutation(L)[:n])
        kept_sets.append(kept)
    assert kept_sets[0] != kept_sets[1]
    assert pruned_kept(adapter, prepared, "random", 0.6, layer=2, seed=7) == kept_sets[1]  # reproducible


# -- ratio 0 is vanilla, on every family and method ---------------------------------------------------

@pytest.mark.parametrize("name", FAMILIES)
def test_ratio_zero_gives_vanilla_logits_and_output(adapters, name):
    adapter = get(adapters, name)
    prepared = prepare(adapter)
    tokens, logits = generate_logits(adapter, prepared)
    layer = layer_for(adapter)
    for method in METHODS:
        with pruning(adapter, method, 0.0, layer=layer) as pruner:
            pruner.set_audio_spans(prepared.audio_spans)
            t, lg = generate_logits(adapter, prepared)
        assert torch.equal(t, tokens) and torch.equal(lg, logits), method
    # and pruning really acts on this family: a high ratio changes the logits
    with pruning(adapter, "frame", 0.9, layer=layer) as pruner:
        pruner.set_audio_spans(prepared.audio_spans)
        _, lg = generate_logits(adapter, prepared)
    assert pruner.record.kept_audio_tokens == n_keep(prepared.audio_tokens, 0.9)
    assert not torch.allclose(lg, logits, atol=1e-4)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_method_runs_through_adapter_generate(adapters, name):
    adapter = get(adapters, name)
    prepared = prepare(adapter)
    for method in METHODS:
        with pruning(adapter, method, 0.6, layer=layer_for(adapter)):
            gen = adapter.generate(prepared, 3)
        eff = gen.efficiency
        assert eff["audio_tokens_before"] == prepared.audio_tokens
        assert eff["audio_tokens_after"] == n_keep(prepared.audio_tokens, 0.6)
        assert eff["kept_tokens"] == prepared.prompt_tokens - prepared.audio_tokens + eff["audio_tokens_after"]
    assert not hasattr(adapter, "__dict__") or "generate" not in adapter.__dict__  # uninstalled


# -- the oracle: pruning at layer 0 is a plain forward of the kept sequence at original positions ----

def merged_embeddings(adapter, prepared) -> torch.Tensor:
    """The LM's input embeddings (text + audio features) of the full prompt, from a vanilla prefill."""
    seen = {}

    def keep_input(module, args, kwargs):
        seen.setdefault("h", (args[0] if args else kwargs["hidden_states"]).clone())

    hook = adapter.decoder_layers()[0].register_forward_pre_hook(keep_input, with_kwargs=True)
    try:
        generate_logits(adapter, prepared, steps=1)
    finally:
        hook.remove()
    return seen["h"]


def plain_forward_logits(adapter, embeds, keep, tokens, positions_of, steps=STEPS):
    """Logits of a plain LM forward over `embeds[:, keep]` at positions `positions_of(keep)`, then
    one decode step per token of `tokens` at the positions that follow the ORIGINAL prompt."""
    from transformers import DynamicCache

    lm = adapter.language_model()
    T = embeds.shape[1]
    cache = DynamicCache(config=lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config)
    logits = []
    with torch.inference_mode():
        out = lm(inputs_embeds=embeds[:, keep], position_ids=positions_of(keep), past_key_values=cache, use_cache=True)
        logits.append(out.logits[:, -1])
        for t in range(steps - 1):
            pos = torch.tensor([T + t])
            out = lm(input_ids=tokens[t].view(1, 1), position_ids=positions_of(pos), past_key_values=cache,
                     use_cache=True, cache_position=torch.tensor([len(keep) + t]))
            logits.append(out.logits[:, -1])
    return torch.stack(logits).float()


POSITIONS = {  # original positions in each family's position-id layout
    "tiny-random-qwen2-audio": lambda idx: idx.view(1, -1),
    "tiny-random-qwen2.5-omni": lambda idx: idx.view(1, 1, -1).expand(3, 1, -1),  # M-RoPE: 3 equal rows (audio only)
}


@pytest.mark.parametrize("name", sorted(POSITIONS))
@pytest.mark.parametrize("method", ["random", "frame"])
def test_layer0_pruning_equals_a_plain_forward_of_the_kept_tokens(adapters, name, method):
    adapter = get(adapters, name, sharp=True)
    prepared = prepare(adapter)
    embeds = merged_embeddings(adapter, prepared)
    with pruning(adapter, method, 0.7, layer=0, seed=3) as pruner:
        pruner.set_audio_spans(prepared.audio_spans)
        tokens, pruned = generate_logits(adapter, prepared)
    keep = pruner.record.kept_index
    assert len(keep) == prepared.prompt_tokens - prepared.audio_tokens + n_keep(prepared.audio_tokens, 0.7)
    positions = POSITIONS[name]
    oracle = plain_forward_logits(adapter, embeds, keep, tokens, positions)
    torch.testing.assert_close(pruned, oracle, atol=2e-4, rtol=1e-4)
    # the comparison can fail: contiguous positions instead of the original ones change the logits
    contiguous = plain_forward_logits(adapter, embeds, keep, tokens, lambda idx: positions(_renumber(idx, keep)))
    assert (contiguous - oracle).abs().max() > 1e-2
    # and so does another kept set of the same size (kept audio tokens moved one position on)
    wrong = plain_forward_logits(adapter, embeds, shifted_into_dropped(keep, prepared.audio_spans), tokens, positions)
    assert max_diff(wrong, oracle) > 1e-2


def _renumber(idx: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Contiguous positions: kept token j at position j, decode steps right after the kept ones."""
    out = idx.clone()
    T = int(keep.max()) + 1
    in_keep = idx < T
    lookup = torch.full((T,), -1, dtype=torch.long)
    lookup[keep] = torch.arange(len(keep))
    out[in_keep] = lookup[idx[in_keep]]
    out[~in_keep] = idx[~in_keep] - (T - len(keep))
    return out


# -- the oracle at layer K: two stages by hand ---------------------------------------------------------

def staged_lm(lm, layers: slice, final_norm: bool):
    """A shallow copy of a Llama/Qwen2-style causal LM that runs only `layers` (the others untouched)."""
    part = copy.copy(lm)
    part._modules = dict(lm._modules)  # shallow copies share the module dicts: give each its own
    part.model = copy.copy(lm.model)
    part.model._modules = dict(lm.model._modules)
    part.model.layers = torch.nn.ModuleList(list(lm.model.layers)[layers])
    if not final_norm:
        part.model.norm = torch.nn.Identity()
    return part


def test_layer_k_pruning_equals_two_stages_by_hand(adapters):
    from transformers import DynamicCache

    adapter = get(adapters, "tiny-random-qwen2-audio", sharp=True)
    lm = adapter.language_model()
    K = 2
    prepared = prepare(adapter)
    embeds = merged_embeddings(adapter, prepared)
    T = embeds.shape[1]
    with pruning(adapter, "random", 0.7, layer=K, seed=5) as pruner:
        pruner.set_audio_spans(prepared.audio_spans)
        tokens, pruned = generate_logits(adapter, prepared)
    keep = pruner.record.kept_index

    def by_hand(keep):
        low, high = staged_lm(lm, slice(0, K), final_norm=False), staged_lm(lm, slice(K, None), final_norm=True)
        low_cache, high_cache = DynamicCache(config=lm.config), DynamicCache(config=lm.config)
        logits = []
        with torch.inference_mode():
            h = low.model(inputs_embeds=embeds, position_ids=torch.arange(T).view(1, -1),
                          past_key_values=low_cache, use_cache=True).last_hidden_state
            # layer indices of the upper stage start at K: give its cache K empty layers in front
            out = high(inputs_embeds=h[:, keep], position_ids=keep.view(1, -1), past_key_values=high_cache, use_cache=True)
            logits.append(out.logits[:, -1])
            for t in range(STEPS - 1):
                pos = torch.tensor([[T + t]])
                e = lm.get_input_embeddings()(tokens[t].view(1, 1))
                h = low.model(inputs_embeds=e, position_ids=pos, past_key_values=low_cache, use_cache=True,
                              cache_position=torch.tensor([T + t])).last_hidden_state
                out = high(inputs_embeds=h, position_ids=pos, past_key_values=high_cache, use_cache=True,
                           cache_position=torch.tensor([len(keep) + t]))
                logits.append(out.logits[:, -1])
        return torch.stack(logits).float()

    oracle = by_hand(keep)
    torch.testing.assert_close(pruned, oracle, atol=2e-4, rtol=1e-4)
    # the comparison can fail: swapping one kept audio token for a dropped one changes the logits
    start, end = prepared.audio_spans[0]
    dropped = [i for i in range(start, end) if i not in set(keep.tolist())]
    other = keep.clone()
    other[int(torch.nonzero(keep >= start)[0])] = dropped[0]
    assert (by_hand(torch.sort(other).values) - oracle).abs().max() > 1e-3


# -- the oracle at layer K on every family: pruning = the full model with the dropped columns masked ----

def pruned_logits(adapter, prepared, layer):
    """(kept positions, tokens, per-step logits) of a forced greedy generate pruned by Random 0.7 at `layer`."""
    with pruning(adapter, "random", 0.7, layer=layer, seed=1) as pruner:
        pruner.set_audio_spans(prepared.audio_spans)
        tokens, logits = generate_logits(adapter, prepared)
    return pruner.record.kept_index, tokens, logits


def check_against_masked_oracle(adapter, prepared, layer, break_pruner):
    """Pruning at `layer` gives the masked-columns oracle's tokens and logits at every step, and the
    pruner broken by `break_pruner()` (a monkeypatch) does not."""
    keep, tokens, pruned = pruned_logits(adapter, prepared, layer)
    oracle_tokens, oracle = masked_oracle_logits(adapter, prepared, layer, keep)
    assert torch.equal(tokens, oracle_tokens)
    torch.testing.assert_close(pruned, oracle, atol=2e-4, rtol=1e-4)
    break_pruner(keep)
    _, _, wrong = pruned_logits(adapter, prepared, layer)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(wrong, oracle, atol=2e-4, rtol=1e-4)
    assert max_diff(wrong, oracle) > 2e-3  # by a margin (the right pruner is within ~1e-6)


@pytest.mark.parametrize("name", FAMILIES)
def test_layer_k_pruning_equals_the_full_forward_with_dropped_columns_masked(adapters, name, monkeypatch):
    adapter = get(adapters, name, sharp=True)
    prepared = prepare(adapter)

    def gather_off_by_one(keep):  # every gathered tensor takes the kept audio tokens one position on
        wrong, gather = shifted_into_dropped(keep, prepared.audio_spans), mechanism._gather_seq
        monkeypatch.setattr(mechanism, "_gather_seq", lambda value, index, seq_len, what="": gather(
            value, wrong if torch.equal(index, keep) else index, seq_len, what))

    check_against_masked_oracle(adapter, prepared, layer_for(adapter), gather_off_by_one)


def test_gemma3n_pruning_above_a_kv_sharing_source_cuts_the_shared_keys(adapters, monkeypatch):
    """Gemma 3n's last layers reuse the keys/values of an earlier layer (in the tiny model layers 7-8
    those of sliding layer 6, layer 9 those of full layer 4): pruned at K = 8, layers 8 and 9 must not
    see the dropped tokens either, while layer 7 (< K) reads all of layer 6's."""
    adapter = get(adapters, "tiny-random-gemma3n", sharp=True)
    prepared = prepare(adapter)
    layer = 8
    sources = {i: l.self_attn.kv_shared_layer_index for i, l in enumerate(adapter.decoder_layers())
               if l.self_attn.is_kv_shared_layer}
    assert sources == {7: 6, 8: 6, 9: 4}

    def without_the_cut(keep):  # the shared layers read their source's keys of every token
        monkeypatch.setattr(mechanism.TokenPruner, "_shared_kv_readers", lambda self: iter(()))

    check_against_masked_oracle(adapter, prepared, layer, without_the_cut)


# -- FastV and DART read layer K-1 ----------------------------------------------------------------------

def eager_attention_rows(adapter, prepared) -> tuple[torch.Tensor, ...]:
    """Every decoder layer's attention weights (heads, T, T) of an independent full forward in which the
    language model runs eager attention (the audio encoders keep theirs: Gemma 3n's has no SDPA)."""
    config = adapter.decoder_layers()[0].self_attn.config
    implementation = config._attn_implementation
    config._attn_implementation = "eager"
    try:
        with torch.inference_mode():
            out = adapter.model(**{k: v.to(adapter.device) for k, v in prepared.tensors.items()},
                                output_attentions=True)
    finally:
        config._attn_implementation = implementation
    return tuple(a[0].float() for a in out.attentions)


@pytest.mark.parametrize("name", FAMILIES)
def test_fastv_keeps_the_top_n_of_the_eager_attention_row(adapters, name):
    adapter = get(adapters, name, sharp=True)
    prepared = prepare(adapter)
    K = layer_for(adapter)
    scores = {}

    class Recording(FastVPruning):
        def select(self, inputs):
            scores["fastv"] = self.scores(inputs)
            return super().select(inputs)

    with pruning(adapter, Recording(), 0.5, layer=K) as pruner:  # under the model's SDPA attention
        pruner.set_audio_spans(prepared.audio_spans)
        generate_logits(adapter, prepared, steps=1)
    kept = pruner.record.kept_index.cpu().tolist()
    # by hand: layer K-1's attention row of the last prompt token, mean over heads, over the audio tokens
    row = eager_attention_rows(adapter, prepared)[K - 1][:, -1, :].mean(0)
    audio_scores = row[audio_positions(prepared.audio_spans)]
    assert audio_scores.std() > 0.1 * audio_scores.mean()  # sharpened: not a uniform row
    n = n_keep(prepared.audio_tokens, 0.5)
    ranked = torch.sort(audio_scores, descending=True).values
    assert ranked[n - 1] - ranked[n] > 1e-4 * ranked[n - 1]  # the n-th is no rounding-level tie (>= 1e-3 here)
    torch.testing.assert_close(scores["fastv"].cpu(), audio_scores, atol=1e-6, rtol=1e-4)
    assert kept == kept_by_hand(prepared, torch.topk(audio_scores, n).indices)
    # the comparison can fail: the n LEAST attended audio tokens are another kept set
    assert kept != kept_by_hand(prepared, torch.topk(audio_scores, n, largest=False).indices)


def dart_by_hand(keys: torch.Tensor, prepared, n: int, largest: bool = False, audio_pivots: int = 4,
                 text_pivots: int = 4) -> list[int]:
    """DART's kept sequence positions as its docstring states them, from layer K-1's keys (1, kv_heads,
    T, d): features = all heads' keys of a token, concatenated; pivots = the `audio_pivots` audio
    tokens of largest key L1 norm (kept) then the `text_pivots` tokens after the last audio token;
    the n - (audio pivots) other slots dealt to the pivots in turn (the first get the remainder), each
    pivot claiming the audio tokens of LEAST cosine similarity to it that no one has claimed yet."""
    T = keys.shape[2]
    feats = keys[0].transpose(0, 1).reshape(T, -1).double()
    audio = audio_positions(prepared.audio_spans)
    pivots = torch.argsort(feats[audio].abs().sum(-1), descending=True)[: min(audio_pivots, n)].tolist()
    after = audio[-1] + 1
    unit = feats / feats.norm(dim=-1, keepdim=True)
    pivot_vectors = [unit[audio[i]] for i in pivots] + [unit[t] for t in range(after, min(after + text_pivots, T))]
    kept, slots = list(pivots), n - len(pivots)
    for j, vector in enumerate(pivot_vectors):
        quota = slots // len(pivot_vectors) + (1 if j < slots % len(pivot_vectors) else 0)
        order = torch.argsort(unit[audio] @ vector, descending=largest).tolist()
        kept += [i for i in order if i not in kept][:quota]
    return kept_by_hand(prepared, kept)


@pytest.mark.parametrize("name", ["tiny-random-qwen2-audio", "tiny-random-phi-4-multimodal", "tiny-random-gemma3n"])
def test_dart_keeps_the_reference_kept_set(adapters, name):
    adapter = get(adapters, name, sharp=True)
    prepared = prepare(adapter)
    seen = {}

    class Recording(DARTPruning):
        def select(self, inputs):
            seen["keys"] = inputs.attention.keys.cpu()
            return super().select(inputs)

    with pruning(adapter, Recording(), 0.8, layer=layer_for(adapter)) as pruner:
        pruner.set_audio_spans(prepared.audio_spans)
        generate_logits(adapter, prepared, steps=1)
    kept = pruner.record.kept_index.cpu().tolist()
    n = n_keep(prepared.audio_tokens, 0.8)
    assert pruner.record.kept_audio_tokens == n == len(kept) - (prepared.prompt_tokens - prepared.audio_tokens)
    assert kept == dart_by_hand(seen["keys"], prepared, n)
    # the comparison can fail: claiming the MOST similar tokens keeps another set
    assert kept != dart_by_hand(seen["keys"], prepared, n, largest=True)


def test_attention_captures_nest_and_restore_the_enclosing_patch(adapters):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    adapter = get(adapters, "tiny-random-qwen2-audio")
    prepared = prepare(adapter, 2.0)
    first, second = (layer.self_attn for layer in adapter.decoder_layers()[:2])

    def prefill():
        generate_logits(adapter, prepared, steps=1)

    def nested(inner_class) -> bool:
        """Whether the outer capture still records after an inner one (of `inner_class`) came and went."""
        outer = AttentionCapture(first)
        with outer:
            patch = ALL_ATTENTION_FUNCTIONS.__dict__["get_interface"]
            with inner_class(second) as inner:
                prefill()
                assert outer.inputs is not None and inner.inputs is not None  # both record while nested
            outer.by_module.clear()
            prefill()
            restored = ALL_ATTENTION_FUNCTIONS.__dict__.get("get_interface") is patch
            still_records = outer.inputs is not None
        assert "get_interface" not in ALL_ATTENTION_FUNCTIONS.__dict__  # the class's method again
        return restored and still_records

    assert nested(AttentionCapture)

    class DeletingOnExit(AttentionCapture):  # the previous __exit__: drops whatever patch is installed
        def __exit__(self, *exc):
            del self._interface.get_interface
            return False

    assert not nested(DeletingOnExit)


def test_clear_errors(adapters):
    adapter = get(adapters, "tiny-random-qwen2-audio")
    with pytest.raises(ValueError, match="unknown pruning method"):
        with pruning(adapter, "nope", 0.5):
            pass
    with pytest.raises(ValueError, match="layer must be >= 1"):
        with pruning(adapter, "fastv", 0.5, layer=0):
            pass
    with pytest.raises(ValueError, match="outside"):
        with pruning(adapter, "frame", 0.5, layer=99):
            pass
    prepared = prepare(adapter)
    batched = copy.copy(prepared)
    batched.tensors = {k: torch.cat([v, v]) for k, v in prepared.tensors.items()}
    with pytest.raises(ValueError, match="batch size 1"):
        with pruning(adapter, "frame", 0.5):
            adapter.generate(batched, 2)


# -- runner, CLI and the FLOP bound ------------------------------------------------------------------

def test_runner_rows_record_the_pruning_configuration(tmp_path):
    from amlib.data import read_manifest
    from amlib.runner import RunConfig, evaluate

    from conftest import make_item, write_rows

    write_rows(tmp_path / "manifest.jsonl", [make_item(tmp_path, "x", seconds=6.0)])
    samples = read_manifest(tmp_path)
    adapter = load_model("tiny-random-qwen2-audio", seed=0)
    config = RunConfig(method="frame", ratio=0.9, seed=4)
    assert config.layer == 2 and config.file_name("m") == "m__frame-r0.9-K2__seed4.jsonl"
    (row,) = evaluate(adapter, samples, tmp_path / "out.jsonl", config, progress=False)
    assert row["error"] is None
    prov = row["provenance"]
    assert (prov["method"], prov["ratio"], prov["layer"], prov["seed"]) == ("frame", 0.9, 2, 4)
    assert row["audio_tokens_before"] == row["audio_tokens"] and row["audio_tokens_after"] == n_keep(row["audio_tokens"], 0.9)
    assert row["kept_tokens"] == row["prompt_tokens"] - row["audio_tokens"] + row["audio_tokens_after"]
    assert 0 < row["prefill_flops_ratio"] < 1 and row["prefill_s"] > 0 and row["peak_memory_mb"] > 0
    with pytest.raises(ValueError, match="unknown pruning method"):
        RunConfig(method="fastvv", ratio=0.5)


def test_cli_eval_with_pruning(tmp_path, capsys):
    from amlib.cli import main

    from conftest import make_item, write_rows

    write_rows(tmp_path / "manifest.jsonl", [make_item(tmp_path, "x", seconds=5.0)])
    main(["eval", "--model", "tiny-random-qwen2-audio", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
          "--method", "fastv", "--ratio", "0.6", "--layer", "1"])
    assert (tmp_path / "o" / "tiny-random-qwen2-audio__fastv-r0.6-K1__seed0.jsonl").is_file()
    assert "SGR" in capsys.readouterr().out


def test_flops_ratio_by_hand():
    from types import SimpleNamespace

    from amlib.efficiency import lm_layer_flops, pruned_prefill_flops_ratio

    cfg = SimpleNamespace(hidden_size=8, num_attention_heads=2, num_key_value_heads=1, head_dim=4,
                          intermediate_size=16, num_hidden_layers=3)
    t = 10
    # q, o: 2*t*8*8 each; k, v: 2*t*8*4 each; attention 2*2*2*4*t(t+1)/2; MLP 3*2*t*8*16
    expected = 2 * 2 * t * 8 * 8 + 2 * 2 * t * 8 * 4 + 2 * 2 * 8 * t * (t + 1) / 2 + 3 * 2 * t * 8 * 16
    assert lm_layer_flops(cfg, t) == expected
    ratio = pruned_prefill_flops_ratio(cfg, 10, 4, layer=1)
    assert ratio == pytest.approx((lm_layer_flops(cfg, 10) + 2 * lm_layer_flops(cfg, 4)) / (3 * lm_layer_flops(cfg, 10)))
    assert pruned_prefill_flops_ratio(cfg, 10, 10, layer=1) == 1.0


def test_pruning_speedups_against_vanilla_and_the_bound():
    import pandas as pd

    from amlib.report import pruning_speedups

    scores = pd.DataFrame([
        {"method": "vanilla", "ratio": 0.0, "task": "SGR", "prefill_s": 4.0, "flops_ratio": 1.0},
        {"method": "vanilla", "ratio": 0.0, "task": "ER", "prefill_s": 6.0, "flops_ratio": 1.0},
        {"method": "frame", "ratio": 0.9, "task": "SGR", "prefill_s": 1.0, "flops_ratio": 0.2},
        {"method": "frame", "ratio": 0.9, "task": "ER", "prefill_s": 1.5, "flops_ratio": 0.3}])
    frame = pruning_speedups(scores).set_index("method").loc["frame"]
    assert frame["speedup"] == pytest.approx(5.0 / 1.25) and frame["bound"] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="no vanilla"):
        pruning_speedups(scores[scores["method"] == "frame"])
