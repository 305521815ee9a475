"""SCR and SER items: generated stories and entity passages read aloud, with their questions.

Every word list below is split between train and test by `assets.of_split` (hash-sorted
alternation), so the two splits share no character, place, object or entity name; the weekdays are
a closed class and shared. Generic filler sentences come from `items.sentence_stream` (split by
text hash) and use other word lists, so they never mention a story's characters, places or objects.

SCR (multi-hop): a story of several paragraphs; the facts the question needs sit in different parts
of the audio (beginning, middle, end) with filler paragraphs between them, and the wrong options
are other entities of the same kind that the story also mentions. Four question kinds:
- final_place: where the object a character bought at the beginning was taken at the end;
- final_holder: who had that object (named by its colour, not by its buyer) at the end (it changed
  hands twice);
- count: how many of some things a character had at the end (bought, gave some away, bought more);
  the answer's rank among the four numeric options is drawn uniformly (count_distractors);
No question names any of its options (the wrong options are never in the question's text).
- day: on which day the person who received an object visited a place.
SER: a passage that mentions one person, one place and one organisation among filler sentences;
the question asks which entity of one type is mentioned; the wrong options are entities of that
type that the passage never mentions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from amlib.data.audio import SAMPLE_RATE
from amlib.data.offline.assets import of_split
from amlib.data.offline.items import Item, SpokenStream, SuiteError, Window, assets_meta, sentence_stream, silence
from amlib.data.offline.sentences import number_words
from amlib.data.offline.speech_tasks import pick_voice, voice_meta
from amlib.data.offline.voices import SuiteVoice, content_prosody, content_voices, speak_many
from amlib.data.timeline import spans_of_pieces, timeline

FIRST_NAMES = (
    "Amelia", "Benedict", "Camille", "Dorian", "Eleanor", "Felix", "Gabriela", "Harold", "Isabel", "Jasper",
    "Katrina", "Leonard", "Miriam", "Nathaniel", "Ophelia", "Patrick", "Rosalind", "Sebastian", "Theodora",
    "Vincent", "Wilhelmina", "Xavier", "Yvonne", "Zachary", "Beatrice", "Cornelius", "Delphine", "Edmund",
    "Gideon", "Henrietta", "Ignatius", "Josephine", "Lionel", "Marguerite", "Percival", "Quentin", "Rupert",
    "Sylvia", "Tobias", "Winifred",
)
SURNAMES = (
    "Ashworth", "Blackwood", "Carrington", "Davenport", "Ellsworth", "Fairbanks", "Goodwin", "Hawthorne",
    "Kingsley", "Lancaster", "Montgomery", "Northcott", "Pemberton", "Radcliffe", "Sinclair", "Thornton",
    "Underwood", "Whitmore", "Yardley", "Abernathy", "Barrington", "Calloway", "Donovan", "Fitzgerald",
    "Galloway", "Holloway", "Merriweather", "Prescott", "Rutherford", "Sutherland",
)
CITIES = (
    "Lisbon", "Nairobi", "Toronto", "Melbourne", "Oslo", "Cairo", "Santiago", "Vienna", "Dublin", "Istanbul",
    "Lima", "Helsinki", "Madrid", "Bangkok", "Montreal", "Prague", "Athens", "Stockholm", "Havana", "Warsaw",
    "Budapest", "Copenhagen", "Edinburgh", "Marseille", "Naples", "Seville", "Kyoto", "Mumbai", "Shanghai",
    "Vancouver", "Chicago", "Boston", "Denver", "Seattle", "Glasgow", "Zurich", "Geneva", "Brussels",
    "Amsterdam", "Barcelona",
)
ORGANISATIONS = (
    "the Riverside Rowing Club", "Northwind Airlines", "the Global Water Trust", "Silverline Railways",
    "the Harbor Workers Union", "the Bright Path Foundation", "the National Library Association",
    "the Greenfield Farmers Cooperative", "Summit Mountain Rescue", "the Coastal Weather Service",
    "Redstone Engineering", "the Royal Music Society", "Blue Harbor Shipping", "Oakwood Medical Center",
    "the City Chess League", "Evergreen Publishing", "the Lantern Theatre Company", "Ironbridge Steelworks",
    "Starlight Cinema Group", "the Open Sky Observatory", "Golden Valley Orchards",
    "the Northern Bird Watchers Society", "Crescent Moon Hotels", "the Tidewater Fishing Association",
    "Clearwater Bottling Company", "the Highland Cycling Club", "the Bluebell Gardens Trust",
    "Horizon Space Agency", "Westgate Hospital", "the Silver Birch Choir",
)
STORY_PLACES = (
    "the lighthouse", "the flower shop", "the town hall", "the bookshop", "the swimming pool", "the cinema",
    "the sports hall", "the pharmacy", "the zoo", "the castle", "the windmill", "the clock tower",
    "the greenhouse", "the art gallery", "the fire station", "the concert hall", "the pier", "the observatory",
    "the tennis club", "the toy shop", "the barber shop", "the ferry terminal", "the theatre", "the skating rink",
)
KEY_OBJECTS = (
    "telescope", "violin", "kite", "compass", "teapot", "lantern", "camera", "chessboard", "parcel", "globe",
    "typewriter", "guitar", "birdcage", "mirror", "vase", "quilt", "microscope", "trumpet", "saddle", "scarf",
    "hammock", "sewing machine", "flute", "wheelbarrow",
)
OBJECT_ADJ = ("silver", "purple", "striped", "antique", "golden", "orange", "white", "black", "spotted", "shiny")
COUNTABLES = ("oranges", "pencils", "postcards", "teacups", "marbles", "flowerpots", "notebooks", "sandwiches",
              "balloons", "tomatoes", "seashells", "paintbrushes")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SCR_KINDS = ("final_place", "final_holder", "count", "day")

SENTENCE_PAUSE_S = (0.3, 0.6)
PARAGRAPH_PAUSE_S = (0.9, 1.3)
FILLER_PARAGRAPH = 5  # filler sentences per paragraph


def pool(words: tuple[str, ...], split: str) -> list[str]:
    return of_split(list(words), split)


def _draw(rng: np.random.Generator, items: list[str], k: int) -> list[str]:
    if len(items) < k:
        raise SuiteError(f"need {k} distinct words, the split's list has {len(items)}")
    return [items[i] for i in rng.choice(len(items), size=k, replace=False)]


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


class ReadBlocks(NamedTuple):
    wave: np.ndarray
    texts: list[str]  # every sentence read, in order
    spans: list[tuple[int, int]]  # each sentence's samples in `wave`
    block_of: list[int]  # each sentence's index in `blocks` (a fixed block or a filler slot)

    def timeline(self, answer_blocks: set[int]) -> dict:
        """meta["timeline"]: the sentences; those of the blocks `answer_blocks` carry the answer."""
        answer = [k for k, b in enumerate(self.block_of) if b in answer_blocks]
        return timeline(self.spans, texts=self.texts, answer=answer)


def read_blocks(blocks: list[list[str] | None], filler, voice: SuiteVoice, window: Window,
                rng: np.random.Generator, what: str, paragraphs: bool = True) -> ReadBlocks:
    """Fixed blocks of sentences (paragraphs) in order, with filler paragraphs in the `None` slots.

    Every sentence comes after a pause: a paragraph pause where a block starts (and every
    FILLER_PARAGRAPH filler sentences), a sentence pause otherwise; with `paragraphs` False (SER: the
    entity sentences run on among the fillers) every pause is a sentence pause. The fixed sentences
    are read first; filler sentences then go into randomly weighted slots until the target
    duration, never past max_s."""
    para_pause_s = PARAGRAPH_PAUSE_S if paragraphs else SENTENCE_PAUSE_S

    def pause(new_paragraph: bool) -> np.ndarray:
        return silence(rng.uniform(*(para_pause_s if new_paragraph else SENTENCE_PAUSE_S)))

    fixed_texts = [t for b in blocks if b is not None for t in b]
    settings = content_prosody(voice)  # stories and passages are read for their content
    fixed_waves = dict(zip(fixed_texts, speak_many(fixed_texts, voice, settings)))
    fixed = [[(pause(j == 0), t, fixed_waves[t]) for j, t in enumerate(b)] if b is not None else None for b in blocks]
    spoken = SpokenStream(filler, voice, settings)
    slots = [i for i, b in enumerate(blocks) if b is None]
    fill: dict[int, list[tuple[np.ndarray, str, np.ndarray]]] = {i: [] for i in slots}
    total = sum(p.size + w.size for b in fixed if b is not None for p, _, w in b)
    if total > window.max_n:
        raise SuiteError(f"{what}: the key sentences alone last {total / SAMPLE_RATE:.0f} s, more than "
                         f"max_seconds={window.max_s}")
    weights = rng.dirichlet(np.ones(len(slots))) if slots else np.zeros(0)
    misses = 0
    while slots and total < window.target_n and misses < 8:
        slot = slots[int(rng.choice(len(slots), p=weights))]
        text, wave = spoken()
        gap = pause(len(fill[slot]) % FILLER_PARAGRAPH == 0)
        if total + gap.size + wave.size > window.max_n:
            misses += 1
            continue
        fill[slot].append((gap, text, wave))
        total += gap.size + wave.size
    parts: list[np.ndarray] = []
    texts: list[str] = []
    block_of: list[int] = []
    for i, block in enumerate(fixed):
        for gap, text, wave in (block if block is not None else fill[i]):
            parts += [gap, wave]
            texts.append(text)
            block_of.append(i)
    wave = np.concatenate(parts).astype(np.float32)
    if wave.size < window.min_n:
        raise SuiteError(f"{what}: {wave.size / SAMPLE_RATE:.1f} s is below min_seconds={window.min_s}; "
                         f"widen [min, max]")
    return ReadBlocks(wave, texts, spans_of_pieces(parts, range(1, len(parts), 2)), block_of)


def scr_answers(split: str) -> dict[str, list[str]]:
    """Question kind -> the answers it may have: seven each, so kinds and answers stay balanced."""
    return {"final_place": pool(STORY_PLACES, split)[:7], "final_holder": pool(FIRST_NAMES, split)[:7],
            "count": [number_words(n) for n in range(6, 13)], "day": list(DAYS)}


def count_distractors(answer: int, mentioned: tuple[int, ...], rng: np.random.Generator) -> list[int]:
    """Three wrong counts such that the answer's rank among the four options is uniform (0-3 drawn):
    `rank` of them below the answer and 3 - rank above, preferring the story's own numbers and the
    usual slips (the first count, before buying more, forgetting the gift), else numbers near it."""
    rank = int(rng.integers(4))
    below = sorted({n for n in mentioned if 1 <= n < answer}, key=lambda n: (answer - n, n))
    above = sorted({n for n in mentioned if n > answer}, key=lambda n: (n - answer, n))
    below += [n for n in range(answer - 1, 0, -1) if n not in below]
    above += [n for n in range(answer + 1, answer + 10) if n not in above]
    if len(below) < rank:
        raise SuiteError(f"count answer {answer}: fewer than {rank} smaller numbers")
    pick_below = [below[int(k)] for k in rng.permutation(min(len(below), 4))[:rank]] if rank else []
    pick_above = [above[int(k)] for k in rng.permutation(4)[:3 - rank]]
    return pick_below + pick_above


def story(kind: str, answer: str, rng: np.random.Generator, split: str):
    """(head, middle, end blocks), question, distractors and facts of a story whose answer is `answer`."""
    names = [n for n in pool(FIRST_NAMES, split) if n != answer]
    a, b, c, d = _draw(rng, names, 4)
    places = [p for p in pool(STORY_PLACES, split) if p != answer]
    p1, p2, p3, p4 = _draw(rng, places, 4)
    obj, obj2 = _draw(rng, pool(KEY_OBJECTS, split), 2)
    adj, adj2 = _draw(rng, list(OBJECT_ADJ), 2)
    d1, d2, d3, d4 = _draw(rng, [x for x in DAYS if x != answer], 4)
    art = "an" if adj[0] in "aeiou" else "a"
    art2 = "an" if adj2[0] in "aeiou" else "a"
    if kind == "final_place":
        p3 = answer
        head = [f"On {d1}, {a} bought {art} {adj} {obj} at {p1}.", f"The same day, {d} bought {art2} {adj2} {obj2}."]
        mid = [f"A few days later, {a} gave the {adj} {obj} to {b} at {p2}."]
        end = [f"In the evening, {b} took the {adj} {obj} to {p3}.", f"Meanwhile, {d} took the {adj2} {obj2} to {p4}."]
        question = f"Where was the object that {a} bought at the beginning of the story taken at the end?"
        wrong = [p1, p2, p4]
    elif kind == "final_holder":
        c = answer
        e = _draw(rng, [n for n in names if n not in (a, b, c, d)], 1)[0]
        head = [f"On {d1}, {a} bought {art} {adj} {obj} at {p1}.", f"{d} found {art2} {adj2} {obj2} at {p2}."]
        mid = [f"Later, {a} gave the {adj} {obj} to {b}.", f"{e} helped {d} carry the {adj2} {obj2}."]
        end = [f"Finally, {b} gave the {adj} {obj} to {c}, who kept it.", f"{d} kept the {adj2} {obj2}."]
        # the question names the buyer only by role, so it names no option
        question = f"Who had the {adj} {obj} at the end of the story?"
        wrong = [b, d, e]
    elif kind == "count":
        things, things2 = _draw(rng, pool(COUNTABLES, split), 2)
        total = next(n for n in range(6, 13) if number_words(n) == answer)
        # A buys n1, gives n2 away (keeping at least two), buys n3 more: n1 - n2 + n3 == total
        options = [(n2, n3) for n2 in range(2, 7) for n3 in range(2, 7)
                   if n2 != n3 and total + n2 - n3 >= n2 + 2 and total + n2 - n3 >= 5]
        n2, n3 = options[int(rng.integers(len(options)))]
        n1 = total + n2 - n3
        head = [f"On {d1}, {a} bought {number_words(n1)} {things} at {p1}."]
        mid = [f"Later, {a} gave {number_words(n2)} of the {things} to {b}."]
        end = [f"Before going home, {a} bought {number_words(n3)} more {things}.",
               f"{d} bought {number_words(int(rng.integers(2, 9)))} {things2} at {p2}."]
        question = f"How many {things} did {a} have at the end of the story?"
        wrong = [number_words(n) for n in count_distractors(total, (n1, n1 - n2, n1 + n3, n2, n3, n1 + n2 + n3), rng)]
    elif kind == "day":
        d2 = answer
        head = [f"On {d1}, {a} gave {art} {adj} {obj} to {b} at {p1}."]
        mid = [f"{b} visited {p2} on {d2}.", f"{c} visited {p2} on {d3}."]
        end = [f"{d} visited {p2} on {d4}, and {a} stayed at home."]
        question = f"On which day did the person who received the {obj} from {a} visit {p2}?"
        wrong = [d1, d3, d4]
    else:
        raise ValueError(f"unknown SCR question kind {kind!r} (known: {SCR_KINDS})")
    if len({answer, *wrong}) != 4:
        raise SuiteError(f"story of kind {kind}: options not distinct: {answer}, {wrong}")
    facts = {"characters": [a, b, c, d] + ([e] if kind == "final_holder" else []), "places": [p1, p2, p3, p4], "objects": [obj, obj2], "days": [d1, d2, d3, d4]}
    return [head, mid, end], question, wrong, facts


def scr_item(ctx, index: int, label: str, rng: np.random.Generator, window: Window) -> Item:
    kind = next(k for k, answers in scr_answers(ctx.split).items() if label in answers)
    (head, mid, end), question, wrong, facts = story(kind, label, rng, ctx.split)
    voice = pick_voice(rng, content_voices(ctx.split))
    filler = sentence_stream(rng, ctx.split)
    read = read_blocks([head, None, mid, None, end], filler, voice, window, rng, f"SCR item {index}")
    wave, texts = read.wave, read.texts
    return Item(wave, label, {**voice_meta(voice), "question_kind": kind, "facts": facts, "synthetic": True,
                              "transcript": " ".join(texts), "n_sentences": len(texts),
                              "assets": assets_meta(tts=[voice], texts=texts),
                              # multi-hop: every story sentence (head, middle, end) carries part of the answer
                              "timeline": read.timeline(answer_blocks={0, 2, 4})},
                question=question, distractors=wrong)


# ---- SER -------------------------------------------------------------------------------------------

ENTITY_TYPES = ("person", "place", "organisation")
ENTITY_SENTENCES = {
    "person": ("{} gave a short speech at the opening of the new hall.", "A long letter from {} arrived on Tuesday.",
               "Everyone agreed that {} had done excellent work this year.", "The new report was written by {}."),
    "place": ("The next meeting will take place in {} in the spring.", "Many visitors travelled to {} during the summer.",
              "The night train to {} was delayed by two hours.", "She had never seen the old harbour of {} before."),
    "organisation": ("A spokesperson for {} announced new plans on Friday.", "{} opened a new office last month.",
                     "The volunteers from {} arrived early in the morning.", "Funding for the project came from {}."),
}


def entity_pool(kind: str, split: str) -> list[str]:
    if kind == "person":
        firsts, lasts = pool(FIRST_NAMES, split), pool(SURNAMES, split)
        return [f"{f} {s}" for f in firsts for s in lasts]
    if kind == "place":
        return pool(CITIES, split)
    if kind == "organisation":
        return pool(ORGANISATIONS, split)
    raise ValueError(f"unknown entity type {kind!r} (known: {ENTITY_TYPES})")


def ser_answers(split: str) -> dict[str, list[str]]:
    """Entity type -> the entities that may be asked about: ten each, so types and answers stay balanced."""
    firsts, lasts = pool(FIRST_NAMES, split), pool(SURNAMES, split)
    return {"person": [f"{f} {s}" for f, s in zip(firsts[-10:], lasts[:10])],
            "place": pool(CITIES, split)[:10], "organisation": pool(ORGANISATIONS, split)[:10]}


def _mentions(entity: str, text: str) -> bool:
    """Whether `text` says any word of `entity` that identifies it (for a person: first or last name)."""
    low = text.lower()
    parts = entity.split() if " " in entity and entity[0].isupper() and not entity.startswith("the ") else [entity]
    return any(p.lower() in low for p in parts)


def ser_item(ctx, index: int, label: str, rng: np.random.Generator, window: Window) -> Item:
    asked = next(k for k, answers in ser_answers(ctx.split).items() if label in answers)
    mentioned = {}
    for kind in ENTITY_TYPES:
        others = [e for e in entity_pool(kind, ctx.split) if not _mentions(e, label)]
        mentioned[kind] = label if kind == asked else others[int(rng.integers(len(others)))]
    fixed = []
    for kind, entity in mentioned.items():
        template = ENTITY_SENTENCES[kind][int(rng.integers(len(ENTITY_SENTENCES[kind])))]
        fixed.append([_cap(template.format(entity))])
    order = rng.permutation(len(fixed))
    blocks: list[list[str] | None] = [None]
    for k in order:
        blocks += [fixed[k], None]
    voice = pick_voice(rng, content_voices(ctx.split))
    read = read_blocks(blocks, sentence_stream(rng, ctx.split), voice, window, rng, f"SER item {index}",
                       paragraphs=False)
    wave, texts = read.wave, read.texts
    asked_block = fixed[ENTITY_TYPES.index(asked)]  # the one sentence that names the answer
    transcript = " ".join(texts)
    answer = mentioned[asked]
    candidates = [e for e in entity_pool(asked, ctx.split) if not _mentions(e, transcript) and not _mentions(e, answer)]
    wrong = _draw(rng, candidates, 3)
    word = {"person": "person", "place": "place", "organisation": "organisation"}[asked]
    return Item(wave, answer, {**voice_meta(voice), "entity_type": asked, "mentioned": mentioned, "synthetic": True,
                               "transcript": transcript, "n_sentences": len(texts),
                               "assets": assets_meta(tts=[voice], texts=texts),
                               "timeline": read.timeline({i for i, b in enumerate(blocks) if b is asked_block})},
                question=f"Which {word} is mentioned in the audio?", distractors=wrong)
