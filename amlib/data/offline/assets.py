"""Where the offline suite's packaged assets live, which split each one belongs to, and loading them.

Every asset comes from a Debian package (no download at build time); a missing one raises AssetError
naming the package to install. Split rule (documented in data/README.md): an asset is assigned to
`train` or `test` by a fixed, seed-independent rule, so the two splits never share a file:
- `hash_split(name)`: the first 8 hex digits of sha1("amlib-offline:" + name) as a fraction; below
  0.5 is test, else train (asterisk prompts, generated sentences);
- `alternate_split(names)`: the names sorted by that hash, then test, train, test, ... (per class, so
  that a class with two or more files has at least one in each split: sound files, music tracks,
  vocabulary lists).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amlib.data.audio import SAMPLE_RATE, load_audio
from amlib.data.offline.sentences import number_words
from amlib.data.sources.common import LayoutError

SPLITS = ("train", "test")

ASTERISK_WAV_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
WESNOTH_SOUNDS = Path("/usr/share/games/wesnoth/1.16/data/core/sounds")
WESNOTH_UI_SOUNDS = Path("/usr/share/games/wesnoth/1.16/sounds")
WESNOTH_CAMPAIGN_SOUNDS = Path("/usr/share/games/wesnoth/1.16/data/campaigns/World_Conquest/sounds")
FREEDESKTOP_SOUNDS = Path("/usr/share/sounds/freedesktop/stereo")
DRASCULA_DIR = Path("/usr/share/scummvm/drascula/audio")
SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")

# asset root -> the Debian package that installs it
PACKAGE_OF = {
    ASTERISK_WAV_DIR: "asterisk-core-sounds-en-wav",
    ASTERISK_TRANSCRIPTS: "asterisk-core-sounds-en",
    WESNOTH_SOUNDS: "wesnoth-1.16-data",
    WESNOTH_UI_SOUNDS: "wesnoth-1.16-data",
    WESNOTH_CAMPAIGN_SOUNDS: "wesnoth-1.16-data",
    FREEDESKTOP_SOUNDS: "sound-theme-freedesktop",
    DRASCULA_DIR: "drascula-music",
    SOUNDFONT: "timgm6mb-soundfont",
}
BINARY_PACKAGE = {"espeak-ng": "espeak-ng", "flite": "flite", "text2wave": "festival", "festival": "festival", "sox": "sox",
                  "fluidsynth": "fluidsynth"}


class AssetError(LayoutError):
    """A packaged asset (file or program) is missing; the message names the Debian package to install."""


def _install_hint(package: str) -> str:
    return f"install it with `apt-get update && apt-get install -y {package}` (all: apt-packages.txt)"


def require_path(root: Path, relative: str = "") -> Path:
    """`root / relative`, or an AssetError naming the Debian package that provides `root`."""
    path = root / relative if relative else root
    if not path.exists():
        package = PACKAGE_OF.get(root, "?")
        raise AssetError(f"offline asset {path} not found: it comes with the Debian package {package}; "
                         + _install_hint(package))
    return path


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = BINARY_PACKAGE.get(name, name)
        raise AssetError(f"program {name!r} not found on PATH: it comes with the Debian package {package}; "
                         + _install_hint(package))
    return path


def hash_fraction(name: str) -> float:
    return int(hashlib.sha1(f"amlib-offline:{name}".encode()).hexdigest()[:8], 16) / 16**8


def hash_split(name: str) -> str:
    return "test" if hash_fraction(name) < 0.5 else "train"


def alternate_split(names) -> dict[str, str]:
    """name -> split: sorted by hash, then test, train, test, ... (both splits non-empty from 2 names)."""
    ordered = sorted(set(names), key=lambda n: (hash_fraction(n), n))
    return {name: SPLITS[1 - i % 2] for i, name in enumerate(ordered)}


def of_split(names, split: str) -> list[str]:
    """The names of `split` under `alternate_split`, in their given order."""
    check_split(split)
    assigned = alternate_split(names)
    return [n for n in names if assigned[n] == split]


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"the offline suite has splits {SPLITS}, not {split!r}")
    return split


@functools.lru_cache(maxsize=512)
def _load_cached(path: str) -> np.ndarray:
    wave = load_audio(path)
    wave.setflags(write=False)  # shared between items: nobody may modify it in place
    return wave


def load_sound(path: Path) -> np.ndarray:
    """A packaged sound as 16 kHz mono float32 (read once per process, read-only)."""
    wave = _load_cached(str(path))
    if wave.size == 0 or not np.any(wave):
        raise AssetError(f"{path}: the sound is empty or silent")
    return wave


# ---- asterisk prompts: real human speech with transcripts ------------------------------------------------

@dataclass(frozen=True)
class Prompt:
    key: str  # e.g. "conf-getpin" or "digits/5": the path under en_US_f_Allison without .wav
    text: str  # normalised transcript (what the recording says, spelled as words)
    path: Path

    @property
    def split(self) -> str:
        return hash_split(f"asterisk:{self.key}")


_ALLOWED = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ,.'?!-]*")


def normalize_prompt_text(text: str) -> str | None:
    """The transcript as plain words, or None where it cannot be spelled reliably.

    A leading "..." goes; standalone numbers 0..99 become words ("press 1" -> "press one"); hyphens
    stay ("Call-Forward", "re-record"): the WAR metric removes them from reference and hypothesis
    alike, so a model that writes the usual spelling is not penalised. Left out (None): bracketed non-speech
    ("[ascending tones]"), symbols (* # < >), numbers of 100 or more (read as digits or as a number?),
    numbers glued to letters ("3D") and acronyms ("DAHDI", "P.M.").
    """
    text = re.sub(r"^\.\.\.\s*", "", text.strip())
    if not text or not _ALLOWED.fullmatch(text):
        return None
    words = []
    for word in text.split():
        core = word.rstrip(",.?!")
        if any(sum(c.isupper() for c in part) >= 2 for part in core.split("-")):  # DAHDI, P.M.: letters or a word?
            return None
        if re.search(r"\d", core):
            if not core.isdigit() or int(core) > 99:
                return None
            word = number_words(int(core)) + word[len(core):]
        words.append(word)
    return " ".join(words)


@functools.lru_cache(maxsize=1)
def asterisk_prompts() -> tuple[tuple[Prompt, ...], dict[str, int]]:
    """(usable prompts, counts of what was left out and why), from the two asterisk packages."""
    require_path(ASTERISK_WAV_DIR)
    transcripts = require_path(ASTERISK_TRANSCRIPTS)
    prompts, left_out = [], {"no transcript spelled as words": 0, "no wav file": 0}
    with gzip.open(transcripts, "rt", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip() or line.startswith(";"):
                continue
            key, sep, raw = line.partition(":")
            if not sep:
                raise AssetError(f"{transcripts}:{lineno}: expected 'name: transcript', got {line.strip()[:60]!r}")
            path = ASTERISK_WAV_DIR / f"{key.strip()}.wav"
            text = normalize_prompt_text(raw)
            if text is None:
                left_out["no transcript spelled as words"] += 1
            elif not path.is_file():
                left_out["no wav file"] += 1
            else:
                prompts.append(Prompt(key.strip(), text, path))
    if not prompts:
        raise AssetError(f"{transcripts}: no usable prompt (is asterisk-core-sounds-en-wav installed?)")
    return tuple(prompts), left_out


def prompts_of_split(split: str) -> list[Prompt]:
    check_split(split)
    return [p for p in asterisk_prompts()[0] if p.split == split]


# ---- looping and mixing helpers shared by the sound and music tasks ---------------------------------

def db_to_gain(db: float) -> float:
    return float(10 ** (db / 20))


def rms(wave: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0


def at_rms_db(wave: np.ndarray, db: float) -> np.ndarray:
    """`wave` scaled to an RMS of `db` dBFS."""
    level = rms(wave)
    if level == 0.0:
        raise ValueError("cannot set the level of a silent sound")
    return (wave * (db_to_gain(db) / level)).astype(np.float32)


def loop_to(wave: np.ndarray, n: int, rng: np.random.Generator, fade_s: float = 0.05) -> np.ndarray:
    """An ambience loop played for `n` samples: copies starting at random offsets, crossfaded.

    This is the suite's one documented repetition rule: ambience recordings are short loops made to
    be looped (wesnoth's ambient/*.ogg), so a bed longer than the loop repeats it.
    """
    fade = min(int(fade_s * SAMPLE_RATE), wave.size // 4)
    out = np.zeros(n + wave.size, dtype=np.float32)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32) if fade else np.zeros(0, np.float32)
    pos = 0
    while pos < n:
        start = int(rng.integers(0, max(1, wave.size // 2)))
        piece = np.array(wave[start:], dtype=np.float32)
        if fade and piece.size > 2 * fade:
            piece[:fade] *= ramp
            piece[-fade:] *= ramp[::-1]
        out[pos:pos + piece.size] += piece
        pos += max(1, piece.size - fade)
    return out[:n]


def place(bed: np.ndarray, sound: np.ndarray, at: int) -> None:
    """Add `sound` into `bed` starting at sample `at` (in place; the part past the end is an error)."""
    if at < 0 or at + sound.size > bed.size:
        raise ValueError(f"sound of {sound.size} samples at {at} does not fit a bed of {bed.size}")
    bed[at:at + sound.size] += sound
