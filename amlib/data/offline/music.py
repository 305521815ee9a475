"""MC items: generated MIDI in five genres, rendered with fluidsynth and the TimGM6mb General MIDI font.

A genre is defined by what one hears, not by a name: instrumentation (GM programs), tempo range,
rhythm (drum pattern, accompaniment pattern, swing) and scale/harmony:

| genre | tempo (bpm) | harmony / scale | accompaniment | drums | lead |
|---|---|---|---|---|---|
| classical | 66-96 | major or harmonic minor, I-IV-V / i-iv-V | Alberti bass on piano or strings | none | violin, flute or clarinet, stepwise |
| rock | 112-150 | aeolian, i-VI-III-VII power chords | distorted guitar eighths, picked bass | kick 1 & 3, snare 2 & 4, eighth hats, crashes | overdriven guitar, minor pentatonic |
| jazz | 100-160, swung eighths | ii-V-I with sevenths | piano comping on off-beats, walking bass | swing ride, hi-hat on 2 & 4 | vibraphone or tenor sax, dorian |
| electronic | 120-132 | minor, i-VI-VII-i | sustained pad, off-beat synth bass | kick on every beat, clap 2 & 4, open hat off-beats | saw lead sixteenth arpeggios |
| reggae | 68-88 | major, I-IV-I-V | organ + clean guitar skank on the "and"s | one drop: kick + cross-stick on 3 | melodica-like reed (harmonica) sparse |

An item is a sequence of independently generated pieces of its genre (20-40 s each, each with its
own key, tempo and seed) with short pauses, so the genre is audible all through.
Splits: the split enters every random draw (the item's seed stream) AND the material: every piece's
key root (the tonic's MIDI note) is even in the train split and odd in the test split, so no piece of
one split can equal (or be a rendering of the same notes as) a piece of the other. Each piece's
sha1 over its notes, programs and tempo is recorded in the item's meta (assets.pieces). Each piece ends one
second after its last bar, the release faded out over that second.
Drascula's real tracks are not used for MC: the package gives no genre for them, so no label would
be defensible; they serve as background music in the ASC 'cafe' scene.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from amlib.data.audio import SAMPLE_RATE, load_audio
from amlib.data.offline.assets import SOUNDFONT, require_binary, require_path
from amlib.data.offline.items import Item, SuiteError, Window, assets_meta, silence
from amlib.data.timeline import spans_of_pieces, timeline

GENRES = ("classical", "rock", "jazz", "electronic", "reggae")
TEMPO = {"classical": (66, 96), "rock": (112, 150), "jazz": (100, 160), "electronic": (120, 132), "reggae": (68, 88)}
MAJOR, MINOR, HARMONIC_MINOR, DORIAN = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 2, 3, 5, 7, 8, 11), (0, 2, 3, 5, 7, 9, 10)
PIECE_S = (20.0, 40.0)
PIECE_GAP_S = (0.2, 0.6)
TAIL_S = 1.0
TPB = 480  # MIDI ticks per beat
DRUMS = 9  # General MIDI percussion channel
KICK, STICK, SNARE, CLAP, HAT, PEDAL_HAT, OPEN_HAT, CRASH, RIDE = 36, 37, 38, 39, 42, 44, 46, 49, 51


class Score:
    """Notes as (start tick, channel, pitch, length ticks, velocity) plus one program per channel."""

    def __init__(self, bpm: float, split: str = "test"):
        if split not in ("train", "test"):
            raise ValueError(f"the offline suite has splits train and test, not {split!r}")
        self.bpm = bpm
        self.split = split
        self.root: int | None = None
        self.notes: list[tuple[int, int, int, int, int]] = []
        self.programs: dict[int, int] = {}

    def note(self, beat: float, channel: int, pitch: int, beats: float, velocity: int) -> None:
        self.notes.append((int(round(beat * TPB)), channel, int(pitch), max(1, int(round(beats * TPB))),
                           int(np.clip(velocity, 1, 127))))

    def tonic(self, rng, low: int, high: int) -> int:
        """A key root in [low, high) of the split's parity (train even, test odd); remembered as self.root."""
        roots = [r for r in range(low, high) if r % 2 == (0 if self.split == "train" else 1)]
        self.root = int(roots[int(rng.integers(len(roots)))])
        return self.root

    def sha1(self) -> str:
        """The piece's identity: its notes, programs and tempo."""
        import hashlib

        data = repr((round(self.bpm, 3), sorted(self.programs.items()), sorted(self.notes)))
        return hashlib.sha1(data.encode()).hexdigest()

    def write(self, path: Path) -> None:
        import mido

        events = []  # (tick, order, message): note-offs before note-ons at the same tick
        for channel, program in self.programs.items():
            events.append((0, 0, mido.Message("program_change", channel=channel, program=program)))
        for tick, channel, pitch, length, velocity in self.notes:
            events.append((tick, 2, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)))
            events.append((tick + length, 1, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))
        events.sort(key=lambda e: (e[0], e[1]))
        track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(self.bpm))])
        now = 0
        for tick, _, message in events:
            track.append(message.copy(time=tick - now))
            now = tick
        midi = mido.MidiFile(ticks_per_beat=TPB)
        midi.tracks.append(track)
        midi.save(str(path))


def _chord(root: int, scale, degree: int, size: int = 3) -> list[int]:
    """Notes of the chord on scale `degree` (0-based), stacked in thirds within the scale."""
    return [root + scale[(degree + 2 * k) % 7] + 12 * ((degree + 2 * k) // 7) for k in range(size)]


def _melody_step(rng, current: int, pool: list[int], max_step: int = 2) -> int:
    i = int(np.argmin([abs(p - current) for p in pool]))
    return pool[int(np.clip(i + rng.integers(-max_step, max_step + 1), 0, len(pool) - 1))]


def _scale_pool(root: int, scale, low: int, high: int) -> list[int]:
    return [p for p in range(low, high + 1) if (p - root) % 12 in scale]


def classical(s: Score, rng, bars: int) -> None:
    scale = MAJOR if rng.random() < 0.5 else HARMONIC_MINOR
    root = s.tonic(rng, 55, 64)
    s.programs = {0: int(rng.choice([0, 48])), 1: int(rng.choice([40, 73, 71]))}
    prog = [0, 3, 4, 0] if rng.random() < 0.5 else [0, 5, 3, 4]
    pool = _scale_pool(root, scale, root + 5, root + 24)
    cur = pool[len(pool) // 2]
    for bar in range(bars):
        c = _chord(root - 12, scale, prog[bar % 4])
        base = bar * 4
        for k, idx in enumerate([0, 2, 1, 2] * 2):  # Alberti bass in eighths
            s.note(base + k / 2, 0, c[idx], 0.5, 62 + 10 * (k == 0))
        beat = 0.0
        while beat < 4:
            length = 1.0 if rng.random() < 0.6 else 0.5
            cur = _melody_step(rng, cur, pool, 1)
            s.note(base + beat, 1, cur, length * 0.95, 70 + int(rng.integers(-6, 7)))
            beat += length


def rock(s: Score, rng, bars: int) -> None:
    root = s.tonic(rng, 40, 48)
    s.programs = {0: 30, 1: int(rng.choice([33, 34])), 2: 29}
    prog = [0, 5, 2, 6]
    pent = _scale_pool(root, (0, 3, 5, 7, 10), root + 24, root + 41)
    cur = pent[len(pent) // 2]
    for bar in range(bars):
        base = bar * 4
        degree_root = root + MINOR[prog[bar % 4]]
        for k in range(8):
            for interval in (0, 7, 12):
                s.note(base + k / 2, 0, degree_root + 12 + interval, 0.45, 95)
            s.note(base + k / 2, 1, degree_root, 0.45, 100)
            s.note(base + k / 2, DRUMS, HAT, 0.25, 80)
        for b in (0, 2, 2.5):
            s.note(base + b, DRUMS, KICK, 0.25, 110)
        for b in (1, 3):
            s.note(base + b, DRUMS, SNARE, 0.25, 110)
        if bar % 4 == 0:
            s.note(base, DRUMS, CRASH, 1, 100)
        if bar % 8 >= 4:  # a lead line in the second half of each eight bars
            for b in range(8):
                if rng.random() < 0.7:
                    cur = _melody_step(rng, cur, pent, 2)
                    s.note(base + b / 2, 2, cur, 0.45, 90)


def jazz(s: Score, rng, bars: int) -> None:
    root = s.tonic(rng, 48, 57)
    s.programs = {0: 0, 1: 32, 2: int(rng.choice([11, 66]))}
    swing = 2 / 3  # the off-beat eighth falls two thirds into the beat
    prog = [1, 4, 0, 0]  # ii-V-I-I
    pool = _scale_pool(root + 2, DORIAN, root + 12, root + 28)
    cur = pool[len(pool) // 2]
    for bar in range(bars):
        base = bar * 4
        chord = _chord(root, MAJOR, prog[bar % 4], 4)
        nxt = _chord(root, MAJOR, prog[(bar + 1) % 4], 4)[0]
        for beat in range(4):  # walking bass: chord tones, chromatic approach on beat 4
            pitch = nxt - 12 + int(rng.choice([-1, 1])) if beat == 3 else chord[int(rng.integers(0, 4))] - 12
            s.note(base + beat, 1, pitch, 0.9, 85)
        for beat in range(4):  # swing ride, pedal hi-hat on 2 and 4
            s.note(base + beat, DRUMS, RIDE, 0.3, 80)
            if beat in (1, 3):
                s.note(base + beat + swing, DRUMS, RIDE, 0.2, 65)
                s.note(base + beat, DRUMS, PEDAL_HAT, 0.2, 70)
        for beat in rng.choice(4, size=2, replace=False):  # comping on off-beats
            for p in chord[1:]:
                s.note(base + beat + swing, 0, p + 12, 0.3, 65)
        beat = 0.0
        while beat < 4:
            if rng.random() < 0.8:
                cur = _melody_step(rng, cur, pool, 2)
                s.note(base + beat + (swing if beat % 1 else 0) - (0.5 if beat % 1 else 0), 2, cur, 0.4, 80)
            beat += 0.5


def electronic(s: Score, rng, bars: int) -> None:
    root = s.tonic(rng, 45, 53)
    s.programs = {0: 89, 1: 38, 2: 81}
    prog = [0, 5, 6, 0]
    for bar in range(bars):
        base = bar * 4
        chord = _chord(root, MINOR, prog[bar % 4], 3)
        for p in chord:
            s.note(base, 0, p + 12, 4, 55)
        for beat in range(4):
            s.note(base + beat, DRUMS, KICK, 0.25, 120)
            s.note(base + beat + 0.5, DRUMS, OPEN_HAT, 0.25, 80)
            s.note(base + beat + 0.5, 1, chord[0] - 12, 0.4, 100)
            for q in range(4):
                s.note(base + beat + q / 4, DRUMS, HAT, 0.1, 60)
                s.note(base + beat + q / 4, 2, chord[q % 3] + 24, 0.2, 75)
            if beat in (1, 3):
                s.note(base + beat, DRUMS, CLAP, 0.25, 100)


def reggae(s: Score, rng, bars: int) -> None:
    root = s.tonic(rng, 50, 59)
    s.programs = {0: 16, 1: 33, 2: 27, 3: 22}
    prog = [0, 3, 0, 4]
    pool = _scale_pool(root, MAJOR, root + 12, root + 24)
    cur = pool[len(pool) // 2]
    for bar in range(bars):
        base = bar * 4
        chord = _chord(root, MAJOR, prog[bar % 4])
        for beat in range(4):  # skank on the "and"s
            for p in chord:
                s.note(base + beat + 0.5, 0, p, 0.2, 75)
                s.note(base + beat + 0.5, 2, p + 12, 0.15, 70)
            s.note(base + beat + 0.5, DRUMS, HAT, 0.2, 60)
            s.note(base + beat, DRUMS, HAT, 0.2, 50)
        s.note(base + 2, DRUMS, KICK, 0.3, 110)  # one drop
        s.note(base + 2, DRUMS, STICK, 0.3, 100)
        for b, off in ((0, 0), (0.75, 0), (1.5, 7), (2.5, 0), (3.0, 4)):
            s.note(base + b, 1, chord[0] - 12 + off, 0.4, 100)
        if bar % 4 == 3 and rng.random() < 0.8:
            for b in (0, 1, 1.5, 2):
                cur = _melody_step(rng, cur, pool, 2)
                s.note(base + b, 3, cur, 0.45, 70)


COMPOSERS = {"classical": classical, "rock": rock, "jazz": jazz, "electronic": electronic, "reggae": reggae}


def render(score: Score) -> np.ndarray:
    """The score as 16 kHz mono float32, through fluidsynth and the TimGM6mb soundfont."""
    fluidsynth = require_binary("fluidsynth")
    font = require_path(SOUNDFONT)
    with tempfile.TemporaryDirectory(prefix="amlib-midi-") as tmp:
        mid, wav = Path(tmp) / "piece.mid", Path(tmp) / "piece.wav"
        score.write(mid)
        cmd = [fluidsynth, "-ni", "-q", "-F", str(wav), "-r", str(SAMPLE_RATE), "-g", "0.6", str(font), str(mid)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0 or not wav.is_file():
            raise SuiteError(f"`{' '.join(cmd)}` failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
        wave = load_audio(wav)
    if not np.any(wave):
        raise SuiteError("fluidsynth rendered silence (is the soundfont TimGM6mb.sf2 intact?)")
    return wave


def piece(genre: str, rng: np.random.Generator, seconds: float, split: str = "test") -> tuple[np.ndarray, dict]:
    """A piece of at most `seconds` + TAIL_S: whole bars, then the release of the last notes faded out
    over TAIL_S (fluidsynth renders until every voice has died away, up to ~12 s for a ride cymbal)."""
    bpm = float(rng.uniform(*TEMPO[genre]))
    bars = max(2, int(seconds * bpm / 240))
    score = Score(bpm, split)
    COMPOSERS[genre](score, rng, bars)
    wave = render(score)
    end = min(wave.size, int((bars * 240 / bpm + TAIL_S) * SAMPLE_RATE))
    fade = min(int(TAIL_S * SAMPLE_RATE), end)
    wave = np.array(wave[:end])
    wave[end - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return wave, {"bpm": round(bpm, 1), "bars": bars, "programs": dict(score.programs), "root": score.root,
                  "sha1": score.sha1()}


def mc_item(ctx, index: int, label: str, rng: np.random.Generator, window: Window) -> Item:
    parts, pieces = [], []
    total = 0
    tail_s = TAIL_S
    while total < window.target_n:
        room_s = (window.max_n - total) / SAMPLE_RATE - tail_s - PIECE_GAP_S[1]
        want = min(float(rng.uniform(*PIECE_S)), (window.target_n - total) / SAMPLE_RATE + 2.0, room_s)
        if want < 4.0:
            break
        wave, info = piece(label, rng, want, ctx.split)
        gap = silence(rng.uniform(*PIECE_GAP_S)) if parts else silence(0)
        if total + gap.size + wave.size > window.max_n:
            break
        parts += [gap, wave]
        pieces.append(info)
        total += gap.size + wave.size
    if not parts:
        raise SuiteError(f"MC item {index}: no piece fits in {window.max_s} s")
    wave = window.check(np.concatenate(parts), f"MC item {index}")
    return Item(wave, label, {"synthetic": True, "pieces": pieces, "renderer": "fluidsynth + TimGM6mb.sf2",
                              "assets": assets_meta(pieces=[p["sha1"] for p in pieces]),
                              "timeline": timeline(spans_of_pieces(parts, range(1, len(parts), 2)))})
