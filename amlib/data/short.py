"""Short (< 30 s) counterparts of long items, cut from each long item's OWN audio (paper Table 8).

`short_counterparts(samples, out_dir)` cuts one short item per long item from the segments its
builder recorded in `meta["timeline"]` (amlib.data.timeline) and writes the audio and a manifest
(`read_manifest` reads it). The question, options and answer are the long item's (ASR: the
transcript of exactly the segments kept); `meta["long_id"]` names the long item, `meta["cut"]` what
was kept. The samples are copied verbatim (same sample format, no re-normalisation), so a short item
differs from its long item in nothing but what was left out.

The budget: a cut lasts at most `max_seconds - MARGIN_S` (its duration, rounded to ms, stays below
`max_seconds`). The rule per task (no random choice is involved, so cuts are deterministic):

* Answer local to some segments. The "anchor" is the first answer-carrying segment
  (`timeline["answer"]`): SER the sentence (utterance) naming the answer, SED an occurrence of
  the target event (a clip holding it, for DESED). SCR needs ALL its answer segments (the story's
  sentences with the facts, spread over the item): the stretch from the first to the last of them if
  it fits, else those sentences alone, joined with JOIN_GAP_S of silence (the story without its
  filler).
* Answer global (MC, ASC, ER, SAR, SGR; SD real items): anchored at the beginning of the item, so
  the cut is the item's first segments (over a bed: its first seconds) that fit the budget. SD: the
  label "fake" lives in the synthetic prompts, so a fake item is anchored at its first fake prompt,
  like a local task.
* ASR: whole segments from the beginning; the reference is the transcript of exactly those segments.

How a cut grows from its anchor depends on the timeline's layout:
* "sequence" (segments one after another: sentences, prompts, clips, pieces): whole segments only.
  Starting from the anchor, the next segment is added if the stretch still fits, then the previous
  one, alternating, until neither fits: the anchor ends up near the middle, and no word is cut.
  An anchor segment longer than the budget (a 20-40 s music piece, a 30 s GTZAN track) is cropped to
  the budget around its centre, except where the answer is in its words (ASR, SCR, SER: an error).
* "overlay" (events over a continuous bed: SED, ASC of the offline suite): a window of the whole
  budget, centred on the anchor event (global: the item's first `budget` seconds), moved inside the
  item where it would pass an end; it holds the anchor event whole.

Why these choices: the answer-carrying part is kept whole (a short item must still have its answer),
growing symmetrically keeps context on both sides, and the global cut at the start needs no choice
at all (the start is as representative as any window of an item with a global label, and it is the
one window every item has). Bad input raises ShortCutError naming the item: a missing or malformed
timeline (e.g. a folder built before timelines were recorded, or a source whose builder records none:
the RACE and released-benchmark builders read/copy one recording whole), a local task without answer
segments, an answer that cannot fit the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from amlib.data.manifest import Sample, read_manifest, write_manifest
from amlib.data.timeline import DECIMALS, KEY, LAYOUTS
from amlib.tasks import get_task

MARGIN_S = 0.01  # a cut of exactly max_seconds would round to it
JOIN_GAP_S = 1.0  # silence between answer sentences joined without their filler (SCR): a paragraph pause
SHORT_SUFFIX = "-short"
LOCAL_TASKS = ("SCR", "SER", "SED")
WORD_TASKS = ("ASR", "SCR", "SER")  # the answer is in the words: a segment is never cropped
# sources whose builders record a timeline (the others: see the module docstring)
TIMELINE_SOURCES = ("offline", "offline-tts", "librispeech", "slue", "desed", "gtzan", "tau2019", "had", "vesus",
                    "voxceleb")
KEEP_META = ("label", "generator_version", "split", "seed")  # long-item meta that stays true of a cut


class ShortCutError(ValueError):
    """A long item cannot be cut: the message names the item and what is missing."""


@dataclass(frozen=True)
class Cut:
    """What a short item keeps of its long item: sample ranges, played in order (JOIN_GAP_S between
    ranges), the timeline segments they hold whole, and the rule that chose them."""
    ranges: tuple[tuple[int, int], ...]
    segments: tuple[int, ...]
    rule: str
    gap: int = 0  # samples of silence between ranges

    @property
    def n_samples(self) -> int:
        return sum(b - a for a, b in self.ranges) + self.gap * (len(self.ranges) - 1)


def short_counterparts(samples: list[Sample], out_dir: str | Path, max_seconds: float = 30.0) -> list[Sample]:
    """Cut a short counterpart of every sample (rules: the module docstring), write its audio under
    `out_dir/audio/` and all rows to `out_dir/manifest.jsonl`; return the short samples, read back.

    Every sample is checked and cut on paper before anything is written: ShortCutError lists the items
    without a timeline, or names the first with a malformed one or one that cannot be cut."""
    if not samples:
        raise ShortCutError("no samples to cut")
    budget_s = max_seconds - MARGIN_S
    if budget_s <= 0:
        raise ValueError(f"max_seconds must exceed {MARGIN_S} s, got {max_seconds}")
    lines = check_timelines(samples)
    infos = {s.id: sf.info(str(s.audio_path)) for s in samples}
    cuts = [plan_cut(s, lines[s.id], infos[s.id].frames, infos[s.id].samplerate,
                     int(np.floor(budget_s * infos[s.id].samplerate))) for s in samples]  # all, before writing
    out_dir = Path(out_dir)
    rows = [write_cut(s, lines[s.id], cut, out_dir, infos[s.id]) for s, cut in zip(samples, cuts)]
    write_manifest(out_dir / "manifest.jsonl", rows)
    return read_manifest(out_dir / "manifest.jsonl")


# ------------------------------------------------------------------ checking the input


def check_timelines(samples: list[Sample]) -> dict[str, dict]:
    """id -> timeline of every sample; ShortCutError naming every item whose timeline is missing, and
    the first whose timeline is malformed."""
    missing = [s for s in samples if KEY not in s.meta]
    if missing:
        names = ", ".join(f"{s.id} (task {s.task}, source {s.source})" for s in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise ShortCutError(
            f"{len(missing)} item(s) have no meta['{KEY}'] (the place of each segment in the audio), which a "
            f"short cut needs: {names}{more}. Builders that record it: {', '.join(TIMELINE_SOURCES)}; a folder "
            "built by an older amlib lacks it: build it again (same settings give the same audio).")
    return {s.id: validated(s) for s in samples}


def validated(sample: Sample) -> dict:
    """The sample's timeline after checking its layout, segment bounds (inside the audio, in order for
    a sequence) and answer indices; ShortCutError naming the item otherwise."""
    line = sample.meta[KEY]

    def fail(why: str) -> ShortCutError:
        return ShortCutError(f"{sample.id} (task {sample.task}): meta['{KEY}'] {why}")

    if not isinstance(line, dict) or line.get("layout") not in LAYOUTS:
        raise fail(f"needs a layout in {LAYOUTS}, got {line.get('layout') if isinstance(line, dict) else line!r}")
    segments, answer = line.get("segments"), line.get("answer")
    if not isinstance(segments, list) or not segments:
        raise fail("has no segments")
    if not isinstance(answer, list) or not all(isinstance(a, int) and 0 <= a < len(segments) for a in answer):
        raise fail(f"answer must list segment indices below {len(segments)}, got {answer!r}")
    tolerance = 10 ** -DECIMALS
    for k, seg in enumerate(segments):
        start, end = seg.get("start_s"), seg.get("end_s")
        if not (isinstance(start, (int, float)) and isinstance(end, (int, float)) and 0 <= start < end):
            raise fail(f"segment {k}: needs 0 <= start_s < end_s, got {start!r}, {end!r}")
        if end > sample.duration_s + 1e-3:
            raise fail(f"segment {k} ends at {end} s, after the audio's {sample.duration_s} s")
        if line["layout"] == "sequence" and k and start < segments[k - 1]["end_s"] - tolerance:
            raise fail(f"segment {k} starts at {start} s, before segment {k - 1} ends")
    if sample.task in LOCAL_TASKS and not answer:
        raise fail(f"names no answer-carrying segment, which a {sample.task} cut needs")
    if sample.task == "SD" and is_fake(sample) != bool(answer):
        raise fail(f"names {len(answer)} fake segment(s) in an item labelled {'fake' if is_fake(sample) else 'real'}")
    if sample.task == "ASR" and not all(isinstance(s.get("text"), str) for s in segments):
        raise fail("lacks the text of some segment, which the reference of an ASR cut needs")
    return line


def is_fake(sample: Sample) -> bool:
    return sample.choices[get_task("SD").letters.index(sample.answer)] == "fake"


# ------------------------------------------------------------------ the rule


def plan_cut(sample: Sample, line: dict, n_samples: int, sample_rate: int, budget: int) -> Cut:
    """The Cut of one long item by the task's rule (module docstring); `budget` in samples."""
    bounds = [(int(round(s["start_s"] * sample_rate)), min(n_samples, int(round(s["end_s"] * sample_rate))))
              for s in line["segments"]]
    answer = sorted(line["answer"])
    if sample.task == "SCR":
        return _cut_all(sample, line["layout"], bounds, answer, budget, int(round(JOIN_GAP_S * sample_rate)))
    if sample.task in LOCAL_TASKS or (sample.task == "SD" and answer):
        anchor, rule = answer[0], "around the first answer-carrying segment"
    else:
        anchor, rule = None, "from the beginning"
    if line["layout"] == "overlay":
        seconds = min(budget, n_samples) / sample_rate
        return _window(bounds, anchor, n_samples, budget, f"{rule}: a {seconds:.2f} s window")
    first = 0 if anchor is None else anchor
    return _grow(sample, bounds, first, first, budget, rule)


def _fits(bounds, i: int, j: int, budget: int) -> bool:
    return bounds[j][1] - bounds[i][0] <= budget


def _grow(sample: Sample, bounds, i: int, j: int, budget: int, rule: str) -> Cut:
    """Whole segments i..j, then the next and the previous one in turn while the stretch fits."""
    if not _fits(bounds, i, j, budget):
        if i != j or sample.task in WORD_TASKS:
            raise ShortCutError(f"{sample.id} (task {sample.task}): segment(s) {i}..{j} last "
                                f"{(bounds[j][1] - bounds[i][0]) / budget:.2f} x the budget; a crop would lose words")
        return _crop(bounds, i, budget, rule)
    grew = True
    while grew:  # once a side does not fit it never will: the stretch only grows
        grew = False
        if j + 1 < len(bounds) and _fits(bounds, i, j + 1, budget):
            j, grew = j + 1, True
        if i > 0 and _fits(bounds, i - 1, j, budget):
            i, grew = i - 1, True
    return Cut(((bounds[i][0], bounds[j][1]),), tuple(range(i, j + 1)), f"{rule}: whole segments {i}..{j}")


def _crop(bounds, k: int, budget: int, rule: str) -> Cut:
    """The budget's length around the centre of segment k (longer than the budget)."""
    start = (bounds[k][0] + bounds[k][1] - budget) // 2
    return Cut(((start, start + budget),), (), f"{rule}: segment {k} cropped around its centre")


def _window(bounds, anchor: int | None, n_samples: int, budget: int, rule: str) -> Cut:
    """Overlay layout: `budget` samples centred on the anchor segment (None: from 0), inside the item."""
    length = min(budget, n_samples)
    if anchor is None:
        start = 0
    else:
        start = (bounds[anchor][0] + bounds[anchor][1] - length) // 2
        start = int(np.clip(start, 0, n_samples - length))
    inside = tuple(k for k, (a, b) in enumerate(bounds) if start <= a and b <= start + length)
    return Cut(((start, start + length),), inside, f"{rule} of the bed")


def _cut_all(sample: Sample, layout: str, bounds, answer: list[int], budget: int, gap: int) -> Cut:
    """SCR: every answer segment. The stretch holding them all, grown like any sequence cut; else the
    answer segments alone, joined with `gap` samples of silence."""
    first, last = answer[0], answer[-1]
    if layout == "sequence" and _fits(bounds, first, last, budget):
        return _grow(sample, bounds, first, last, budget, "every answer-carrying segment")
    joined = Cut(tuple(bounds[k] for k in answer), tuple(answer),
                 f"the answer-carrying segments alone, joined with {JOIN_GAP_S:g} s pauses", gap)
    if joined.n_samples > budget:
        raise ShortCutError(f"{sample.id} (task {sample.task}): its {len(answer)} answer-carrying segments last "
                            f"{joined.n_samples / budget:.2f} x the budget even without the rest; no short cut "
                            "keeps them all")
    return joined


# ------------------------------------------------------------------ writing


def read_samples(path: Path, subtype: str) -> np.ndarray:
    """The file's samples as stored (PCM-16 as int16, so a cut copies them bit for bit)."""
    data, _ = sf.read(str(path), dtype="int16" if subtype == "PCM_16" else "float32")
    return data


def cut_audio(data: np.ndarray, cut: Cut) -> np.ndarray:
    silence = np.zeros((cut.gap,) + data.shape[1:], dtype=data.dtype)
    parts = []
    for k, (a, b) in enumerate(cut.ranges):
        parts += ([silence] if k else []) + [data[a:b]]
    return np.concatenate(parts)


def short_timeline(line: dict, cut: Cut, sample_rate: int) -> dict:
    """The long timeline's segments that overlap the cut, in the short audio's time ("cropped" where
    only part of a segment is kept), and which of them carry the answer."""
    segments, answer, offset = [], [], 0
    for a, b in cut.ranges:
        for k, seg in enumerate(line["segments"]):
            start, end = int(round(seg["start_s"] * sample_rate)), int(round(seg["end_s"] * sample_rate))
            if end <= a or start >= b:
                continue
            kept = {**seg, "start_s": round((max(start, a) - a + offset) / sample_rate, DECIMALS),
                    "end_s": round((min(end, b) - a + offset) / sample_rate, DECIMALS)}
            if start < a or end > b:
                kept["cropped"] = True
            if k in line["answer"]:
                answer.append(len(segments))
            segments.append(kept)
        offset += b - a + cut.gap
    return {"layout": line["layout"], "segments": segments, "answer": answer}


def write_cut(sample: Sample, line: dict, cut: Cut, out_dir: Path, info) -> dict:
    """Write the short item's audio; return its manifest row."""
    data = read_samples(sample.audio_path, info.subtype)
    wave = cut_audio(data, cut)
    short_id = sample.id + SHORT_SUFFIX
    rel = f"audio/{short_id}.wav"
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    sf.write(str(out_dir / rel), wave, info.samplerate, subtype="PCM_16" if data.dtype == np.int16 else "FLOAT")
    sr = info.samplerate
    answer = sample.answer
    if sample.task == "ASR":  # the reference of exactly the segments kept
        answer = " ".join(line["segments"][k]["text"] for k in cut.segments)
    meta = {key: sample.meta[key] for key in KEEP_META if key in sample.meta}
    meta.update(long_id=sample.id, long_duration_s=sample.duration_s, cut={
        "rule": cut.rule, "ranges_s": [[round(a / sr, DECIMALS), round(b / sr, DECIMALS)] for a, b in cut.ranges],
        "segments": list(cut.segments), "join_gap_s": JOIN_GAP_S if len(cut.ranges) > 1 else 0.0},
        timeline=short_timeline(line, cut, sr))
    return {"id": short_id, "task": sample.task, "audio": rel, "duration_s": round(len(wave) / sr, 3),
            "question": sample.question, "choices": list(sample.choices), "answer": answer, "source": sample.source,
            "split": sample.split, "meta": meta}
