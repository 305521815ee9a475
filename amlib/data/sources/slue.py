"""SLUE-VoxPopuli named entities -> Speech Entity Recognition (SER).

Expected layout (the SLUE release as asappresearch/slue-toolkit downloads and reads it; `--root` may hold
`slue-voxpopuli/` or be it):
    slue-voxpopuli/slue-voxpopuli_dev.tsv
    slue-voxpopuli/dev/20131007-0900-PLENARY-19-en_20131007-21:26:04_3.ogg     (<split>/<id>.ogg; .flac accepted)
TSV columns: id, raw_text, normalized_text, speaker_id, split, raw_ner, normalized_ner. An NER cell is a
Python-literal list of [label, char start, char length] into the text of its kind, e.g.
"[['GPE', 29, 7], ['ORG', 110, 25]]" ("None" or "[]": no entity); labels are the 18 OntoNotes types.
`req.split` picks the file: test, dev ("validation" too) or fine-tune ("train" too). The blind release's
test file (slue-voxpopuli_test_blind.tsv) has no NER labels and is refused with a clear error.

Entities: normalized_ner over normalized_text (the pairing the toolkit uses), mapped to SLUE's 7
"combined" types (PLACE, QUANT, ORG, WHEN, NORP, PERSON, LAW; FAC, EVENT, WORK_OF_ART, PRODUCT and
LANGUAGE are discarded, as SLUE does). Option texts are therefore in normalized (lower-case) form.

Grouping: utterances of the SAME speaker, in id order (VoxPopuli ids start with the session date and
time), are packed into items of req.min_seconds..req.max_seconds with `pack_clips`; what cannot be
placed is reported in build_report.json.

Question and options: per item an entity type is chosen among the types mentioned in it (the type used
least so far, so types stay balanced), with a question such as "Which organisation is mentioned in the
recording?"; the true option is one of that type's entity phrases in the item (preferring phrases not yet
used as an answer), and the 3 distractors are entity phrases of the same type from OTHER items that do not
occur anywhere in this item's transcript (whole-word match). Answer positions are balanced. Up to
req.per_task items are written. meta: speaker, utterances, entity_type, label (the true phrase), timeline
(each utterance's place in the audio and text; those naming the answer carry it; amlib.data.timeline).
"""

from __future__ import annotations

import ast
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from amlib.data.audio import load_audio
from amlib.data.concat import Clip, concat_audio, pack_clips
from amlib.data.options import balanced_positions, make_options
from amlib.data.sources.common import BuildRequest, LayoutError, audio_seconds, write_item, write_report
from amlib.data.timeline import clips_timeline
from amlib.tasks import get_task

TASK = "SER"
SOURCE = "slue"
FOLDER = "slue-voxpopuli"
SPLIT_NAMES = {"validation": "dev", "train": "fine-tune"}
AUDIO_SUFFIXES = (".ogg", ".flac")
REQUIRED_COLUMNS = ("id", "normalized_text", "speaker_id", "normalized_ner")
N_OPTIONS = get_task(TASK).n_options
# SLUE's raw (OntoNotes) -> combined entity types; None: discarded as in SLUE's combined label set.
COMBINED_TYPE = {
    "DATE": "WHEN", "TIME": "WHEN", "CARDINAL": "QUANT", "ORDINAL": "QUANT", "QUANTITY": "QUANT",
    "MONEY": "QUANT", "PERCENT": "QUANT", "GPE": "PLACE", "LOC": "PLACE", "NORP": "NORP", "ORG": "ORG",
    "LAW": "LAW", "PERSON": "PERSON", "FAC": None, "EVENT": None, "WORK_OF_ART": None, "PRODUCT": None,
    "LANGUAGE": None,
}
QUESTIONS = {
    "PERSON": "Which person is mentioned in the recording?",
    "ORG": "Which organisation is mentioned in the recording?",
    "PLACE": "Which place is mentioned in the recording?",
    "NORP": "Which nationality, religious or political group is mentioned in the recording?",
    "LAW": "Which law or legal document is mentioned in the recording?",
    "WHEN": "Which date or time expression is mentioned in the recording?",
    "QUANT": "Which quantity is mentioned in the recording?",
}


@dataclass(frozen=True)
class Utterance:
    id: str
    speaker: str
    path: Path
    text: str
    entities: tuple[tuple[str, str], ...]  # (combined type, phrase)
    duration_s: float


@dataclass
class Item:
    speaker: str
    utterances: list[Utterance]
    entities: dict[str, set[str]] = field(default_factory=dict)  # type -> phrases mentioned

    @property
    def transcript(self) -> str:
        return " ".join(u.text for u in self.utterances)


def build(req: BuildRequest) -> list[dict]:
    tsv, audio_dir = split_files(req)
    utterances = read_split(tsv, audio_dir)
    items, unplaced = pack_speakers(utterances, req)
    questions, no_question = plan_questions(items, req)
    positions = balanced_positions(len(questions), N_OPTIONS, req.rng(SOURCE, "positions"))
    rows = [write_entity_item(req, i, q, pos) for i, (q, pos) in enumerate(zip(questions, positions))]
    write_report(req, SOURCE, {
        "task": TASK, "source": SOURCE, "tsv": str(tsv), "utterances": len(utterances), "items_packed": len(items),
        "items_written": len(rows), "entity_types": dict(Counter(q["type"] for q in questions)),
        "unplaced_utterances": dict(Counter(u["why"] for u in unplaced)), "unplaced": unplaced,
        "items_without_question": no_question,
    }, watch=("unplaced", "items_without_question"),
        summary=lambda r: (f"{len(r['unplaced'])} utterances unplaced ({r['unplaced_utterances']}), "
                           f"{len(r['items_without_question'])} items without a valid question"))
    return rows


def split_files(req: BuildRequest) -> tuple[Path, Path]:
    root = req.require()
    folder = root if any(root.glob("slue-voxpopuli_*.tsv")) else root / FOLDER
    split = SPLIT_NAMES.get(req.split, req.split)
    tsv, audio_dir = folder / f"slue-voxpopuli_{split}.tsv", folder / split
    if not tsv.is_file():
        blind = folder / f"slue-voxpopuli_{split}_blind.tsv"
        why = (f"only the blind '{blind.name}' is there, which has no NER labels: use a labelled split "
               f"(--split dev) or the labelled test file") if blind.is_file() else "missing"
        raise LayoutError(f"{root}: expected '{FOLDER}/{tsv.name}' ({why})")
    if not audio_dir.is_dir():
        raise LayoutError(f"{root}: expected the audio folder '{FOLDER}/{split}/' with <id>.ogg files")
    return tsv, audio_dir


def read_split(tsv: Path, audio_dir: Path) -> list[Utterance]:
    frame = pd.read_csv(tsv, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise LayoutError(f"{tsv}: missing column(s) {', '.join(missing)} (has {', '.join(frame.columns)})")
    utterances, no_audio = [], []
    for i, row in frame.iterrows():
        where = f"{tsv}:{i + 2}"  # header is line 1
        found = [audio_dir / f"{row['id']}{s}" for s in AUDIO_SUFFIXES]
        path = next((p for p in found if p.is_file()), None)
        if path is None:
            no_audio.append(row["id"])
            continue
        text = row["normalized_text"]
        entities = tuple(parse_entities(row["normalized_ner"], text, where))
        utterances.append(Utterance(row["id"], row["speaker_id"], path, text, entities, audio_seconds(path)))
    if no_audio:
        raise LayoutError(f"{audio_dir}: no audio (.ogg/.flac) for {len(no_audio)} id(s) of {tsv.name}, e.g. "
                          + ", ".join(no_audio[:3]))
    return utterances


def parse_entities(cell: str, text: str, where: str) -> list[tuple[str, str]]:
    """[(combined type, phrase)] from one NER cell; discarded types are left out."""
    if cell.strip() in ("", "None", "[]"):
        return []
    try:
        spans = ast.literal_eval(cell)
    except (ValueError, SyntaxError):
        raise ValueError(f"{where}: NER cell is not a list of [label, start, length]: {cell[:80]!r}") from None
    out = []
    for span in spans:
        if not (isinstance(span, (list, tuple)) and len(span) == 3 and span[0] in COMBINED_TYPE):
            raise ValueError(f"{where}: bad NER span {span!r} (expected [OntoNotes label, start, length])")
        label, start, length = span
        phrase = text[int(start): int(start) + int(length)].strip()
        if not phrase:
            raise ValueError(f"{where}: NER span {span!r} selects no text of {text[:60]!r}")
        if COMBINED_TYPE[label]:
            out.append((COMBINED_TYPE[label], phrase))
    return out


def pack_speakers(utterances: list[Utterance], req: BuildRequest) -> tuple[list[Item], list[dict]]:
    by_speaker: dict[str, list[Utterance]] = defaultdict(list)
    for utt in utterances:
        by_speaker[utt.speaker].append(utt)
    items, unplaced = [], []
    # speakers are salted by their index: BuildRequest.rng keeps only 8 bytes of a string salt
    for s, (speaker, utts) in enumerate(sorted(by_speaker.items())):
        utts = sorted(utts, key=lambda u: u.id)
        by_id = {u.id: u for u in utts}
        packing = pack_clips([Clip(u.id, u.duration_s) for u in utts], req.min_seconds, req.max_seconds,
                             req.gap_seconds, rng=req.rng(SOURCE, "pack", s))
        for clips in packing.items:
            item = Item(speaker, [by_id[c.key] for c in clips])
            for u in item.utterances:
                for kind, phrase in u.entities:
                    item.entities.setdefault(kind, set()).add(phrase)
            items.append(item)
        unplaced += [{"utterance": c.key, "why": why} for c, why in packing.unplaced]
    return items, unplaced


def mentioned(phrase: str, transcript: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", transcript, flags=re.IGNORECASE) is not None


def distractor_pool(items: list[Item], index: int, kind: str) -> list[str]:
    """Phrases of `kind` that other items mention and this item never says."""
    item = items[index]
    others = {p for j, other in enumerate(items) if j != index for p in other.entities.get(kind, ())}
    return sorted(p for p in others if p not in item.entities.get(kind, ()) and not mentioned(p, item.transcript))


def plan_questions(items: list[Item], req: BuildRequest) -> tuple[list[dict], list[dict]]:
    """Up to per_task questions, entity types kept balanced and answer phrases kept distinct where possible."""
    rng = req.rng(SOURCE, "questions")
    type_counts: Counter = Counter()
    used_answers: set[str] = set()
    questions, no_question = [], []
    for index in rng.permutation(len(items)).tolist():
        if len(questions) >= req.per_task:
            break
        pools = {k: distractor_pool(items, index, k) for k in sorted(items[index].entities)}
        viable = [k for k, pool in pools.items() if len(pool) >= N_OPTIONS - 1]
        if not viable:
            no_question.append({"utterances": [u.id for u in items[index].utterances],
                                "why": f"no entity type with {N_OPTIONS - 1} unmentioned distractors"})
            continue
        fewest = min(type_counts[k] for k in viable)
        kind = str(rng.choice([k for k in viable if type_counts[k] == fewest]))
        phrases = sorted(items[index].entities[kind])
        fresh = [p for p in phrases if p not in used_answers] or phrases
        answer = str(rng.choice(fresh))
        type_counts[kind] += 1
        used_answers.add(answer)
        questions.append({"item": items[index], "type": kind, "answer": answer, "pool": pools[kind]})
    return questions, no_question


def write_entity_item(req: BuildRequest, index: int, q: dict, position: int) -> dict:
    item: Item = q["item"]
    choices, letter = make_options(q["answer"], q["pool"], N_OPTIONS, position, req.rng(SOURCE, "options", index))
    waves = [load_audio(u.path) for u in item.utterances]
    wave = concat_audio(waves, gap_s=req.gap_seconds)
    # the utterances that mention the answer phrase carry the answer
    answer = [k for k, u in enumerate(item.utterances) if (q["type"], q["answer"]) in u.entities]
    line = clips_timeline(waves, req.gap_seconds, texts=[u.text for u in item.utterances], answer=answer)
    return write_item(
        req, TASK, index, wave, question=QUESTIONS[q["type"]], choices=choices, answer=letter, source=SOURCE,
        meta={"speaker": item.speaker, "utterances": [u.id for u in item.utterances], "entity_type": q["type"],
              "label": q["answer"], "timeline": line},
    )

