"""The embedded "skeleton" test set, built offline from TTS: SGR (speaker gender) and ASR items.

Each item is ONE voice reading generated sentences one after another, `gap_seconds` of silence
between them, until a target length drawn uniformly from [min_seconds, max_seconds] is reached. A
sentence that would push the item past max_seconds is replaced by shorter ones (fewer words); when
none fits the item ends there, and an item that ends below min_seconds is an error. Each item is
peak-normalised to -1 dBFS and written as 16 kHz mono PCM-16; duration_s in the manifest is read
back from the written file.

Everything is derived from `seed` (target lengths, voices, sentences) and both engines are
deterministic, so the same seed rebuilds byte-identical audio and manifest.

    python -m amlib.data.offline.skeleton OUT_DIR [--per-task 4] [--min-seconds 90] [--max-seconds 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from amlib.data.audio import SAMPLE_RATE, write_audio
from amlib.data.manifest import write_manifest
from amlib.data.offline.sentences import make_sentences, word_count
from amlib.data.offline.tts import VOICES, Voice, check_voice, synthesize
from amlib.data.timeline import spans_of_pieces, timeline
from amlib.tasks import TASKS

SOURCE = "offline-tts"
TASK_CODES = ("SGR", "ASR")
QUESTIONS = {"SGR": "Is this a male or female voice?", "ASR": "Transcribe the audio."}
SGR_CHOICES = list(TASKS["SGR"].fixed_choices)  # ["male", "female"]: A = male, B = female
GAP_SECONDS = 0.3
PEAK_DBFS = -1.0
MIN_WORDS, MAX_WORDS = 8, 20
_TRIM_DB = 50.0  # engines pad each sentence with 0.1-0.3 s of silence; trimmed so the gap is the gap
_TRIM_PAD_S = 0.01
_SHORTER_TRIES = 4


class SkeletonError(RuntimeError):
    """The skeleton set cannot be built as asked (e.g. an item cannot reach min_seconds)."""


@dataclass(frozen=True)
class _Plan:
    id: str
    task: str
    index: int
    voice: Voice
    seed_seq: tuple[int, ...]


def _trim(wave: np.ndarray) -> np.ndarray:
    level = np.abs(wave)
    peak = float(level.max()) if wave.size else 0.0
    if peak == 0.0:
        return wave
    loud = np.flatnonzero(level > peak * 10 ** (-_TRIM_DB / 20))
    pad = int(round(_TRIM_PAD_S * SAMPLE_RATE))
    return wave[max(0, loud[0] - pad): min(wave.size, loud[-1] + 1 + pad)]


def _plan(per_task: int, seed: int, split: str, voices: list[Voice]) -> list[_Plan]:
    males = [v for v in voices if v.gender == "male"]
    females = [v for v in voices if v.gender == "female"]
    if not males or not females:
        raise SkeletonError("SGR needs at least one male and one female voice")
    plans: list[_Plan] = []
    for t, task in enumerate(TASK_CODES):
        pick = np.random.default_rng([seed, t, 1_000_000])  # voice order for this task
        male_order = [males[k] for k in pick.permutation(len(males))]
        female_order = [females[k] for k in pick.permutation(len(females))]
        all_order = [voices[k] for k in pick.permutation(len(voices))]
        for i in range(per_task):
            if task == "SGR":  # alternate male, female, male, ...
                order = male_order if i % 2 == 0 else female_order
                voice = order[(i // 2) % len(order)]
            else:
                voice = all_order[i % len(all_order)]
            plans.append(_Plan(f"{task}-{split}-{i:04d}", task, i, voice, (seed, t, i)))
    return plans


def _speak_item(plan: _Plan, min_seconds: float, max_seconds: float, gap_seconds: float):
    rng = np.random.default_rng(list(plan.seed_seq))
    target_s = float(rng.uniform(min_seconds, max_seconds))
    max_n = int(math.floor(max_seconds * SAMPLE_RATE))
    min_n = int(math.ceil(min_seconds * SAMPLE_RATE))
    target_n = min(int(math.ceil(target_s * SAMPLE_RATE)), max_n)
    gap = np.zeros(int(round(gap_seconds * SAMPLE_RATE)), dtype=np.float32)

    pieces: list[np.ndarray] = []
    texts: list[str] = []
    total = 0
    while total < target_n:
        sep = gap.size if pieces else 0
        room = max_n - total - sep
        fitted = None
        words = MAX_WORDS
        for _ in range(_SHORTER_TRIES):
            text = make_sentences(1, rng, MIN_WORDS, words)[0]
            wave = _trim(synthesize(text, plan.voice))
            if wave.size <= room:
                fitted = (text, wave)
                break
            # Too long: ask for fewer words, scaled by how much of this sentence would fit.
            words = min(words - 1, int(word_count(text) * room / wave.size))
            if words < MIN_WORDS:
                break
        if fitted is None:
            break  # nothing fits before max_seconds: the item ends here
        if pieces:
            pieces.append(gap)
        pieces.append(fitted[1])
        texts.append(fitted[0])
        total += sep + fitted[1].size

    if total < min_n:
        raise SkeletonError(
            f"{plan.id}: voice {plan.voice.id} reached only {total / SAMPLE_RATE:.2f} s, below "
            f"min_seconds={min_seconds} (max_seconds={max_seconds}); one sentence lasts about 2-8 s, "
            f"so widen the [min_seconds, max_seconds] range"
        )
    wave = np.concatenate(pieces)
    peak = float(np.abs(wave).max())
    wave = (wave * (10 ** (PEAK_DBFS / 20) / peak)).astype(np.float32)
    # pieces alternate sentence, gap; peak normalisation moves no sample
    line = timeline(spans_of_pieces(pieces, range(0, len(pieces), 2)), texts=texts)
    return wave, texts, target_s, line


def _row(plan: _Plan, rel_audio: str, duration_s: float, texts: list[str], target_s: float, seed: int,
         split: str, gap_seconds: float, line: dict) -> dict:
    v = plan.voice
    if plan.task == "SGR":
        choices, answer = list(SGR_CHOICES), "A" if v.gender == "male" else "B"
    else:
        choices, answer = [], " ".join(texts)
    return {
        "id": plan.id, "task": plan.task, "audio": rel_audio, "duration_s": duration_s,
        "question": QUESTIONS[plan.task], "choices": choices, "answer": answer,
        "source": SOURCE, "split": split,
        "meta": {
            "engine": v.engine, "voice": v.name, "voice_label": v.label, "gender": v.gender,
            "n_sentences": len(texts), "seed": seed, "target_s": round(target_s, 3),
            "gap_s": gap_seconds, "timeline": line,
        },
    }


def build_skeleton(
    out_dir: str | Path,
    per_task: int = 4,
    min_seconds: float = 90,
    max_seconds: float = 300,
    seed: int = 0,
    split: str = "test",
    *,
    voices: list[Voice] | None = None,
    gap_seconds: float = GAP_SECONDS,
    workers: int | None = None,
) -> Path:
    """Write `out_dir/audio/<id>.wav` and `out_dir/manifest.jsonl`; return the manifest's path.

    `per_task` items each of SGR (alternating male/female, choices ["male", "female"], answer A/B)
    and ASR (answer = the exact transcript). `voices` defaults to tts.VOICES; `workers` threads
    (default: one per CPU) build items in parallel without changing the result.
    """
    if isinstance(per_task, bool) or not isinstance(per_task, int) or per_task < 1:
        raise ValueError(f"per_task must be a positive int, got {per_task!r}")
    if not 0 < min_seconds <= max_seconds:
        raise ValueError(f"need 0 < min_seconds <= max_seconds, got {min_seconds}..{max_seconds}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if gap_seconds < 0:
        raise ValueError(f"gap_seconds must be >= 0, got {gap_seconds}")
    seed = int(seed)
    voices = list(VOICES if voices is None else voices)
    for voice in voices:
        check_voice(voice)  # fail early, naming the voice, before any audio is written

    out_dir = Path(out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    plans = _plan(per_task, seed, split, voices)

    def build(plan: _Plan) -> dict:
        wave, texts, target_s, line = _speak_item(plan, min_seconds, max_seconds, gap_seconds)
        rel = f"audio/{plan.id}.wav"
        write_audio(out_dir / rel, wave, SAMPLE_RATE)
        info = sf.info(str(out_dir / rel))
        return _row(plan, rel, info.frames / info.samplerate, texts, target_s, seed, split, gap_seconds, line)

    n_workers = workers or min(len(plans), os.cpu_count() or 1)
    if n_workers <= 1:
        rows = [build(p) for p in plans]
    else:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:  # subprocess + numpy release the GIL
            rows = list(pool.map(build, plans))
    return write_manifest(out_dir / "manifest.jsonl", rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m amlib.data.offline.skeleton", description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--per-task", type=int, default=4)
    ap.add_argument("--min-seconds", type=float, default=90)
    ap.add_argument("--max-seconds", type=float, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="test")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    path = build_skeleton(args.out_dir, args.per_task, args.min_seconds, args.max_seconds, args.seed, args.split)
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
