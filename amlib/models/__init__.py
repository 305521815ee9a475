"""Model adapters: one module per family behind one interface (`AudioLMAdapter`).

`load_model(name_or_path)` is the single entry point: a built-in tiny name, a hub id or a local
directory (its config.json's model_type picks the family, see `amlib.models.registry`).
"""

from __future__ import annotations

from pathlib import Path

from amlib.models.base import AudioLMAdapter, Generation, PreparedInputs
from amlib.models.registry import FAMILIES, NAMED_FAMILIES, adapter_class, named_family_class
from amlib.models.tiny import TINY_QWEN2_AUDIO


def load_model(name_or_path: str, device: str = "cpu", dtype: str | None = None, seed: int = 0,
               attn_implementation: str | None = None, local_files_only: bool | None = None,
               family: str | None = None, device_map: str | dict | None = None) -> AudioLMAdapter:
    """`family` picks a named family (see registry.NAMED_FAMILIES): remote-code snapshots and APIs,
    e.g. `load_model("gpt-4o-audio-preview-2024-12-17", family="gpt-4o-audio")`. `device_map` goes to
    transformers' from_pretrained (families that load through it; an error elsewhere)."""
    if family is not None:
        cls = named_family_class(family)
        if family in ("gpt-4o-audio", "gemini"):
            if device_map is not None:
                raise ValueError(f"{family} runs behind an API: no device_map")
            return cls(name_or_path)
        return cls.from_pretrained(name_or_path, device=device, dtype=dtype, attn_implementation=attn_implementation,
                                   local_files_only=local_files_only, **_placement(cls, device_map, family))
    from amlib.reference.model import COMMITTED_WEIGHTS, PROJECTOR_FILE, REFERENCE_MODEL, load_reference_adapter
    from amlib.models.tiny_registry import TINY_MODELS, load_tiny

    built_in = (name_or_path in TINY_MODELS or name_or_path == REFERENCE_MODEL
                or (Path(name_or_path) / PROJECTOR_FILE).is_file())
    if built_in and device_map is not None:
        raise ValueError(f"{name_or_path} is built in memory, not loaded by from_pretrained: no device_map "
                         "(save it with save_pretrained and load that folder)")
    if name_or_path in TINY_MODELS:
        return _cast(load_tiny(name_or_path, device=device, seed=seed), dtype)
    if name_or_path == REFERENCE_MODEL:  # with the weights trained by this project (committed)
        return _cast(load_reference_adapter(device=device, weights=COMMITTED_WEIGHTS), dtype)
    if (Path(name_or_path) / PROJECTOR_FILE).is_file():  # a folder of trained reference weights
        return _cast(load_reference_adapter(device=device, weights=name_or_path), dtype)
    from transformers import AutoConfig

    kwargs = {"local_files_only": local_files_only} if local_files_only is not None else {}
    model_type = AutoConfig.from_pretrained(name_or_path, **kwargs).model_type
    cls = adapter_class(model_type)
    return cls.from_pretrained(name_or_path, device=device, dtype=dtype, attn_implementation=attn_implementation,
                               **kwargs, **_placement(cls, device_map, model_type))


def _placement(cls, device_map, family: str) -> dict:
    """{"device_map": device_map} when given and the family's loader takes one; an error otherwise."""
    if device_map is None:
        return {}
    import inspect

    if "device_map" not in inspect.signature(cls.from_pretrained).parameters:
        raise ValueError(f"{family}: its loader takes no device_map (it places the model with .to(device))")
    return {"device_map": device_map}


def _cast(adapter: AudioLMAdapter, dtype: str | None) -> AudioLMAdapter:
    """The built-in models are built in float32; `dtype` (e.g. "bfloat16") casts their weights."""
    if dtype not in (None, "auto"):
        import torch

        target = getattr(torch, dtype, None)
        if not isinstance(target, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}; e.g. float32, bfloat16, float16")
        adapter.model.to(target)
    return adapter


__all__ = ["AudioLMAdapter", "FAMILIES", "NAMED_FAMILIES", "Generation", "PreparedInputs", "TINY_QWEN2_AUDIO", "load_model"]
