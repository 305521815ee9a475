"""What the benchmark scripts share (scripts/bench_gpu.py, bench_pruning.py, bench_eviction.py): the
full-size Qwen2.5-Omni thinker with random weights, its synthetic prompt, the reference model's
prompt, a bare adapter around a model, the clock and the prefill timer.

The synthetic prompt is laid out as the Qwen2.5-Omni processor lays one audio item out:
chat text, <|audio_bos|> <|AUDIO|> x N <|audio_eos|>, a question of filler tokens, the assistant
turn; N is what the audio encoder makes of the clip's mel frames (`amlib.models.qwen2_5_omni.tokens_for_frames`).
"""

from __future__ import annotations

import statistics
import time
from types import SimpleNamespace

import numpy as np
import torch

from amlib.models.qwen2_5_omni import tokens_for_frames

MEL_FRAMES_PER_SECOND = 100  # the Whisper feature extractor's 10 ms hop
# Qwen's chat ids: <|im_start|>, <|im_end|>, "\n", "system", "user", "assistant", and a filler word.
QWEN_CHAT_IDS = {"im_start": 151644, "im_end": 151645, "newline": 198, "system": 8948, "user": 872,
                 "assistant": 77091, "filler": 100}
SYSTEM_FILLER, QUESTION_FILLER = 20, 40  # text tokens around the audio (a system prompt and a question)


class BareAdapter:
    """What TokenPruner, SharedPrefix and amlib.eviction need of an adapter, around a bare model
    (no processor: decoded text is the ids, space-separated)."""

    def __init__(self, model, layers, text_model, model_id: str = "bench", family: str = "qwen2.5-omni"):
        self.model, self._layers, self.text_model = model, layers, text_model
        self.model_id, self.family = model_id, family
        self.processor = SimpleNamespace(tokenizer=SimpleNamespace(
            decode=lambda ids, **_: " ".join(str(i) for i in ids.tolist())))

    def decoder_layers(self):
        return self._layers

    def language_model(self):
        return self.model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def omni_thinker(config_file: str, device: str = "cuda", dtype: torch.dtype = torch.bfloat16, seed: int = 0):
    """A Qwen2.5-Omni thinker with a published config (amlib/models/configs/`config_file`), seeded
    RANDOM weights (timing does not depend on the values) and SDPA attention. EOS is off: random
    weights decode a fixed number of tokens."""
    from transformers import Qwen2_5OmniThinkerConfig

    from amlib.models.common import real_config_dict

    return random_thinker(Qwen2_5OmniThinkerConfig(**real_config_dict(config_file)), device, dtype, seed)


def random_thinker(config, device: str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0):
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2_5OmniThinkerForConditionalGeneration(config).to(dtype).eval()
    model.generation_config.eos_token_id = None
    return model


def omni_bare(model, model_id: str) -> BareAdapter:
    return BareAdapter(model, model.model.layers, model.model, model_id, "qwen2.5-omni")


def omni_prompt(config, seconds: float, device: str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 1,
                chat_ids: dict = QWEN_CHAT_IDS) -> tuple[dict, list[tuple[int, int]]]:
    """(model inputs, audio spans) of one `seconds`-long clip of seeded random mel features in the
    thinker's prompt layout (module docstring); `config`: the thinker's config (its audio token ids)."""
    frames = int(seconds * MEL_FRAMES_PER_SECOND)
    n_audio = tokens_for_frames(frames)
    c = chat_ids
    prefix = [c["im_start"], c["system"], c["newline"]] + [c["filler"]] * SYSTEM_FILLER + [
        c["im_end"], c["newline"], c["im_start"], c["user"], c["newline"]]
    suffix = [c["filler"]] * QUESTION_FILLER + [c["im_end"], c["newline"], c["im_start"], c["assistant"], c["newline"]]
    ids = prefix + [config.audio_start_token_id] + [config.audio_token_id] * n_audio + [config.audio_end_token_id] + suffix
    start = len(prefix) + 1
    features = torch.randn(1, config.audio_config.num_mel_bins, frames, generator=torch.Generator().manual_seed(seed))
    tensors = {
        "input_ids": torch.tensor([ids], device=device),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long, device=device),
        "input_features": features.to(device=device, dtype=dtype),
        "feature_attention_mask": torch.ones(1, frames, dtype=torch.long, device=device),
    }
    return tensors, [(start, start + n_audio)]


def reference_prompt(seconds: float, device: str = "cpu", dtype: str = "float32", seed: int = 0):
    """(adapter, prepared inputs) of the book's reference model on `seconds` of seeded noise (an SGR
    question), built by its own adapter; floating inputs in `dtype`."""
    from amlib.models import load_model
    from amlib.tasks import TASKS

    adapter = load_model("amlib-reference-whisper-tiny-smollm2", device=device)
    if dtype != "float32":
        adapter.model.to(getattr(torch, dtype))
    audio = (0.05 * np.random.default_rng(seed).standard_normal(int(seconds * 16_000))).astype(np.float32)
    prepared = adapter.build_inputs(audio, TASKS["SGR"], "Is the speaker male or female?", ["male", "female"])
    for key, value in prepared.tensors.items():
        prepared.tensors[key] = value.to(device, getattr(torch, dtype) if value.is_floating_point() else None)
    return adapter, prepared


class Clock:
    """Wall time that waits for the device first (CUDA runs asynchronously to the host)."""

    def __init__(self, device: str | torch.device):
        self.cuda = torch.device(device).type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def now(self) -> float:
        self.sync()
        return time.perf_counter()


def mark_lm_start(layers, marks: dict, clock: Clock):
    """A pre-hook on decoder layer 0 that records in `marks["lm"]` when the language model starts
    (once per forward: the first call wins); returns its handle."""
    def hook(*_):
        marks.setdefault("lm", clock.now())
    return layers[0].register_forward_pre_hook(hook)


def time_prefill(model, tensors: dict, layers, clock: Clock) -> tuple[float, float]:
    """(whole prefill seconds, seconds until decoder layer 0 starts = audio encoder + embedding merge)."""
    marks = {}
    hook = mark_lm_start(layers, marks, clock)
    try:
        start = clock.now()
        with torch.inference_mode():
            model(**tensors, use_cache=True, logits_to_keep=1)
        end = clock.now()
    finally:
        hook.remove()
    return end - start, marks["lm"] - start


def plain_lm_s(text_model, tokens: int, clock: Clock, reps: int, seed: int = 0) -> float:
    """Median seconds (after a warm-up) of the bare decoder stack `text_model` on `tokens` seeded
    random embeddings: what a model that never saw the dropped tokens costs (no gathering, no
    full-length layers below K)."""
    weight = next(text_model.parameters())
    generator = torch.Generator().manual_seed(seed)
    embeds = 0.02 * torch.randn(1, tokens, text_model.config.hidden_size, generator=generator)
    embeds = embeds.to(weight.device, weight.dtype)

    def once():
        start = clock.now()
        with torch.inference_mode():
            text_model(inputs_embeds=embeds, use_cache=True)
        return (clock.now() - start,)
    return median_after_warmup(once, reps)[0]


def median_after_warmup(fn, reps: int) -> tuple:
    """`fn()` once to warm up, then `reps` times; the median of each element of its returned tuples."""
    fn()
    runs = [fn() for _ in range(reps)]
    return tuple(statistics.median(r[i] for r in runs) for i in range(len(runs[0])))


# Published peak HBM bandwidth per GPU (the makers' data sheets; stated, not measured), bytes/s: the
# decode bound (weights and cache read once) is computed at the bandwidth of the GPU that ran.
HBM_BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12}


def hbm_bandwidth(device: str) -> tuple[float, str]:
    """(bytes/s, the GPU it was read for) for a device name such as 'NVIDIA H100 80GB HBM3'; a GPU not
    in the table is an error (a bound at another GPU's bandwidth would mislead)."""
    for gpu, bandwidth in HBM_BANDWIDTH.items():
        if gpu in device:
            return bandwidth, gpu
    raise ValueError(f"no published HBM bandwidth for {device!r}: add it to amlib.bench_harness.HBM_BANDWIDTH")
