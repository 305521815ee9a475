"""ER and SAR items: the class is rendered through prosody and voice transforms, never through the words.

ER: an espeak-ng voice reads neutral generated sentences with SSML <prosody> rate/pitch/range set per
emotion (jittered per sentence), pauses of the emotion's length, and the item's loudness set to the
emotion's level (the pipeline's loudness normalisation is skipped for ER so that volume stays a cue):

| emotion | rate | pitch | pitch range | pauses | loudness | extra |
|---|---|---|---|---|---|---|
| neutral | 0 % | 0 % | 0 % | 0.35-0.6 s | -23 LUFS | |
| happy | +18 % | +30 % | +70 % | 0.25-0.45 s | -20 LUFS | |
| sad | -30 % | -25 % | -75 % | 0.8-1.3 s | -30 LUFS | |
| angry | +12 % | +5 % | +40 % | 0.15-0.35 s | -16 LUFS | soft-clip drive (vocal effort) |
| fearful | +30 % | +45 % | -35 % | 0.2-0.5 s | -26 LUFS | 6 Hz pitch tremor, 3 % deep |

SAR (PROXIES, not real ages): any voice of the split reads generated sentences; the item is then
time-stretched to the age group's speaking rate (measured words per second of the voice, so every
engine lands on the same rate), pitch-shifted, and given vocal tremor (F0 and amplitude modulation
around 5 Hz) and breathiness (speech-shaped noise) that grow with age. Each voice serves all five
groups equally, so the voice itself tells nothing:

| group | words/s | pitch | tremor F0 / amplitude | breath noise | pauses |
|---|---|---|---|---|---|
| Young Adult (18-30) | 3.5 | +150 cents | 0 / 0 | none | 0.25-0.45 s |
| Early Career (31-40) | 3.1 | +50 cents | 0 / 0 | none | 0.35-0.6 s |
| Mid Career (41-50) | 2.8 | -50 cents | 0.4 % / 3 % | -40 dB | 0.45-0.7 s |
| Senior (51-70) | 2.5 | -150 cents | 1.2 % / 8 % | -32 dB | 0.6-0.9 s |
| Elderly (71+) | 2.1 | -250 cents | 2.5 % / 18 % | -26 dB | 0.8-1.2 s |
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from amlib.data.audio import SAMPLE_RATE
from amlib.data.offline.assets import db_to_gain, require_binary, rms
from amlib.data.offline.items import Item, SuiteError, Window, read_aloud, sentence_stream
from amlib.data.offline.speech_tasks import voice_meta
from amlib.data.offline.voices import Prosody, speak, voices_of
from amlib.tasks import AGE_GROUPS


@dataclass(frozen=True)
class Emotion:
    rate: float
    pitch: float
    range: float
    pause_s: tuple[float, float]
    lufs: float
    drive: float = 0.0  # soft-clip drive (0: none)
    tremor: float = 0.0  # F0 modulation depth (fraction)


EMOTIONS = {
    "neutral": Emotion(0, 0, 0, (0.35, 0.6), -23.0),
    "happy": Emotion(18, 30, 70, (0.25, 0.45), -20.0),
    "sad": Emotion(-30, -25, -75, (0.8, 1.3), -30.0),
    "angry": Emotion(12, 5, 40, (0.15, 0.35), -16.0, drive=4.0),
    "fearful": Emotion(30, 45, -35, (0.2, 0.5), -26.0, tremor=0.03),
}
ER_JITTER = 6.0  # +- percentage points per sentence, so that no two sentences sound alike


@dataclass(frozen=True)
class AgeProxy:
    words_per_s: float
    cents: float
    tremor_f0: float
    tremor_amp: float
    breath_db: float | None
    pause_s: tuple[float, float]


AGE_PROXIES = dict(zip(AGE_GROUPS, (
    AgeProxy(3.5, 150, 0.0, 0.0, None, (0.25, 0.45)),
    AgeProxy(3.1, 50, 0.0, 0.0, None, (0.35, 0.6)),
    AgeProxy(2.8, -50, 0.004, 0.03, -40.0, (0.45, 0.7)),
    AgeProxy(2.5, -150, 0.012, 0.08, -32.0, (0.6, 0.9)),
    AgeProxy(2.1, -250, 0.025, 0.18, -26.0, (0.8, 1.2)),
)))
TREMOR_HZ = (4.5, 6.0)


def vibrato(wave: np.ndarray, depth: float, hz: float, rng: np.random.Generator) -> np.ndarray:
    """Pitch modulation by a time-varying delay: instantaneous frequency scales by 1 + depth*cos."""
    if depth <= 0:
        return wave
    t = np.arange(wave.size) / SAMPLE_RATE
    phase = rng.uniform(0, 2 * np.pi)
    delay = depth / (2 * np.pi * hz) * np.sin(2 * np.pi * hz * t + phase) * SAMPLE_RATE
    return np.interp(np.arange(wave.size) - delay, np.arange(wave.size), wave).astype(np.float32)


def tremolo(wave: np.ndarray, depth: float, hz: float, rng: np.random.Generator) -> np.ndarray:
    if depth <= 0:
        return wave
    t = np.arange(wave.size) / SAMPLE_RATE
    return (wave * (1 - depth / 2 + depth / 2 * np.sin(2 * np.pi * hz * t + rng.uniform(0, 2 * np.pi)))).astype(np.float32)


def breathiness(wave: np.ndarray, db: float | None, rng: np.random.Generator) -> np.ndarray:
    """High-passed noise that follows the speech envelope, `db` below the speech."""
    if db is None:
        return wave
    from scipy.signal import butter, sosfilt

    noise = sosfilt(butter(4, 2000, "highpass", fs=SAMPLE_RATE, output="sos"), rng.standard_normal(wave.size))
    win = int(0.03 * SAMPLE_RATE)
    envelope = np.sqrt(np.convolve(wave.astype(np.float64) ** 2, np.ones(win) / win, mode="same"))
    noise = noise * envelope
    return (wave + noise * (db_to_gain(db) * rms(wave) / max(rms(noise), 1e-12))).astype(np.float32)


def sox_tempo_pitch(wave: np.ndarray, tempo: float, cents: float) -> np.ndarray:
    """sox's WSOLA `tempo` (rate without pitch change) and `pitch` (shift without rate change)."""
    sox = require_binary("sox")
    with tempfile.TemporaryDirectory(prefix="amlib-sox-") as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        sf.write(str(src), wave, SAMPLE_RATE, subtype="FLOAT")
        cmd = [sox, "-q", str(src), str(dst), "pitch", f"{cents:.0f}", "tempo", "-s", f"{tempo:.4f}", "rate", str(SAMPLE_RATE)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SuiteError(f"`{' '.join(cmd)}` failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
        out, _ = sf.read(str(dst), dtype="float32")
    return out


def er_item(ctx, index: int, label: str, rng: np.random.Generator, window: Window) -> Item:
    emotion = EMOTIONS[label]
    voice = ctx.balanced_voice(index, voices_of(ctx.split, engine="espeak-ng"))

    def prosody() -> Prosody:
        j = rng.uniform(-ER_JITTER, ER_JITTER, size=3)
        return Prosody(emotion.rate + j[0], emotion.pitch + j[1], emotion.range + j[2])

    reading = read_aloud(sentence_stream(rng, ctx.split), voice, window, rng, emotion.pause_s, prosody,
                         what=f"ER item {index}")
    wave = reading.wave
    transforms = [f"espeak-ng SSML prosody rate {emotion.rate:+g}% pitch {emotion.pitch:+g}% range {emotion.range:+g}% "
                  f"(+-{ER_JITTER:g} per sentence)", f"loudness {emotion.lufs:g} LUFS"]
    if emotion.tremor:
        hz = rng.uniform(*TREMOR_HZ)
        wave = vibrato(wave, emotion.tremor, hz, rng)
        transforms.append(f"pitch tremor {emotion.tremor:.0%} at {hz:.1f} Hz")
    if emotion.drive:
        peak = float(np.abs(wave).max())
        wave = (np.tanh(emotion.drive * wave / peak) / np.tanh(emotion.drive)).astype(np.float32)
        transforms.append(f"tanh soft clip, drive {emotion.drive:g}")
    return Item(wave, label, {**voice_meta(voice), "synthetic": True, "transforms": transforms,
                              "n_sentences": len(reading.texts), "transcript": " ".join(reading.texts)},
                question="What emotion does the speaker express?", loudness_lufs=emotion.lufs)


CALIBRATION_TEXT = ("The north wind and the sun were arguing about which of them was stronger.",
                    "A traveller came along the road, wrapped in a warm and heavy cloak.",
                    "They agreed that the one who first made him take off his cloak was the stronger.")


@functools.lru_cache(maxsize=None)
def words_per_second(voice) -> float:
    """The voice's own speaking rate on fixed calibration sentences (not used in any item)."""
    speech = sum(speak(t, voice).size for t in CALIBRATION_TEXT) / SAMPLE_RATE
    return sum(len(t.split()) for t in CALIBRATION_TEXT) / speech


def sar_item(ctx, index: int, label: str, rng: np.random.Generator, window: Window) -> Item:
    proxy = AGE_PROXIES[label]
    voice = ctx.balanced_voice(index, voices_of(ctx.split))
    tempo = proxy.words_per_s / words_per_second(voice)  # > 1: faster than the voice's own rate
    margin = 0.25  # s kept free on both sides of the window for WSOLA's rounding
    if window.max_s - window.min_s <= 2 * margin:
        raise SuiteError(f"SAR item {index}: the window [{window.min_s}, {window.max_s}] s is too narrow")
    native = Window(min(max(window.target_s, window.min_s + margin), window.max_s - margin) * tempo,
                    (window.min_s + margin) * tempo, (window.max_s - margin) * tempo)
    pause = (proxy.pause_s[0] * tempo, proxy.pause_s[1] * tempo)  # pauses stretch with the speech
    reading = read_aloud(sentence_stream(rng, ctx.split), voice, native, rng, pause, what=f"SAR item {index}")
    wave = sox_tempo_pitch(reading.wave, tempo, proxy.cents)
    hz = rng.uniform(*TREMOR_HZ)
    wave = tremolo(vibrato(wave, proxy.tremor_f0, hz, rng), proxy.tremor_amp, hz, rng)
    wave = breathiness(wave, proxy.breath_db, rng)
    window.check(wave, f"SAR item {index}")
    return Item(wave, label, {**voice_meta(voice), "synthetic": True, "age_proxy": True,
                              "transforms": [f"sox tempo {tempo:.3f} (to {proxy.words_per_s} words/s)",
                                             f"sox pitch {proxy.cents:+g} cents",
                                             f"tremor F0 {proxy.tremor_f0:.1%} amp {proxy.tremor_amp:.0%} at {hz:.1f} Hz",
                                             f"breath noise {proxy.breath_db} dB"],
                              "n_sentences": len(reading.texts), "transcript": " ".join(reading.texts)},
                question="What is the speaker's age group?")
