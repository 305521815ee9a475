"""Blind copies of a data set: every item's audio replaced by silence of exactly the same length.

    from amlib.data.blind import silent_copy
    blind = silent_copy(samples, "results/blind/data")   # Samples of the silent copy, same ids

A model evaluated on the copy sees the question and options alone (the blind baseline): whatever it
scores above chance comes from the text or its prior, not from listening. Each silent file keeps the
original's sample rate, channel count and frame count, so after `load_audio` the model receives a
waveform of the original's length and builds as many audio tokens as for the real item; only the
content is gone. The manifest keeps ids, tasks, questions, choices, answers, source and split, and adds
`meta["blind_of"]`: the original audio file. The copy lives in its own folder (it must not be the
original's), so its predictions never mix with the real run's.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf

from amlib.data.manifest import Sample, read_manifest, write_manifest

BLIND_META_KEY = "blind_of"


def silent_audio_name(sample_id: str) -> str:
    """The silent file's path inside the copy, from the sample id (unsafe characters become '_')."""
    return f"audio/{re.sub(r'[^A-Za-z0-9._-]', '_', sample_id)}.wav"


def write_silence_like(original: Path, target: Path) -> None:
    """Write zeros with `original`'s sample rate, channels and frame count (PCM-16 WAV: exact zeros,
    byte-identical on every run, so a resumed evaluation recognises its inputs)."""
    try:
        info = sf.info(str(original))
    except Exception as err:
        raise OSError(f"{original}: cannot read the audio header to copy its length ({err})") from None
    if info.frames <= 0:
        raise ValueError(f"{original}: no audio frames, nothing to make silent")
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(target), np.zeros((info.frames, info.channels), dtype=np.int16), info.samplerate,
             subtype="PCM_16", format="WAV")


def silent_copy(samples: list[Sample], out_dir: str | Path) -> list[Sample]:
    """Write a silent copy of `samples` (audio + validated manifest) into `out_dir`; return its Samples
    in the same order. Raises ValueError if `out_dir` holds one of the originals' manifests, if two
    ids map to one file name, or if an original has no frames; OSError if one cannot be read."""
    if not samples:
        raise ValueError("no samples to copy")
    out_dir = Path(out_dir).resolve()
    roots = {Path(s.root).resolve() for s in samples}
    if out_dir in roots:
        raise ValueError(f"{out_dir}: the silent copy would overwrite the original data set's manifest; "
                         "choose another folder")
    rows, names = [], {}
    for sample in samples:
        name = silent_audio_name(sample.id)
        if names.setdefault(name, sample.id) != sample.id:
            raise ValueError(f"samples {names[name]!r} and {sample.id!r} map to the same silent file {name}")
        write_silence_like(sample.audio_path, out_dir / name)
        row = sample.to_json()
        row.update(audio=name, meta={**sample.meta, BLIND_META_KEY: str(sample.audio_path.resolve())})
        rows.append(row)
    write_manifest(out_dir / "manifest.jsonl", rows)
    copies = {s.id: s for s in read_manifest(out_dir)}
    return [copies[s.id] for s in samples]
