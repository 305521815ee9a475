"""Dataset builders, one module per source, each a function `build(req: BuildRequest) -> list[dict]`.

The registry below is what `python -m amlib build-data --source NAME` and `amlib.data.build` use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from amlib.data.sources.common import BuildRequest, LayoutError


@dataclass(frozen=True)
class SourceSpec:
    name: str
    tasks: tuple[str, ...]
    builder: str  # "module:function"
    description: str
    needs_root: bool = True
    balance: bool = True  # finalisation balances classes; False keeps every row (the released benchmark)

    def build(self, req: BuildRequest) -> list[dict]:
        module, func = self.builder.split(":")
        return getattr(importlib.import_module(module), func)(req)


SOURCES: dict[str, SourceSpec] = {}


def register(spec: SourceSpec) -> None:
    SOURCES[spec.name] = spec


def get_source(name: str) -> SourceSpec:
    if name not in SOURCES:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}")
    return SOURCES[name]


for _spec in [
    SourceSpec("librispeech", ("ASR",), "amlib.data.sources.librispeech:build",
               "LibriSpeech test-clean (or the released LibriSpeech-Long layout) -> LibriSpeech-long ASR"),
    SourceSpec("race", ("SCR",), "amlib.data.sources.race:build", "RACE passages read by TTS -> SCR"),
    SourceSpec("slue", ("SER",), "amlib.data.sources.slue:build", "SLUE-VoxPopuli NER annotations -> SER"),
    SourceSpec("desed", ("SED",), "amlib.data.sources.desed:build", "DESED strong labels -> SED"),
    SourceSpec("gtzan", ("MC",), "amlib.data.sources.gtzan:build", "GTZAN genres -> MC"),
    SourceSpec("tau2019", ("ASC",), "amlib.data.sources.tau2019:build", "TAU Urban Acoustic Scenes 2019 -> ASC"),
    SourceSpec("had", ("SD",), "amlib.data.sources.had:build", "HAD half-truth audio -> SD"),
    SourceSpec("vesus", ("ER",), "amlib.data.sources.vesus:build", "VESUS emotional speech -> ER"),
    SourceSpec("voxceleb", ("SGR", "SAR"), "amlib.data.sources.voxceleb:build",
               "VoxCeleb1/2 + metadata csv + age enrichment -> SGR, SAR"),
    SourceSpec("audiomarathon", ("ASR", "SCR", "SER", "SED", "MC", "ASC", "SD", "ER", "SAR", "SGR"),
               "amlib.data.sources.released:build", "the released AudioMarathon test.csv + audio folder",
               balance=False),
    SourceSpec("offline", ("ASR", "SCR", "SER", "SED", "MC", "ASC", "SD", "ER", "SAR", "SGR"),
               "amlib.data.offline.suite:build", "license-free offline suite from packaged assets (no download)",
               needs_root=False),
]:
    register(_spec)

__all__ = ["BuildRequest", "LayoutError", "SOURCES", "SourceSpec", "get_source", "register"]
