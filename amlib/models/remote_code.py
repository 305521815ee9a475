"""Families whose checkpoints ship their own model code (no transformers class).

Their code runs with `trust_remote_code=True`, but ONLY from a local snapshot folder: every load
passes `local_files_only=True`, so nothing (code or weights) is fetched at run time and the result
is the same with or without HF_HUB_OFFLINE. A missing or incomplete folder raises
`SnapshotMissingError`, which says which repository to download, with which command, and where.

A hub id may be given instead of a path: it is looked up under `snapshots_root()`
(`$AMLIB_SNAPSHOTS`, default `~/.cache/amlib/snapshots`) as `<owner>--<name>`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from amlib.efficiency import timed_generate
from amlib.models.assets import cache_dir
from amlib.models.base import AudioLMAdapter, Generation, PreparedInputs

SNAPSHOTS_ENV = "AMLIB_SNAPSHOTS"


class SnapshotMissingError(FileNotFoundError):
    """The local snapshot a remote-code family needs is absent or incomplete."""


@dataclass(frozen=True)
class SnapshotSpec:
    repo_id: str  # where the snapshot comes from (hub id)
    required: tuple[str, ...]  # paths inside the folder that prove it is that snapshot
    transformers_version: str  # the version its code was written against
    source: str = "huggingface"  # "huggingface", or "github" for code taken from a git branch
    note: str = ""  # extra download instructions


def snapshots_root() -> Path:
    root = os.environ.get(SNAPSHOTS_ENV)
    return Path(root).expanduser() if root else cache_dir() / "snapshots"


def default_snapshot_dir(repo_id: str) -> Path:
    return snapshots_root() / repo_id.replace("/", "--")


def download_command(spec: SnapshotSpec, target: Path) -> str:
    if spec.source == "github":
        return f"git clone https://github.com/{spec.repo_id} {target}"
    return f"hf download {spec.repo_id} --local-dir {target}"


def resolve_snapshot(name_or_path: str | Path, spec: SnapshotSpec, family: str) -> Path:
    """The local folder for `name_or_path` (a path, or `spec.repo_id` looked up under the root)."""
    path = Path(name_or_path).expanduser()
    if not path.is_dir() and str(name_or_path) == spec.repo_id:
        path = default_snapshot_dir(spec.repo_id)
    missing = [name for name in spec.required if not (path / name).exists()] if path.is_dir() else []
    if path.is_dir() and not missing:
        return path
    what = f"is missing {', '.join(missing)}" if missing else "does not exist"
    raise SnapshotMissingError(
        f"{family}: the local snapshot folder {path} {what}. Its model code runs with "
        f"trust_remote_code=True from a local folder only (nothing is downloaded at run time). "
        f"On a machine with internet run `{download_command(spec, path)}`, copy the folder here and "
        f"pass its path (or put it at {default_snapshot_dir(spec.repo_id)} and pass '{spec.repo_id}'). "
        f"Its code was written for transformers=={spec.transformers_version}. {spec.note}".strip()
    )


def snapshot_revision(path: Path, marker: str = "config.json") -> str:
    """The commit `hf download --local-dir` recorded for `marker`, else 'local-unknown'."""
    meta = path / ".cache" / "huggingface" / "download" / f"{marker}.metadata"
    if meta.is_file():
        commit = meta.read_text(encoding="utf-8").splitlines()[:1]
        if commit and commit[0].strip():
            return commit[0].strip()
    return "local-unknown"


def warn_if_other_transformers(spec: SnapshotSpec, family: str) -> None:
    import transformers

    if transformers.__version__ != spec.transformers_version:
        warnings.warn(
            f"{family}: its remote code was written for transformers=={spec.transformers_version}, "
            f"this environment has {transformers.__version__}; if loading fails, use a separate "
            f"environment with that version (docs/remote-code-models.md)", stacklevel=3,
        )


def dtype_kwargs(dtype: str | torch.dtype | None) -> dict:
    """`from_pretrained`'s dtype argument: `torch_dtype` before transformers 4.56, `dtype` after."""
    import transformers
    from packaging.version import Version

    name = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    return {name: dtype or "auto"}


def refuse_online(local_files_only: bool | None, family: str) -> None:
    if local_files_only is False:
        raise ValueError(f"{family}: remote code is only loaded from a local snapshot folder; "
                         "local_files_only=False is not supported")


class RemoteCodeAdapter(AudioLMAdapter):
    """An adapter whose model object comes from a snapshot's own code."""

    snapshot: SnapshotSpec

    @classmethod
    def locate(cls, name_or_path: str | Path) -> Path:
        return resolve_snapshot(name_or_path, cls.snapshot, cls.family)

    def generate_kwargs(self) -> dict:
        """Extra `generate` arguments the family's own usage examples pass (e.g. its eos id)."""
        return {}

    @torch.inference_mode()
    def generate(self, prepared: PreparedInputs, max_new_tokens: int) -> Generation:
        tensors = {k: v.to(self.device) for k, v in prepared.tensors.items()}
        out, timing = timed_generate(
            self.model, tensors, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=self.pad_token_id, **self.generate_kwargs(),
        )
        new = out[0, tensors["input_ids"].shape[1]:]
        text = self.processor.tokenizer.decode(new, skip_special_tokens=True)
        return Generation(text=text.strip(), new_tokens=int(new.numel()), timing=timing, inputs=prepared)

    def provenance(self) -> dict:
        return {**super().provenance(), "snapshot_repo": self.snapshot.repo_id,
                "remote_code_transformers": self.snapshot.transformers_version}
