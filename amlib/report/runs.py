"""The one way to find runs in a predictions folder: by the provenance their rows carry, not by
their file names (a file renamed by hand, or a model whose name contains "__vanilla__", would
fool a name pattern).

A run is one predictions file `<folder>/*.jsonl` directly in the folder (the shards of a
distributed run, in `shards/`, are not runs) whose rows all carry one configuration (model,
method, press, ratio, layer, protocol, seed). Files without rows are skipped; a file whose rows
have no provenance is not a predictions file and is skipped too; a file that mixes configurations,
and two files of one configuration, are errors naming them.
"""

from __future__ import annotations

from pathlib import Path

KINDS = ("vanilla", "pruning", "eviction")
_CONFIGURATION_KEYS = ("model", "method", "press", "ratio", "layer", "protocol", "seed")


def _configuration(row: dict) -> tuple:
    prov = row.get("provenance") or {}
    return tuple(prov.get(key) for key in _CONFIGURATION_KEYS)


def _is_vanilla(prov: dict) -> bool:
    return prov.get("press") is None and prov.get("method") in (None, "vanilla")


def _kind_matches(prov: dict, kind: str) -> bool:
    """Vanilla files belong to every kind (the baseline of a grid); the others to their own."""
    if _is_vanilla(prov):
        return True
    if kind == "pruning":
        return prov.get("press") is None
    return kind == "eviction" and prov.get("press") is not None


def _same_model(prov: dict, model: str | None) -> bool:
    """A hub id, a local folder and the file-name stem of one model name the same run."""
    return model is None or Path(str(prov.get("model"))).name == Path(model).name


def _order(prov: dict) -> tuple:
    return (not _is_vanilla(prov), Path(str(prov.get("model"))).name, prov.get("method") or "",
            prov.get("press") or "", float(prov.get("ratio") or 0), prov.get("layer") or 0,
            prov.get("protocol") or "", prov.get("seed") or 0)


def run_files(results_dir: str | Path, model: str | None = None, kind: str = "pruning",
              seed: int | None = None) -> list[tuple[Path, list[dict]]]:
    """(path, rows) of every run in `results_dir` (see the module docstring) of `model` (any model
    when None; compared by name, so "Qwen/Qwen2-Audio-7B-Instruct" matches rows made from a local
    copy named the same) and of `kind`: "vanilla", "pruning" (vanilla first, then every pruning
    configuration) or "eviction" (vanilla first, then every press); `seed` keeps one seed's runs
    (None: all). Ordered vanilla first, then by model, method/press, ratio, layer/protocol, seed."""
    from amlib.runner import read_predictions

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    folder = Path(results_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"no predictions folder {folder}")
    found = []
    for path in sorted(folder.glob("*.jsonl")):
        rows = read_predictions(path)
        if not rows or not isinstance(rows[0].get("provenance"), dict):
            continue
        configurations = {_configuration(r) for r in rows}
        if len(configurations) != 1:
            raise ValueError(f"{path}: rows of several configurations in one predictions file "
                             f"({', '.join(map(str, sorted(configurations, key=str)[:3]))}); a run is one file")
        prov = rows[0]["provenance"]
        if _same_model(prov, model) and _kind_matches(prov, kind) and (seed is None or prov.get("seed") == seed):
            found.append((_order(prov), path, rows))
    found.sort(key=lambda item: item[0])
    for (key, first, _), (other, second, _) in zip(found, found[1:]):
        if key == other:
            raise ValueError(f"{first} and {second} hold runs of one configuration (model, method, press, ratio, "
                             "layer, protocol, seed): keep one of them in this folder")
    return [(path, rows) for _, path, rows in found]


def find_runs(results_dir: str | Path, model: str | None = None, kind: str = "pruning",
              seed: int | None = None) -> list[list[dict]]:
    """The rows of each run of `run_files` (same arguments), in its order."""
    return [rows for _, rows in run_files(results_dir, model, kind, seed)]
