"""Compact copies of datasets for shipping to a training machine (Opus in Ogg).

A GPU machine reached through a 64 MiB-per-call channel gets the train split as Opus at ~16 kbit/s
(~2 KB per second of audio) instead of 256 kbit/s (16-bit WAV); the manifest is rewritten to the .ogg
files and validated. The loss is perceptual coding noise, the same for every task. Encoding uses the
`ffmpeg` command-line tool (libopus, complexity 5: ~100x real time per core) when it is installed,
else libsndfile through soundfile (~30x real time); the decoder on the other side is libsndfile
(soundfile) either way.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile as sf

from amlib.data import SAMPLE_RATE, load_audio, read_manifest, write_manifest

BITRATE_KBPS = 16
SOUNDFILE_LEVEL = 0.96  # libsndfile's compression level that gives ~15 kbit/s (measured on speech)


def encode_opus(src: Path, dst: Path, kbps: int = BITRATE_KBPS) -> None:
    if shutil.which("ffmpeg"):
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-ac", "1", "-ar", str(SAMPLE_RATE),
               "-c:a", "libopus", "-b:a", f"{kbps}k", "-compression_level", "5", str(dst)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"ffmpeg failed on {src}: {done.stderr.strip()}")
    else:
        sf.write(dst, load_audio(src), SAMPLE_RATE, format="OGG", subtype="OPUS", compression_level=SOUNDFILE_LEVEL)


def _encode_once(src: Path, dst: Path, kbps: int) -> None:
    """Encode unless `dst` exists: a re-run (a grown dataset, an interrupted pack) encodes only what is new.
    Written under a temporary name first, so a killed run leaves no partial file under the real one."""
    if dst.is_file():
        return
    tmp = dst.with_name(f".{dst.stem}.part{dst.suffix}")
    encode_opus(src, tmp, kbps)
    tmp.replace(dst)


def compress_dataset(src: str | Path, dst: str | Path, kbps: int = BITRATE_KBPS, workers: int = 2) -> Path:
    """Write `dst/manifest.jsonl` + `dst/audio/*.ogg` (Opus) from the dataset in `src`."""
    dst = Path(dst)
    samples = read_manifest(src)
    jobs = []
    for sample in samples:
        rel = str(Path(sample.audio).with_suffix(".ogg"))
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        jobs.append((sample, rel))
    with ThreadPoolExecutor(workers) as pool:  # each job waits on its own ffmpeg process
        list(pool.map(lambda job: _encode_once(job[0].audio_path, dst / job[1], kbps), jobs))
    write_manifest(dst / "manifest.jsonl", [{**s.to_json(), "audio": rel} for s, rel in jobs])
    read_manifest(dst)  # validates the rewritten manifest and that every file exists
    (dst / "packed.json").write_text(json.dumps({"from": str(src), "format": "ogg/opus", "kbps": kbps}))
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


def shard_dataset(src: str | Path, out_dir: str | Path, max_bytes: list[int] | int) -> list[Path]:
    """Split a packed dataset into folders `out_dir/<name>-NN` (own manifest + audio) of at most
    `max_bytes` of audio each (a list: the budget of each successive shard, the last one repeating),
    in manifest order: what one 64 MiB transfer can carry."""
    src, out_dir = Path(src), Path(out_dir)
    budgets = [max_bytes] if isinstance(max_bytes, int) else list(max_bytes)
    shards: list[list] = [[]]
    used = 0
    for sample in read_manifest(src):
        size = sample.audio_path.stat().st_size
        budget = budgets[min(len(shards) - 1, len(budgets) - 1)]
        if size > budget:
            raise ValueError(f"{sample.audio_path}: {size} bytes, more than a shard's {budget}")
        if used + size > budget:
            shards.append([])
            used = 0
        shards[-1].append(sample)
        used += size
    paths = []
    for i, rows in enumerate(shards):
        dst = out_dir / f"{src.name}-{i:02d}"
        for sample in rows:
            (dst / sample.audio).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sample.audio_path, dst / sample.audio)
        write_manifest(dst / "manifest.jsonl", [s.to_json() for s in rows])
        paths.append(dst)
    return paths
