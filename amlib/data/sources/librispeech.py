"""LibriSpeech test-clean (or the released LibriSpeech-Long) -> long-form ASR items.

Expected layouts (`--root` may be the folder holding `LibriSpeech/`, the `LibriSpeech/` folder, or the
subset folder itself, e.g. `.../LibriSpeech/test-clean`):

* LibriSpeech as published on OpenSLR 12 (test-clean.tar.gz, extracted):
      LibriSpeech/test-clean/1089/134686/1089-134686-0000.flac
      LibriSpeech/test-clean/1089/134686/1089-134686.trans.txt   (lines "1089-134686-0000 HE HOPED THERE ...")
* LibriSpeech-Long as released by Park et al. 2024 (v0_1.tar.gz of google-deepmind/librispeech-long):
      librispeech-long/test-clean/1089/134686/134686_0000.flac
      librispeech-long/test-clean/1089/134686/134686_0000.txt    (one line: that segment's transcript)
  The release's README documents only "audio, ground-truth transcripts and per-file durations"; the
  `<speaker>/<chapter>/<chapter>_<segment>.{flac,txt}` naming is taken from a public loader of that
  archive (rwth-i6 i6_experiments), not from the archive itself. Durations are read from the audio.

`req.split` picks the subset: "test" -> test-clean, "dev"/"validation" -> dev-clean, or a subset name
such as "test-other".

Grouping (paper Appendix D): utterances (or LibriSpeech-Long segments) of the SAME speaker AND chapter,
in utterance order, are packed into items of req.min_seconds..req.max_seconds with `pack_clips` (a
seeded target length per item, silence of req.gap_seconds between utterances). Runs that cannot reach
the minimum, and utterances longer than the maximum, are reported in build_report.json, never padded.
Up to req.per_task items are drawn (seeded) from all packed items.

Answer: the utterances' reference transcripts joined by single spaces, in LibriSpeech's own upper case
(the WAR metric normalises case and punctuation). No options (open-ended task).
meta: speaker, chapter, utterances (ids in order), layout ("librispeech" or "librispeech-long"), timeline
(each utterance's place in the audio and its transcript, amlib.data.timeline).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from amlib.data.audio import load_audio
from amlib.data.concat import Clip, concat_audio, pack_clips
from amlib.data.sources.common import BuildRequest, LayoutError, audio_seconds, write_item, write_report
from amlib.data.timeline import clips_timeline

TASK = "ASR"
SOURCE = "librispeech"
SPLIT_SUBSETS = {"test": "test-clean", "dev": "dev-clean", "validation": "dev-clean"}
CONTAINERS = ("LibriSpeech", "librispeech-long", "")  # folders the subset may sit in, under root
LONG_SEGMENT = re.compile(r"^(?P<chapter>\d+)_(?P<segment>\d+)$")


@dataclass(frozen=True)
class Utterance:
    id: str  # "<speaker>-<chapter>-<utterance>"
    speaker: str
    chapter: str
    path: Path
    text: str
    duration_s: float


def build(req: BuildRequest) -> list[dict]:
    subset_dir = find_subset(req)
    layout, utterances = read_subset(subset_dir)
    groups: dict[tuple[str, str], list[Utterance]] = {}
    for utt in utterances:
        groups.setdefault((utt.speaker, utt.chapter), []).append(utt)

    planned, unplaced = [], []
    # groups are salted by their index: BuildRequest.rng keeps only 8 bytes of a string salt
    for g, (_, utts) in enumerate(sorted(groups.items())):
        by_id = {u.id: u for u in utts}
        packing = pack_clips([Clip(u.id, u.duration_s) for u in utts], req.min_seconds, req.max_seconds,
                             req.gap_seconds, rng=req.rng(SOURCE, "pack", g))
        planned += [[by_id[c.key] for c in item] for item in packing.items]
        unplaced += [{"utterance": c.key, "why": why} for c, why in packing.unplaced]

    rng = req.rng(SOURCE, "select")
    keep = sorted(rng.choice(len(planned), size=min(req.per_task, len(planned)), replace=False).tolist())
    rows = [write_chapter_item(req, i, planned[k], layout) for i, k in enumerate(keep)]
    write_report(req, SOURCE, {
        "task": TASK, "source": SOURCE, "layout": layout, "subset": str(subset_dir),
        "utterances": len(utterances), "groups": len(groups), "items_packed": len(planned), "items_written": len(rows),
        "unplaced_utterances": dict(Counter(u["why"] for u in unplaced)), "unplaced": unplaced,
    }, watch=("unplaced",), summary=lambda r: (f"{len(r['unplaced'])} utterances not placed in any item "
                                               f"({r['unplaced_utterances']})"))
    return rows


def subset_name(split: str) -> str:
    return SPLIT_SUBSETS.get(split, split)


def find_subset(req: BuildRequest) -> Path:
    """The subset folder (speaker/chapter tree), wherever under root the published archive put it."""
    root = req.require()
    subset = subset_name(req.split)
    candidates = [root / c / subset if c else root / subset for c in CONTAINERS] + [root]
    for folder in candidates:
        if folder.is_dir() and _has_speaker_tree(folder):
            if folder == root and re.match(r"(dev|test|train)-", root.name) and root.name != subset:
                raise LayoutError(f"{root}: this is LibriSpeech subset '{root.name}', but split {req.split!r} "
                                  f"asks for '{subset}'")
            return folder
    tried = ", ".join(f"'{c.relative_to(root) if c != root else '.'}'" for c in candidates)
    raise LayoutError(
        f"{root}: no LibriSpeech subset '{subset}' found (tried {tried}); expected e.g. "
        f"LibriSpeech/{subset}/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac with <speaker>-<chapter>.trans.txt, "
        f"or librispeech-long/{subset}/<speaker>/<chapter>/<chapter>_<segment>.flac with .txt transcripts"
    )


def _has_speaker_tree(folder: Path) -> bool:
    return any(p.is_dir() and p.name.isdigit() and any(c.is_dir() for c in p.iterdir()) for p in folder.iterdir())


def read_subset(subset_dir: Path) -> tuple[str, list[Utterance]]:
    """(layout name, utterances in speaker/chapter/utterance order) after checking audio and transcripts match."""
    chapters = sorted(p for p in subset_dir.glob("*/*") if p.is_dir() and p.parent.name.isdigit())
    transcripts = [p.name for c in chapters for p in c.glob("*.txt")]
    if any(name.endswith(".trans.txt") for name in transcripts):
        layout, reader = "librispeech", _read_librispeech_chapter
    elif any(LONG_SEGMENT.match(name[:-4]) for name in transcripts):
        layout, reader = "librispeech-long", _read_long_chapter
    else:
        raise LayoutError(f"{subset_dir}: chapter folders hold neither <speaker>-<chapter>.trans.txt (LibriSpeech) "
                          f"nor <chapter>_<segment>.txt (LibriSpeech-Long) transcripts")
    utterances = [u for chapter in chapters for u in reader(chapter)]
    return layout, utterances


def _read_librispeech_chapter(chapter_dir: Path) -> list[Utterance]:
    speaker, chapter = chapter_dir.parent.name, chapter_dir.name
    trans = chapter_dir / f"{speaker}-{chapter}.trans.txt"
    if not trans.is_file():
        raise LayoutError(f"{chapter_dir}: transcript file '{trans.name}' missing")
    texts: dict[str, str] = {}
    for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        utt_id, _, text = line.strip().partition(" ")
        if not utt_id.startswith(f"{speaker}-{chapter}-") or not text.strip():
            raise ValueError(f"{trans}:{lineno}: expected '<{speaker}-{chapter}-NNNN> <TRANSCRIPT>', got {line!r}")
        texts[utt_id] = text.strip()
    audio = {p.stem: p for p in chapter_dir.glob("*.flac")}
    _check_pairs(chapter_dir, audio, texts, trans.name)
    return [Utterance(u, speaker, chapter, audio[u], texts[u], audio_seconds(audio[u])) for u in sorted(texts)]


def _read_long_chapter(chapter_dir: Path) -> list[Utterance]:
    speaker, chapter = chapter_dir.parent.name, chapter_dir.name
    texts = {}
    for txt in chapter_dir.glob("*.txt"):
        match = LONG_SEGMENT.match(txt.stem)
        if not match or match["chapter"] != chapter:
            raise LayoutError(f"{txt}: expected a transcript named {chapter}_<segment>.txt")
        text = " ".join(txt.read_text(encoding="utf-8").split())
        if not text:
            raise ValueError(f"{txt}: empty transcript")
        texts[txt.stem] = text
    audio = {p.stem: p for p in chapter_dir.glob("*.flac")}
    _check_pairs(chapter_dir, audio, texts, "<chapter>_<segment>.txt files")
    segment = lambda stem: LONG_SEGMENT.match(stem)["segment"]  # noqa: E731
    return [Utterance(f"{speaker}-{chapter}-{segment(s)}", speaker, chapter, audio[s], texts[s],
                      audio_seconds(audio[s]))
            for s in sorted(texts, key=lambda s: int(segment(s)))]


def _check_pairs(chapter_dir: Path, audio: dict, texts: dict, transcript_name: str) -> None:
    no_text, no_audio = sorted(set(audio) - set(texts)), sorted(set(texts) - set(audio))
    if no_text:
        raise LayoutError(f"{chapter_dir}: audio without a transcript in {transcript_name}: {', '.join(no_text[:5])}")
    if no_audio:
        raise LayoutError(f"{chapter_dir}: transcript lines without a .flac file: {', '.join(no_audio[:5])}")


def write_chapter_item(req: BuildRequest, index: int, utts: list[Utterance], layout: str) -> dict:
    waves = [load_audio(u.path) for u in utts]
    wave = concat_audio(waves, gap_s=req.gap_seconds)
    return write_item(
        req, TASK, index, wave, question="", choices=[], answer=" ".join(u.text for u in utts), source=SOURCE,
        meta={"speaker": utts[0].speaker, "chapter": utts[0].chapter, "utterances": [u.id for u in utts],
              "layout": layout, "timeline": clips_timeline(waves, req.gap_seconds, texts=[u.text for u in utts])},
    )

