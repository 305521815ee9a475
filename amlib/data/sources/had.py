"""HAD, Half-truth Audio Detection (Yi et al., Interspeech 2021; Zenodo record 10377492) -> SD items.

(The paper's Appendix D describes HAD as a Korean pathological-voice corpus; that text is wrong. The
benchmark uses the Half-Truth dataset: Mandarin utterances in which a few words may be synthetic.)

Expected layout (`--root` is the folder that holds HAD_train/, HAD_dev/, HAD_test/; `req.split` picks
one of train, dev, test):

    HAD_test/HAD_test_label.txt
    HAD_test/test/HAD_test_fake_00000001.wav

Each label line is `<utterance> <segments> <label>`, e.g.
`HAD_test_fake_00000001 0.00-1.71-T/1.71-2.35-F/2.35-3.16-T 0`: segments are start-end-T|F in seconds
(T real, F synthetic) and the label is 1 for a fully real utterance, 0 for one with fake segments.
Verified against two public readers of the Zenodo release (audio under HAD_<split>/<split>/). Copies
that keep utterances under HAD_<split>/conbine/ or HAD_<split>/real/ instead are also accepted (an
unverified variant).

Grouping (the released HAD rule, paper §2.2): real utterances and partially fake utterances form two
pools; each pool is shuffled (seeded) and packed in that order into items whose length is drawn
uniformly from [req.min_seconds, req.max_seconds]. An item is "real" when all its utterances are real,
"fake" when it holds utterances with synthetic segments (here: all of them do). The released code pads
a last short group by repeating it; here that happens only with `pad_by_repetition=True`, and such an
item says so in meta["padded_by_repetition"]. Otherwise the short tail is reported, not used.

Options: ["real", "fake"] in an order balanced per class (half the items of each class have the
answer at A). Classes are balanced: per_task // 2 items each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from amlib.data.audio import load_audio
from amlib.data.concat import Clip, concat_audio, item_seconds, pack_clips, repeat_to
from amlib.data.sources.common import BuildRequest, LayoutError, class_jobs, take_balanced, write_item, write_report
from amlib.data.timeline import clips_timeline

TASK = "SD"
SOURCE = "had"
SPLITS = ("train", "dev", "test")
QUESTION = "Is this audio real or does it contain synthetic/fake segments?"
CLASSES = ("real", "fake")


@dataclass(frozen=True)
class Utterance:
    name: str
    path: Path
    is_real: bool
    fake_seconds: float  # total length of its F segments


@dataclass(frozen=True)
class PlannedItem:
    label: str
    clips: list[Clip]
    padded: bool = False


def build(req: BuildRequest, *, pad_by_repetition: bool | None = None) -> list[dict]:
    """Options (keyword argument, else `--option` / BuildRequest.options, else the default):
    pad_by_repetition (default false): pad a last short group by repeating it, as the released code does."""
    pad_by_repetition = bool(req.option("pad_by_repetition", pad_by_repetition, False))
    split_dir = split_folder(req)
    utterances = read_labels(split_dir / f"HAD_{req.split}_label.txt", split_dir, req.split)
    planned, report = plan_items(utterances, req, pad_by_repetition)
    chosen = choose_items(planned, req.per_task, req.rng(SOURCE, "select"), report)
    rows = write_items(req, chosen, utterances)
    write_report(req, SOURCE, report, watch=("classes_short_of_quota", "unplaced_utterances"))
    return rows


def split_folder(req: BuildRequest) -> Path:
    if req.split not in SPLITS:
        raise LayoutError(f"HAD has the splits {', '.join(SPLITS)}; got split {req.split!r}")
    root = req.require()
    split_dir = root / f"HAD_{req.split}"
    label_file = split_dir / f"HAD_{req.split}_label.txt"
    if not label_file.is_file():
        raise LayoutError(f"{root}: expected '{label_file.relative_to(root)}' (HAD layout: "
                          f"HAD_<split>/HAD_<split>_label.txt and HAD_<split>/<split>/*.wav)")
    return split_dir


def read_labels(label_file: Path, split_dir: Path, split: str) -> dict[str, Utterance]:
    """Every labelled utterance, checked: segment labels must agree with the utterance label."""
    folders = [split_dir / split, split_dir / "conbine", split_dir / "real"]
    utterances: dict[str, Utterance] = {}
    missing: list[str] = []
    for lineno, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{label_file}:{lineno}"
        fields = line.split()
        if len(fields) != 3 or fields[2] not in ("0", "1"):
            raise ValueError(f"{where}: expected '<utterance> <start-end-T|F/...> <0|1>', got {line!r}")
        name = fields[0].removesuffix(".wav")
        fake_seconds, has_fake = parse_segments(fields[1], where)
        is_real = fields[2] == "1"
        if is_real == has_fake:
            raise ValueError(f"{where}: label {fields[2]} ({'real' if is_real else 'fake'}) contradicts segments {fields[1]}")
        path = next((f / f"{name}.wav" for f in folders if (f / f"{name}.wav").is_file()), None)
        if path is None:
            missing.append(name)
            continue
        utterances[name] = Utterance(name, path, is_real, fake_seconds)
    if missing:
        raise LayoutError(f"{label_file}: {len(missing)} labelled utterances have no audio in "
                          f"{' or '.join(str(f) for f in folders)}, e.g. {missing[:3]}")
    return utterances


def parse_segments(text: str, where: str) -> tuple[float, bool]:
    """(seconds marked F, whether any segment is F) from '0.00-1.71-T/1.71-2.35-F/...'."""
    fake, has_fake = 0.0, False
    for segment in text.split("/"):
        parts = segment.split("-")
        try:
            start, end, tag = float(parts[0]), float(parts[1]), parts[2]
        except (IndexError, ValueError):
            raise ValueError(f"{where}: segment {segment!r} is not start-end-T|F") from None
        if len(parts) != 3 or tag not in ("T", "F") or end < start:
            raise ValueError(f"{where}: segment {segment!r} is not start-end-T|F with start <= end")
        if tag == "F":
            fake, has_fake = fake + end - start, True
    return fake, has_fake


def plan_items(utterances: dict[str, Utterance], req: BuildRequest, pad: bool) -> tuple[dict[str, list[PlannedItem]], dict]:
    planned: dict[str, list[PlannedItem]] = {}
    report: dict = {"task": TASK, "pad_by_repetition": pad, "unplaced_utterances": {}, "padded_items": {}}
    for label in CLASSES:
        pool = sorted(u.name for u in utterances.values() if u.is_real == (label == "real"))
        order = req.rng(SOURCE, "shuffle", label).permutation(len(pool))
        clips = [Clip(pool[i], sf.info(str(utterances[pool[i]].path)).duration) for i in order]
        packing = pack_clips(clips, req.min_seconds, req.max_seconds, req.gap_seconds, rng=req.rng(SOURCE, "pack", label))
        items = [PlannedItem(label, item) for item in packing.items]
        tail = [c for c, why in packing.unplaced if why.startswith("group shorter")]
        if pad and tail:
            items.append(PlannedItem(label, tail, padded=True))
            report["padded_items"][label] = 1
        unplaced = [why for c, why in packing.unplaced if not (pad and c in tail)]
        report["unplaced_utterances"][label] = {why: unplaced.count(why) for why in sorted(set(unplaced))}
        planned[label] = items
    return planned, report


def choose_items(planned: dict[str, list[PlannedItem]], per_task: int, rng: np.random.Generator,
                 report: dict) -> dict[str, list[PlannedItem]]:
    """per_task // 2 items of each class at most, as many of each; padded items only when needed."""
    counts = {label: len(items) for label, items in planned.items()}
    if not all(counts.values()):
        raise ValueError(f"{SOURCE}: a class has no item in the window: {counts}")

    def pick(items: list[PlannedItem], n: int) -> list[PlannedItem]:
        whole = [it for it in items if not it.padded]
        return ([whole[i] for i in rng.permutation(len(whole))] + [it for it in items if it.padded])[:n]

    chosen, balance = take_balanced(planned, per_task, pick, classes=CLASSES)
    report.update(balance)
    return chosen


def write_items(req: BuildRequest, chosen: dict[str, list[PlannedItem]],
                utterances: dict[str, Utterance]) -> list[dict]:
    rows = []
    # real and fake items interleaved, answer letters balanced within each class
    for index, (_, item, position) in enumerate(class_jobs(chosen, len(CLASSES), req.rng(SOURCE, "options"))):
        other = [c for c in CLASSES if c != item.label]
        choices = other[:position] + [item.label] + other[position:]
        waves = [load_audio(utterances[c.key].path) for c in item.clips]
        wave = concat_audio(waves, req.gap_seconds)
        fake = [not utterances[c.key].is_real for c in item.clips]
        meta = {"label": item.label, "utterances": [c.key for c in item.clips],
                "fake_utterances": sum(fake),
                "fake_seconds": round(sum(utterances[c.key].fake_seconds for c in item.clips), 3),
                "had_split": req.split, "padded_by_repetition": item.padded,
                # the utterances with synthetic segments carry the label (before any padding repeats)
                "timeline": clips_timeline(waves, req.gap_seconds, answer=[k for k, f in enumerate(fake) if f],
                                           fake=fake)}
        if item.padded:
            meta["unpadded_seconds"] = round(item_seconds(item.clips, req.gap_seconds), 3)
            wave = repeat_to(wave, req.min_seconds)
        rows.append(write_item(req, TASK, index, wave, question=QUESTION, choices=choices, answer="AB"[position],
                               source=SOURCE, meta=meta))
    return rows

