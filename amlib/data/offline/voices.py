"""The suite's TTS voice inventory (espeak-ng, flite, festival), its train/test split, and synthesis.

Voices are split by SPEAKER, so that the same underlying voice never serves both splits:
- espeak-ng: a voice is accent x variant; train accents {en-us, en (British), en-gb-scotland, en-gb-x-gbclan}
  with variants {m1..m4, f1..f3}; test accents {en-gb-x-rp, en-029, en-gb-x-gbcwmd, en-us-nyc} with
  variants {m5..m7, f4, f5}: no accent and no variant is shared.
- flite / festival: CMU 'kal' (flite kal16, festival kal_diphone) and 'rms' are train; 'slt' (flite slt,
  festival cmu_us_slt_arctic_hts), 'awb' and 'ked' are test. Both engines' copies of one speaker
  (kal, slt) stay in one split.
Genders as tts.py checked them (median F0) and as the packages name them (ked: male diphone voice).
espeak-ng 1.51 ignores the +variant of `-v en-gb+f1` (every en-gb variant gives the same bytes), so
British English is named `en` (the same gmw/en voice), where variants apply.

Speech-content tasks (ASR, SCR, SER) read with `content_voices` and `content_prosody`: espeak-ng 20 %
slower than its default, and without the voices that Whisper tiny.en understood worst (mean WER
above 0.55 on five generated sentences at that rate, measured on espeak-ng 1.51: all en-gb-scotland
variants but m1 (0.53), and en-gb-x-gbclan f1-f3; the accent is dropped whole). The other tasks
use every voice.
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from amlib.data.audio import SAMPLE_RATE
from amlib.data.offline import tts
from amlib.data.offline.assets import AssetError, check_split, require_binary

ESPEAK_ACCENTS = {"train": ("en-us", "en", "en-gb-scotland", "en-gb-x-gbclan"),
                  "test": ("en-gb-x-rp", "en-029", "en-gb-x-gbcwmd", "en-us-nyc")}
ESPEAK_VARIANTS = {"train": {"male": ("m1", "m2", "m3", "m4"), "female": ("f1", "f2", "f3")},
                   "test": {"male": ("m5", "m6", "m7"), "female": ("f4", "f5")}}
# (engine, name, gender, speaker, split); festival names are its Scheme voice names
OTHER_VOICES = (
    ("flite", "kal16", "male", "cmu-kal", "train"),
    ("festival", "kal_diphone", "male", "cmu-kal", "train"),
    ("flite", "rms", "male", "cmu-rms", "train"),
    ("flite", "slt", "female", "cmu-slt", "test"),
    ("festival", "cmu_us_slt_arctic_hts", "female", "cmu-slt", "test"),
    ("flite", "awb", "male", "cmu-awb", "test"),
    ("festival", "ked_diphone", "male", "cmu-ked", "test"),
)
FESTIVAL_PACKAGES = {"kal_diphone": "festvox-kallpc16k", "ked_diphone": "festvox-kdlpc16k",
                     "cmu_us_slt_arctic_hts": "festvox-us-slt-hts"}
_TRIM_DB = 40.0
_TIMEOUT_S = 300


@dataclass(frozen=True)
class SuiteVoice:
    engine: str  # espeak-ng | flite | festival
    name: str  # the engine's voice name ("en-us+m3", "slt", "kal_diphone")
    gender: str  # male | female
    speaker: str  # the underlying speaker: the unit of the train/test split
    split: str

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


@functools.lru_cache(maxsize=None)
def all_voices() -> tuple[SuiteVoice, ...]:
    voices = []
    for split in ("train", "test"):
        for accent in ESPEAK_ACCENTS[split]:
            for gender, variants in ESPEAK_VARIANTS[split].items():
                voices += [SuiteVoice("espeak-ng", f"{accent}+{v}", gender, f"espeak-{accent}+{v}", split)
                           for v in variants]
    voices += [SuiteVoice(e, n, g, s, sp) for e, n, g, s, sp in OTHER_VOICES]
    return tuple(voices)


def voices_of(split: str, engine: str | None = None, gender: str | None = None) -> list[SuiteVoice]:
    check_split(split)
    return [v for v in all_voices() if v.split == split and (engine is None or v.engine == engine)
            and (gender is None or v.gender == gender)]


def language_voices(language: str, split: str, gender: str) -> list[SuiteVoice]:
    """espeak-ng voices of another language (SD fakes of non-English real speakers): the language voice
    with the split's variants of `gender`, so no variant serves both splits. Not in `all_voices`: no
    other task uses them."""
    check_split(split)
    return [SuiteVoice("espeak-ng", f"{language}+{v}", gender, f"espeak-{language}+{v}", split)
            for v in ESPEAK_VARIANTS[split][gender]]


CONTENT_RATE = -20.0  # percent: espeak-ng's default rate is fast for read content
UNCLEAR_FOR_CONTENT = ("en-gb-scotland+", "en-gb-x-gbclan+f")  # name prefixes, see the module docstring


def content_voices(split: str) -> list[SuiteVoice]:
    return [v for v in voices_of(split) if not v.name.startswith(UNCLEAR_FOR_CONTENT)]


def content_prosody(voice: SuiteVoice) -> "Prosody | None":
    return Prosody(rate=CONTENT_RATE) if voice.engine == "espeak-ng" else None


def trim(wave: np.ndarray, pad_s: float = 0.05) -> np.ndarray:
    """Leading and trailing silence (below -40 dB of the peak) cut, keeping `pad_s` around the speech."""
    level = np.abs(wave)
    peak = float(level.max()) if wave.size else 0.0
    if peak == 0.0:
        return wave
    loud = np.flatnonzero(level > peak * 10 ** (-_TRIM_DB / 20))
    pad = int(pad_s * SAMPLE_RATE)
    return wave[max(0, loud[0] - pad): loud[-1] + 1 + pad]


@dataclass(frozen=True)
class Prosody:
    """espeak-ng SSML <prosody> settings, relative to the voice's defaults (percent changes)."""
    rate: float = 0.0
    pitch: float = 0.0
    range: float = 0.0

    def ssml(self, text: str) -> str:
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return (f'<speak><prosody rate="{100 + self.rate:.0f}%" pitch="{self.pitch:+.0f}%" '
                f'range="{self.range:+.0f}%">{escaped}</prosody></speak>')


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise tts.TTSError(f"{what}: timed out after {_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise tts.TTSError(f"{what}: `{' '.join(cmd)}` failed ({proc.returncode}): {(proc.stderr or '').strip()[:300]}")


def _read(path: Path, what: str) -> np.ndarray:
    if not path.is_file() or path.stat().st_size <= 44:
        raise tts.TTSError(f"{what}: wrote no audio")
    wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    if sr != SAMPLE_RATE:
        import librosa

        wave = librosa.resample(wave, orig_sr=sr, target_sr=SAMPLE_RATE)
    return wave


def _espeak_ssml(text: str, voice: SuiteVoice, prosody: Prosody) -> np.ndarray:
    tts.check_voice(tts.Voice("espeak-ng", voice.name, voice.gender, voice.id))
    with tempfile.TemporaryDirectory(prefix="amlib-ssml-") as tmp:
        src, wav = Path(tmp) / "in.xml", Path(tmp) / "out.wav"
        src.write_text(prosody.ssml(text), encoding="utf-8")
        what = f"espeak-ng voice {voice.name!r} with {prosody}"
        _run([require_binary("espeak-ng"), "-m", "-v", voice.name, "-f", str(src), "-w", str(wav)], what)
        return _read(wav, what)


@functools.lru_cache(maxsize=None)
def _festival_voice_ok(name: str) -> None:
    package = FESTIVAL_PACKAGES.get(name, "festival")
    for root in (Path("/usr/share/festival/voices"),):
        if any(root.glob(f"*/{name}")):
            return
    raise AssetError(f"festival voice {name!r} not installed: it comes with the Debian package {package}; "
                     f"install it with `apt-get update && apt-get install -y {package}`")


def _festival_many(texts: list[str], voice: SuiteVoice) -> list[np.ndarray]:
    """Several texts in ONE festival process: starting festival and loading a voice costs more than
    synthesizing a sentence."""
    _festival_voice_ok(voice.name)
    with tempfile.TemporaryDirectory(prefix="amlib-fest-") as tmp:
        lines = [f"(voice_{voice.name})"]
        for k, text in enumerate(texts):
            quoted = text.replace("\\", " ").replace('"', "'")
            lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{quoted}")) "{tmp}/{k}.wav" \'riff)')
        script = Path(tmp) / "batch.scm"
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        what = f"festival voice {voice.name!r}"
        _run([require_binary("festival"), "-b", str(script)], what)
        return [_read(Path(tmp) / f"{k}.wav", f"{what} on {text[:40]!r}") for k, text in enumerate(texts)]


_cache: dict[tuple, np.ndarray] = {}
_cache_lock = threading.Lock()
_CACHE_MAX_SAMPLES = 30 * 60 * SAMPLE_RATE  # about 30 min of speech (~115 MB float32)
_cached_samples = 0


def speak(text: str, voice: SuiteVoice, prosody: Prosody | None = None) -> np.ndarray:
    """`text` read by `voice` (16 kHz mono float32, silence trimmed), cached per (voice, text, prosody)."""
    if not text.strip():
        raise ValueError("speak: empty text")
    key = (voice, text, prosody)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    if prosody is not None:
        if voice.engine != "espeak-ng":
            raise ValueError(f"prosody settings need an espeak-ng voice, not {voice.id}")
        wave = _espeak_ssml(text, voice, prosody)
    elif voice.engine == "festival":
        wave = _festival_many([text], voice)[0]
    else:
        wave = tts.synthesize(text, tts.Voice(voice.engine, voice.name, voice.gender, voice.id))
    return _remember(key, wave)


def _remember(key: tuple, wave: np.ndarray) -> np.ndarray:
    global _cached_samples
    voice, text = key[0], key[1]
    wave = np.ascontiguousarray(trim(wave), dtype=np.float32)
    if wave.size == 0 or not np.any(wave):
        raise tts.TTSError(f"{voice.id} produced silence for {text[:60]!r}")
    wave.setflags(write=False)
    with _cache_lock:
        if _cached_samples + wave.size <= _CACHE_MAX_SAMPLES:
            _cache[key] = wave
            _cached_samples += wave.size
    return wave


def speak_many(texts: list[str], voice: SuiteVoice, prosody: Prosody | None = None) -> list[np.ndarray]:
    """`speak` for several texts; festival voices synthesize them in one process."""
    if voice.engine != "festival" or len(texts) < 2:
        return [speak(t, voice, prosody) for t in texts]
    if not all(t.strip() for t in texts):
        raise ValueError("speak_many: empty text")
    return [_remember((voice, t, None), w) for t, w in zip(texts, _festival_many(texts, voice))]
