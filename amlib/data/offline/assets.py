"""Where the offline suite's packaged assets live, which split each one belongs to, and loading them.

Every asset comes from a Debian package (no download at build time); a missing one raises AssetError
naming the package to install. Split rule (documented in data/README.md): an asset is assigned to
`train` or `test` by a fixed, seed-independent rule, so the two splits never share a file:
- real speech (asterisk prompts) by SPEAKER: see PROMPT_SETS;
- `hash_split(name)`: the first 8 hex digits of sha1("amlib-offline:" + name) as a fraction; below
  0.5 is test, else train (generated sentences);
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

WESNOTH_SOUNDS = Path("/usr/share/games/wesnoth/1.16/data/core/sounds")
WESNOTH_UI_SOUNDS = Path("/usr/share/games/wesnoth/1.16/sounds")
WESNOTH_CAMPAIGN_SOUNDS = Path("/usr/share/games/wesnoth/1.16/data/campaigns/World_Conquest/sounds")
FREEDESKTOP_SOUNDS = Path("/usr/share/sounds/freedesktop/stereo")
DRASCULA_DIR = Path("/usr/share/scummvm/drascula/audio")
SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")

# asset root -> the Debian package that installs it
PACKAGE_OF = {
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
#
# Real speech is split BY SPEAKER: every recording of a speaker (in every language the speaker recorded)
# belongs to that speaker's split. Five prompt sets from four real speakers ship in Debian with transcripts:
#   test:  Allison Smith (en_US and es_MX prompts), the ru_RU "IvrvoiceRU" speaker (www.ivrvoice.ru);
#   train: June Wallack (fr_CA), Carlo Flora (it_IT, male).
# Only Allison's prompts are English, so only the test split has real English speech (ASR's real
# items); the train split's real speech (French, Italian) serves SD only. Recordings are
# de-duplicated by CONTENT, not by name: one prompt is kept per decoded-audio hash and per normalised
# transcript within a speaker, and a train prompt whose audio or normalised transcript also occurs in
# the test split is dropped.


@dataclass(frozen=True)
class PromptSet:
    speaker: str  # the real person: the unit of the train/test split
    gender: str
    language: str  # ISO 639-1 of the recordings
    wav_dir: Path
    transcripts: Path
    split: str
    tts_language: str  # the espeak-ng language voice that reads this set's texts (SD fakes)

    @property
    def id(self) -> str:
        return f"{self.speaker}/{self.language}"


_SOUNDS = Path("/usr/share/asterisk/sounds")
_DOCS = Path("/usr/share/doc")
ASTERISK_WAV_DIR = _SOUNDS / "en_US_f_Allison"
ASTERISK_TRANSCRIPTS = _DOCS / "asterisk-core-sounds-en/core-sounds-en.txt.gz"
PROMPT_SETS = (
    PromptSet("asterisk-allison", "female", "en", ASTERISK_WAV_DIR, ASTERISK_TRANSCRIPTS, "test", "en-us"),
    PromptSet("asterisk-allison", "female", "es", _SOUNDS / "es_MX_f_Allison",
              _DOCS / "asterisk-core-sounds-es/core-sounds-es.txt.gz", "test", "es-419"),
    PromptSet("asterisk-ivrvoice-ru", "female", "ru", _SOUNDS / "ru_RU_f_IvrvoiceRU",
              _DOCS / "asterisk-core-sounds-ru/core-sounds-ru.txt.gz", "test", "ru"),
    PromptSet("asterisk-june", "female", "fr", _SOUNDS / "fr_CA_f_June",
              _DOCS / "asterisk-core-sounds-fr/core-sounds-fr.txt.gz", "train", "fr"),
    PromptSet("asterisk-carlo", "male", "it", _SOUNDS / "it_IT_m_Carlo",
              _DOCS / "asterisk-core-sounds-it/core-sounds-it.txt.gz", "train", "it"),
)
for _set in PROMPT_SETS:
    _lang = _set.language
    PACKAGE_OF[_set.wav_dir] = f"asterisk-core-sounds-{_lang}-wav"
    PACKAGE_OF[_set.transcripts] = f"asterisk-core-sounds-{_lang}"


@dataclass(frozen=True)
class Prompt:
    key: str  # e.g. "conf-getpin" or "digits/5": the path under the set's folder without .wav
    text: str  # normalised transcript (what the recording says, spelled as words)
    path: Path
    speaker: str = "asterisk-allison"
    language: str = "en"
    split: str = "test"
    audio_sha1: str = ""  # sha1 of the decoded samples (int16 PCM as stored)

    @property
    def id(self) -> str:
        return f"{self.language}/{self.key}"


_ALLOWED = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ,.'?!-]*")
_ALLOWED_OTHER = re.compile(r"(?:[^\W\d_]|[ ,.'\u2019?!\u00bf\u00a1\u2013\u2014:;\u00ab\u00bb-])+")


def normalize_prompt_text(text: str, language: str = "en") -> str | None:
    """The transcript as plain words, or None where it cannot be spelled reliably.

    A leading "..." goes; standalone numbers 0..99 become words ("press 1" -> "press one"); hyphens
    stay ("Call-Forward", "re-record"): the WAR metric removes them from reference and hypothesis
    alike, so a model that writes the usual spelling is not penalised. Left out (None): bracketed non-speech
    ("[ascending tones]"), symbols (* # < >), numbers of 100 or more (read as digits or as a number?),
    numbers glued to letters ("3D") and acronyms ("DAHDI", "P.M."). Other languages (SD only): letters
    of any script and punctuation; any digit, symbol or trailing "..." leaves the prompt out.
    """
    text = re.sub(r"^(\.\.\.|…)\s*", "", text.strip().lstrip("\ufeff"))
    if language != "en":
        text = " ".join(text.split())
        if not text or text.endswith(("...", "…")) or not _ALLOWED_OTHER.fullmatch(text):
            return None
        return text
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


def text_key(text: str) -> str:
    """A transcript or sentence reduced for content comparison: lower case, letters and digits only."""
    import unicodedata

    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w\s]|_", " ", text).split())


def audio_sha1(path: Path) -> str:
    """sha1 of a file's decoded samples (as stored: int16 for PCM, float32 otherwise): equal content, equal
    hash, whatever the file's name or container."""
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="int16", always_2d=True)
    except RuntimeError:  # not PCM-decodable as int16 (e.g. some OGG): decode to float
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return hashlib.sha1(np.ascontiguousarray(data).tobytes() + str(sr).encode()).hexdigest()


@functools.lru_cache(maxsize=None)
def sound_sha1(path: str) -> str:
    """`audio_sha1` of a packaged sound file, cached (the content identity recorded in item meta)."""
    return audio_sha1(Path(path))


def _read_set(pset: PromptSet, left_out: dict[str, int]) -> list[Prompt]:
    require_path(pset.wav_dir)
    transcripts = require_path(pset.transcripts)
    prompts = []
    with gzip.open(transcripts, "rt", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.lstrip("\ufeff")
            if not line.strip() or line.startswith(";"):
                continue
            key, sep, raw = line.partition(":")
            if not sep:
                raise AssetError(f"{transcripts}:{lineno}: expected 'name: transcript', got {line.strip()[:60]!r}")
            path = pset.wav_dir / f"{key.strip()}.wav"
            text = normalize_prompt_text(raw, pset.language)
            if text is None:
                left_out["no transcript spelled as words"] += 1
            elif not path.is_file():
                left_out["no wav file"] += 1
            else:
                prompts.append(Prompt(key.strip(), text, path, pset.speaker, pset.language, pset.split,
                                      audio_sha1(path)))
    if not prompts:
        raise AssetError(f"{transcripts}: no usable prompt (is {PACKAGE_OF[pset.wav_dir]} installed?)")
    return prompts


@functools.lru_cache(maxsize=1)
def asterisk_prompts() -> tuple[tuple[Prompt, ...], dict[str, int]]:
    """(usable prompts of every set, counts of what was left out and why), de-duplicated by content:
    within a speaker one prompt per decoded-audio hash and per normalised transcript (the first by
    set order and key); then every train prompt whose audio hash or normalised transcript occurs in
    the test split is dropped."""
    left_out = {"no transcript spelled as words": 0, "no wav file": 0, "duplicate recording": 0,
                "duplicate transcript": 0, "shared with the test split": 0}
    kept: list[Prompt] = []
    for pset in PROMPT_SETS:
        seen_audio: set[str] = {p.audio_sha1 for p in kept if p.speaker == pset.speaker}
        seen_text: set[str] = {text_key(p.text) for p in kept if p.speaker == pset.speaker}
        for p in sorted(_read_set(pset, left_out), key=lambda p: p.key):
            if p.audio_sha1 in seen_audio:
                left_out["duplicate recording"] += 1
            elif text_key(p.text) in seen_text:
                left_out["duplicate transcript"] += 1
            else:
                seen_audio.add(p.audio_sha1)
                seen_text.add(text_key(p.text))
                kept.append(p)
    test_audio = {p.audio_sha1 for p in kept if p.split == "test"}
    test_text = {text_key(p.text) for p in kept if p.split == "test"}
    out = []
    for p in kept:
        if p.split == "train" and (p.audio_sha1 in test_audio or text_key(p.text) in test_text):
            left_out["shared with the test split"] += 1
        else:
            out.append(p)
    return tuple(out), left_out


def prompt_sets_of(split: str) -> list[PromptSet]:
    check_split(split)
    return [s for s in PROMPT_SETS if s.split == split]


def prompts_of_set(pset: PromptSet) -> list[Prompt]:
    return [p for p in asterisk_prompts()[0] if p.speaker == pset.speaker and p.language == pset.language]


def prompts_of_split(split: str, language: str | None = None) -> list[Prompt]:
    check_split(split)
    return [p for p in asterisk_prompts()[0] if p.split == split and (language is None or p.language == language)]


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
