"""Token pruning benchmark: prefill time of vanilla and every method at 0.3/0.6/0.9 on 300 s of audio,
the encoder vs language-model split, LM speed-up against its FLOP bound, FastV's overhead over Frame,
peak memory, and the encode-once sweep against 13 separate prefills.

    python scripts/bench_pruning.py --model reference --out benchmarks/pruning_cpu.json          # CPU
    python scripts/bench_pruning.py --model qwen2.5-omni-3b --device cuda --dtype bfloat16 \\
        --out benchmarks/pruning_gpu.json                                                         # GPU

`reference`: the book's reference model with real inputs built by its adapter from 300 s of noise.
`qwen2.5-omni-3b`: the full-size thinker built from its published config with RANDOM weights (no
download), inputs laid out as the processor does (<|audio_bos|> <|AUDIO|> x 7,500 <|audio_eos|>).
Times are medians of --reps runs after one warm-up; ratios are within this one run, device named.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from amlib.efficiency import device_name, pruned_prefill_flops_ratio, text_config_of
from amlib.pruning import METHODS, make_method, n_keep
from amlib.pruning.mechanism import TokenPruner
from amlib.sweep import SharedPrefix, audio_encoder

RATIOS = (0.3, 0.6, 0.9)
LAYER = 2


class _Bare:
    """The two things TokenPruner / SharedPrefix need from an adapter."""

    def __init__(self, model, layers, text_model):
        self.model, self._layers, self.text_model = model, layers, text_model

    def decoder_layers(self):
        return self._layers

    def language_model(self):
        return self.model


def reference_inputs(seconds: float, device: str, dtype: str):
    from amlib.models import load_model
    from amlib.tasks import TASKS

    adapter = load_model("amlib-reference-whisper-tiny-smollm2", device=device)
    if dtype != "float32":
        adapter.model.to(getattr(torch, dtype))
    audio = (0.05 * np.random.default_rng(0).standard_normal(int(seconds * 16_000))).astype(np.float32)
    prepared = adapter.build_inputs(audio, TASKS["SGR"], "Is the speaker male or female?", ["male", "female"])
    tensors = {k: v.to(device) for k, v in prepared.tensors.items()}
    for k, v in tensors.items():
        if v.is_floating_point():
            tensors[k] = v.to(next(adapter.model.parameters()).dtype)
    return adapter.model, _Bare(adapter.model, adapter.decoder_layers(), adapter.model.language_model.model), tensors, prepared.audio_spans, adapter.model_id


def omni_inputs(seconds: float, device: str, dtype: str, config_file: str):
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    from amlib.models.common import real_config_dict

    config = Qwen2_5OmniThinkerConfig(**real_config_dict(config_file))
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5OmniThinkerForConditionalGeneration(config).to(getattr(torch, dtype)).eval()
    frames = int(seconds * 100)
    n_audio = ((frames - 1) // 2 + 1 - 2) // 2 + 1
    prefix, suffix = [151644, 8948, 198] + [100] * 20 + [151645, 198, 151644, 872, 198], [100] * 40 + [151645, 198, 151644, 77091, 198]
    ids = prefix + [config.audio_start_token_id] + [config.audio_token_id] * n_audio + [config.audio_end_token_id] + suffix
    start = len(prefix) + 1
    tensors = {
        "input_ids": torch.tensor([ids], device=device),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long, device=device),
        "input_features": torch.randn(1, config.audio_config.num_mel_bins, frames, device=device, dtype=getattr(torch, dtype)),
        "feature_attention_mask": torch.ones(1, frames, dtype=torch.long, device=device),
    }
    return model, _Bare(model, model.model.layers, model.model), tensors, [(start, start + n_audio)], f"Qwen2.5-Omni-3B thinker ({config_file}, random weights)"


class Clock:
    def __init__(self, device):
        self.cuda = torch.device(device).type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def now(self):
        self.sync()
        return time.perf_counter()


def prefill(model, tensors, layers, clock) -> tuple[float, float]:
    """(whole prefill seconds, seconds until layer 0 starts = encoder + embedding merge)."""
    marks = {}

    def lm_starts(*_):
        marks.setdefault("lm", clock.now())

    hook = layers[0].register_forward_pre_hook(lm_starts)
    try:
        start = clock.now()
        with torch.inference_mode():
            model(**tensors, use_cache=True, logits_to_keep=1)
        end = clock.now()
    finally:
        hook.remove()
    return end - start, marks["lm"] - start


def timed(fn, reps):
    fn()  # warm-up
    runs = [fn() for _ in range(reps)]
    return tuple(statistics.median(r[i] for r in runs) for i in range(len(runs[0])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["reference", "qwen2.5-omni-3b", "qwen2.5-omni-7b"], default="reference")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--decode-tokens", type=int, default=0, help="also time this many forced decode steps")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model == "reference":
        model, bare, tensors, spans, name = reference_inputs(args.seconds, args.device, args.dtype)
    else:
        model, bare, tensors, spans, name = omni_inputs(args.seconds, args.device, args.dtype, f"{args.model}.json")
    clock = Clock(args.device)
    layers = bare.decoder_layers()
    text_config = text_config_of(model)
    T = tensors["input_ids"].shape[1]
    L = sum(e - s for s, e in spans)
    cuda = torch.device(args.device).type == "cuda"

    def once(method, ratio):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        if method == "vanilla":
            total, enc = prefill(model, tensors, layers, clock)
        else:
            with TokenPruner(bare, make_method(method), ratio, LAYER) as pruner:
                pruner.set_audio_spans(spans)
                total, enc = prefill(model, tensors, layers, clock)
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
        return total, enc, peak

    def measure_all(configs):
        """Round robin over the configurations (rep by rep), so drifts of the machine hit all alike;
        medians (and minima) per configuration after one warm-up each."""
        for c in configs:
            once(*c)
        runs = {c: [] for c in configs}
        for _ in range(args.reps):
            for c in configs:
                runs[c].append(once(*c))
        rows = []
        for (method, ratio), rs in runs.items():
            kept = T - L + (n_keep(L, ratio) if method != "vanilla" else L)
            rows.append({
                "method": method, "ratio": ratio, "prefill_s": statistics.median(r[0] for r in rs),
                "prefill_min_s": min(r[0] for r in rs), "encoder_s": statistics.median(r[1] for r in rs),
                "lm_s": statistics.median(r[0] - r[1] for r in rs), "lm_min_s": min(r[0] - r[1] for r in rs),
                "kept_tokens": kept, "peak_memory_mb": max(r[2] for r in rs),
                "lm_flops_ratio": pruned_prefill_flops_ratio(text_config, T, kept, LAYER) if method != "vanilla" else 1.0})
        return rows

    def plain_lm(tokens):
        """The bare decoder stack on `tokens` random embeddings: what a model that never saw the
        dropped tokens would cost (no gathering, no full-length layers below K)."""
        width = text_config.hidden_size
        dtype = next(model.parameters()).dtype
        embeds = torch.randn(1, tokens, width, device=args.device, dtype=dtype) * 0.02

        def once():
            start = clock.now()
            with torch.inference_mode():
                bare.text_model(inputs_embeds=embeds, use_cache=True)
            return (clock.now() - start,)
        return timed(once, args.reps)[0]

    rows = measure_all([("vanilla", 0.0)] + [(m, r) for r in RATIOS for m in METHODS])
    plain = {T: plain_lm(T)}
    for ratio in RATIOS:
        kept = T - L + n_keep(L, ratio)
        plain[kept] = plain_lm(kept)
    base = rows[0]
    for r in rows:
        r["lm_speedup"] = base["lm_s"] / r["lm_s"]
        r["lm_speedup_bound"] = 1.0 / r["lm_flops_ratio"]
        r["lm_fraction_of_bound"] = r["lm_speedup"] / r["lm_speedup_bound"]
        r["prefill_speedup"] = base["prefill_s"] / r["prefill_s"]
        r["plain_lm_s_at_kept_length"] = plain[r["kept_tokens"]]
    fastv_over_frame = {str(ratio): next(r for r in rows if r["method"] == "fastv" and r["ratio"] == ratio)["prefill_s"]
                        / next(r for r in rows if r["method"] == "frame" and r["ratio"] == ratio)["prefill_s"] - 1
                        for ratio in RATIOS}

    # the encode-once sweep (vanilla + 12 pruned prefills sharing encoder and layers < K) vs 13 separate prefills
    grid = [("vanilla", 0.0)] + [(m, r) for m in METHODS for r in RATIOS]

    def separate():
        start = clock.now()
        for method, ratio in grid:
            if method == "vanilla":
                prefill(model, tensors, layers, clock)
            else:
                with TokenPruner(bare, make_method(method), ratio, LAYER) as pruner:
                    pruner.set_audio_spans(spans)
                    prefill(model, tensors, layers, clock)
        return (clock.now() - start,)

    def swept():
        start = clock.now()
        with SharedPrefix(bare, LAYER) as prefix:
            for method, ratio in grid:
                if method == "vanilla":
                    prefill(model, tensors, layers, clock)
                else:
                    with TokenPruner(bare, make_method(method), ratio, LAYER, prefix=prefix) as pruner:
                        pruner.set_audio_spans(spans)
                        prefill(model, tensors, layers, clock)
        return (clock.now() - start,)

    separate(), swept()  # warm-up
    pairs = [(separate()[0], swept()[0]) for _ in range(max(1, args.reps // 2))]  # alternating
    sep, swp = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
    decode = None
    if args.decode_tokens:
        def gen_once():
            start = clock.now()
            with torch.inference_mode():
                model.generate(**tensors, max_new_tokens=args.decode_tokens, min_new_tokens=args.decode_tokens,
                               do_sample=False, pad_token_id=0)
            return (clock.now() - start,)
        whole, = timed(gen_once, 3)
        decode = {"new_tokens": args.decode_tokens, "generate_s": whole,
                  "per_token_s": (whole - base["prefill_s"]) / max(1, args.decode_tokens - 1)}
    result = {
        "model": name, "device": device_name(args.device), "dtype": args.dtype, "audio_seconds": args.seconds,
        "prompt_tokens": T, "audio_tokens": L, "layer": LAYER, "reps": args.reps, "torch": torch.__version__,
        "encoder_replayed_by_sweep": audio_encoder(bare) is not None,
        "rows": rows, "fastv_over_frame": fastv_over_frame,
        "sweep": {"configurations": len(grid), "separate_s": sep, "sweep_s": swp, "speedup": sep / swp},
        "decode": decode, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
