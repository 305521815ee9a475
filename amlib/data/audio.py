"""Audio I/O: everything reaches the models as 16 kHz mono float32.

`load_audio` refuses bad audio with an error that names the file: unreadable (OSError), no samples
(a valid header with zero frames) or non-finite samples (NaN/Inf, possible in float WAV files)
(`AudioError`, a ValueError). In the runner such a sample becomes an error row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16_000


class AudioError(ValueError):
    """An audio file was read but its content is unusable; the message names the file."""


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read any soundfile-readable file as mono float32 at `sample_rate` (resampled with librosa).

    Raises OSError (unreadable) or AudioError (no samples, NaN/Inf samples), naming the file.
    """
    try:
        wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile's errors do not always name the file
        raise OSError(f"{path}: cannot read audio ({err})") from err
    if wave.shape[0] == 0:
        raise AudioError(f"{path}: no audio samples (the file has a header but zero frames)")
    bad = ~np.isfinite(wave)
    if bad.any():
        first = int(np.argmax(bad.any(axis=1)))
        raise AudioError(f"{path}: {int(bad.sum())} non-finite sample value(s) (NaN/Inf), the first at "
                         f"{first / sr:.3f} s")
    wave = wave.mean(axis=1)
    if sr != sample_rate:
        import librosa

        wave = librosa.resample(wave, orig_sr=sr, target_sr=sample_rate)
    return np.ascontiguousarray(wave, dtype=np.float32)


def write_audio(path: str | Path, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(wave, dtype=np.float32), sample_rate, subtype="PCM_16")
