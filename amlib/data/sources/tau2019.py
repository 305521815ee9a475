"""TAU Urban Acoustic Scenes 2019 (development set) -> ASC items, each one recording location.

Expected layout (the published development set, Zenodo record 2589280; `--root` may be the folder
that holds TAU-urban-acoustic-scenes-2019-development/ or that folder itself):

    TAU-urban-acoustic-scenes-2019-development/meta.csv
    TAU-urban-acoustic-scenes-2019-development/audio/airport-barcelona-0-0-a.wav

meta.csv is tab-separated with a header row `filename  scene_label  identifier  source_label`, e.g.
`audio/airport-barcelona-0-0-a.wav  airport  barcelona-0  a`; file names read
`<scene>-<city>-<location id>-<segment id>-<device>.wav`. The whole development set is used (its
fold1 train/test lists are ignored: no model here is trained on it); `req.split` only names the split.

Grouping (paper §2.2 and the released TAU rule): the 10 s segments of one recording location
(scene + identifier + device, so parallel recordings of other devices never mix) are concatenated in
segment-id order while the item stays <= req.max_seconds; a run that ends shorter than
req.min_seconds is not used and is reported. Items are then taken equally per scene, spread over
locations round-robin.

Options: the true scene plus 3 other scenes drawn at random from the 10, as the dataset README names
them (e.g. "Travelling by a tram"); within each scene the answer letters are balanced.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd
import soundfile as sf

from amlib.data.audio import load_audio
from amlib.data.concat import Clip, concat_audio, pack_clips
from amlib.data.options import make_options
from amlib.data.sources.common import (BuildRequest, LayoutError, class_jobs, round_robin, take_balanced, write_item,
                                       write_report)
from amlib.data.timeline import clips_timeline

TASK = "ASC"
SOURCE = "tau2019"
DATASET_DIR = "TAU-urban-acoustic-scenes-2019-development"
META_COLUMNS = ("filename", "scene_label", "identifier", "source_label")
# scene label -> option text, as the dataset README names the ten scenes
SCENES = {
    "airport": "Airport",
    "shopping_mall": "Indoor shopping mall",
    "metro_station": "Metro station",
    "street_pedestrian": "Pedestrian street",
    "public_square": "Public square",
    "street_traffic": "Street with medium level of traffic",
    "tram": "Travelling by a tram",
    "bus": "Travelling by a bus",
    "metro": "Travelling by an underground metro",
    "park": "Urban park",
}
FILE_NAME = re.compile(r"^(?P<scene>[a-z_]+)-(?P<city>[a-z]+)-(?P<location>\d+)-(?P<segment>\d+)-(?P<device>[a-z0-9]+)\.wav$")


def build(req: BuildRequest) -> list[dict]:
    folder = dataset_folder(req)
    segments = read_meta(folder / "meta.csv")
    planned, unplaced = plan_items(segments, req)
    rng = req.rng(SOURCE, "select")
    # equal items per scene (what finalize would keep), spread over locations round-robin
    chosen, balance = take_balanced(planned, req.per_task, lambda items, n: round_robin(items, n, rng),
                                    nothing=f"{SOURCE}: no group reaches the {TASK} window; nothing to build")
    rows = write_items(req, chosen)
    report = {"task": TASK, **balance, "unplaced_segments": dict(unplaced),
              "locations": int(segments["group"].nunique())}
    write_report(req, SOURCE, report, watch=("classes_short_of_quota", "unplaced_segments"))
    return rows


def dataset_folder(req: BuildRequest) -> Path:
    root = req.require()
    folder = root if (root / "meta.csv").is_file() and (root / "audio").is_dir() else root / DATASET_DIR
    for needed in ("meta.csv", "audio"):
        if not (folder / needed).exists():
            raise LayoutError(f"{folder}: expected '{needed}' (TAU Urban Acoustic Scenes 2019 development layout: "
                              f"{DATASET_DIR}/meta.csv and {DATASET_DIR}/audio/*.wav)")
    return folder


def read_meta(path: Path) -> pd.DataFrame:
    """meta.csv as a table with absolute paths, parsed segment ids and a recording-location group key."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in META_COLUMNS if c not in table.columns]
    if missing:
        raise LayoutError(f"{path}: missing columns {missing}; found {list(table.columns)} "
                          f"(expected tab-separated {', '.join(META_COLUMNS)})")
    records = []
    for offset, row in enumerate(table.itertuples(index=False)):
        where = f"{path}:{offset + 2}"  # line 1 is the header
        name = FILE_NAME.match(Path(row.filename).name)
        if not name:
            raise ValueError(f"{where}: file name {row.filename!r} is not <scene>-<city>-<location>-<segment>-<device>.wav")
        if row.scene_label not in SCENES:
            raise ValueError(f"{where}: unknown scene_label {row.scene_label!r} (known: {', '.join(SCENES)})")
        if name["scene"] != row.scene_label:
            raise ValueError(f"{where}: file name scene {name['scene']!r} differs from scene_label {row.scene_label!r}")
        records.append({"path": path.parent / row.filename, "scene": row.scene_label, "segment": int(name["segment"]),
                        "group": f"{row.scene_label}/{row.identifier}/{row.source_label}"})
    segments = pd.DataFrame(records)
    absent = [str(p) for p in segments["path"] if not p.is_file()]
    if absent:
        raise LayoutError(f"{path}: {len(absent)} listed audio files are missing, e.g. {absent[:3]}")
    return segments.sort_values(["group", "segment"], kind="stable")


def plan_items(segments: pd.DataFrame, req: BuildRequest) -> tuple[dict[str, list[tuple[str, list[Clip]]]], Counter]:
    """Per scene: (location group, clips of one item) for every item the packing rule allows."""
    planned: dict[str, list[tuple[str, list[Clip]]]] = defaultdict(list)
    unplaced: Counter = Counter()
    for group, part in segments.groupby("group", sort=True):
        clips = [Clip(str(p), sf.info(str(p)).duration) for p in part["path"]]
        # no rng: the released rule fills each item up to max_seconds, in segment order
        packing = pack_clips(clips, req.min_seconds, req.max_seconds, req.gap_seconds)
        planned[part["scene"].iloc[0]] += [(group, item) for item in packing.items]
        unplaced.update(reason for _, reason in packing.unplaced)
    return planned, unplaced


def write_items(req: BuildRequest, chosen: dict[str, list[tuple[str, list[Clip]]]]) -> list[dict]:
    rng = req.rng(SOURCE, "options")
    pool = list(SCENES.values())
    rows = []
    # answer letters balanced within each scene, scenes mixed in the manifest
    for index, (scene, (group, clips), position) in enumerate(class_jobs(chosen, 4, rng)):
        choices, answer = make_options(SCENES[scene], pool, 4, position, rng)
        waves = [load_audio(c.key) for c in clips]
        wave = concat_audio(waves, req.gap_seconds)
        _, identifier, device = group.split("/")
        meta = {"label": SCENES[scene], "scene_label": scene, "identifier": identifier, "device": device,
                "segments": [str(Path(c.key).relative_to(req.root)) for c in clips],
                "timeline": clips_timeline(waves, req.gap_seconds)}
        rows.append(write_item(req, TASK, index, wave, question="", choices=choices, answer=answer,
                               source=SOURCE, meta=meta))
    return rows

