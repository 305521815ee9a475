"""The license-free offline suite: all ten tasks from packaged assets, no download (source "offline").

    python -m amlib build-data --source offline --out data/built/offline-test            # test split
    python -m amlib build-data --source offline --out parts/p3 --split train --seed 3 \\
        --per-task 200 --min-seconds 10 --max-seconds 30                                  # a train part

What each task is made of: speech_tasks.py (ASR, SGR, SD), stories.py (SCR, SER), prosody.py (ER,
SAR), sound_tasks.py (SED, ASC), music.py (MC); assets and the split rule: assets.py, voices.py;
licences and what is synthetic: data/README.md.

Splits: `train` and `test` use disjoint assets (voices by speaker, real speech by speaker, whole sound files, music tracks,
word lists, generated sentences) by fixed rules that do not depend on the seed.
Parts: within a split, the seed drives every random choice (texts, voices drawn, event times,
music), so builds with seeds 1001, 1002, ... are same-distribution parts with different content. Item
ids carry the seed (index = seed * 100000 + i), so the manifests of parts can be concatenated.
Items per task: per_task, rounded down to a multiple of the task's class count (what balancing keeps).
Every random stream is salted with the split as well as the seed, so train and test builds of the
same seed share no draw.

Generator version: GENERATOR_VERSION is written into every item's meta ("generator_version"); a
folder built by other generator code (older, or from before versioning: no field) is refused when it
is read (`check_generator_version`, called by amlib.data.manifest.read_manifest) or reused
(amlib.data.build.ensure_dataset), with an error naming the folder and both versions.

Segment timelines: every item's meta["timeline"] says where its segments (sentences, prompts, pieces,
events) sit in the final audio and which carry the answer (amlib.data.timeline), what the short
counterparts of the duration ablation are cut from (amlib.data.short). Recording them added a meta
field only: the audio and every other manifest field are what generator version 3 made before, so the
version did not change (a version-3 folder built before lacks the field; amlib.data.short says so).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from amlib.data.offline import level, music, prosody, sound_tasks, speech_tasks, stories
from amlib.data.offline.assets import check_split
from amlib.data.offline.items import Item, Window
from amlib.data.offline.voices import SuiteVoice
from amlib.data.options import balanced_positions, make_options
from amlib.data.sources.common import BuildRequest, write_item
from amlib.tasks import AGE_GROUPS, TASK_ORDER, get_task

log = logging.getLogger(__name__)
SOURCE = "offline"
MAX_PER_PART = 100_000
# 2: real speech split by speaker (5 prompt sets, 4 speakers), content de-duplication, ER loudness
#    normalised with per-item prosody, MC split-dependent, SAR per-item draws, ASC files in one split
#    only, SCR option cues removed, split in every random stream, asset meta. (1 or missing: before.)
# 3: every item limited and levelled to -23 LUFS before writing (level.py: write_item's peak ceiling
#    no longer turns impulsive SED/ASC classes down), SGR speaking rate drawn per item (sox tempo)
# (meta["timeline"] came later without a new version: same audio and fields, one meta field more)
GENERATOR_VERSION = 3


class GeneratorVersionError(ValueError):
    """A built offline folder comes from other generator code than this one."""


def check_generator_version(folder, metas) -> None:
    """Raise GeneratorVersionError unless every item meta of an offline-suite folder carries this code's
    GENERATOR_VERSION. `metas`: the meta dicts of the folder's offline items."""
    found = sorted({str(m.get("generator_version", "missing")) for m in metas})
    if found and found != [str(GENERATOR_VERSION)]:
        raise GeneratorVersionError(
            f"{folder}: built by offline generator version {', '.join(found)}, but this code is generator version "
            f"{GENERATOR_VERSION}; its items are not what the current generator makes. Delete the folder and "
            f"build it again (python -m amlib build-data --source offline ... --out {folder}).")


def check_folder_version(folder) -> None:
    """`check_generator_version` on the offline items of a built folder's manifest.jsonl (meta only)."""
    import json
    from pathlib import Path

    path = Path(folder) / "manifest.jsonl"
    with path.open(encoding="utf-8") as fh:
        metas = [row.get("meta") or {} for row in map(json.loads, filter(str.strip, fh)) if row.get("source") == SOURCE]
    check_generator_version(folder, metas)


def split_rng(req: BuildRequest, *salt) -> np.random.Generator:
    """req.rng salted with the split too: train and test of one seed draw different streams."""
    return req.rng(req.split, *salt)


@dataclass(frozen=True)
class TaskRecipe:
    build: Callable  # (ctx, index, label, rng, window) -> Item
    classes: Callable[[str], list[str]] | None  # split -> class names; None for ASR
    # SCR, SER: the answers are item-specific texts, grouped by question kind / entity type
    answer_groups: Callable[[str], dict[str, list[str]]] | None = None


def _interleaved(groups: dict[str, list[str]], rng: np.random.Generator | None = None) -> list[str]:
    """One from each group in turn: [g1[0], g2[0], ..., g1[1], ...], each group shuffled by `rng`."""
    lists = [[a[int(k)] for k in rng.permutation(len(a))] if rng is not None else list(a) for a in groups.values()]
    return [answers[i] for i in range(max(map(len, lists))) for answers in lists if i < len(answers)]


RECIPES: dict[str, TaskRecipe] = {
    "ASR": TaskRecipe(speech_tasks.asr_item, None),
    "SCR": TaskRecipe(stories.scr_item, lambda split: _interleaved(stories.scr_answers(split)), stories.scr_answers),
    "SER": TaskRecipe(stories.ser_item, lambda split: _interleaved(stories.ser_answers(split)), stories.ser_answers),
    "SED": TaskRecipe(sound_tasks.sed_item, lambda split: list(sound_tasks.SED_EVENTS)),
    "MC": TaskRecipe(music.mc_item, lambda split: list(music.GENRES)),
    "ASC": TaskRecipe(sound_tasks.asc_item, lambda split: list(sound_tasks.SCENES)),
    "SD": TaskRecipe(speech_tasks.sd_item, lambda split: list(speech_tasks.SD_LABELS)),
    "ER": TaskRecipe(prosody.er_item, lambda split: list(prosody.EMOTIONS)),
    "SAR": TaskRecipe(prosody.sar_item, lambda split: list(AGE_GROUPS)),
    "SGR": TaskRecipe(speech_tasks.sgr_item, lambda split: list(speech_tasks.GENDERS)),
}


@dataclass
class Context:
    """What an item builder may know besides its own seed: the split and the task's plan."""
    req: BuildRequest
    task: str
    labels: list[str | None]
    ranks: list[int] = field(default_factory=list)  # how many earlier items share this item's label

    @property
    def split(self) -> str:
        return self.req.split

    def balanced_voice(self, index: int, voices: list[SuiteVoice]) -> SuiteVoice:
        """The rank-th voice of a seeded order: every class walks the same voice order, so each voice
        serves every class about equally and the voice tells nothing about the class."""
        order = split_rng(self.req, self.task, "voice-order").permutation(len(voices))
        return voices[int(order[self.ranks[index] % len(voices)])]


def plan_labels(req: BuildRequest, task: str) -> list[str | None]:
    recipe = RECIPES[task]
    if recipe.classes is None:
        return [None] * req.per_task
    classes = recipe.classes(req.split)
    rng = split_rng(req, task, "plan")
    if recipe.answer_groups is not None:
        # rounds in which every answer occurs once, kinds interleaved: answers stay distinct while the
        # pool lasts and equally frequent after, so balancing by answer keeps (nearly) every item
        labels: list[str] = []
        while len(labels) < req.per_task:
            labels += _interleaved(recipe.answer_groups(req.split), rng)
        return labels[: req.per_task]
    n = (req.per_task // len(classes)) * len(classes)
    if n < req.per_task:
        log.warning("offline %s: per_task=%d is not a multiple of its %d classes; building %d items",
                    task, req.per_task, len(classes), n)
    labels = [classes[i % len(classes)] for i in range(n)]
    return [labels[int(k)] for k in rng.permutation(n)]


def _ranks(labels: list[str | None]) -> list[int]:
    seen: dict[str | None, int] = {}
    ranks = []
    for label in labels:
        ranks.append(seen.get(label, 0))
        seen[label] = ranks[-1] + 1
    return ranks


def _row(req: BuildRequest, task: str, index: int, item: Item, position: int | None, window: Window) -> dict:
    spec = get_task(task)
    meta = {**item.meta, "target_s": round(window.target_s, 3), "seed": req.seed, "split": req.split,
            "generator_version": GENERATOR_VERSION}
    if spec.fixed_choices:
        choices = list(spec.fixed_choices)
        answer = spec.letters[choices.index(item.label)]
    elif spec.is_choice:
        pool = item.distractors if item.distractors is not None else RECIPES[task].classes(req.split)
        choices, answer = make_options(item.label, pool, spec.n_options, position,
                                       split_rng(req, task, "options", index))
    else:
        choices, answer = [], item.label
    if spec.is_choice:
        meta["label"] = item.label
    if "assets" not in meta:
        raise ValueError(f"{task} item {index}: the builder recorded no meta['assets'] (needed by the leakage checks)")
    # every item, ER included, reaches the pipeline's -23 LUFS with its peaks limited below write_item's
    # ceiling (level.to_target), so write_item's normalisation cannot turn it down: level carries no label
    wave, meta["level"] = level.to_target(item.wave)
    return write_item(req, task, req.seed * MAX_PER_PART + index, wave, question=item.question, choices=choices,
                      answer=answer, source=SOURCE, meta=meta)


def build_task(req: BuildRequest, task: str, workers: int) -> list[dict]:
    recipe = RECIPES[task]
    labels = plan_labels(req, task)
    ctx = Context(req, task, labels, _ranks(labels))
    spec = get_task(task)
    positions = balanced_positions(len(labels), spec.n_options, split_rng(req, task, "positions")) \
        if spec.is_choice and not spec.fixed_choices else [None] * len(labels)
    draw = split_rng(req, task, "durations")
    windows = [Window(float(draw.uniform(req.min_seconds, req.max_seconds)), req.min_seconds, req.max_seconds)
               for _ in labels]

    def one(index: int) -> dict:
        item = recipe.build(ctx, index, labels[index], split_rng(req, task, "item", index), windows[index])
        return _row(req, task, index, item, positions[index], windows[index])

    if workers <= 1:
        return [one(i) for i in range(len(labels))]
    with ThreadPoolExecutor(max_workers=workers) as pool:  # subprocesses and numpy release the GIL
        return list(pool.map(one, range(len(labels))))


def build(req: BuildRequest) -> list[dict]:
    """Rows of every requested task (all ten by default) for req.split, written under req.out/audio."""
    check_split(req.split)
    if not 0 < req.min_seconds <= req.max_seconds:
        raise ValueError(f"need 0 < min_seconds <= max_seconds, got {req.min_seconds}, {req.max_seconds}")
    if not 0 < req.per_task < MAX_PER_PART:
        raise ValueError(f"per_task must be in 1..{MAX_PER_PART - 1}, got {req.per_task}")
    if req.seed < 0:
        raise ValueError(f"seed must be >= 0, got {req.seed}")
    tasks = [get_task(t).code for t in (req.tasks or TASK_ORDER)]
    workers = int(os.environ.get("AMLIB_OFFLINE_WORKERS", os.cpu_count() or 1))
    rows: list[dict] = []
    for task in tasks:
        rows += build_task(req, task, workers)
        log.info("offline %s: %d items", task, sum(r["task"] == task for r in rows))
    return rows
