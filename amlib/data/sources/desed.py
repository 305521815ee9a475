"""DESED real recordings with strong labels -> Sound Event Detection (SED).

Expected layout (DESED as turpaultn/DESED and the DESED_public_eval archive lay it out; `--root` is the
`dataset/` folder or the folder holding it):
    audio/validation/Y--4gqARaEJE_0.000_10.000.wav      metadata/validation/validation.tsv
    audio/eval/public/1Ro0FgMWTUE_120_130.wav           metadata/eval/public.tsv
`req.split`: "test" -> eval/public (692 clips), "validation"/"dev" -> validation (1,168 clips).
Each TSV has the header `filename  onset  offset  event_label`, one row per event of the 10 classes
(Alarm_bell_ringing, Blender, Cat, Dishes, Dog, Electric_shaver_toothbrush, Frying, Running_water,
Speech, Vacuum_cleaner); a row with an empty label marks a clip without events. A labelled clip whose
wav is missing (DESED's YouTube downloads often miss some) raises an error naming it, unless
`build(req, skip_missing=True)` (or `--option skip_missing=true`), which reports the missing files in
build_report.json instead.

Grouping and options: an item's question is "Which sound event occurs in the recording?" with 4 class
options. Classes take turns as the target (so they stay balanced); for each item 3 distractor classes
are drawn (seeded, in random order of the 84 possible triples) such that enough unused clips are free
of all three; those clips, in a seeded random order, are packed with `pack_clips` into one item of
req.min_seconds..req.max_seconds that holds at least one clip where the target occurs. So the true
class occurs in the item and no distractor occurs anywhere in it, by the strong labels. Each clip is
used once. Up to req.per_task // 10 items per class are written; answer positions are balanced.
meta: clips, classes_present, label (the target class), timeline (each clip's place in the audio; the
clips where the target occurs carry the answer; amlib.data.timeline).
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from amlib.data.audio import load_audio
from amlib.data.concat import Clip, concat_audio, pack_clips
from amlib.data.options import balanced_positions
from amlib.data.sources.common import BuildRequest, LayoutError, audio_seconds, write_item, write_report
from amlib.data.timeline import clips_timeline
from amlib.tasks import get_task

TASK = "SED"
SOURCE = "desed"
QUESTION = "Which sound event occurs in the recording?"
CLASSES = ("Alarm_bell_ringing", "Blender", "Cat", "Dishes", "Dog", "Electric_shaver_toothbrush", "Frying",
           "Running_water", "Speech", "Vacuum_cleaner")
SPLITS = {"test": ("audio/eval/public", "metadata/eval/public.tsv"),
          "validation": ("audio/validation", "metadata/validation/validation.tsv")}
SPLIT_ALIASES = {"dev": "validation", "eval": "test", "public": "test"}
COLUMNS = ("filename", "onset", "offset", "event_label")
N_OPTIONS = get_task(TASK).n_options


@dataclass(frozen=True)
class LabelledClip:
    name: str
    path: Path
    classes: frozenset[str]
    duration_s: float


def build(req: BuildRequest, skip_missing: bool | None = None) -> list[dict]:
    """Options (keyword argument, else `--option` / BuildRequest.options, else the default):
    skip_missing (default false): leave out labelled clips whose wav is missing, reporting them, instead
    of stopping with an error."""
    skip_missing = bool(req.option("skip_missing", skip_missing, False))
    audio_dir, tsv = split_paths(req)
    labels = read_strong_labels(tsv)
    clips, missing = find_clips(labels, audio_dir, skip_missing)
    per_class = req.per_task // len(CLASSES)
    if per_class == 0:
        raise ValueError(f"per_task={req.per_task} is below the {len(CLASSES)} classes: balancing would keep no item")
    plans, short = plan_items(clips, per_class, req)
    positions = balanced_positions(len(plans), N_OPTIONS, req.rng(SOURCE, "positions"))
    rows = [write_event_item(req, i, plan, pos) for i, (plan, pos) in enumerate(zip(plans, positions))]
    used = {c.name for plan in plans for c in plan["clips"]}
    write_report(req, SOURCE, {
        "task": TASK, "source": SOURCE, "tsv": str(tsv), "clips": len(clips), "clips_used": len(used),
        "items_written": len(rows), "items_per_class": dict(Counter(p["target"] for p in plans)),
        "classes_short_of_quota": short, "missing_audio": missing,
        "audio_without_labels": sorted(p.name for p in audio_dir.glob("*.wav") if p.name not in labels),
    }, watch=("classes_short_of_quota", "missing_audio", "audio_without_labels"),
        summary=lambda r: (f"short classes {r['classes_short_of_quota']}, {len(r['missing_audio'])} missing wavs, "
                           f"{len(r['audio_without_labels'])} unlabelled wavs"))
    return rows


def split_paths(req: BuildRequest) -> tuple[Path, Path]:
    root = req.require()
    base = root / "dataset" if not (root / "metadata").is_dir() and (root / "dataset" / "metadata").is_dir() else root
    split = SPLIT_ALIASES.get(req.split, req.split)
    if split not in SPLITS:
        raise ValueError(f"DESED split {req.split!r} unknown; use one of {', '.join([*SPLITS, *SPLIT_ALIASES])}")
    audio_rel, tsv_rel = SPLITS[split]
    for rel in (tsv_rel, audio_rel):
        if not (base / rel).exists():
            raise LayoutError(f"{base}: expected '{rel}' "
                              f"(DESED layout: audio/<split>/*.wav and metadata/<split>/*.tsv)")
    return base / audio_rel, base / tsv_rel


def read_strong_labels(tsv: Path) -> dict[str, frozenset[str]]:
    """filename -> the classes that occur in it (empty for a clip without events)."""
    frame = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise LayoutError(f"{tsv}: missing column(s) {', '.join(missing)} (has {', '.join(frame.columns)})")
    events: dict[str, set[str]] = {}
    for i, row in frame.iterrows():
        label = row["event_label"].strip()
        if label and label not in CLASSES:
            raise ValueError(f"{tsv}:{i + 2}: unknown event_label {label!r} (DESED classes: {', '.join(CLASSES)})")
        if label and not (row["onset"].strip() and row["offset"].strip()):
            raise ValueError(f"{tsv}:{i + 2}: event {label!r} without onset/offset")
        events.setdefault(row["filename"], set()).update([label] if label else [])
    return {name: frozenset(classes) for name, classes in events.items()}


def find_clips(labels: dict[str, frozenset[str]], audio_dir: Path,
               skip_missing: bool) -> tuple[list[LabelledClip], list[str]]:
    clips, missing = [], []
    for name, classes in sorted(labels.items()):
        path = audio_dir / name
        if not path.is_file():
            missing.append(name)
            continue
        clips.append(LabelledClip(name, path, classes, audio_seconds(path)))
    if missing and not skip_missing:
        raise LayoutError(f"{audio_dir}: {len(missing)} labelled clip(s) have no wav, e.g. {', '.join(missing[:3])} "
                          f"(build with skip_missing=True to report and skip them)")
    return clips, missing


def plan_items(clips: list[LabelledClip], per_class: int, req: BuildRequest) -> tuple[list[dict], dict]:
    """Items in rounds over the classes until each has per_class or cannot get another; returns (plans, shortfalls)."""
    rng = req.rng(SOURCE, "plan")
    free = list(clips)
    plans, short, active = [], {}, list(CLASSES)
    while active:
        for target in [active[i] for i in rng.permutation(len(active))]:  # no class always picks first
            plan = plan_one(target, free, req, rng)
            if plan is None:
                short[target] = f"{sum(p['target'] == target for p in plans)} of {per_class}: not enough clips left"
                active.remove(target)
                continue
            plans.append(plan)
            taken = {c.name for c in plan["clips"]}
            free = [c for c in free if c.name not in taken]
            if sum(p["target"] == target for p in plans) == per_class:
                active.remove(target)
    return plans, short


def plan_one(target: str, free: list[LabelledClip], req: BuildRequest, rng) -> dict | None:
    """One item whose clips contain `target` somewhere and none of 3 distractor classes, or None."""
    triples = list(itertools.combinations([c for c in CLASSES if c != target], N_OPTIONS - 1))
    for t in rng.permutation(len(triples)).tolist():
        distractors = set(triples[t])
        allowed = [c for c in free if not c.classes & distractors]
        if not any(target in c.classes for c in allowed):
            continue
        order = rng.permutation(len(allowed)).tolist()
        # the first clip holds the target (so the item surely contains it); the rest follow in random order
        first = next(i for i in order if target in allowed[i].classes)
        ordered = [allowed[first]] + [allowed[i] for i in order if i != first]
        by_name = {c.name: c for c in ordered}
        packing = pack_clips([Clip(c.name, c.duration_s) for c in ordered], req.min_seconds, req.max_seconds,
                             req.gap_seconds, rng=rng)
        if packing.items and packing.items[0][0].key == ordered[0].name:
            picked = [by_name[c.key] for c in packing.items[0]]
            order_in_item = rng.permutation(len(picked)).tolist()  # the target clip is not always first
            return {"target": target, "distractors": sorted(distractors), "clips": [picked[i] for i in order_in_item]}
    return None


def write_event_item(req: BuildRequest, index: int, plan: dict, position: int) -> dict:
    distractors = [plan["distractors"][i] for i in req.rng(SOURCE, "options", index).permutation(N_OPTIONS - 1)]
    choices = distractors[:position] + [plan["target"]] + distractors[position:]
    clips = plan["clips"]
    waves = [load_audio(c.path) for c in clips]
    wave = concat_audio(waves, gap_s=req.gap_seconds)
    present = sorted(set().union(*(c.classes for c in clips)))
    # the clips in which the target occurs carry the answer
    holding = [k for k, c in enumerate(clips) if plan["target"] in c.classes]
    line = clips_timeline(waves, req.gap_seconds, answer=holding)
    return write_item(
        req, TASK, index, wave, question=QUESTION, choices=choices, answer=get_task(TASK).letters[position],
        source=SOURCE, meta={"clips": [c.name for c in clips], "classes_present": present, "label": plan["target"],
                             "timeline": line},
    )

