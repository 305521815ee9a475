"""Every offline item at the pipeline's loudness target WITHOUT the peak ceiling changing its level.

`write_item` (amlib.data.sources.common) normalises an item to -23 LUFS and then, if a sample passes
-1 dBFS, turns the WHOLE item down until its peak is at -1 dBFS. Items with a high peak-to-loudness
ratio (impulsive sounds: gunshots, growls, office alerts over a quiet bed) then ended 7-12 LU below
the target, and integrated loudness told the class (shortcut probe, generator version 2: SED 38 %,
ASC 40 % with chance 20-25 %). Since generator version 3 every item passes `to_target` first: a
look-ahead peak limiter (gain never above 1, never lets a sample past LIMIT_DBFS, attack = hold =
LOOKAHEAD_S, smoothed over SMOOTH_S) with its input gain found by bisection so that the LIMITED item
measures TARGET_LUFS. Items whose peaks already fit are only scaled. `write_item`'s own normalisation
then changes the level by less than LOUDNESS_TOL_LU and never reaches its ceiling.
"""

from __future__ import annotations

import numpy as np

from amlib.data.audio import SAMPLE_RATE

TARGET_LUFS = -23.0  # amlib.data.concat.loudness_normalize's default target
CEILING_DBFS = -1.0  # ... and its peak ceiling
LIMIT_DBFS = -2.0  # the limiter's ceiling: 1 dB below write_item's, so its re-normalisation never reaches it
LOUDNESS_TOL_LU = 0.05
LOOKAHEAD_S = 0.01
SMOOTH_S = 0.01


def integrated_loudness(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    import pyloudnorm

    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(np.asarray(wave, dtype=np.float64)))


def limiter_gain(wave: np.ndarray, ceiling: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Per-sample gain (<= 1) that keeps |wave * gain| <= ceiling: the needed gain's running minimum over
    +-LOOKAHEAD_S, then a moving average over SMOOTH_S (<= LOOKAHEAD_S, so every averaged value is at
    most the gain needed at the window's centre: the average cannot overshoot)."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    need = np.minimum(1.0, ceiling / np.maximum(np.abs(wave.astype(np.float64)), 1e-12))
    if need.min() >= 1.0:
        return np.ones_like(need)
    hold = int(LOOKAHEAD_S * sample_rate)
    smooth = max(1, int(SMOOTH_S * sample_rate))
    held = minimum_filter1d(need, size=2 * hold + 1, mode="nearest")
    gain = uniform_filter1d(held, size=smooth, mode="nearest")
    return np.minimum(gain, need)  # float rounding of the average: never above what is needed


def to_target(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, target_lufs: float = TARGET_LUFS,
              limit_dbfs: float = LIMIT_DBFS) -> tuple[np.ndarray, dict]:
    """(wave at `target_lufs` with no sample above `limit_dbfs`, report). The report gives the input gain
    (dB), the limiter's largest gain reduction (dB, 0 when it did nothing) and the loudness reached.
    Silence or audio too short to measure is returned unchanged."""
    wave = np.asarray(wave, dtype=np.float32)
    loud = integrated_loudness(wave, sample_rate) if wave.size >= int(0.4 * sample_rate) and np.any(wave) else -np.inf
    if not np.isfinite(loud):
        return wave, {"gain_db": 0.0, "limiter_max_gr_db": 0.0, "lufs": None}
    ceiling = 10 ** (limit_dbfs / 20)
    x = wave.astype(np.float64)

    def render(gain_db: float) -> tuple[np.ndarray, float]:
        y = x * 10 ** (gain_db / 20)
        g = limiter_gain(y, ceiling, sample_rate)
        return y * g, float(g.min())

    low = target_lufs - loud  # plain normalisation: the limited result can only be quieter
    out, gmin = render(low)
    reached = integrated_loudness(out, sample_rate)
    gain = low
    if gmin < 1.0 and reached < target_lufs - LOUDNESS_TOL_LU:
        high = low + 6.0
        while integrated_loudness(render(high)[0], sample_rate) < target_lufs:
            low, high = high, high + 6.0
            if high - (target_lufs - loud) > 48.0:
                raise ValueError(f"to_target: cannot reach {target_lufs} LUFS under {limit_dbfs} dBFS")
        for _ in range(40):
            gain = (low + high) / 2
            out, gmin = render(gain)
            reached = integrated_loudness(out, sample_rate)
            if abs(reached - target_lufs) <= LOUDNESS_TOL_LU / 2:
                break
            low, high = (gain, high) if reached < target_lufs else (low, gain)
    out = out.astype(np.float32)
    return out, {"gain_db": round(float(gain), 2), "limiter_max_gr_db": round(max(0.0, float(-20 * np.log10(gmin))), 2),
                 "lufs": round(float(reached), 2)}
