"""SED and ASC items: real event sounds (wesnoth, freedesktop) over ambience beds, mixed with numpy.

Every sound file belongs to exactly one group of SOUND_GROUPS, and its split is fixed by alternation
within that group (assets.alternate_split), so a file serves one split in every task. The three
ambience loops that exist only once (campfire, night, ship) are split in time instead: the first half
of the file is train, the second half test.

SED: a long, quiet bed (a real bird ambience loop of the split plus pink noise) with the target event
occurring several times (one every 12-30 s; at least three in items of 60 s or more, at least one
in shorter ones), 14-20 dB above the bed, and no other
event. ASC: a scene is its characteristic ambience (loops and synthetic textures) plus its typical
events at random times; see SCENES.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from amlib.data.audio import SAMPLE_RATE
from amlib.data.offline.assets import (
    DRASCULA_DIR, FREEDESKTOP_SOUNDS, WESNOTH_CAMPAIGN_SOUNDS, WESNOTH_SOUNDS, alternate_split, at_rms_db,
    load_sound, loop_to, place, require_path,
)
from amlib.data.offline.items import Item, SuiteError, Window
from amlib.data.offline.voices import speak, voices_of

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
}
TIME_SPLIT_LOOPS = {"campfire": (W, "ambient/campfire.ogg"), "night": (W, "ambient/night.ogg"),
                    "ship": (W, "ambient/ship.ogg")}

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


def group_files(group: str, split: str):
    files = SOUND_GROUPS[group]
    assigned = alternate_split([rel for _, rel in files])
    chosen = [(root, rel) for root, rel in files if assigned[rel] == split]
    if not chosen:
        raise SuiteError(f"sound group {group!r} has no file for split {split!r}")
    return chosen


def group_sounds(group: str, split: str) -> list[tuple[str, np.ndarray]]:
    return [(rel, load_sound(require_path(root, rel))) for root, rel in group_files(group, split)]


def time_split_loop(name: str, split: str) -> np.ndarray:
    root, rel = TIME_SPLIT_LOOPS[name]
    wave = load_sound(require_path(root, rel))
    half = wave.size // 2
    return wave[:half] if split == "train" else wave[half:]


# ---- synthetic textures (seeded noise; documented as synthetic) -----------------------------------------

def _sos(kind: str, cutoff, order: int = 4):
    from scipy.signal import butter

    return butter(order, cutoff, kind, fs=SAMPLE_RATE, output="sos")


def _filter(wave: np.ndarray, kind: str, cutoff) -> np.ndarray:
    from scipy.signal import sosfilt

    return sosfilt(_sos(kind, cutoff), wave).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    return np.fft.irfft(spectrum, n).astype(np.float32)


def slow_envelope(n: int, rng: np.random.Generator, period_s: tuple[float, float], floor: float) -> np.ndarray:
    """A smooth random gain between `floor` and 1 that changes over `period_s`."""
    step = int(rng.uniform(*period_s) * SAMPLE_RATE / 2)
    points = rng.uniform(floor, 1.0, size=n // step + 2)
    return np.interp(np.arange(n), np.arange(points.size) * step, points).astype(np.float32)


def wind(n, rng):
    return _filter(pink_noise(n, rng), "lowpass", 600) * slow_envelope(n, rng, (4, 10), 0.2)


def waves(n, rng):
    t = np.arange(n) / SAMPLE_RATE
    swell = 0.55 + 0.45 * np.sin(2 * np.pi * t / rng.uniform(6, 10)) ** 2
    return _filter(pink_noise(n, rng), "bandpass", (150, 2500)) * swell.astype(np.float32)


def hvac(n, rng):
    t = np.arange(n) / SAMPLE_RATE
    return (_filter(rng.standard_normal(n).astype(np.float32), "lowpass", 250)
            + 0.02 * np.sin(2 * np.pi * 120 * t).astype(np.float32))


def typing(n, rng):
    """Bursts of keystrokes: 4 ms high-passed noise clicks at 5-9 per second, with pauses."""
    out = np.zeros(n, dtype=np.float32)
    click_n = int(0.004 * SAMPLE_RATE)
    decay = np.exp(-np.arange(click_n) / (click_n / 4)).astype(np.float32)
    pos = int(rng.uniform(0.5, 3) * SAMPLE_RATE)
    while pos < n - SAMPLE_RATE:
        for _ in range(int(rng.integers(5, 30))):
            if pos + click_n >= n:
                break
            out[pos:pos + click_n] += rng.standard_normal(click_n).astype(np.float32) * decay * rng.uniform(0.5, 1)
            pos += int(SAMPLE_RATE / rng.uniform(5, 9))
        pos += int(rng.uniform(2, 8) * SAMPLE_RATE)
    return _filter(out, "highpass", 1500)


def babble(n, rng, split: str, talkers: int = 4):
    """Several TTS voices of the split talking at once, low-passed: distant cafe chatter."""
    from amlib.data.offline.items import sentence_stream

    voices = voices_of(split, engine="espeak-ng")
    mix = np.zeros(n, dtype=np.float32)
    for k in range(talkers):
        voice = voices[int(rng.integers(len(voices)))]
        stream = sentence_stream(rng, split)
        pos = int(rng.uniform(0, 2) * SAMPLE_RATE)
        while pos < n:
            wave = speak(stream(), voice)
            take = min(wave.size, n - pos)
            mix[pos:pos + take] += wave[:take]
            pos += take + int(rng.uniform(0.3, 1.5) * SAMPLE_RATE)
    return _filter(mix, "lowpass", 3000)


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
    return _filter(loop_to(wave, n, rng), "lowpass", 4000), name


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
    bed = at_rms_db(loop_to(bed_loop, n, rng), SED_BED_DB - 1) + at_rms_db(pink_noise(n, rng), SED_BED_DB - 8)
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
    return Item(window.check(bed, f"SED item {index}"), label, {
        "synthetic": False, "mixed": True, "event_files": sorted({name for name, _ in used}),
        "event_onsets_s": [round(s / SAMPLE_RATE, 2) for s in starts], "bed": [bed_name, "pink noise (synthetic)"]},
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
    "campsite at night": Scene((("campfire", -29.0), ("night", -31.0)), ("laughter",), (30, 60), (-32, -28)),
    "harbour": Scene((("ship", -29.0), ("waves", -32.0)), ("horn",), (20, 40), (-30, -25)),
    "office": Scene((("hvac", -36.0), ("typing", -33.0)), ("office-alerts", "phone"), (10, 25), (-30, -25)),
    "cafe": Scene((("music", -31.0), ("babble", -30.0)), ("counter",), (12, 30), (-30, -25)),
}
SYNTHETIC_BEDS = {"wind": wind, "waves": waves, "hvac": hvac, "typing": typing}


def bed_of(source: str, n: int, rng: np.random.Generator, split: str) -> tuple[np.ndarray, str]:
    if source in SYNTHETIC_BEDS:
        return SYNTHETIC_BEDS[source](n, rng), f"{source} (synthetic)"
    if source == "babble":
        return babble(n, rng, split), "TTS babble (synthetic, espeak-ng voices)"
    if source == "music":
        wave, name = background_music(n, rng, split)
        return wave, f"drascula {name}"
    if source in TIME_SPLIT_LOOPS:
        half = "first" if split == "train" else "second"
        return loop_to(time_split_loop(source, split), n, rng), f"{TIME_SPLIT_LOOPS[source][1]} ({half} half)"
    name, loop = group_sounds(source, split)[int(rng.integers(len(group_sounds(source, split))))]
    return loop_to(loop, n, rng), name


def asc_item(ctx, index: int, label: str, rng: np.random.Generator, window: Window) -> Item:
    scene = SCENES[label]
    n = window.target_n
    mix = np.zeros(n, dtype=np.float32)
    beds = []
    for source, db in scene.beds:
        wave, name = bed_of(source, n, rng, ctx.split)
        mix += at_rms_db(wave, db)
        beds.append(name)
    sounds = [s for group in scene.events for s in group_sounds(group, ctx.split)]
    count = max(2, int(window.target_s / np.mean(scene.spacing_s)))
    events = [occurrence(sounds, 1, rng, rng.uniform(*scene.event_db)) for _ in range(count)]
    spacing = (min(scene.spacing_s[0], window.target_s / (count + 1) * 0.5), min(scene.spacing_s[1], window.target_s / (count + 1)))
    starts = event_times(rng, n, [w.size for _, w in events], spacing)
    for (_, wave), at in zip(events, starts):
        place(mix, wave, at)
    return Item(window.check(mix, f"ASC item {index}"), label, {
        "synthetic": any("synthetic" in b for b in beds), "mixed": True, "beds": beds,
        "event_files": sorted({name for name, _ in events[: len(starts)]}),
        "event_onsets_s": [round(s / SAMPLE_RATE, 2) for s in starts]})
