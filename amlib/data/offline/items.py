"""What every offline-suite task builder shares: the item it returns, durations, and reading text aloud."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from amlib.data.audio import SAMPLE_RATE
from amlib.data.offline.assets import hash_split, sound_sha1
from amlib.data.offline.sentences import make_sentences
from amlib.data.offline.voices import Prosody, SuiteVoice, content_prosody, speak, speak_many
from amlib.data.timeline import spans_of_pieces, timeline


class SuiteError(RuntimeError):
    """An offline-suite item cannot be built as asked (e.g. the duration bounds cannot be met)."""


@dataclass
class Item:
    """One built item before it is written: audio, its class and what the row needs."""
    wave: np.ndarray
    label: str  # the class (true option text); for ASR the reference transcript
    meta: dict = field(default_factory=dict)
    question: str = ""
    distractors: list[str] | None = None  # item-specific wrong options (SCR, SER); None: other classes


def assets_meta(*, tts=(), real=(), texts=(), files=(), pieces=(), generators=()) -> dict:
    """What an item was made of, for the content checks of train/test leakage (tests/test_offline_leakage.py):
    TTS voices by speaker, real speakers, the texts read, the packaged sound files used (path -> sha1 of
    the decoded samples), music pieces (sha1 of their notes) and synthetic generators with their
    parameters. Every key is always present."""
    return {"tts_speakers": sorted({v.speaker for v in tts}), "real_speakers": sorted(set(real)),
            "texts": list(texts), "files": {str(f): sound_sha1(str(f)) for f in sorted(set(map(str, files)))},
            "pieces": list(pieces), "generators": list(generators)}


@dataclass(frozen=True)
class Window:
    """The duration an item aims at (drawn in [min_s, max_s]) and the bounds it must respect."""
    target_s: float
    min_s: float
    max_s: float

    @property
    def target_n(self) -> int:
        return int(round(self.target_s * SAMPLE_RATE))

    @property
    def max_n(self) -> int:
        return int(np.floor(self.max_s * SAMPLE_RATE))

    @property
    def min_n(self) -> int:
        return int(np.ceil(self.min_s * SAMPLE_RATE))

    def check(self, wave: np.ndarray, what: str) -> np.ndarray:
        if not self.min_n <= wave.size <= self.max_n:
            raise SuiteError(f"{what}: {wave.size / SAMPLE_RATE:.2f} s is outside [{self.min_s}, {self.max_s}] s")
        return wave


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * SAMPLE_RATE)), dtype=np.float32)


def sentence_stream(rng: np.random.Generator, split: str, min_words: int = 8,
                    max_words: int = 20) -> Callable[[], str]:
    """Generated sentences of `split` only: a sentence belongs to the split its text hashes to, so the
    train and test splits never share a sentence."""
    def next_sentence() -> str:
        for _ in range(1000):
            text = make_sentences(1, rng, min_words, max_words)[0]
            if hash_split(f"sentence:{text}") == split:
                return text
        raise SuiteError("no generated sentence hashed to the split in 1000 draws")
    return next_sentence


class SpokenStream:
    """(text, speech) pairs from a text stream; festival voices are synthesized FESTIVAL_BATCH texts at
    a time (one process per batch), the others one by one. Texts drawn ahead and never used are
    simply dropped (they only advance the seeded stream)."""
    FESTIVAL_BATCH = 8

    def __init__(self, next_text: Callable[[], str], voice: SuiteVoice, prosody: Prosody | None = None):
        self.next_text, self.voice, self.prosody = next_text, voice, prosody
        self.ready: list[tuple[str, np.ndarray]] = []

    def __call__(self) -> tuple[str, np.ndarray]:
        if not self.ready:
            n = self.FESTIVAL_BATCH if self.voice.engine == "festival" else 1
            texts = [self.next_text() for _ in range(n)]
            self.ready = list(zip(texts, speak_many(texts, self.voice, self.prosody)))
        return self.ready.pop(0)


@dataclass
class Reading:
    pieces: list[np.ndarray]  # speech and pauses, in order
    texts: list[str]

    @property
    def wave(self) -> np.ndarray:
        return np.concatenate(self.pieces).astype(np.float32)

    @property
    def n_samples(self) -> int:
        return sum(p.size for p in self.pieces)

    @property
    def spans(self) -> list[tuple[int, int]]:
        """Sample spans of the sentences in `wave` (pieces alternate pause, sentence)."""
        return spans_of_pieces(self.pieces, range(1, len(self.pieces), 2))

    def timeline(self) -> dict:
        """meta["timeline"] of `wave`: its sentences with their texts."""
        return timeline(self.spans, texts=self.texts)


def read_aloud(next_text: Callable[[], str], voice: SuiteVoice, window: Window, rng: np.random.Generator,
               pause_s: tuple[float, float] = (0.3, 0.6), prosody: Callable[[], Prosody | None] = lambda: None,
               what: str = "item", clear: bool = False) -> Reading:
    """Sentences from `next_text` read by `voice`, with seeded pauses between them, until the window's
    target; a sentence that would pass max_s is replaced by another (up to 8 tries), then reading stops.
    `clear`: read for content (ASR, SCR, SER): espeak-ng voices slowed down (voices.content_prosody).
    Raises SuiteError when the result stays below min_s."""
    reading = Reading([], [])
    tries = 0
    spoken = SpokenStream(next_text, voice, content_prosody(voice) if clear else None)
    while reading.n_samples < window.target_n:
        settings = prosody()  # per-sentence prosody (ER) is synthesized one sentence at a time
        if settings is None:
            text, wave = spoken()
        else:
            text = next_text()
            wave = speak(text, voice, settings)
        gap = silence(rng.uniform(*pause_s)) if reading.pieces else silence(0)
        if reading.n_samples + gap.size + wave.size > window.max_n:
            tries += 1
            if tries >= 8:
                break
            continue
        reading.pieces += [gap, wave]
        reading.texts.append(text)
    if reading.n_samples < window.min_n:
        raise SuiteError(f"{what}: {voice.id} reached only {reading.n_samples / SAMPLE_RATE:.1f} s, below "
                         f"min_seconds={window.min_s}; one sentence lasts 2-8 s, widen [min, max]")
    return reading
