"""GTZAN genre collection -> Music Classification (MC).

Expected layout (`--root` is the folder holding one of these, or the genre-folder parent itself):
    genres/blues/blues.00000.au                 (the original marsyas genres.tar.gz; .au or .wav)
    genres_original/jazz/jazz.00054.wav         (the Kaggle copy, also under Data/genres_original/)
Ten genre folders: blues, classical, country, disco, hiphop, jazz, metal, pop, reggae, rock, each with
`<genre>.<5 digits>.{wav,au}` tracks of about 30 s; any other file or folder there is an error (dot
files excepted). `req.split` only names the split (GTZAN has none).

A file that cannot be read (the Kaggle copy's jazz.00054.wav is known to be corrupt) stops the build
with an error naming every such path; `build(req, skip_unreadable=True)` (or `--option
skip_unreadable=true`) instead leaves them out and lists them in build_report.json and the log.

Grouping: tracks of the SAME genre, in track-number order, are packed into items of
req.min_seconds..req.max_seconds with `pack_clips` (a seeded target length per item); tracks that
cannot be placed are reported. Up to req.per_task // (genres with items) items per genre are kept
(seeded choice), so the classes are balanced.
Options: the true genre plus 3 others drawn (seeded) from the remaining genres, the true one on a
balanced answer position. The question is empty: the MC prompt itself asks for the genre.
meta: genre, tracks, label (= genre), timeline (each track's place in the audio, amlib.data.timeline).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import soundfile as sf

from amlib.data.audio import load_audio
from amlib.data.concat import Clip, concat_audio, pack_clips
from amlib.data.options import balanced_positions, make_options
from amlib.data.sources.common import BuildRequest, LayoutError, write_item, write_report
from amlib.data.timeline import clips_timeline
from amlib.tasks import get_task

TASK = "MC"
SOURCE = "gtzan"
GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
CONTAINERS = ("genres", "genres_original", "Data/genres_original", "")
TRACK_NAME = re.compile(r"^(?P<genre>[a-z]+)\.(?P<number>\d{5})\.(wav|au)$")
N_OPTIONS = get_task(TASK).n_options


def build(req: BuildRequest, skip_unreadable: bool | None = None) -> list[dict]:
    """Options (keyword argument, else `--option` / BuildRequest.options, else the default):
    skip_unreadable (default false): leave out tracks that cannot be read, reporting them, instead of
    stopping with an error."""
    skip_unreadable = bool(req.option("skip_unreadable", skip_unreadable, False))
    folder = genre_folder(req)
    tracks, unreadable = read_tracks(folder, skip_unreadable)
    planned, unplaced = pack_genres(tracks, req)
    chosen, short = choose_balanced(planned, req)
    genres = sorted(tracks)
    positions = balanced_positions(len(chosen), N_OPTIONS, req.rng(SOURCE, "positions"))
    rows = [write_genre_item(req, i, genre, item, genres, pos)
            for i, ((genre, item), pos) in enumerate(zip(chosen, positions))]
    write_report(req, SOURCE, {
        "task": TASK, "source": SOURCE, "folder": str(folder), "tracks": sum(map(len, tracks.values())),
        "items_written": len(rows), "items_per_genre": dict(Counter(g for g, _ in chosen)),
        "genres_short_of_quota": short, "unreadable": unreadable,
        "unplaced_tracks": dict(Counter(u["why"] for u in unplaced)), "unplaced": unplaced,
    }, watch=("unreadable", "unplaced", "genres_short_of_quota"),
        summary=lambda r: (f"{len(r['unreadable'])} unreadable tracks, unplaced {r['unplaced_tracks']}, "
                           f"genres short of quota {r['genres_short_of_quota']}"))
    return rows


def genre_folder(req: BuildRequest) -> Path:
    root = req.require()
    for rel in CONTAINERS:
        folder = root / rel if rel else root
        if folder.is_dir() and any((folder / g).is_dir() for g in GENRES):
            return folder
    raise LayoutError(f"{root}: no GTZAN genre folders found; expected e.g. genres/blues/blues.00000.wav "
                      f"(tried {', '.join(repr(c or '.') for c in CONTAINERS)})")


def read_tracks(folder: Path, skip_unreadable: bool) -> tuple[dict[str, list[Clip]], list[dict]]:
    """genre -> tracks in number order (Clip key = path), and the unreadable files with the reason."""
    tracks: dict[str, list[Clip]] = defaultdict(list)
    unreadable = []
    for genre_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if genre_dir.name not in GENRES:
            raise LayoutError(f"{genre_dir}: not a GTZAN genre folder (genres: {', '.join(GENRES)})")
        # dot files (.DS_Store, macOS ._ forks) are file-system litter, not tracks
        for path in sorted(p for p in genre_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
            match = TRACK_NAME.match(path.name)
            if not match or match["genre"] != genre_dir.name:
                raise LayoutError(f"{path}: expected a track named {genre_dir.name}.NNNNN.wav (or .au)")
            try:
                tracks[genre_dir.name].append(Clip(str(path), float(sf.info(str(path)).duration)))
            except Exception as err:
                unreadable.append({"path": str(path), "why": str(err)})
    if unreadable and not skip_unreadable:
        raise OSError("cannot read GTZAN track(s): " + "; ".join(f"{u['path']} ({u['why']})" for u in unreadable)
                      + " (build with skip_unreadable=True to leave them out, reported)")
    if not tracks:
        raise LayoutError(f"{folder}: the genre folders hold no tracks")
    return dict(tracks), unreadable


def pack_genres(tracks: dict[str, list[Clip]], req: BuildRequest) -> tuple[dict[str, list[list[Clip]]], list[dict]]:
    planned, unplaced = {}, []
    for genre, clips in sorted(tracks.items()):
        packing = pack_clips(clips, req.min_seconds, req.max_seconds, req.gap_seconds,
                             rng=req.rng(SOURCE, "pack", GENRES.index(genre)))
        if packing.items:
            planned[genre] = packing.items
        unplaced += [{"track": c.key, "why": why} for c, why in packing.unplaced]
    return planned, unplaced


def choose_balanced(planned: dict[str, list[list[Clip]]],
                    req: BuildRequest) -> tuple[list[tuple[str, list[Clip]]], dict]:
    if not planned:
        return [], {}
    per_genre = req.per_task // len(planned)
    if per_genre == 0:
        raise ValueError(f"per_task={req.per_task} is below the {len(planned)} genres with items: "
                         "balancing would keep none")
    rng = req.rng(SOURCE, "select")
    chosen, short = [], {}
    for genre, items in sorted(planned.items()):
        keep = sorted(rng.choice(len(items), size=min(per_genre, len(items)), replace=False).tolist())
        chosen += [(genre, items[k]) for k in keep]
        if len(items) < per_genre:
            short[genre] = f"{len(items)} of {per_genre}"
    return chosen, short


def write_genre_item(req: BuildRequest, index: int, genre: str, item: list[Clip], genres: list[str],
                     position: int) -> dict:
    choices, letter = make_options(genre, genres, N_OPTIONS, position, req.rng(SOURCE, "options", index))
    waves = [load_audio(c.key) for c in item]
    wave = concat_audio(waves, gap_s=req.gap_seconds)
    return write_item(
        req, TASK, index, wave, question="", choices=choices, answer=letter, source=SOURCE,
        meta={"genre": genre, "tracks": [Path(c.key).name for c in item], "label": genre,
              "timeline": clips_timeline(waves, req.gap_seconds)},
    )

