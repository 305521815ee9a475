"""Offline text-to-speech through the Debian packages espeak-ng and flite (no network, no weights).

`synthesize(text, voice)` runs the engine's command-line tool into a temporary WAV file and returns
16 kHz mono float32. Both engines are deterministic: the same text and voice give the same samples.

The genders below were checked by ear-free means on espeak-ng 1.51 and flite 2.2 (Debian 12): the
median F0 (librosa.pyin) of one 15-word sentence was 87-131 Hz for every male voice and 172-213 Hz
for every female one. flite's `kal` (8 kHz) is left out in favour of `kal16`, the same diphone voice
at 16 kHz; flite has one female voice only (slt).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from amlib.data.audio import SAMPLE_RATE

ENGINE_PACKAGES = {"espeak-ng": "espeak-ng", "flite": "flite"}  # engine (= its CLI) -> apt package
DEBIAN_PACKAGES = tuple(sorted(set(ENGINE_PACKAGES.values())))  # what the Makefile apt-installs
GENDERS = ("male", "female")
_TIMEOUT_S = 120


class TTSError(RuntimeError):
    """A voice cannot be synthesized: the engine is missing, the voice unknown, or the CLI failed."""


@dataclass(frozen=True)
class Voice:
    engine: str  # "espeak-ng" or "flite"
    name: str  # what the CLI's voice option takes: "slt", "en-us+f3"
    gender: str  # "male" or "female"
    label: str  # provenance, for the manifest's meta

    def __post_init__(self) -> None:
        if self.engine not in ENGINE_PACKAGES:
            raise TTSError(f"unknown TTS engine {self.engine!r} (known: {', '.join(ENGINE_PACKAGES)})")
        if self.gender not in GENDERS:
            raise ValueError(f"voice gender must be one of {GENDERS}, got {self.gender!r}")

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


VOICES: list[Voice] = [
    # flite 2.2 (Debian package flite): CMU voices compiled into the binary.
    Voice("flite", "kal16", "male", "flite 2.2 cmu_us_kal16: diphone, US English male (Kevin Lenzo), 16 kHz"),
    Voice("flite", "awb", "male", "flite 2.2 cmu_us_awb: clustergen, CMU ARCTIC awb, Scottish English male"),
    Voice("flite", "rms", "male", "flite 2.2 cmu_us_rms: clustergen, CMU ARCTIC rms, US English male"),
    Voice("flite", "slt", "female", "flite 2.2 cmu_us_slt: clustergen, CMU ARCTIC slt, US English female"),
    # espeak-ng 1.51 (Debian package espeak-ng): formant synthesis, language voice + variant.
    Voice("espeak-ng", "en-us+m1", "male", "espeak-ng 1.51 en-us, variant m1 (male1)"),
    Voice("espeak-ng", "en-us+m3", "male", "espeak-ng 1.51 en-us, variant m3 (male3)"),
    Voice("espeak-ng", "en-gb-x-rp+m3", "male", "espeak-ng 1.51 en-gb-x-rp (Received Pronunciation), variant m3"),
    Voice("espeak-ng", "en-us+f1", "female", "espeak-ng 1.51 en-us, variant f1 (female1)"),
    Voice("espeak-ng", "en-us+f2", "female", "espeak-ng 1.51 en-us, variant f2 (female2)"),
    Voice("espeak-ng", "en-us+f3", "female", "espeak-ng 1.51 en-us, variant f3 (female3)"),
    Voice("espeak-ng", "en-us+f4", "female", "espeak-ng 1.51 en-us, variant f4 (female4)"),
    Voice("espeak-ng", "en-gb-x-rp+f3", "female", "espeak-ng 1.51 en-gb-x-rp (Received Pronunciation), variant f3"),
]


def voices_by_gender(gender: str) -> list[Voice]:
    if gender not in GENDERS:
        raise ValueError(f"gender must be one of {GENDERS}, got {gender!r}")
    return [v for v in VOICES if v.gender == gender]


def _binary(engine: str) -> str:
    package = ENGINE_PACKAGES.get(engine)
    if package is None:
        raise TTSError(f"unknown TTS engine {engine!r} (known: {', '.join(ENGINE_PACKAGES)})")
    path = shutil.which(engine)
    if path is None:
        raise TTSError(
            f"TTS engine {engine!r} not found on PATH: install the Debian package with "
            f"`apt-get update && apt-get install -y {package}` (all offline voices: "
            f"`apt-get install -y {' '.join(DEBIAN_PACKAGES)}`)"
        )
    return path


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TTSError(f"{what}: `{' '.join(cmd)}` timed out after {_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout or "").strip() or "(no output)"
        raise TTSError(f"{what}: `{' '.join(cmd)}` failed with exit code {proc.returncode}: {err}")
    return proc


@functools.lru_cache(maxsize=None)
def _flite_voices() -> frozenset[str]:
    out = _run([_binary("flite"), "-lv"], "flite -lv").stdout
    return frozenset(out.split(":", 1)[-1].split())


@functools.lru_cache(maxsize=None)
def _espeak_voices() -> tuple[frozenset[str], frozenset[str]]:
    """(language voice names, variant names) of the installed espeak-ng."""
    exe = _binary("espeak-ng")

    def table(arg: str) -> list[list[str]]:
        lines = _run([exe, arg], f"espeak-ng {arg}").stdout.splitlines()[1:]
        return [line.split() for line in lines if line.strip()]

    langs = set()
    for cols in table("--voices"):  # Pty Language Age/Gender VoiceName File [Other languages]
        if len(cols) >= 5:
            langs.add(cols[1])
            langs.add(cols[4].split("/")[-1])
    variants = {cols[4][3:] for cols in table("--voices=variant") if len(cols) >= 5 and cols[4].startswith("!v/")}
    return frozenset(langs), frozenset(variants)


@functools.lru_cache(maxsize=None)
def check_voice(voice: Voice) -> None:
    """Raise TTSError unless the voice's engine is installed and knows the voice.

    Both CLIs fall back silently to a default voice for some unknown names (flite for any unknown
    -voice, espeak-ng for an unknown +variant), so the names are checked against their listings.
    """
    if voice.engine == "flite":
        known = _flite_voices()
        if voice.name not in known:
            raise TTSError(f"flite has no voice {voice.name!r} (flite -lv lists: {' '.join(sorted(known))})")
    elif voice.engine == "espeak-ng":
        langs, variants = _espeak_voices()
        lang, _, variant = voice.name.partition("+")
        if lang not in langs:
            raise TTSError(f"espeak-ng has no voice {lang!r} (see `espeak-ng --voices`)")
        if variant and variant not in variants:
            raise TTSError(
                f"espeak-ng has no voice variant {variant!r} in {voice.name!r} "
                f"(see `espeak-ng --voices=variant`; e.g. m1..m8, f1..f5)"
            )
    else:
        _binary(voice.engine)  # raises for an unknown engine


def synthesize(text: str, voice: Voice, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speak `text` with `voice`; return mono float32 at `sample_rate` (16 kHz by default)."""
    if not text.strip():
        raise ValueError("synthesize: empty text")
    check_voice(voice)
    exe = _binary(voice.engine)
    with tempfile.TemporaryDirectory(prefix="amlib-tts-") as tmp:
        txt, wav = Path(tmp) / "text.txt", Path(tmp) / "out.wav"
        txt.write_text(text + "\n", encoding="utf-8")  # a file: no argv quoting, no leading '-'
        if voice.engine == "flite":
            cmd = [exe, "-voice", voice.name, "-f", str(txt), "-o", str(wav)]
        else:
            cmd = [exe, "-v", voice.name, "-f", str(txt), "-w", str(wav)]
        what = f"TTS {voice.engine} voice {voice.name!r}"
        _run(cmd, what)
        if not wav.is_file() or wav.stat().st_size <= 44:
            raise TTSError(f"{what}: `{' '.join(cmd)}` wrote no audio")
        wave, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    if sr != sample_rate:
        import librosa

        wave = librosa.resample(wave, orig_sr=sr, target_sr=sample_rate)
    if wave.size == 0 or not np.any(wave):
        raise TTSError(f"TTS {voice.engine} voice {voice.name!r} produced silence for {text[:60]!r}")
    return np.ascontiguousarray(wave, dtype=np.float32)
