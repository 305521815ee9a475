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


# Families chosen by name (`load_model(path, family=...)`): no transformers class, or no checkpoint
# config to read (remote code read only from a local snapshot; closed models behind an API).
NAMED_FAMILIES: dict[str, str] = {
    "aero-1-audio": "amlib.models.aero_audio:AeroAudioAdapter",
    "baichuan-omni-1.5": "amlib.models.baichuan_omni:BaichuanOmniAdapter",
    "audio-flamingo-2": "amlib.models.audio_flamingo2:AudioFlamingo2Adapter",
    "gpt-4o-audio": "amlib.models.api:OpenAIAudioAdapter",
    "gemini": "amlib.models.api:GeminiAdapter",
}


def named_family_class(family: str):
    if family not in NAMED_FAMILIES:
        raise ValueError(f"unknown family {family!r} (known: {', '.join(sorted(NAMED_FAMILIES))})")
    module, name = NAMED_FAMILIES[family].split(":")
    return getattr(importlib.import_module(module), name)


def adapter_class(model_type: str):
    if model_type not in FAMILIES:
        raise ValueError(f"model_type {model_type!r} has no adapter (known: {', '.join(sorted(FAMILIES))})")
    module, name = FAMILIES[model_type].split(":")
    return getattr(importlib.import_module(module), name)
