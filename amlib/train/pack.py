"""Compact copies of datasets for shipping to a training machine (Opus in Ogg via soundfile).

A GPU machine reached through a 64 MiB-per-call channel gets the train split as Opus at ~3 KB per
second of audio instead of 32 KB (16-bit WAV); the manifest is rewritten to the .ogg files and
validated. The loss is perceptual coding noise, the same for every task.
"""

from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf

from amlib.data import SAMPLE_RATE, load_audio, read_manifest, write_manifest

OPUS_LEVEL = 0.93  # libsndfile compression level: ~23 kbit/s for speech


def compress_dataset(src: str | Path, dst: str | Path, level: float = OPUS_LEVEL) -> Path:
    """Write `dst/manifest.jsonl` + `dst/audio/*.ogg` (Opus) from the dataset in `src`."""
    dst = Path(dst)
    rows = []
    for sample in read_manifest(src):
        rel = str(Path(sample.audio).with_suffix(".ogg"))
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(dst / rel, load_audio(sample.audio_path), SAMPLE_RATE, format="OGG", subtype="OPUS",
                 compression_level=level)
        rows.append({**sample.to_json(), "audio": rel})
    write_manifest(dst / "manifest.jsonl", rows)
    (dst / "packed.json").write_text(json.dumps({"from": str(src), "format": "ogg/opus", "level": level}))
    return dst


def split_file(path: str | Path, part_bytes: int, out_dir: str | Path) -> list[Path]:
    """`path` cut into numbered parts of at most `part_bytes` (joined back with `cat` in order)."""
    path, out_dir = Path(path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    with path.open("rb") as fh:
        for i, chunk in enumerate(iter(lambda: fh.read(part_bytes), b"")):
            part = out_dir / f"{path.name}.part{i:02d}"
            part.write_bytes(chunk)
            parts.append(part)
    return parts
