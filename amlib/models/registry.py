"""Which adapter class serves which transformers `model_type` (lazy imports: one module per family)."""

from __future__ import annotations

import importlib

# model_type (config.json) -> "module:Class"
FAMILIES: dict[str, str] = {
    "qwen2_audio": "amlib.models.qwen2_audio:Qwen2AudioAdapter",
    "qwen2_5_omni": "amlib.models.qwen2_5_omni:Qwen25OmniAdapter",
    "qwen2_5_omni_thinker": "amlib.models.qwen2_5_omni:Qwen25OmniAdapter",
    "phi4_multimodal": "amlib.models.phi4_multimodal:Phi4MultimodalAdapter",
    "voxtral": "amlib.models.voxtral:VoxtralAdapter",
    "gemma3n": "amlib.models.gemma3n:Gemma3nAdapter",
    "audioflamingo3": "amlib.models.audio_flamingo3:AudioFlamingo3Adapter",
}


def adapter_class(model_type: str):
    if model_type not in FAMILIES:
        raise ValueError(f"model_type {model_type!r} has no adapter (known: {', '.join(sorted(FAMILIES))})")
    module, name = FAMILIES[model_type].split(":")
    return getattr(importlib.import_module(module), name)
