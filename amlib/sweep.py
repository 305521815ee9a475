"""A grid of configurations (vanilla + pruning methods x ratios) evaluated sample by sample, with the
work every configuration shares done ONCE per sample.

All pruning configurations of a grid prune at the same layer K, so for one sample they agree on
everything before layer K: the audio encoder's output, the hidden states entering layer K, the KV
cache of layers < K, and layer K-1's attention inputs that FastV and DART score with. `SharedPrefix`
records these during the sample's first prefill and replays them in every later one (the encoder's
and the layers' forward are replaced by the recorded results, the recorded keys and values are
written into the new cache), so each configuration only computes layers >= K. Decoding cannot be
shared and runs per configuration. Every configuration writes its own predictions file, with rows
identical to a separate `evaluate` run's (timings aside, and `shared_prefix` saying whether the row
recorded or replayed the prefix); each file resumes on its own. Timing: `prefill_measured_s` is what
the row's prefill took; `prefill_s` adds, for a replayed row, the recorded cost of the shared part
(`shared_prefix_s`: encoder + layers < K), so that it estimates the configuration's own prefill.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import torch
from tqdm.auto import tqdm

from amlib import distributed
from amlib.data import Sample
from amlib.distributed import Ranks
from amlib.models.base import AudioLMAdapter
from amlib.pruning import DEFAULT_LAYER
from amlib.pruning.mechanism import AttentionCapture
from amlib.runner import RunConfig, RunFile, error_row, evaluate, evaluate_sample, prepare_inputs


def _now() -> float:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


def audio_encoder(adapter: AudioLMAdapter) -> torch.nn.Module | None:
    """The module that turns audio features into encoder states (replayed by SharedPrefix)."""
    model = adapter.model
    for owner in (model, getattr(model, "model", None)):
        module = getattr(owner, "audio_tower", None) if owner is not None else None
        if isinstance(module, torch.nn.Module):
            return module
    return None


class SharedPrefix:
    """Records the encoder, layers < `layer` and layer `layer`-1's attention inputs on the first
    prefill inside the block; replays them on every later prefill (see the module docstring)."""

    def __init__(self, adapter: AudioLMAdapter, layer: int = DEFAULT_LAYER, check_inputs: bool = True):
        self.adapter, self.layer = adapter, layer
        # a replay must be of the recorded sample: its encoder (or layer-0) input is compared with the
        # recorded one (one synchronisation per replayed prefill, before any heavy work)
        self.check_inputs = check_inputs
        self.recorded_inputs: list[list[torch.Tensor]] = []
        self.layers = adapter.decoder_layers()
        self.encoder = audio_encoder(adapter)
        self.encoder_outputs: list = []
        self.layer_outputs: dict[int, torch.Tensor] = {}
        self.layer_kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.capture = AttentionCapture(self.layers[layer - 1].self_attn) if layer >= 1 else None
        self.recorded = False
        self.prefix_seconds = 0.0  # wall time of the recording prefill up to layer K
        self.evictions: dict = {}  # (protocol, prompt end) -> amlib.eviction.shared.PrefillRecord
        self._stack = ExitStack()

    @property
    def attention(self):
        return self.capture.inputs if self.capture is not None else None

    def __enter__(self):
        if self.capture is not None:
            self._stack.enter_context(self.capture)
        if self.encoder is not None:
            self._replace_forward(self.encoder, self._encoder_forward(self.encoder.forward))
        for i in range(self.layer):
            self._replace_forward(self.layers[i], self._layer_forward(i, self.layers[i].forward))
        if self.layer == 0:  # the encoder alone (eviction: a press acts from layer 0 on)
            self._replace_forward(self.layers[0], self._encoder_only_marker(self.layers[0].forward))
        return self

    def _encoder_only_marker(self, original):
        """Layer 0 untouched, but its first prefill call ends the encoder's recording (and each later
        one rewinds the replay for the next prefill)."""
        def forward(hidden_states, *args, **kwargs):
            if hidden_states.shape[-2] > 1:
                if self.recorded and hasattr(self, "_encoder_reset"):
                    self._encoder_reset()
                self.recorded = self.recorded or bool(self.encoder_outputs)
            return original(hidden_states, *args, **kwargs)

        return forward

    def __exit__(self, *exc):
        self._stack.close()
        return False

    def _check_same(self, recorded, given, where: str) -> None:
        if self.check_inputs and _differs(recorded, given):
            raise RuntimeError(f"SharedPrefix: the {where} input differs from the one recorded: a prefix is "
                               "replayed only for the sample it was recorded on (one SharedPrefix per sample)")

    def _replace_forward(self, module, forward) -> None:
        module.forward = forward
        self._stack.callback(module.__dict__.pop, "forward", None)

    def _encoder_forward(self, original):
        def forward(*args, **kwargs):
            if not self.recorded:
                start = _now()
                out = original(*args, **kwargs)
                self.prefix_seconds += _now() - start
                self.encoder_outputs.append(out)
                self.recorded_inputs.append(_tensors(args, kwargs))
                return out
            if not hasattr(forward, "replay"):
                forward.inputs = iter(self.recorded_inputs)
            self._check_same(next(forward.inputs, None), _tensors(args, kwargs), "audio encoder")
            if not hasattr(forward, "replay"):
                forward.replay = iter(self.encoder_outputs)
            try:
                return next(forward.replay)
            except StopIteration:
                raise RuntimeError("the encoder was called more often than while recording") from None

        self._encoder_reset = lambda: (forward.__dict__.pop("replay", None), forward.__dict__.pop("inputs", None))
        return forward

    def _layer_forward(self, i: int, original):
        def forward(hidden_states, *args, **kwargs):
            prefill = hidden_states.shape[-2] > 1
            if not prefill:
                return original(hidden_states, *args, **kwargs)
            if not self.recorded:
                start = _now()
                out = original(hidden_states, *args, **kwargs)
                cache = kwargs.get("past_key_values")
                idx = self.layers[i].self_attn.layer_idx
                self.layer_kv[i] = (cache.layers[idx].keys.clone(), cache.layers[idx].values.clone())
                self.layer_outputs[i] = out.clone() if isinstance(out, torch.Tensor) else out
                if i == 0 and self.encoder is None:
                    self.layer0_input = hidden_states.clone()
                self.prefix_seconds += _now() - start
                if i == self.layer - 1:
                    self.recorded = True
                return out
            if i == 0 and hasattr(self, "_encoder_reset"):
                self._encoder_reset()
            if i == 0 and self.encoder is None:
                self._check_same([self.layer0_input], [hidden_states], "decoder layer 0")
            keys, values = self.layer_kv[i]
            kwargs["past_key_values"].update(keys, values, self.layers[i].self_attn.layer_idx)
            return self.layer_outputs[i]

        return forward


def _tensors(args, kwargs) -> list[torch.Tensor]:
    return [v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)]


def _differs(recorded: list[torch.Tensor] | None, given: list[torch.Tensor]) -> bool:
    if recorded is None or len(recorded) != len(given):
        return True
    return any(a.shape != b.shape or not torch.equal(a, b) for a, b in zip(recorded, given))


def sweep_configs(methods: list[str], ratios: list[float], layer: int = DEFAULT_LAYER, seed: int = 0,
                  vanilla: bool = True) -> list[RunConfig]:
    """The grid: vanilla (optional) + every method at every ratio, all at `layer`."""
    configs = [RunConfig(seed=seed)] if vanilla else []
    configs += [RunConfig(method=m, ratio=r, layer=layer, seed=seed) for m in methods for r in ratios]
    return configs


def run_sweep(adapter: AudioLMAdapter, samples: list[Sample], output_dir: str | Path, configs: list[RunConfig],
              progress: bool = True, ranks: Ranks | None = None, batch_size: int | None = None,
              workers: int = 0, stats=None, loader: str | None = None) -> dict[str, list[dict]]:
    """Evaluate every configuration on every sample, sharing each sample's prefix (encoder + layers
    < K) across configurations. Returns {file name: rows of that configuration's file}. In a launch of
    several processes (`ranks`, default: accelerate's) each takes its share of the samples, writing a
    shard file per configuration; each configuration's file is merged at the end (`amlib.distributed`).
    `batch_size` (None: `default_batch_size`): rows decoded together (`amlib.pipeline`; 1: one at a
    time, as before); `workers`: processes or threads (`loader`, `amlib.pipeline.prefetched`) preparing
    the next samples' inputs; `stats`: a
    `amlib.pipeline.PipelineStats` a batched run adds its time split to."""
    layers = {c.layer for c in configs if c.method not in (None, "vanilla")}
    if len(layers) > 1:
        raise ValueError(f"one sweep prunes at one layer; got layers {sorted(layers)} (run one sweep per layer)")
    layer = layers.pop() if layers else DEFAULT_LAYER
    return _run_grid(adapter, samples, output_dir, configs, lambda: SharedPrefix(adapter, layer), "sweep",
                     progress, ranks, batch_size, workers, stats, loader)


def _run_grid(adapter, samples, output_dir, configs, shared_prefix, label, progress, ranks, batch_size, workers,
              stats=None, loader=None):
    """Every configuration on every sample, each sample's inputs prepared once and its shared part
    (`shared_prefix`) computed once; batched (`amlib.pipeline`) or one row at a time."""
    from amlib.pipeline import batched_decoder_of, prefetched, run_pipelined

    output_dir = Path(output_dir)
    ranks = ranks or distributed.current(adapter.device)
    batch_size = default_batch_size(adapter, len(configs)) if batch_size is None else batch_size
    batched = batched_decoder_of(adapter, batch_size) is not None
    runs = [RunFile.open(adapter, samples, output_dir / config.file_name(adapter.model_id), config, ranks=ranks,
                         batch_size=batch_size if batched else 1)
            for config in configs]
    pending = distributed.my_share([s for s in samples if any(run.needs(s) for run in runs)], ranks)
    with ExitStack() as files:
        for run in runs:
            files.enter_context(run)
        rank = f" rank {ranks.rank}/{ranks.world_size}" if ranks.world_size > 1 else ""
        shown = tqdm(pending, desc=f"{adapter.model_id} {label} x{len(configs)}{rank}", disable=not progress)
        if batched:
            run_pipelined(adapter, prefetched(shown, lambda s: prepare_inputs(adapter, s), workers, stats=stats,
                                              loader=loader), runs, batch_size, shared_prefix=shared_prefix, stats=stats)
        else:
            for sample in shown:
                _sweep_sample(adapter, sample, runs, shared_prefix)
    return {run.path.name: run.finish(samples) for run in runs}


CPU_BATCH = 4  # measured (2 cores, reference model, bfloat16, 3,853-token context): HF generate 107 ms per
# token; the batched decoder 46 ms with 1 row, 23 ms per row with 3, 17 ms per row with 8


def default_batch_size(adapter: AudioLMAdapter, configurations: int = 1) -> int:
    """Rows decoded together when the caller does not say: on CUDA 16; elsewhere CPU_BATCH, or all the
    configurations of one sample where a grid has more (its rows of one item decode as one batch)."""
    device = getattr(adapter, "device", None)
    return 16 if getattr(device, "type", None) == "cuda" else max(CPU_BATCH, configurations)


def _sweep_sample(adapter: AudioLMAdapter, sample: Sample, runs: list[RunFile], shared_prefix) -> None:
    """One sample under every configuration that still needs it, its inputs built once and its
    shared part (`shared_prefix()`) computed once."""
    try:
        prepared = prepare_inputs(adapter, sample)
    except Exception as err:  # every configuration records the failure
        for run in runs:
            if run.needs(sample):
                run.write(error_row(sample, err, run.provenance))
        return
    with shared_prefix() as prefix:
        for run in runs:
            if not run.needs(sample):
                continue
            torch.manual_seed(run.config.seed)
            replayed, seconds = prefix.recorded, prefix.prefix_seconds
            row = evaluate_sample(adapter, sample, run.config, run.provenance, prepared, prefix=prefix)
            if row["error"] is None:
                replayed, seconds = row.pop("_shared_prefix", None) or (replayed, prefix.prefix_seconds)
                row.update(shared_prefix_timing(row["prefill_s"], replayed, seconds))
            run.write(row)


def shared_prefix_timing(prefill_s: float, replayed: bool, prefix_seconds: float) -> dict:
    """A replayed prefill skipped the shared part: its recorded cost is added, so that `prefill_s`
    stands for what the configuration costs on its own (the measured part beside it)."""
    return {"shared_prefix": "replayed" if replayed else "recorded", "shared_prefix_s": prefix_seconds,
            "prefill_measured_s": prefill_s, "prefill_s": prefill_s + prefix_seconds if replayed else prefill_s}


def eviction_configs(presses: list[str], ratios: list[float], protocols: list[str], seed: int = 0,
                     vanilla: bool = True) -> list[RunConfig]:
    """Vanilla (optional) + every press x ratio x protocol, as RunConfigs (validated)."""
    configs = [RunConfig(seed=seed)] if vanilla else []
    return configs + [RunConfig(press=p, ratio=float(r), protocol=proto, seed=seed)
                      for proto in protocols for p in presses for r in ratios]


def run_configs(adapter: AudioLMAdapter, samples: list[Sample], output_dir: str | Path,
                configs: list[RunConfig], progress: bool = False, ranks: Ranks | None = None,
                batch_size: int | None = None, workers: int = 0, stats=None,
                loader: str | None = None) -> dict[str, list[dict]]:
    """Each configuration over `samples` (one file per configuration; the samples split over the
    processes of a launch); {file name: its rows}. A press evicts from layer 0 on, so only the audio
    encoder is shared: each sample is encoded once for all configurations."""
    return _run_grid(adapter, samples, output_dir, configs, lambda: SharedPrefix(adapter, 0), "configurations",
                     progress, ranks, batch_size, workers, stats, loader)
