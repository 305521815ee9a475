"""Offline dataset builders: TTS from Debian packages (espeak-ng, flite) and generated text.

    from amlib.data.offline import build_skeleton
    build_skeleton("data/skeleton")  # SGR + ASR, 4 items each, 90-300 s; or:
    python -m amlib.data.offline.skeleton data/skeleton
"""

from amlib.data.offline.sentences import make_sentences, number_words
from amlib.data.offline.tts import DEBIAN_PACKAGES, VOICES, TTSError, Voice, check_voice, synthesize, voices_by_gender

__all__ = [
    "DEBIAN_PACKAGES", "VOICES", "TTSError", "Voice", "check_voice", "synthesize", "voices_by_gender",
    "make_sentences", "number_words", "SkeletonError", "build_skeleton",
]


def __getattr__(name: str):
    # Lazy, so that `python -m amlib.data.offline.skeleton` does not import the module twice.
    if name in ("build_skeleton", "SkeletonError"):
        from amlib.data.offline import skeleton

        return getattr(skeleton, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
