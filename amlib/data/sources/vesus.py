"""VESUS, Varied Emotion in Syntactically Uniform Speech (Sager et al., Interspeech 2019) -> ER items.

(The paper's Appendix D describes VESUS as a voice-pathology corpus; that text is wrong. VESUS is the
Johns Hopkins NSA-lab corpus: 10 actors (5 male, 5 female) read about 250 neutral phrases in five
emotions, neutral, angry, happy, sad and fearful; every utterance has 10 crowd-sourced emotion ratings.)

VESUS is distributed on request and its folder layout is not published, so this builder expects the
layout below (ASSUMED, not verified; `--root` is the VESUS folder or the folder that holds VESUS/):

    VESUS/Audio/<actor>/<Emotion>/<n>.wav       e.g. VESUS/Audio/Actor01/Happy/12.wav

Actor folders may have any name; emotion folders are matched case-insensitively (Neutral, Angry or
Anger, Happy or Happiness, Sad or Sadness, Fearful or Fear); any other folder is an error.

Optional crowd-agreement filter (`min_agreement`, off by default): a ratings table, by default
VESUS/ratings.csv (also an assumed format), with a column `file` (path relative to the VESUS folder,
e.g. Audio/Actor01/Happy/12.wav) and either a column `agreement` (fraction of raters, 0-1, who chose
the intended emotion) or one vote-count column per emotion (neutral, angry, happy, sad, fearful), from
which the agreement is the intended emotion's share. Clips below the threshold or without a rating
are left out and counted in the report.

Grouping: the clips of ONE actor and ONE emotion, in phrase-number order, packed into items whose
length is drawn uniformly from [req.min_seconds, req.max_seconds]; a short tail is reported, not used.
Options: the true emotion plus 3 of the 4 others at random; answer letters balanced per emotion;
items taken equally per emotion, spread over actors round-robin.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from amlib.data.audio import load_audio
from amlib.data.concat import Clip, concat_audio, pack_clips
from amlib.data.options import make_options
from amlib.data.sources.common import (BuildRequest, LayoutError, class_jobs, round_robin, take_balanced, write_item,
                                       write_report)
from amlib.data.timeline import clips_timeline

TASK = "ER"
SOURCE = "vesus"
QUESTION = "What emotion does the speaker express?"
EMOTIONS = ("neutral", "angry", "happy", "sad", "fearful")
FOLDER_EMOTION = {"neutral": "neutral", "angry": "angry", "anger": "angry", "happy": "happy", "happiness": "happy",
                  "sad": "sad", "sadness": "sad", "fearful": "fearful", "fear": "fearful"}


def build(req: BuildRequest, *, min_agreement: float | None = None, ratings_file: str | None = None) -> list[dict]:
    """Options (keyword argument, else `--option` / BuildRequest.options, else the default):
    min_agreement (default none: no filter): keep clips whose crowd agreement is at least this (0-1);
    ratings_file (default ratings.csv): the ratings table, relative to the VESUS folder."""
    min_agreement = req.option("min_agreement", min_agreement)
    ratings_file = req.option("ratings_file", ratings_file, "ratings.csv")
    folder = vesus_folder(req)
    clips = find_clips(folder)
    report: dict = {"task": TASK, "min_agreement": min_agreement, "clips_found": len(clips)}
    if min_agreement is not None:
        clips = filter_by_agreement(clips, folder / ratings_file, min_agreement, report)
    planned = plan_items(clips, req, report)
    rng = req.rng(SOURCE, "select")
    # equal items per emotion (what finalize would keep), spread over actors round-robin
    chosen, balance = take_balanced(
        planned, req.per_task, lambda items, n: round_robin(items, n, rng),
        nothing=f"{SOURCE}: no actor/emotion group reaches the {TASK} window; nothing to build")
    report.update(balance, classes_without_items=[e for e in EMOTIONS if e not in balance["candidates_per_class"]])
    rows = write_items(req, chosen, folder)
    write_report(req, SOURCE, report, watch=("classes_short_of_quota", "unplaced_clips", "classes_without_items"))
    return rows


def vesus_folder(req: BuildRequest) -> Path:
    root = req.require()
    folder = root if (root / "Audio").is_dir() else root / "VESUS"
    if not (folder / "Audio").is_dir():
        raise LayoutError(f"{root}: expected 'VESUS/Audio/<actor>/<emotion>/<n>.wav' (or --root pointing at the "
                          f"VESUS folder that holds Audio/)")
    return folder


def find_clips(folder: Path) -> pd.DataFrame:
    """One row per wav: actor, emotion, phrase number, path; unknown emotion folders are errors."""
    records = []
    for actor_dir in sorted(p for p in (folder / "Audio").iterdir() if p.is_dir()):
        for emotion_dir in sorted(p for p in actor_dir.iterdir() if p.is_dir()):
            emotion = FOLDER_EMOTION.get(emotion_dir.name.lower())
            if emotion is None:
                raise LayoutError(f"{emotion_dir}: unknown emotion folder (expected one of {', '.join(EMOTIONS)})")
            for wav in emotion_dir.glob("*.wav"):
                number = re.search(r"\d+", wav.stem)
                records.append({"actor": actor_dir.name, "emotion": emotion, "path": wav,
                                "number": int(number.group()) if number else -1, "stem": wav.stem})
    if not records:
        raise LayoutError(f"{folder / 'Audio'}: no <actor>/<emotion>/*.wav files")
    return pd.DataFrame(records).sort_values(["actor", "emotion", "number", "stem"], kind="stable")


def filter_by_agreement(clips: pd.DataFrame, ratings_path: Path, threshold: float, report: dict) -> pd.DataFrame:
    if not ratings_path.is_file():
        raise LayoutError(f"{ratings_path}: min_agreement={threshold} needs this ratings table (see vesus.py)")
    ratings = pd.read_csv(ratings_path)
    ratings.columns = [c.strip().lower() for c in ratings.columns]
    if "file" not in ratings.columns or not ("agreement" in ratings.columns or set(EMOTIONS) <= set(ratings.columns)):
        raise LayoutError(f"{ratings_path}: needs a 'file' column and 'agreement' or vote columns {list(EMOTIONS)}; "
                          f"found {list(ratings.columns)}")
    files = ratings["file"].astype(str).str.strip()
    if files.duplicated().any():
        raise ValueError(f"{ratings_path}: files rated twice, e.g. {files[files.duplicated()].tolist()[:3]}")
    folder = ratings_path.parent
    keys = [str(p.relative_to(folder)) for p in clips["path"]]
    by_file = ratings.set_index(files)
    agreement = []
    for key, emotion in zip(keys, clips["emotion"]):
        if key not in by_file.index:
            agreement.append(np.nan)
        elif "agreement" in by_file.columns:
            agreement.append(float(by_file.at[key, "agreement"]))
        else:
            votes = by_file.loc[key, list(EMOTIONS)].astype(float)
            agreement.append(float(votes[emotion] / votes.sum()) if votes.sum() else 0.0)
    agreement = np.array(agreement)
    keep = agreement >= threshold
    report["clips_without_rating"] = int(np.isnan(agreement).sum())
    report["clips_below_agreement"] = int((~np.isnan(agreement) & ~keep).sum())
    return clips[keep].assign(agreement=agreement[keep])


def plan_items(clips: pd.DataFrame, req: BuildRequest, report: dict) -> dict[str, list[tuple[str, list[Clip]]]]:
    planned: dict[str, list[tuple[str, list[Clip]]]] = defaultdict(list)
    unplaced: Counter = Counter()
    for (actor, emotion), part in clips.groupby(["actor", "emotion"], sort=True):
        group = [Clip(str(p), sf.info(str(p)).duration) for p in part["path"]]
        packing = pack_clips(group, req.min_seconds, req.max_seconds, req.gap_seconds,
                             rng=req.rng(SOURCE, "pack", zlib.crc32(f"{actor}/{emotion}".encode())))
        planned[emotion] += [(actor, item) for item in packing.items]
        unplaced.update(why for _, why in packing.unplaced)
    report["unplaced_clips"] = dict(unplaced)
    return planned


def write_items(req: BuildRequest, chosen: dict[str, list[tuple[str, list[Clip]]]], folder: Path) -> list[dict]:
    rng = req.rng(SOURCE, "options")
    rows = []
    # answer letters balanced within each emotion, emotions interleaved in the manifest
    for index, (emotion, (actor, clips), position) in enumerate(class_jobs(chosen, 4, rng)):
        choices, answer = make_options(emotion, list(EMOTIONS), 4, position, rng)
        waves = [load_audio(c.key) for c in clips]
        wave = concat_audio(waves, req.gap_seconds)
        meta = {"label": emotion, "actor": actor, "clips": [str(Path(c.key).relative_to(folder)) for c in clips],
                "timeline": clips_timeline(waves, req.gap_seconds)}
        rows.append(write_item(req, TASK, index, wave, question=QUESTION, choices=choices, answer=answer,
                               source=SOURCE, meta=meta))
    return rows

