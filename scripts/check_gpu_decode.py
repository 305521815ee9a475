"""Does the CUDA-graph decoder compute what HF's generate computes? Per-step logits and greedy tokens of
three decoders on one prompt, float32: HF `generate(output_logits=True)` (the reference), amlib's
static-KV step run eagerly, and the same step captured once as a CUDA graph and replayed per token.

    PYTHONPATH=. python scripts/check_gpu_decode.py --out benchmarks/check_gpu_decode.json   # GPU: 3B, 90 s and 300 s
    PYTHONPATH=. python scripts/check_gpu_decode.py --tiny --out /tmp/check_gpu_decode_tiny.json  # CPU smoke test

Needs torch and transformers (the project's pin, 5.2.0) and amlib's own dependencies of the decode
path (numpy, tqdm): nothing beyond what scripts/bench_gpu.py needs; no download.

The model is the published Qwen2.5-Omni-3B thinker config with RANDOM weights (seeded; `--tiny`: the
tests' tiny thinker). The tiny thinker attends almost uniformly, so its query and key projections are
scaled x6 as in the oracle tests (tests/oracles.sharpen); the full-width random thinker already
attends less uniformly than that (last-row entropy ~0.95 of uniform at 600 tokens, against ~0.97-0.99
for the sharpened tiny one), so it runs as initialised (`--sharpen` to change either). The prompt is
laid out as the processor lays it out (text, <|audio_bos|> <|AUDIO|> x N <|audio_eos|>, text) with
seeded random features, for each `--seconds`, vanilla and Frame-0.9-pruned at layer 2. TF32 is off,
so the decoders differ only by kernel rounding.

Logits are compared step by step up to the first step where two decoders' tokens differ (later steps
read different tokens); a token difference where HF's top-2 margin is within twice the logit
difference is a near-tie and reported as such. A run is ok when the eager static path and the graph
replay agree with HF (and with each other) within `--tol` on every compared step, with equal tokens
or a near-tie. Two deliberately wrong decoders (position + 1; each step's mask also opening the next,
still empty, slot: tests/oracles.wrong_decoders) run on the same path as negative controls, and the
JSON says whether each was detected (its difference above `--tol`). On a 4-layer full-width thinker
on a CPU (575 tokens) the eager static path was 8e-6 from HF, position + 1 0.11, the early slot 6e-3:
the early slot's effect shrinks as the context grows (one empty key among thousands), so its detection
at 300 s is reported, not required. The JSON names the device and the torch/transformers versions; the
exit status is 1 when a run is not ok.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from amlib.efficiency import device_name
from amlib.fastpath import ChunkedEncoderAttention, GraphDecoder
from amlib.models.cache import preallocated_cache
from amlib.pruning import make_method
from amlib.pruning.mechanism import TokenPruner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from oracles import max_diff, sharpen, wrong_decoders  # noqa: E402

LAYER = 2
PRUNING = ("frame", 0.9)


class _Bare:
    """What TokenPruner and `sharpen` need from an adapter."""

    def __init__(self, model):
        self.model = model

    def decoder_layers(self):
        return self.model.model.layers


def build(tiny: bool, device: str, seed: int):
    """The thinker in float32, EOS off (random weights: every decoder runs the same number of steps)."""
    if tiny:
        from amlib.models.qwen2_5_omni import tiny_qwen25_omni

        model, _ = tiny_qwen25_omni(seed=seed)
        model = model.to(device)
    else:
        from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

        from amlib.models.common import real_config_dict

        config = Qwen2_5OmniThinkerConfig(**real_config_dict("qwen2.5-omni-3b.json"))
        config._attn_implementation = "sdpa"
        torch.manual_seed(seed)
        with torch.device(device):
            model = Qwen2_5OmniThinkerForConditionalGeneration(config)
    model = model.float().eval()
    model.generation_config.eos_token_id = None
    ChunkedEncoderAttention(model).install()  # as the adapter runs it; every decoder gets the same encoder output
    return model


def synthetic_prompt(model, seconds: float, device: str, seed: int):
    """(tensors, audio spans): seeded text ids around one audio item of `seconds` of random features."""
    config = model.config
    frames = int(seconds * 100)  # 100 mel frames per second
    n_audio = ((frames - 1) // 2 + 1 - 2) // 2 + 1  # the encoder's conv (stride 2), then pooling (2)
    generator = torch.Generator().manual_seed(seed)

    def text(n):  # ids below 1000: ordinary tokens in both the tiny and the published vocabulary
        return torch.randint(100, 1000, (n,), generator=generator).tolist()

    prefix = text(28)
    ids = prefix + [config.audio_start_token_id] + [config.audio_token_id] * n_audio + [config.audio_end_token_id] + text(45)
    start = len(prefix) + 1
    tensors = {
        "input_ids": torch.tensor([ids], device=device),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long, device=device),
        "input_features": torch.randn(1, config.audio_config.num_mel_bins, frames, generator=generator).to(device),
        "feature_attention_mask": torch.ones(1, frames, dtype=torch.long, device=device),
    }
    return tensors, [(start, start + n_audio)]


@torch.inference_mode()
def hf_decode(model, tensors, steps: int):
    out = model.generate(**tensors, max_new_tokens=steps, do_sample=False, output_logits=True,
                         return_dict_in_generate=True, pad_token_id=0)
    return out.sequences[0, tensors["input_ids"].shape[1]:].tolist(), torch.cat(out.logits).float()


def static_decode(decoder_class, model, tensors, steps: int, use_graph: bool):
    decoder = decoder_class(model, model.model, model.lm_head, model.model.layers, use_graph=use_graph)
    logits = []
    tokens, _ = decoder.generate(dict(tensors), steps, [], preallocated_cache(model.config, steps), logits_out=logits)
    return tokens, torch.cat(logits)


def compare(reference, other, tol: float) -> dict:
    """Tokens and per-step max |logit difference| of `other` against `reference` ((tokens, logits) each)."""
    (ref_tokens, ref_logits), (tokens, logits) = reference, other
    mismatch = next((i for i, (a, b) in enumerate(zip(ref_tokens, tokens)) if a != b), None)
    compared = len(ref_tokens) if mismatch is None else mismatch + 1  # later steps read different tokens
    per_step = [max_diff(logits[i], ref_logits[i]) for i in range(compared)]
    top2 = ref_logits[:compared].topk(2, dim=-1).values
    margins = (top2[:, 0] - top2[:, 1]).tolist()
    result = {"tokens_equal": tokens == ref_tokens, "tokens_agreeing": sum(a == b for a, b in zip(ref_tokens, tokens)),
              "first_token_mismatch": mismatch, "steps_compared": compared, "max_logit_diff": max(per_step),
              "per_step_max_logit_diff": per_step, "within_tolerance": max(per_step) <= tol}
    if mismatch is not None:
        result["reference_top2_margin_at_mismatch"] = margins[mismatch]
        result["near_tie"] = margins[mismatch] <= 2 * per_step[mismatch]
    return result


def check(model, tensors, spans, steps: int, method: tuple | None, tol: float, graph: bool) -> dict:
    pruner = TokenPruner(_Bare(model), make_method(method[0]), method[1], LAYER) if method else nullcontext()
    with pruner:
        if method:
            pruner.set_audio_spans(spans)
        hf = hf_decode(model, tensors, steps)
        eager = static_decode(GraphDecoder, model, tensors, steps, use_graph=False)
        replay = static_decode(GraphDecoder, model, tensors, steps, use_graph=True) if graph else None
        controls = {name: static_decode(cls, model, tensors, steps, use_graph=graph)
                    for name, cls in wrong_decoders().items()}
    result = {"pruning": f"{method[0]} {method[1]} K{LAYER}" if method else "none",
              "logit_scale": float(hf[1].abs().max()), "hf_tokens": hf[0], "eager_static_vs_hf": compare(hf, eager, tol)}
    if replay is not None:
        result["graph_vs_hf"] = compare(hf, replay, tol)
        result["graph_vs_eager_static"] = compare(eager, replay, tol)
    else:
        result["graph_vs_hf"] = "not run: CUDA graphs need a CUDA device"
    result["negative_controls"] = {name: compare(hf, run, tol) for name, run in controls.items()}
    agreements = [v for k, v in result.items() if k.endswith(("_vs_hf", "_vs_eager_static")) and isinstance(v, dict)]
    result["ok"] = all(c["within_tolerance"] and (c["tokens_equal"] or c["near_tie"]) for c in agreements)
    result["negative_controls_detected"] = {name: not c["within_tolerance"] for name, c in result["negative_controls"].items()}
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", "--smoke", action="store_true", help="the tests' tiny thinker (runs on a CPU)")
    ap.add_argument("--seconds", nargs="+", type=float, default=None, help="audio lengths (default 90 300; --tiny: 6 20)")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--sharpen", type=float, default=None,
                    help="query/key projection factor (default 1: as initialised; --tiny: 6, as the tests)")
    ap.add_argument("--tol", type=float, default=None, help="max |logit difference| allowed (default 1e-3; --tiny: 1e-5)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    seconds = args.seconds or ([6.0, 20.0] if args.tiny else [90.0, 300.0])
    tol = args.tol if args.tol is not None else (1e-5 if args.tiny else 1e-3)
    factor = args.sharpen if args.sharpen is not None else (6.0 if args.tiny else 1.0)
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32: no TF32 matmuls or convolutions
    torch.backends.cudnn.allow_tf32 = False
    import transformers

    begin = time.perf_counter()
    model = build(args.tiny, args.device, args.seed)
    if factor != 1.0:
        sharpen(_Bare(model), factor)
    graph = torch.device(args.device).type == "cuda"
    result = {"device": device_name(args.device), "torch": torch.__version__, "transformers": transformers.__version__,
              "model": ("tiny-random-qwen2.5-omni thinker" if args.tiny
                        else "qwen2.5-omni-3b thinker (published config, random weights)"),
              "dtype": "float32", "tf32": False, "audio_encoder": "chunked (amlib.fastpath, as the adapter)", "sharpen": factor, "seed": args.seed, "new_tokens": args.new_tokens,
              "tolerance": tol, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "build_s": time.perf_counter() - begin,
              "runs": []}
    for duration in seconds:
        tensors, spans = synthetic_prompt(model, duration, args.device, args.seed)
        for method in (None, PRUNING):
            start = time.perf_counter()
            run = {"audio_seconds": duration, "prompt_tokens": tensors["input_ids"].shape[1],
                   "audio_tokens": spans[0][1] - spans[0][0],
                   **check(model, tensors, spans, args.new_tokens, method, tol, graph)}
            run["wall_s"] = time.perf_counter() - start
            result["runs"].append(run)
            print(json.dumps({k: v for k, v in run.items() if k != "negative_controls"}, default=str)[:600], flush=True)
            result["all_ok"] = all(r["ok"] for r in result["runs"])
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1))
    result["wall_s"] = time.perf_counter() - begin
    args.out.write_text(json.dumps(result, indent=1))
    missed = sorted({n for r in result["runs"] for n, seen in r["negative_controls_detected"].items() if not seen})
    print(f"all_ok={result['all_ok']} in {result['wall_s']:.0f} s -> {args.out}"
          + (f"; negative controls within tolerance somewhere: {missed}" if missed else "; every negative control detected"))
    return 0 if result["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
