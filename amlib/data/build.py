"""Build-once entry point for datasets: reuse a built folder when it was built with the same settings."""

from __future__ import annotations

import json
from pathlib import Path

BUILDERS = ("skeleton",)


def ensure_dataset(out_dir: str | Path, source: str = "skeleton", **settings) -> Path:
    """Build `source` into `out_dir` unless it already holds a build with identical settings."""
    out_dir = Path(out_dir)
    record = out_dir / "build.json"
    wanted = {"source": source, **settings}
    if record.is_file() and (out_dir / "manifest.jsonl").is_file():
        if json.loads(record.read_text()) == wanted:
            return out_dir
    if source != "skeleton":
        raise ValueError(f"unknown source {source!r}; available: {', '.join(BUILDERS)}")
    from amlib.data.offline.skeleton import build_skeleton

    build_skeleton(out_dir, **settings)
    record.write_text(json.dumps(wanted, indent=1))
    return out_dir
