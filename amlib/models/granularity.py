"""Encoding granularity (the paper's Table 11), computed from the published configs and front ends.

Each row builds the checkpoint's full-size config from `amlib/models/configs/<file>.json` (no
weights) and asks the family's adapter class for its `encoding_granularity`, which derives the
token rate and limits from the real encoder/feature-extractor numbers, not from typed-in values.
"""

from __future__ import annotations

import importlib

import pandas as pd

from amlib.models.common import real_config_dict

# (checkpoint, the paper's Table 11 row name or None, adapter class, config file or None, tiny model name or None)
CHECKPOINTS = [
    ("microsoft/Phi-4-multimodal-instruct", "Phi-4-multimodal", "amlib.models.phi4_multimodal:Phi4MultimodalAdapter",
     "phi-4-multimodal-instruct.json", "tiny-random-phi-4-multimodal"),
    ("lmms-lab/Aero-1-Audio-1.5B", "Aero-1-Audio", "amlib.models.aero_audio:AeroAudioAdapter", None, None),
    ("Qwen/Qwen2-Audio-7B-Instruct", "Qwen2-Audio-Instruct", "amlib.models.qwen2_audio:Qwen2AudioAdapter",
     "qwen2-audio-7b-instruct.json", "tiny-random-qwen2-audio"),
    ("Qwen/Qwen2.5-Omni-3B", "Qwen2.5-Omni", "amlib.models.qwen2_5_omni:Qwen25OmniAdapter",
     "qwen2.5-omni-3b.json", "tiny-random-qwen2.5-omni"),
    ("Qwen/Qwen2.5-Omni-7B", None, "amlib.models.qwen2_5_omni:Qwen25OmniAdapter", "qwen2.5-omni-7b.json", None),
    ("mistralai/Voxtral-Mini-3B-2507", None, "amlib.models.voxtral:VoxtralAdapter", "voxtral-mini-3b-2507.json",
     "tiny-random-voxtral"),
    ("google/gemma-3n-E2B-it", None, "amlib.models.gemma3n:Gemma3nAdapter", "gemma-3n-e2b-it.json", "tiny-random-gemma3n"),
    ("google/gemma-3n-E4B-it", None, "amlib.models.gemma3n:Gemma3nAdapter", "gemma-3n-e4b-it.json", None),
    ("nvidia/audio-flamingo-3-hf", None, "amlib.models.audio_flamingo3:AudioFlamingo3Adapter", "audio-flamingo-3.json",
     "tiny-random-audio-flamingo-3"),
    ("nvidia/audio-flamingo-2", None, "amlib.models.audio_flamingo2:AudioFlamingo2Adapter", None, None),
]


def _class(ref: str):
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def published_config(filename: str):
    """The full-size transformers config of a published checkpoint (from its shipped numbers)."""
    from transformers import AutoConfig, Qwen2_5OmniThinkerConfig

    values = real_config_dict(filename)
    model_type = values.pop("model_type")
    if model_type == Qwen2_5OmniThinkerConfig.model_type:  # a sub-config AutoConfig does not map
        return Qwen2_5OmniThinkerConfig(**values)
    return AutoConfig.for_model(model_type, **values)


def encoding_table() -> pd.DataFrame:
    """One row per checkpoint: tokens per second, maximum audio seconds and tokens (native), as the
    adapter computes them from the published config."""
    rows = []
    for checkpoint, paper_name, adapter, config_file, _ in CHECKPOINTS:
        cls = _class(adapter)
        config = published_config(config_file) if config_file else None
        g = cls.encoding_granularity(config) if config is not None else cls.encoding_granularity()
        rows.append({"checkpoint": checkpoint, "paper_row": paper_name, "family": cls.family,
                     "tokens_per_second": g["tokens_per_second"], "max_audio_seconds": g.get("max_audio_seconds"),
                     "max_audio_tokens": g.get("max_audio_tokens"), "details": g})
    return pd.DataFrame(rows)


def beside_paper_table11(table: pd.DataFrame) -> pd.DataFrame:
    from amlib.report import paper_table

    paper = paper_table("table11_encoding_granularity").rename(columns={
        "model": "paper_row", "max_audio_minutes": "paper_max_minutes", "max_audio_tokens": "paper_max_tokens",
        "tokens_per_second": "paper_tokens_per_second"})
    ours = table.assign(max_audio_minutes=table["max_audio_seconds"] / 60)
    cols = ["checkpoint", "paper_row", "tokens_per_second", "max_audio_minutes", "max_audio_tokens"]
    return ours[cols].merge(paper.drop(columns="note"), on="paper_row", how="outer")


def tokens_vs_duration(durations: list[float], seed: int = 0) -> pd.DataFrame:
    """Audio tokens each family's adapter produces for each duration, from tiny instances that keep
    the published front end (encoder strides, windows, pooling)."""
    from amlib.models import load_model

    rows = []
    for checkpoint, _, _, _, tiny in CHECKPOINTS:
        if tiny is None:
            continue
        adapter = load_model(tiny, seed=seed)
        for d in durations:
            rows.append({"family": adapter.family, "checkpoint": checkpoint, "duration_s": d,
                         "audio_tokens": adapter.expected_audio_tokens(d)})
    return pd.DataFrame(rows)
