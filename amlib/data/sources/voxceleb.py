"""VoxCeleb1/2 (Nagrani et al. 2017; Chung et al. 2018) + age enrichment (Hechmi et al. 2021) -> SGR, SAR.

Expected layout (`--root`; VoxCeleb1, VoxCeleb2 or both):

    vox1_meta.csv                       tab-separated: VoxCeleb1 ID, VGGFace1 ID, Gender, Nationality, Set
                                        e.g. `id10001  A.J._Buckley  m  Ireland  dev`
    vox2_meta.csv                       comma-separated, names padded with a space:
                                        `VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set ` / `id00012 ,n000012 ,m ,dev `
    wav/id10001/1zcIwhmdeo4/00001.wav   VoxCeleb1 audio (also accepted under dev/wav or test/wav)
    aac/id00012/21Uxsk56VDQ/00001.m4a   VoxCeleb2 audio (also dev/aac, test/aac); AAC is decoded through
                                        librosa/audioread, which needs ffmpeg; without it a clear error
                                        names the file (convert to wav, or apt-get install ffmpeg)
    final_dataframe_extended.csv        the enrichment csv of Hechmi et al. (github
                                        hechmik/voxceleb_enrichment_age_gender, dataset/), needed for SAR;
                                        its age-train.txt / age-test.txt are accepted too. Columns used:
                                        VoxCeleb_ID, video_id and speaker_age (recording year - birth
                                        year; else birth_year and recording_year are used)

Column names and values are stripped, so both published spellings of the meta files parse. Speakers are
those of the Set named by `req.split` when it is "dev" or "test"; any other split uses every speaker.
Gender is VoxCeleb's own label (m/f).

Grouping: the clips of ONE speaker (SAR: of that speaker's videos whose age at recording falls in one
age group), in video and clip order, packed into items whose length is drawn uniformly from
[req.min_seconds, req.max_seconds]. Speakers are visited in a seeded random order; every speaker gives
one item before any gives a second, and only as many speakers are scanned as the quota needs.

Options are fixed by the task prompts: SGR ["male", "female"] (A = male), SAR the five AGE_GROUPS of
amlib.tasks in that order (age = floor of the enrichment's age at recording; under 18 has no group and
is reported). Classes are balanced: the same number of items per gender / per age group that has any
speaker, per_task // classes at most; groups that fall short are reported in build_report.json.
"""

from __future__ import annotations

import re
import warnings
import zlib
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path
import numpy as np
import pandas as pd
import soundfile as sf

from amlib.data.audio import SAMPLE_RATE, load_audio
from amlib.data.concat import Clip, concat_audio, pack_clips
from amlib.data.sources.common import BuildRequest, LayoutError, audio_seconds, interleave, write_item, write_report
from amlib.data.timeline import clips_timeline
from amlib.tasks import AGE_GROUPS, get_task

SOURCE = "voxceleb"
META_FILES = {"vox1_meta.csv": "VoxCeleb1 ID", "vox2_meta.csv": "VoxCeleb2 ID"}
AUDIO_DIRS = ("wav", "aac", "dev/wav", "dev/aac", "test/wav", "test/aac")
AUDIO_SUFFIXES = (".wav", ".m4a")
ENRICHMENT_FILES = ("final_dataframe_extended.csv", "age-train.txt", "age-test.txt")
GENDERS = {"m": "male", "f": "female"}
QUESTIONS = {"SGR": "What is the speaker's gender?", "SAR": "What is the speaker's age group?"}


def build(req: BuildRequest) -> list[dict]:
    root = req.require()
    speakers = read_speakers(root, req.split)
    library = ClipLibrary(root)
    rows, reports = [], []
    for task in req.tasks or ("SGR", "SAR"):
        if task == "SGR":
            ages, candidates, extra = {}, gender_candidates(speakers), {}
        else:
            ages, extra = read_ages(root)
            candidates = age_candidates(speakers, ages, extra)
        chosen, report = take_balanced(task, candidates, library, req)
        rows += write_items(req, task, chosen, library, ages)
        reports.append({**report, **extra})
    write_report(req, SOURCE, *reports, watch=("classes_short_of_quota", "unplaced_clips", "classes_without_items"))
    return rows


# ------------------------------------------------------------------ metadata


def read_speakers(root: Path, split: str) -> pd.DataFrame:
    """speaker, gender (male/female), set, from vox1_meta.csv and/or vox2_meta.csv."""
    tables = [read_meta(root / name, id_column) for name, id_column in META_FILES.items() if (root / name).is_file()]
    if not tables:
        raise LayoutError(f"{root}: expected vox1_meta.csv and/or vox2_meta.csv (VoxCeleb metadata)")
    speakers = pd.concat(tables, ignore_index=True).drop_duplicates("speaker")
    if split in ("dev", "test"):
        speakers = speakers[speakers["set"] == split]
        if speakers.empty:
            raise ValueError(f"{root}: no speaker of VoxCeleb set {split!r}; pass another split (dev, test, or e.g. "
                             f"'all' for every speaker)")
    return speakers.reset_index(drop=True)


def read_meta(path: Path, id_column: str) -> pd.DataFrame:
    header = path.read_text(encoding="utf-8-sig").splitlines()[0]
    table = pd.read_csv(path, sep="\t" if "\t" in header else ",", dtype=str, encoding="utf-8-sig",
                        keep_default_na=False)
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in (id_column, "Gender", "Set") if c not in table.columns]
    if missing:
        raise LayoutError(f"{path}: missing columns {missing}; found {list(table.columns)}")
    table = table[[id_column, "Gender", "Set"]].apply(lambda col: col.str.strip())
    bad = table[~table["Gender"].str.lower().isin(list(GENDERS))]
    if len(bad):
        raise ValueError(f"{path}:{bad.index[0] + 2}: Gender {bad['Gender'].iloc[0]!r} is not m or f")
    return pd.DataFrame({"speaker": table[id_column], "gender": table["Gender"].str.lower().map(GENDERS),
                         "set": table["Set"]})


def read_ages(root: Path) -> tuple[dict[tuple[str, str], float], dict]:
    """(speaker, video) -> age at recording, from the enrichment file(s); conflicts and gaps are counted."""
    paths = [root / name for name in ENRICHMENT_FILES if (root / name).is_file()]
    if not paths:
        raise LayoutError(f"{root}: SAR needs the age enrichment csv: one of {', '.join(ENRICHMENT_FILES)} "
                          f"(Hechmi et al. 2021, hechmik/voxceleb_enrichment_age_gender)")
    frames = []
    for path in paths:
        table = pd.read_csv(path, dtype={"VoxCeleb_ID": str, "video_id": str})
        if "speaker_age" not in table.columns and {"birth_year", "recording_year"} <= set(table.columns):
            table["speaker_age"] = table["recording_year"] - table["birth_year"]
        missing = [c for c in ("VoxCeleb_ID", "video_id", "speaker_age") if c not in table.columns]
        if missing:
            raise LayoutError(f"{path}: missing columns {missing} (or birth_year + recording_year); "
                              f"found {list(table.columns)}")
        frames.append(table[["VoxCeleb_ID", "video_id", "speaker_age"]])
    table = pd.concat(frames, ignore_index=True)
    known = table.dropna()
    ages = known.groupby(["VoxCeleb_ID", "video_id"])["speaker_age"].agg(["min", "max"])
    consistent = ages[ages["min"] == ages["max"]]
    report = {"enrichment_rows_without_age": int(len(table) - len(known)),
              "videos_with_conflicting_ages": int(len(ages) - len(consistent))}
    return {key: float(age) for key, age in consistent["min"].items()}, report


AGE_BOUNDS = [  # (lowest age, group) parsed from the group names, e.g. "Senior (51-70)" -> 51
    (int(re.search(r"\((\d+)[-+]", name).group(1)), name) for name in AGE_GROUPS
]


def age_group(age: float) -> str | None:
    years = int(np.floor(age))
    groups = [name for low, name in AGE_BOUNDS if years >= low]
    return groups[-1] if groups else None


# ------------------------------------------------------------------ audio


class ClipLibrary:
    """Clips of a speaker, listed and measured only when first asked for."""

    def __init__(self, root: Path):
        self.root = root
        self.dirs = [root / d for d in AUDIO_DIRS if (root / d).is_dir()]
        if not self.dirs:
            raise LayoutError(f"{root}: expected VoxCeleb audio under one of {', '.join(d + '/' for d in AUDIO_DIRS)} "
                              f"(<speaker>/<video>/<nnnnn>.wav or .m4a)")

    @lru_cache(maxsize=None)
    def clips(self, speaker: str) -> tuple[tuple[str, Clip], ...]:
        """(video id, clip) pairs in video and clip order."""
        paths = sorted(p for d in self.dirs if (d / speaker).is_dir() for p in (d / speaker).glob("*/*")
                       if p.suffix in AUDIO_SUFFIXES)
        return tuple((p.parent.name, Clip(str(p), clip_seconds(p))) for p in paths)

    def relative(self, clip: Clip) -> str:
        return str(Path(clip.key).relative_to(self.root))


def clip_seconds(path: Path) -> float:
    if path.suffix != ".m4a":
        return audio_seconds(path)
    try:
        return sf.info(str(path)).duration
    except Exception:
        return len(decode_m4a(path)) / SAMPLE_RATE


def decode_m4a(path: Path) -> np.ndarray:
    import librosa

    try:
        with warnings.catch_warnings():  # librosa warns that it falls back from soundfile to audioread: expected
            warnings.simplefilter("ignore", (UserWarning, FutureWarning, DeprecationWarning))
            wave, _ = librosa.load(str(path), sr=SAMPLE_RATE, mono=True)
    except Exception as err:
        raise OSError(f"{path}: cannot decode this VoxCeleb2 .m4a ({type(err).__name__}: {err}); AAC needs ffmpeg for "
                      f"librosa/audioread (apt-get install ffmpeg), or convert aac/ to wav/ first") from err
    return wave.astype(np.float32)


def load_clip(path: Path) -> np.ndarray:
    return decode_m4a(path) if path.suffix == ".m4a" else load_audio(path)


# ------------------------------------------------------------------ items


# A candidate is (speaker, videos): the speaker's clips, all of them (videos None) or those of the
# videos whose age falls in the candidate's age group.
Candidate = tuple[str, "frozenset[str] | None"]


def gender_candidates(speakers: pd.DataFrame) -> dict[str, list[Candidate]]:
    return {label: [(s, None) for s in part["speaker"]] for label, part in speakers.groupby("gender", sort=True)}


def age_candidates(speakers: pd.DataFrame, ages: dict[tuple[str, str], float], report: dict) -> dict[str, list[Candidate]]:
    wanted = set(speakers["speaker"])
    videos: dict[tuple[str, str], set[str]] = defaultdict(set)
    report["videos_under_lowest_age_group"] = 0
    for (speaker, video), age in ages.items():
        if speaker not in wanted:
            continue
        group = age_group(age)
        if group is None:
            report["videos_under_lowest_age_group"] += 1
        else:
            videos[(group, speaker)].add(video)
    candidates: dict[str, list[Candidate]] = defaultdict(list)
    for (group, speaker), vids in sorted(videos.items()):
        candidates[group].append((speaker, frozenset(vids)))
    return dict(candidates)


def take_balanced(task: str, candidates: dict[str, list[Candidate]], library: ClipLibrary,
                  req: BuildRequest) -> tuple[dict, dict]:
    """Up to per_task // classes items per class, the same number for each, round-robin over speakers.
    A class whose speakers give no item in the window is left out (and reported), as finalize would."""
    fixed = get_task(task).fixed_choices
    classes = [c for c in fixed if candidates.get(c)]
    while True:
        if not classes:
            raise ValueError(f"{SOURCE}: no {task} class has a speaker with enough audio for the window")
        quota = req.per_task // len(classes)
        unplaced: Counter = Counter()
        taken = {}
        for label in classes:
            order = req.rng(SOURCE, task, "order", salt(label)).permutation(len(candidates[label]))
            taken[label] = take_round_robin([candidates[label][i] for i in order], quota, library, req, task, unplaced)
        if all(taken.values()):
            break
        classes = [c for c in classes if taken[c]]
    cap = min(len(items) for items in taken.values())
    report = {"task": task, "candidates_per_class": {c: len(v) for c, v in candidates.items()},
              "classes_without_items": [c for c in fixed if c not in classes],
              "quota_per_class": quota, "items_found_per_class": {c: len(v) for c, v in taken.items()},
              "kept_per_class": cap, "unplaced_clips": dict(unplaced),
              "speakers_used_per_class": {c: len({s for s, _ in v[:cap]}) for c, v in taken.items()},
              "classes_short_of_quota": {c: len(v) for c, v in taken.items() if len(v) < quota}}
    return {label: items[:cap] for label, items in taken.items()}, report


def take_round_robin(candidates: list[Candidate], quota: int, library: ClipLibrary, req: BuildRequest, task: str,
                     unplaced: Counter) -> list[tuple[str, list[Clip]]]:
    """(speaker, clips) items: each candidate's first item, then each one's second, ... until the quota.
    A candidate's clips are listed and packed only when it is first visited."""
    def items(candidate: Candidate) -> list[tuple[str, list[Clip]]]:
        speaker, videos = candidate
        clips = [c for video, c in library.clips(speaker) if videos is None or video in videos]
        packing = pack_clips(clips, req.min_seconds, req.max_seconds, req.gap_seconds,
                             rng=req.rng(SOURCE, task, "pack", salt(speaker), salt(",".join(sorted(videos or ())))))
        unplaced.update(why for _, why in packing.unplaced)
        return [(speaker, item) for item in packing.items]

    return interleave(candidates, quota, items)


def salt(text: str) -> int:
    """A whole string as an rng salt (BuildRequest.rng keeps only the first 8 bytes of a str)."""
    return zlib.crc32(text.encode())


def write_items(req: BuildRequest, task: str, chosen: dict[str, list[tuple[str, list[Clip]]]],
                library: ClipLibrary, ages: dict[tuple[str, str], float]) -> list[dict]:
    spec = get_task(task)
    choices = list(spec.fixed_choices)
    jobs = [(label, speaker, clips) for label, items in chosen.items() for speaker, clips in items]
    rows = []
    for index, job_index in enumerate(req.rng(SOURCE, task, "order").permutation(len(jobs))):
        label, speaker, clips = jobs[job_index]
        waves = [load_clip(Path(c.key)) for c in clips]
        wave = concat_audio(waves, req.gap_seconds)
        videos = sorted({Path(c.key).parent.name for c in clips})
        meta = {"label": label, "speaker": speaker, "videos": videos, "clips": [library.relative(c) for c in clips],
                "timeline": clips_timeline(waves, req.gap_seconds)}
        if task == "SAR":
            meta["age_at_recording"] = {v: ages[(speaker, v)] for v in videos}
        rows.append(write_item(req, task, index, wave, question=QUESTIONS[task], choices=choices,
                               answer=spec.letters[choices.index(label)], source=SOURCE, meta=meta))
    return rows

