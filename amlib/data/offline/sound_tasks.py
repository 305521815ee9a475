"""SED and ASC items: real event sounds (wesnoth, freedesktop) over ambience beds, mixed with numpy.

Every sound file belongs to exactly one group of SOUND_GROUPS, and its split is fixed by alternation
within that group (assets.alternate_split), so a WHOLE file serves one split in every task (no file is
cut into halves for the two splits). Groups with few files: camp-ambience (campfire, night: one per
split), laughter, phone, counter, horse (one per split), ship (one file: test only; the train
split's harbour has no real bed, only its synthetic waves and wind, and its real horn events).
Synthetic generators (wind, waves, HVAC, typing, pink noise) draw their parameters from ranges that
differ by split and do not overlap (GENERATOR_RANGES), with split-salted seeds, so no identical
texture can appear in both splits. Every item records its files (with the sha1 of their decoded
samples), generators and parameters in meta["assets"].

SED: a long, quiet bed (a real bird ambience loop of the split plus pink noise) with the target event
occurring several times (one every 12-30 s; at least three in items of 60 s or more, at least one
in shorter ones), 14-20 dB above the bed, and no other
event. ASC: a scene is its characteristic ambience (loops and synthetic textures) plus its typical
events at random times; see SCENES.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amlib.data.audio import SAMPLE_RATE
from amlib.data.offline.assets import (
    DRASCULA_DIR, FREEDESKTOP_SOUNDS, WESNOTH_CAMPAIGN_SOUNDS, WESNOTH_SOUNDS, alternate_split, at_rms_db,
    load_sound, loop_to, place, require_path,
)
from amlib.data.offline.items import Item, SuiteError, Window, assets_meta
from amlib.data.offline.voices import speak, voices_of
from amlib.data.timeline import timeline

W, FD = WESNOTH_SOUNDS, FREEDESKTOP_SOUNDS
SOUND_GROUPS = {
    "birds": [(W, "ambient/birds1.ogg"), (W, "ambient/birds2.ogg"), (W, "ambient/birds3.ogg"), (W, "ambient/morning.ogg")],
    "horse": [(W, "horse-canter.wav"), (W, "horse-elf-canter.wav")],
    "wolf": [(W, f"wolf-growl-{i}.ogg") for i in range(1, 5)],
    "gunshot": [(W, "gunshot.wav"), (W, "thunderstick.ogg"), (W, "thunderstick-miss.ogg")],
    "horn": [(W, f"horn-signals/horn-{i}.ogg") for i in range(1, 9)],
    "phone": [(FD, "phone-incoming-call.oga"), (FD, "phone-outgoing-calling.oga")],
    "office-alerts": [(FD, f"{n}.oga") for n in ("message-new-instant", "complete", "trash-empty", "service-login",
                                                 "service-logout", "camera-shutter", "dialog-warning", "suspend-error")],
    "laughter": [(W, "dwarf-laugh.wav"), (WESNOTH_CAMPAIGN_SOUNDS, "witches-laugh.wav")],
    "counter": [(FD, "bell.oga"), (W, "gold.ogg")],
    "camp-ambience": [(W, "ambient/campfire.ogg"), (W, "ambient/night.ogg")],
    "ship": [(W, "ambient/ship.ogg")],  # one file: alternation gives it to the test split only
}

# SED class -> (sound group, times each occurrence plays back to back: a gallop is a run of canters)
SED_EVENTS = {
    "horse galloping": ("horse", 3),
    "wolf growling": ("wolf", 1),
    "gunshot": ("gunshot", 1),
    "horn signal": ("horn", 1),
    "telephone ringing": ("phone", 2),
}
SED_BED_DB, SED_EVENT_DB = -40.0, (-26.0, -20.0)
SED_SPACING_S = (12.0, 30.0)


def group_files(group: str, split: str, required: bool = True):
    files = SOUND_GROUPS[group]
    assigned = alternate_split([rel for _, rel in files])
    chosen = [(root, rel) for root, rel in files if assigned[rel] == split]
    if not chosen and required:
        raise SuiteError(f"sound group {group!r} has no file for split {split!r}")
    return chosen


def group_sounds(group: str, split: str) -> list[tuple[str, np.ndarray]]:
    """(absolute path, 16 kHz wave) of the group's files of `split`."""
    return [(str(require_path(root, rel)), load_sound(require_path(root, rel))) for root, rel in group_files(group, split)]


# ---- synthetic textures (seeded noise; documented as synthetic) -----------------------------------------

def _sos(kind: str, cutoff, order: int = 4):
    from scipy.signal import butter

    return butter(order, cutoff, kind, fs=SAMPLE_RATE, output="sos")


def _filter(wave: np.ndarray, kind: str, cutoff) -> np.ndarray:
    from scipy.signal import sosfilt

    return sosfilt(_sos(kind, cutoff), wave).astype(np.float32)


# parameter ranges of the synthetic generators per split: the two splits' ranges never overlap
GENERATOR_RANGES = {
    "pink": {"train": {"slope": (0.85, 0.97)}, "test": {"slope": (1.03, 1.15)}},
    "wind": {"train": {"cutoff_hz": (420.0, 560.0), "gust_s": (4.0, 6.5)},
             "test": {"cutoff_hz": (620.0, 800.0), "gust_s": (7.0, 10.0)}},
    "waves": {"train": {"low_hz": (120.0, 160.0), "high_hz": (2100.0, 2500.0), "swell_s": (5.0, 7.0)},
              "test": {"low_hz": (175.0, 220.0), "high_hz": (2700.0, 3200.0), "swell_s": (7.5, 10.0)}},
    "hvac": {"train": {"cutoff_hz": (200.0, 240.0), "hum_hz": (120.0, 120.0)},
             "test": {"cutoff_hz": (260.0, 320.0), "hum_hz": (100.0, 100.0)}},
    "typing": {"train": {"keys_per_s": (4.5, 6.5), "highpass_hz": (1300.0, 1600.0)},
               "test": {"keys_per_s": (7.0, 9.0), "highpass_hz": (1750.0, 2100.0)}},
}


def generator_params(name: str, split: str, rng: np.random.Generator) -> dict[str, float]:
    ranges = GENERATOR_RANGES[name][split]
    return {k: round(float(rng.uniform(lo, hi)), 3) if hi > lo else lo for k, (lo, hi) in ranges.items()}


def pink_noise(n: int, rng: np.random.Generator, slope: float = 1.0) -> np.ndarray:
    """Noise with power falling as 1/f**slope (slope 1: pink)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[1:] /= f[1:] ** (slope / 2)
    spectrum[0] = 0
    return np.fft.irfft(spectrum, n).astype(np.float32)


def slow_envelope(n: int, rng: np.random.Generator, period_s: tuple[float, float], floor: float) -> np.ndarray:
    """A smooth random gain between `floor` and 1 that changes over `period_s`."""
    step = int(rng.uniform(*period_s) * SAMPLE_RATE / 2)
    points = rng.uniform(floor, 1.0, size=n // step + 2)
    return np.interp(np.arange(n), np.arange(points.size) * step, points).astype(np.float32)


def wind(n, rng, p):
    gust = p["gust_s"]
    return _filter(pink_noise(n, rng), "lowpass", p["cutoff_hz"]) * slow_envelope(n, rng, (gust * 0.8, gust * 1.2), 0.2)


def waves(n, rng, p):
    t = np.arange(n) / SAMPLE_RATE
    swell = 0.55 + 0.45 * np.sin(2 * np.pi * t / p["swell_s"]) ** 2
    return _filter(pink_noise(n, rng), "bandpass", (p["low_hz"], p["high_hz"])) * swell.astype(np.float32)


def hvac(n, rng, p):
    t = np.arange(n) / SAMPLE_RATE
    return (_filter(rng.standard_normal(n).astype(np.float32), "lowpass", p["cutoff_hz"])
            + 0.02 * np.sin(2 * np.pi * p["hum_hz"] * t).astype(np.float32))


def typing(n, rng, p):
    """Bursts of keystrokes: 4 ms high-passed noise clicks at about keys_per_s per second, with pauses."""
    out = np.zeros(n, dtype=np.float32)
    click_n = int(0.004 * SAMPLE_RATE)
    decay = np.exp(-np.arange(click_n) / (click_n / 4)).astype(np.float32)
    pos = int(rng.uniform(0.5, 3) * SAMPLE_RATE)
    rate = p["keys_per_s"]
    while pos < n - SAMPLE_RATE:
        for _ in range(int(rng.integers(5, 30))):
            if pos + click_n >= n:
                break
            out[pos:pos + click_n] += rng.standard_normal(click_n).astype(np.float32) * decay * rng.uniform(0.5, 1)
            pos += int(SAMPLE_RATE / rng.uniform(rate - 1, rate + 1))
        pos += int(rng.uniform(2, 8) * SAMPLE_RATE)
    return _filter(out, "highpass", p["highpass_hz"])


def babble(n, rng, split: str, talkers: int = 4):
    """Several TTS voices of the split talking at once, low-passed: distant cafe chatter.
    Returns (wave, voices used, texts read)."""
    from amlib.data.offline.items import sentence_stream

    voices = voices_of(split, engine="espeak-ng")
    mix = np.zeros(n, dtype=np.float32)
    used, texts = [], []
    for k in range(talkers):
        voice = voices[int(rng.integers(len(voices)))]
        used.append(voice)
        stream = sentence_stream(rng, split)
        pos = int(rng.uniform(0, 2) * SAMPLE_RATE)
        while pos < n:
            text = stream()
            wave = speak(text, voice)
            texts.append(text)
            take = min(wave.size, n - pos)
            mix[pos:pos + take] += wave[:take]
            pos += take + int(rng.uniform(0.3, 1.5) * SAMPLE_RATE)
    return _filter(mix, "lowpass", 3000), used, texts


@functools.lru_cache(maxsize=None)
def drascula_tracks() -> tuple[str, ...]:
    root = require_path(DRASCULA_DIR)
    names = tuple(sorted(p.name for p in root.glob("track*.ogg")))
    if not names:
        raise SuiteError(f"{root}: no track*.ogg (Debian package drascula-music)")
    return names


def background_music(n, rng, split):
    names = [t for t, s in alternate_split(drascula_tracks()).items() if s == split]
    name = sorted(names)[int(rng.integers(len(names)))]
    wave = load_sound(DRASCULA_DIR / name)
    return _filter(loop_to(wave, n, rng), "lowpass", 4000), str(DRASCULA_DIR / name)


# ---- events ------------------------------------------------------------------------------------------

def event_times(rng: np.random.Generator, n: int, sizes: list[int], spacing_s: tuple[float, float]) -> list[int]:
    """Start samples for events of the given sizes: random gaps of spacing_s, none overlapping or past n."""
    starts, pos = [], int(rng.uniform(0.25, max(0.5, spacing_s[0])) * SAMPLE_RATE)
    for size in sizes:
        if pos + size > n - SAMPLE_RATE // 2:
            break
        starts.append(pos)
        pos += size + int(rng.uniform(*spacing_s) * SAMPLE_RATE)
    return starts


def occurrence(sounds, repeats: int, rng: np.random.Generator, db: float) -> tuple[str, np.ndarray]:
    name, wave = sounds[int(rng.integers(len(sounds)))]
    return name, at_rms_db(np.tile(np.asarray(wave), repeats), db)


def sed_item(ctx, index: int, label: str, rng: np.random.Generator, window: Window) -> Item:
    group, repeats = SED_EVENTS[label]
    n = window.target_n
    bed_name, bed_loop = group_sounds("birds", ctx.split)[int(rng.integers(len(group_sounds("birds", ctx.split))))]
    pink = generator_params("pink", ctx.split, rng)
    bed = at_rms_db(loop_to(bed_loop, n, rng), SED_BED_DB - 1) + at_rms_db(pink_noise(n, rng, pink["slope"]), SED_BED_DB - 8)
    sounds = group_sounds(group, ctx.split)
    # at least three occurrences; how many more depends on the length
    count = max(3, int(window.target_s / rng.uniform(*SED_SPACING_S)))
    events = [occurrence(sounds, repeats, rng, rng.uniform(*SED_EVENT_DB)) for _ in range(count)]
    spacing = (min(SED_SPACING_S[0], window.target_s / (count + 1) * 0.5), min(SED_SPACING_S[1], window.target_s / (count + 1)))
    starts = event_times(rng, n, [w.size for _, w in events], spacing)
    if not starts or (window.target_s >= 60 and len(starts) < 3):
        raise SuiteError(f"SED item {index}: only {len(starts)} occurrences of {label!r} fit in {window.target_s:.1f} s")
    for (_, wave), at in zip(events, starts):
        place(bed, wave, at)
    used = events[: len(starts)]
    files = sorted({name for name, _ in used})
    # events over a continuous bed; every occurrence is of the target class, so each carries the answer
    spans = [(at, at + wave.size) for (_, wave), at in zip(used, starts)]
    line = timeline(spans, "overlay", answer=range(len(spans)), sound=[name for name, _ in used])
    return Item(window.check(bed, f"SED item {index}"), label, {
        "synthetic": False, "mixed": True, "event_files": files,
        "event_onsets_s": [round(s / SAMPLE_RATE, 2) for s in starts], "bed": [bed_name, "pink noise (synthetic)"],
        "assets": assets_meta(files=files + [bed_name], generators=[{"name": "pink", "params": pink}]),
        "timeline": line},
        question="Which sound event occurs in the recording?")


# ---- ASC ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scene:
    beds: tuple[tuple[str, float], ...]  # (bed source, RMS dBFS)
    events: tuple[str, ...]  # sound groups of its typical events
    spacing_s: tuple[float, float]
    event_db: tuple[float, float]


SCENES = {
    "forest": Scene((("birds", -30.0), ("wind", -38.0)), ("wolf",), (25, 50), (-32, -27)),
    "campsite at night": Scene((("camp-ambience", -29.0), ("wind", -42.0)), ("laughter",), (30, 60), (-32, -28)),
    "harbour": Scene((("ship", -29.0), ("waves", -32.0), ("wind", -38.0)), ("horn",), (20, 40), (-30, -25)),
    "office": Scene((("hvac", -36.0), ("typing", -33.0)), ("office-alerts", "phone"), (10, 25), (-30, -25)),
    "cafe": Scene((("music", -31.0), ("babble", -30.0)), ("counter",), (12, 30), (-30, -25)),
}
SYNTHETIC_BEDS = {"wind": wind, "waves": waves, "hvac": hvac, "typing": typing}


def bed_of(source: str, n: int, rng: np.random.Generator, split: str) -> tuple[np.ndarray, str, dict] | None:
    """(wave, description, assets_meta keyword arguments) of one bed; None where a file group has no
    file in `split` (ship in train)."""
    if source in SYNTHETIC_BEDS:
        params = generator_params(source, split, rng)
        return SYNTHETIC_BEDS[source](n, rng, params), f"{source} (synthetic)", \
            {"generators": [{"name": source, "params": params}]}
    if source == "babble":
        wave, voices, texts = babble(n, rng, split)
        return wave, "TTS babble (synthetic, espeak-ng voices)", {"tts": voices, "texts": texts}
    if source == "music":
        wave, path = background_music(n, rng, split)
        return wave, f"drascula {Path(path).name}", {"files": [path]}
    if not group_files(source, split, required=False):
        return None
    name, loop = group_sounds(source, split)[int(rng.integers(len(group_sounds(source, split))))]
    return loop_to(loop, n, rng), name, {"files": [name]}


def asc_item(ctx, index: int, label: str, rng: np.random.Generator, window: Window) -> Item:
    scene = SCENES[label]
    n = window.target_n
    mix = np.zeros(n, dtype=np.float32)
    beds = []
    used: dict[str, list] = {"files": [], "generators": [], "tts": [], "texts": []}
    for source, db in scene.beds:
        bed = bed_of(source, n, rng, ctx.split)
        if bed is None:
            continue
        wave, name, parts = bed
        mix += at_rms_db(wave, db)
        beds.append(name)
        for key, values in parts.items():
            used[key] += values
    sounds = [s for group in scene.events for s in group_sounds(group, ctx.split)]
    count = max(2, int(window.target_s / np.mean(scene.spacing_s)))
    events = [occurrence(sounds, 1, rng, rng.uniform(*scene.event_db)) for _ in range(count)]
    spacing = (min(scene.spacing_s[0], window.target_s / (count + 1) * 0.5), min(scene.spacing_s[1], window.target_s / (count + 1)))
    starts = event_times(rng, n, [w.size for _, w in events], spacing)
    for (_, wave), at in zip(events, starts):
        place(mix, wave, at)
    placed = events[: len(starts)]
    # the scene's events over its beds; the answer (the scene) is global
    line = timeline([(at, at + wave.size) for (_, wave), at in zip(placed, starts)], "overlay",
                    sound=[name for name, _ in placed])
    return Item(window.check(mix, f"ASC item {index}"), label, {
        "synthetic": any("synthetic" in b for b in beds), "mixed": True, "beds": beds,
        "event_files": sorted({name for name, _ in events[: len(starts)]}),
        "event_onsets_s": [round(s / SAMPLE_RATE, 2) for s in starts],
        "assets": assets_meta(files=used["files"] + [name for name, _ in events[: len(starts)]],
                              generators=used["generators"], tts=used["tts"], texts=used["texts"]),
        "timeline": line})
