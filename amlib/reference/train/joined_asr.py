"""Long ASR training examples joined, at training time, from short ASR items of one speaker.

Why: trained on one-sentence clips the reference model transcribes one-sentence clips, but on a
90-300 s item it writes two or three sentences and stops (run 6). Long transcripts are what it must
learn to keep going on, and long items are costly to carry to the GPU; short clips of one speaker
read one after another, with pauses like the suite's (`PAUSE_S`), make them from data already there.
Each example is fixed by the plan's seed, so a resumed run sees the same examples.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from amlib.data import Sample, load_audio
from amlib.data.audio import SAMPLE_RATE

PAUSE_S = (0.3, 0.9)  # seconds of silence between two clips (the suite's readings use similar pauses)
TASK_KEY = "JOINED-ASR"  # their task name for --task-weights and the data summary


@dataclass(frozen=True)
class JoinedASR:
    """Short ASR samples of one speaker, read one after another with `pauses_s` between them."""

    index: int
    parts: tuple[Sample, ...]
    pauses_s: tuple[float, ...]  # len(parts) - 1

    @property
    def task(self) -> str:
        return TASK_KEY

    @property
    def duration_s(self) -> float:
        return sum(p.duration_s for p in self.parts) + sum(self.pauses_s)

    def sample(self) -> Sample:
        """The joined item as an ASR sample: its reference is the parts' transcripts in order."""
        return dataclasses.replace(
            self.parts[0], id=f"{TASK_KEY}-{self.index}", duration_s=round(self.duration_s, 3),
            answer=" ".join(p.answer.strip() for p in self.parts),
            meta={**self.parts[0].meta, "joined_from": [p.id for p in self.parts]})

    def audio(self) -> np.ndarray:
        pieces = []
        for i, part in enumerate(self.parts):
            if i:
                pieces.append(np.zeros(int(round(self.pauses_s[i - 1] * SAMPLE_RATE)), dtype=np.float32))
            pieces.append(load_audio(part.audio_path))
        return np.concatenate(pieces)


def speaker_of(sample: Sample) -> str:
    speaker = sample.meta.get("speaker")
    if not speaker:
        raise ValueError(f"ASR sample {sample.id} ({sample.root}): meta has no 'speaker'; joined examples "
                         f"need it so that one example keeps one voice, as the suite's items do")
    return str(speaker)


def plan_joined(samples: list[Sample], n: int, min_s: float, max_s: float, seed: int,
                max_part_s: float = 30.0) -> list[JoinedASR]:
    """`n` joined examples from the ASR samples of at most `max_part_s` seconds.

    Each draws a length uniformly in [min_s, max_s] and a speaker with probability proportional to
    the speaker's number of clips, then adds that speaker's clips in a seeded order (a clip that
    would pass max_s is skipped) until the length is reached or the speaker has no clip left.
    Only speakers with at least min_s seconds of clips are drawn."""
    if not 0 < min_s <= max_s:
        raise ValueError(f"joined ASR lengths need 0 < min_s <= max_s, got {min_s}, {max_s}")
    pools: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        if s.task == "ASR" and s.duration_s <= max_part_s:
            pools[speaker_of(s)].append(s)
    pools = {k: v for k, v in sorted(pools.items()) if sum(p.duration_s for p in v) >= min_s}
    if not pools:
        raise ValueError(f"no speaker has {min_s} s of ASR clips of at most {max_part_s} s to join")
    speakers = list(pools)
    weight = np.array([len(pools[k]) for k in speakers], dtype=float)
    rng = np.random.default_rng(seed)
    out = []
    for index in range(n):
        target = rng.uniform(min_s, max_s)
        pool = pools[speakers[int(rng.choice(len(speakers), p=weight / weight.sum()))]]
        parts, pauses, total = [], [], 0.0
        for k in rng.permutation(len(pool)):
            pause = float(rng.uniform(*PAUSE_S)) if parts else 0.0
            if total + pause + pool[k].duration_s > max_s:
                continue
            if parts:
                pauses.append(round(pause, 3))
            parts.append(pool[k])
            total += pause + pool[k].duration_s
            if total >= target:
                break
        out.append(JoinedASR(index, tuple(parts), tuple(pauses)))
    return out
