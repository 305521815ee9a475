"""ER and SAR items: the class is rendered through prosody and voice transforms, never through the words.

ER: an espeak-ng voice reads neutral generated sentences with SSML <prosody> rate/pitch/range. Every
item DRAWS its own settings uniformly from its emotion's ranges below (then +-ER_JITTER per sentence),
its pause range, and (angry, fearful) its soft-clip drive or tremor; ranges of different emotions
overlap little but no class has a single fixed value. Every item is loudness-normalised to -23 LUFS
like every other task's, so level carries no label information (generator version 1 gave each
emotion a fixed level, and loudness alone classified every item).

| emotion | rate % | pitch % | pitch range % | pauses (s) | extra |
|---|---|---|---|---|---|
| neutral | -8..8 | -8..8 | -12..12 | 0.35-0.6 | |
| happy | 10..26 | 20..40 | 50..90 | 0.25-0.45 | |
| sad | -38..-22 | -32..-18 | -85..-60 | 0.8-1.3 | |
| angry | 4..20 | -5..15 | 25..55 | 0.15-0.35 | tanh soft clip, drive 2.5..5 (vocal effort) |
| fearful | 22..38 | 35..55 | -50..-20 | 0.2-0.5 | pitch tremor 2-4.5 % at 4.5-6 Hz |

SAR (PROXIES, not real ages): any voice of the split reads generated sentences; the item is then
time-stretched to a speaking rate, pitch-shifted, and given vocal tremor (F0 and amplitude modulation
around 5 Hz) and breathiness (speech-shaped noise). Each item draws every setting uniformly from its
group's range; neighbouring groups' ranges overlap, so no single setting decides the group, and the
split enters every draw (train and test share no setting by construction of the seeds). Each voice
serves all five groups equally, so the voice itself tells nothing:

| group | words/s | pitch (cents) | tremor F0 % | tremor amplitude % | breath noise (dB) | pauses (s) |
|---|---|---|---|---|---|---|
| Young Adult (18-30) | 3.2-3.8 | +80..+220 | 0-0.2 | 0-2 | -58..-46 | 0.25-0.45 |
| Early Career (31-40) | 2.8-3.4 | -20..+120 | 0-0.4 | 0-4 | -52..-40 | 0.35-0.6 |
| Mid Career (41-50) | 2.5-3.1 | -120..+20 | 0.2-0.8 | 1-6 | -44..-36 | 0.45-0.7 |
| Senior (51-70) | 2.2-2.8 | -220..-80 | 0.7-1.7 | 5-12 | -36..-28 | 0.6-0.9 |
| Elderly (71+) | 1.8-2.4 | -320..-180 | 1.5-3.5 | 12-24 | -30..-22 | 0.8-1.2 |
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
from amlib.data.offline.items import Item, SuiteError, Window, assets_meta, read_aloud, sentence_stream
from amlib.data.offline.speech_tasks import voice_meta
from amlib.data.offline.voices import Prosody, speak, voices_of
from amlib.data.timeline import scale_timeline
from amlib.tasks import AGE_GROUPS


Range = tuple[float, float]


@dataclass(frozen=True)
class Emotion:
    rate: Range
    pitch: Range
    range: Range
    pause_s: Range
    drive: Range = (0.0, 0.0)  # soft-clip drive (0: none)
    tremor: Range = (0.0, 0.0)  # F0 modulation depth (fraction)


EMOTIONS = {
    "neutral": Emotion((-8, 8), (-8, 8), (-12, 12), (0.35, 0.6)),
    "happy": Emotion((10, 26), (20, 40), (50, 90), (0.25, 0.45)),
    "sad": Emotion((-38, -22), (-32, -18), (-85, -60), (0.8, 1.3)),
    "angry": Emotion((4, 20), (-5, 15), (25, 55), (0.15, 0.35), drive=(2.5, 5.0)),
    "fearful": Emotion((22, 38), (35, 55), (-50, -20), (0.2, 0.5), tremor=(0.02, 0.045)),
}
ER_JITTER = 4.0  # +- percentage points per sentence around the item's draw, so that no two sentences sound alike


@dataclass(frozen=True)
class AgeProxy:
    words_per_s: Range
    cents: Range
    tremor_f0: Range
    tremor_amp: Range
    breath_db: Range
    pause_s: Range


AGE_PROXIES = dict(zip(AGE_GROUPS, (
    AgeProxy((3.2, 3.8), (80, 220), (0.0, 0.002), (0.0, 0.02), (-58, -46), (0.25, 0.45)),
    AgeProxy((2.8, 3.4), (-20, 120), (0.0, 0.004), (0.0, 0.04), (-52, -40), (0.35, 0.6)),
    AgeProxy((2.5, 3.1), (-120, 20), (0.002, 0.008), (0.01, 0.06), (-44, -36), (0.45, 0.7)),
    AgeProxy((2.2, 2.8), (-220, -80), (0.007, 0.017), (0.05, 0.12), (-36, -28), (0.6, 0.9)),
    AgeProxy((1.8, 2.4), (-320, -180), (0.015, 0.035), (0.12, 0.24), (-30, -22), (0.8, 1.2)),
)))
TREMOR_HZ = (4.5, 6.0)


def _draw(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(*bounds)) if bounds[1] > bounds[0] else float(bounds[0])


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
    if db is None or db <= -90:
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
    rate, pitch, range_ = _draw(rng, emotion.rate), _draw(rng, emotion.pitch), _draw(rng, emotion.range)
    pause = sorted((_draw(rng, emotion.pause_s), _draw(rng, emotion.pause_s)))
    drive, tremor = _draw(rng, emotion.drive), _draw(rng, emotion.tremor)

    def prosody() -> Prosody:
        j = rng.uniform(-ER_JITTER, ER_JITTER, size=3)
        return Prosody(rate + j[0], pitch + j[1], range_ + j[2])

    reading = read_aloud(sentence_stream(rng, ctx.split), voice, window, rng, (pause[0], pause[1] + 0.05), prosody,
                         what=f"ER item {index}")
    wave = reading.wave
    transforms = [f"espeak-ng SSML prosody rate {rate:+.1f}% pitch {pitch:+.1f}% range {range_:+.1f}% "
                  f"(+-{ER_JITTER:g} per sentence)", f"pauses {pause[0]:.2f}-{pause[1] + 0.05:.2f} s"]
    if tremor:
        hz = rng.uniform(*TREMOR_HZ)
        wave = vibrato(wave, tremor, hz, rng)
        transforms.append(f"pitch tremor {tremor:.1%} at {hz:.1f} Hz")
    if drive:
        peak = float(np.abs(wave).max())
        wave = (np.tanh(drive * wave / peak) / np.tanh(drive)).astype(np.float32)
        transforms.append(f"tanh soft clip, drive {drive:.2f}")
    return Item(wave, label, {**voice_meta(voice), "synthetic": True, "transforms": transforms,
                              "prosody": {"rate": round(rate, 2), "pitch": round(pitch, 2), "range": round(range_, 2),
                                          "pause_s": [round(pause[0], 3), round(pause[1] + 0.05, 3)],
                                          "drive": round(drive, 3), "tremor": round(tremor, 4)},
                              "n_sentences": len(reading.texts), "transcript": " ".join(reading.texts),
                              "assets": assets_meta(tts=[voice], texts=reading.texts),
                              # vibrato (a delay of < 2 ms) and soft clipping keep every sample position
                              "timeline": reading.timeline()},
                question="What emotion does the speaker express?")


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
    words_per_s, cents = _draw(rng, proxy.words_per_s), _draw(rng, proxy.cents)
    tremor_f0, tremor_amp, breath_db = _draw(rng, proxy.tremor_f0), _draw(rng, proxy.tremor_amp), _draw(rng, proxy.breath_db)
    pause_lo, pause_hi = sorted((_draw(rng, proxy.pause_s), _draw(rng, proxy.pause_s)))
    pause_hi += 0.05
    tempo = words_per_s / words_per_second(voice)  # > 1: faster than the voice's own rate
    margin = 0.25  # s kept free on both sides of the window for WSOLA's rounding
    if window.max_s - window.min_s <= 2 * margin:
        raise SuiteError(f"SAR item {index}: the window [{window.min_s}, {window.max_s}] s is too narrow")
    native = Window(min(max(window.target_s, window.min_s + margin), window.max_s - margin) * tempo,
                    (window.min_s + margin) * tempo, (window.max_s - margin) * tempo)
    pause = (pause_lo * tempo, pause_hi * tempo)  # pauses stretch with the speech
    reading = read_aloud(sentence_stream(rng, ctx.split), voice, native, rng, pause, what=f"SAR item {index}")
    wave = sox_tempo_pitch(reading.wave, tempo, cents)
    hz = rng.uniform(*TREMOR_HZ)
    wave = tremolo(vibrato(wave, tremor_f0, hz, rng), tremor_amp, hz, rng)
    wave = breathiness(wave, breath_db, rng)
    window.check(wave, f"SAR item {index}")
    drawn = {"words_per_s": round(words_per_s, 3), "cents": round(cents, 1), "tremor_f0": round(tremor_f0, 5),
             "tremor_amp": round(tremor_amp, 4), "breath_db": round(breath_db, 2),
             "pause_s": [round(pause_lo, 3), round(pause_hi, 3)], "tremor_hz": round(float(hz), 2)}
    return Item(wave, label, {**voice_meta(voice), "synthetic": True, "age_proxy": True, "proxy": drawn,
                              "transforms": [f"sox tempo {tempo:.3f} (to {words_per_s:.2f} words/s)",
                                             f"sox pitch {cents:+.0f} cents",
                                             f"tremor F0 {tremor_f0:.2%} amp {tremor_amp:.1%} at {hz:.1f} Hz",
                                             f"breath noise {breath_db:.1f} dB"],
                              "n_sentences": len(reading.texts), "transcript": " ".join(reading.texts),
                              "assets": assets_meta(tts=[voice], texts=reading.texts),
                              # sox tempo rescales time; tremor and breath noise keep sample positions
                              "timeline": scale_timeline(reading.timeline(), wave.size / reading.n_samples)},
                question="What is the speaker's age group?")
