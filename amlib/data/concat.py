"""Steps 2-3 of the paper's pipeline: group short clips into long items and merge their audio.

`pack_clips` decides which clips form one item (per-task grouping happens before: the caller passes
the clips of ONE group, e.g. one speaker and chapter, in the order they should play). It never pads
and never drops silently: clips that cannot be placed are returned with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from amlib.data.audio import SAMPLE_RATE


@dataclass(frozen=True)
class Clip:
    key: str  # anything that identifies the clip for the caller (a path, an utterance id)
    duration_s: float


@dataclass
class Packing:
    items: list[list[Clip]] = field(default_factory=list)
    unplaced: list[tuple[Clip, str]] = field(default_factory=list)  # (clip, why)

    def report(self) -> str:
        why: dict[str, int] = {}
        for _, reason in self.unplaced:
            why[reason] = why.get(reason, 0) + 1
        return f"{len(self.items)} items; unplaced clips: " + (", ".join(f"{n} {r}" for r, n in why.items()) or "none")


def item_seconds(clips: list[Clip], gap_s: float) -> float:
    return sum(c.duration_s for c in clips) + gap_s * max(0, len(clips) - 1)


def pack_clips(clips: list[Clip], min_s: float, max_s: float, gap_s: float = 0.0,
               rng: np.random.Generator | None = None) -> Packing:
    """Greedy, order-preserving packing of `clips` into items of min_s..max_s seconds.

    Without `rng` an item is closed when the next clip would exceed max_s; with `rng` each item gets
    a target drawn uniformly from [min_s, max_s] and is closed once it reaches it, which spreads the
    durations over the window. A run of clips that cannot reach min_s is reported as unplaced.
    """
    if not 0 < min_s <= max_s:
        raise ValueError(f"need 0 < min_s <= max_s, got {min_s}, {max_s}")
    packing, current = Packing(), []
    target = _draw(rng, min_s, max_s)

    def close():
        nonlocal current, target
        if current and item_seconds(current, gap_s) >= min_s:
            packing.items.append(current)
        else:
            packing.unplaced += [(c, f"group shorter than {min_s:g} s") for c in current]
        current, target = [], _draw(rng, min_s, max_s)

    for clip in clips:
        if clip.duration_s > max_s:
            packing.unplaced.append((clip, f"clip longer than {max_s:g} s"))
            continue
        if current and item_seconds(current + [clip], gap_s) > max_s:
            close()
        current.append(clip)
        if item_seconds(current, gap_s) >= target:
            close()
    close()
    return packing


def _draw(rng: np.random.Generator | None, low: float, high: float) -> float:
    return high if rng is None else float(rng.uniform(low, high))


def concat_audio(waves: list[np.ndarray], gap_s: float = 0.0, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Clips one after another with `gap_s` of silence between them."""
    if not waves:
        raise ValueError("nothing to concatenate")
    gap = np.zeros(int(round(gap_s * sample_rate)), dtype=np.float32)
    parts: list[np.ndarray] = []
    for i, wave in enumerate(waves):
        if i:
            parts.append(gap)
        parts.append(np.asarray(wave, dtype=np.float32))
    return np.concatenate(parts)


def repeat_to(wave: np.ndarray, min_s: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Repeat a clip until it lasts at least min_s: only for builders whose documented rule says so
    (the paper pads HAD items this way)."""
    need = int(np.ceil(min_s * sample_rate))
    if len(wave) == 0:
        raise ValueError("cannot repeat an empty clip")
    reps = int(np.ceil(need / len(wave)))
    return np.tile(wave, reps)[: max(need, len(wave))]


def loudness_normalize(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, target_lufs: float = -23.0,
                       peak_dbfs: float = -1.0) -> np.ndarray:
    """EBU R128 integrated loudness to `target_lufs` (pyloudnorm), then a peak ceiling so nothing clips.
    Silence (or audio too short to measure, < 0.4 s) is returned unchanged."""
    import pyloudnorm

    wave = np.asarray(wave, dtype=np.float32)
    if len(wave) < int(0.4 * sample_rate) or not np.any(wave):
        return wave
    loudness = pyloudnorm.Meter(sample_rate).integrated_loudness(wave.astype(np.float64))
    if not np.isfinite(loudness):
        return wave
    out = wave * np.float32(10 ** ((target_lufs - loudness) / 20))
    ceiling = 10 ** (peak_dbfs / 20)
    peak = float(np.max(np.abs(out)))
    if peak > ceiling:
        out *= np.float32(ceiling / peak)
    return out.astype(np.float32)
