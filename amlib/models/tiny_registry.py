"""Built-in tiny random-weight models by name: `load_model("tiny-random-...")` builds them offline."""

from __future__ import annotations

import importlib
import inspect

# name -> ("module:factory", "module:AdapterClass"); each factory(seed) returns (model, processor)
TINY_MODELS: dict[str, tuple[str, str]] = {
    "tiny-random-qwen2-audio": ("amlib.models.tiny:tiny_qwen2_audio", "amlib.models.qwen2_audio:Qwen2AudioAdapter"),
    "tiny-random-qwen2.5-omni": ("amlib.models.qwen2_5_omni:tiny_qwen25_omni", "amlib.models.qwen2_5_omni:Qwen25OmniAdapter"),
    "tiny-random-phi-4-multimodal": ("amlib.models.phi4_multimodal:tiny_phi4_multimodal",
                                     "amlib.models.phi4_multimodal:Phi4MultimodalAdapter"),
    "tiny-random-voxtral": ("amlib.models.voxtral:tiny_voxtral", "amlib.models.voxtral:VoxtralAdapter"),
    "tiny-random-gemma3n": ("amlib.models.gemma3n:tiny_gemma3n", "amlib.models.gemma3n:Gemma3nAdapter"),
    "tiny-random-audio-flamingo-3": ("amlib.models.audio_flamingo3:tiny_audio_flamingo3",
                                     "amlib.models.audio_flamingo3:AudioFlamingo3Adapter"),
    # full published sizes, random weights: timing and scaling without a download (12 GB in float32)
    "random-qwen2.5-omni-3b": ("amlib.models.qwen2_5_omni:random_qwen25_omni_3b",
                               "amlib.models.qwen2_5_omni:Qwen25OmniAdapter"),
    "random-qwen2.5-omni-7b": ("amlib.models.qwen2_5_omni:random_qwen25_omni_7b",
                               "amlib.models.qwen2_5_omni:Qwen25OmniAdapter"),
}


TINY_ANSWER_TOKENS = 32  # the tiny-random-* models' answer budget cap (`AudioLMAdapter.answer_token_cap`)


def _resolve(ref: str):
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def load_tiny(name: str, device: str = "cpu", seed: int = 0):
    factory, adapter = (_resolve(ref) for ref in TINY_MODELS[name])
    builds_on_device = "device" in inspect.signature(factory).parameters  # large ones: no CPU copy first
    model, processor = factory(seed=seed, device=device) if builds_on_device else factory(seed=seed)
    adapter = adapter(model.to(device), processor, model_id=name, revision=f"random-seed{seed}")
    if name.startswith("tiny-random-"):  # test stand-ins; the full-size random model keeps the paper's budgets
        adapter.answer_token_cap = TINY_ANSWER_TOKENS
    return adapter
