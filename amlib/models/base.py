"""The model adapter interface shared by every audio LM family.

An adapter turns (audio, task, sample) into model inputs in the model's own chat format, knows
where the audio tokens sit in the language model's input (token pruning and KV eviction rely on
it), where the decoder layers are, and generates greedily while timing prefill and decode.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import torch

from amlib.efficiency import GenerationTiming, timed_generate
from amlib.models.cache import preallocated_cache
from amlib.tasks import TaskSpec


@dataclass
class PreparedInputs:
    """Model inputs for one sample plus what pruning, eviction and reporting need to know."""

    tensors: dict[str, torch.Tensor]
    audio_spans: list[tuple[int, int]]  # half-open [start, end) of audio tokens in the LM input
    n_windows: int  # encoder windows the audio was split into (1 = no windowing)
    prompt_tokens: int

    @property
    def audio_tokens(self) -> int:
        return sum(end - start for start, end in self.audio_spans)


@dataclass
class Generation:
    text: str
    new_tokens: int
    timing: GenerationTiming
    inputs: PreparedInputs = field(repr=False)
    efficiency: dict = field(default_factory=dict)  # what pruning / eviction did (runner row fields)
    # under `deferred_decoding`: the prefilled prompt waiting for a batched decoder (text not yet known)
    pending: object = field(default=None, repr=False)
    # (replayed, seconds of the shared part) where the generation itself knows what it shared with other
    # configurations of its sample (a replayed eviction prefill); None: the SharedPrefix's own account
    shared_prefix: tuple | None = field(default=None, repr=False)


class AudioLMAdapter(ABC):
    """One audio LM family. Subclasses implement `build_inputs`, `decoder_layers`, `language_model`."""

    family: str = ""
    model_class: str = ""  # the transformers class of the checkpoint, for the generic from_pretrained
    tokens_per_second: float = 0.0  # audio tokens per second of audio in the LM input
    max_audio_seconds: float | None = None  # longest audio the adapter accepts (None: unbounded)
    preallocate_cache: bool = True  # decode with `amlib.models.cache` (in-place appends; same values)
    # greedy decoding through `amlib.fastpath.graph_decode` (static KV buffers, a CUDA graph per token)
    # where `decode_modules()` exists: None = on CUDA only, True = also eagerly elsewhere, False = never
    fast_decode: bool | None = None
    # batched decoding without transformers' modules (`amlib.fastpath.lean_step`), where the decoder is
    # Llama/Qwen2-like: "auto" = the model's own weights on a CPU (the same tokens as the module path on
    # all 89 items of the book's test split, benchmarks/lean_decode_agreement.json), the module path on
    # CUDA; None = never; "model" = the model's own weights; "compiled" = the same with each layer's body
    # compiled by torch.compile (on CUDA inside the step's CUDA graph: the fused step); "int8" =
    # weight-only int8 products, CPU only (other numerics: measured on the book's answers). Named in
    # every row's fast paths.
    lean_decode: str | None = "auto"
    # a cap on every task's answer budget in the runner (None: the task's own, as in the paper); the
    # tiny random models set one: their answers are noise that never stops, so ASR's 1,100 tokens
    # would only cost time. The runner records the budget it used in each row (`max_new_tokens`).
    answer_token_cap: int | None = None

    def __init__(self, model: torch.nn.Module, processor, model_id: str, revision: str = "unknown"):
        self.model = model.eval()
        self.processor = processor
        self.model_id = model_id
        self.revision = revision

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "cpu", dtype: str | None = None,
                        attn_implementation: str | None = None, local_files_only: bool | None = None,
                        device_map: str | dict | None = None):
        """Load a real checkpoint (`model_class` + its AutoProcessor) by hub id or local directory;
        HF_HUB_OFFLINE is honoured. The revision is the hub commit, or "local". `device_map` (e.g.
        "auto": a model too large for one GPU spread over all) replaces `device`."""
        import transformers

        kwargs = {"local_files_only": local_files_only} if local_files_only is not None else {}
        processor = transformers.AutoProcessor.from_pretrained(name_or_path, **kwargs)
        placed = {"device_map": device_map} if device_map is not None else {}
        model = getattr(transformers, cls.model_class).from_pretrained(
            name_or_path, dtype=dtype or "auto", attn_implementation=attn_implementation, **kwargs, **placed
        )
        model = model if device_map is not None else model.to(device)  # a dispatched model stays put
        revision = getattr(model.config, "_commit_hash", None) or "local"
        return cls(model, processor, model_id=str(name_or_path), revision=revision)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @abstractmethod
    def build_inputs(self, audio: np.ndarray, spec: TaskSpec, question: str, choices: list[str]) -> PreparedInputs:
        """Prompt (system + audio + the task's user template) in the model's chat format."""

    @abstractmethod
    def language_model(self) -> torch.nn.Module:
        """The causal LM that reads the audio tokens (what kvpress hooks)."""

    @abstractmethod
    def decoder_layers(self) -> torch.nn.ModuleList:
        """The LM's decoder layers (where token pruning is installed)."""

    def expected_audio_tokens(self, duration_s: float) -> int:
        """Audio tokens the adapter produces for `duration_s` seconds (from the real front end)."""
        raise NotImplementedError

    def check_duration(self, duration_s: float) -> None:
        if self.max_audio_seconds is not None and duration_s > self.max_audio_seconds:
            raise ValueError(
                f"{self.family}: audio of {duration_s:.1f} s exceeds the supported maximum of "
                f"{self.max_audio_seconds:.0f} s"
            )

    def decode_modules(self) -> tuple[torch.nn.Module, torch.nn.Module] | None:
        """(text decoder with embedding and final norm, lm_head) for the graph decode path, or None."""
        return None

    def uses_graph_decode(self) -> bool:
        """Whether generate() decodes through `amlib.fastpath.graph_decode` on this device."""
        from amlib.fastpath.graph_decode import supports

        wanted = self.fast_decode if self.fast_decode is not None else self.device.type == "cuda"
        return wanted and self.decode_modules() is not None and supports(self.model.generation_config) is None

    def graph_decoder(self):
        """The `GraphDecoder` generate() uses on this device, or None (HF's generate)."""
        from amlib.fastpath.graph_decode import GraphDecoder

        return GraphDecoder(self.model, *self.decode_modules(), self.decoder_layers()) if self.uses_graph_decode() else None

    def batched_decoder(self, slots: int):
        """A `BatchedDecoder` with `slots` rows over this model's decode modules (eager on a CPU, a CUDA
        graph on CUDA unless fast paths are off), or None where greedy decoding cannot run through it
        (no decode modules, or a generation config whose processors change greedy choices)."""
        from amlib.fastpath.batched_decode import BatchedDecoder
        from amlib.fastpath.graph_decode import supports

        if self.decode_modules() is None or supports(self.model.generation_config) is not None:
            return None
        use_graph = False if self.fast_decode is False else None
        return BatchedDecoder(self.model, *self.decode_modules(), self.decoder_layers(), slots=slots,
                              use_graph=use_graph, lean=self.lean_step())

    def lean_step(self):
        """The `LeanStep` batched decoding uses (built once per format), or None: off, fast paths off,
        int8 on CUDA (a CPU kernel), or a decoder it does not cover."""
        from amlib.fastpath.lean_step import DECODE_FORMATS, LeanStep, supports

        fmt = self.lean_decode
        if fmt is not None and fmt != "auto" and fmt not in DECODE_FORMATS:
            raise ValueError(f"lean_decode must be None, 'auto' or one of {', '.join(DECODE_FORMATS)}, got {fmt!r}")
        if fmt == "auto":
            fmt = None if self.device.type == "cuda" else "model"
        if fmt is None or self.fast_decode is False or self.decode_modules() is None:
            return None
        if fmt == "int8" and self.device.type == "cuda":
            return None
        text_model, lm_head = self.decode_modules()
        if supports(text_model, self.decoder_layers()) is not None:
            return None
        steps = self.__dict__.setdefault("_lean_steps", {})
        if fmt not in steps:
            compiled = fmt == "compiled"
            steps[fmt] = LeanStep(text_model, lm_head, self.decoder_layers(), "model" if compiled else fmt, compiled)
        return steps[fmt]

    def rope_delta(self) -> int:
        """How far the next text position lies from the prompt length after the last prefill (M-RoPE
        families record `rope_deltas`; 0 elsewhere)."""
        delta = getattr(self.model, "rope_deltas", None)
        return int(delta.flatten()[0]) if isinstance(delta, torch.Tensor) else 0

    @torch.inference_mode()
    def prefill(self, prepared: PreparedInputs, max_new_tokens: int, keep_logits: bool = False):
        """The prompt's prefill alone (whatever pruning hooks are installed act on it), as a
        `Prefilled` for `BatchedDecoder`, and its timing (decode_s 0)."""
        from amlib.efficiency import peak_memory, sync_for
        from amlib.fastpath.batched_decode import Prefilled
        import time

        tensors = {k: v.to(self.device) for k, v in prepared.tensors.items()}
        sync = sync_for(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        sync()
        start = time.perf_counter()
        out = self.model(**tensors, past_key_values=preallocated_cache(self.model.config, 1), use_cache=True,
                         logits_to_keep=1)
        last = out.logits[0, -1]
        first = int(last.argmax(-1))
        sync()
        timing = GenerationTiming(time.perf_counter() - start, 0.0, *peak_memory(self.device))
        prompt = tensors["input_ids"].shape[1]
        return Prefilled(out.past_key_values, first, prompt + self.rope_delta(), max_new_tokens,
                         first_logits=last.float().clone() if keep_logits else None), timing

    def set_fast_paths(self, enabled: bool) -> None:
        """All fast paths at their defaults, or none (transformers' own code paths throughout)."""
        self.fast_decode = None if enabled else False

    def fast_paths(self) -> list[str]:
        """Names of the fast paths active on this adapter (recorded in every row's provenance)."""
        return ["graph_decode"] if self.uses_graph_decode() else []

    def batched_fast_paths(self) -> list[str]:
        """The names a batched run adds to its rows' fast paths: batched decoding, and the lean step
        where it runs (with its weight format when that is not the model's own)."""
        paths = ["batched_decode"]
        if self.lean_step() is not None:
            fmt = self.lean_step().weights if not self.lean_step().compiled else "compiled"
            paths.append("lean_step" if fmt == "model" else f"lean_step_{fmt}")
        return paths

    def stop_token_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)

    @torch.inference_mode()
    def generate(self, prepared: PreparedInputs, max_new_tokens: int) -> Generation:
        if getattr(self, "deferred", None) is not None:  # `deferred_decoding`: prefill now, decode batched later
            prefilled, timing = self.prefill(prepared, max_new_tokens, keep_logits=self.deferred.keep_logits)
            return Generation(text=None, new_tokens=0, timing=timing, inputs=prepared, pending=prefilled)
        tensors = {k: v.to(self.device) for k, v in prepared.tensors.items()}
        decoder = self.graph_decoder()
        if decoder is not None:
            tokens, timing = decoder.generate(tensors, max_new_tokens, self.stop_token_ids(),
                                              preallocated_cache(self.model.config, max_new_tokens))
            text = self.processor.tokenizer.decode(tokens, skip_special_tokens=True)
            return Generation(text=text.strip(), new_tokens=len(tokens), timing=timing, inputs=prepared)
        cache = {"past_key_values": preallocated_cache(self.model.config, max_new_tokens)} if self.preallocate_cache else {}
        out, timing = timed_generate(
            self.model, tensors, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=self.pad_token_id, **cache,
        )
        new = out[0, tensors["input_ids"].shape[1]:]
        text = self.processor.tokenizer.decode(new, skip_special_tokens=True)
        return Generation(text=text.strip(), new_tokens=int(new.numel()), timing=timing, inputs=prepared)

    @property
    def pad_token_id(self) -> int | None:
        tok = self.processor.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def provenance(self) -> dict:
        return {
            "model": self.model_id, "model_revision": self.revision, "family": self.family,
            "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),
            **({"fast_paths": paths} if (paths := self.fast_paths()) else {}),
        }
