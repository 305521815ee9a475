"""Deterministic, plausible English sentences from word lists (no corpora: nothing to download).

`make_sentences(n, rng)` draws `n` sentences of 8-20 words from a dozen templates (subjects, verbs,
objects, places, times, reasons, numbers written as words). Sentences are plain text meant to be read
aloud by a TTS engine and used verbatim as ASR references: no digits, abbreviations or symbols, first
letter capitalised, ending in '.' or '?'. The same seed gives the same sentences.
"""

from __future__ import annotations

import random
from typing import Callable, Sequence, Union

import numpy as np

Rng = Union[np.random.Generator, random.Random, int]

NAMES = (
    "Anna", "Peter", "Maria", "Thomas", "Laura", "David", "Helen", "Robert", "Sarah", "Daniel",
    "Emily", "George", "Lucy", "Martin", "Rachel", "Simon", "Clara", "Oliver", "Nora", "Victor",
)
PEOPLE = (  # (singular, plural)
    ("fisherman", "fishermen"), ("teacher", "teachers"), ("doctor", "doctors"), ("farmer", "farmers"),
    ("neighbor", "neighbors"), ("librarian", "librarians"), ("baker", "bakers"), ("driver", "drivers"),
    ("student", "students"), ("gardener", "gardeners"), ("nurse", "nurses"), ("carpenter", "carpenters"),
    ("painter", "painters"), ("shopkeeper", "shopkeepers"), ("engineer", "engineers"), ("musician", "musicians"),
)
RELATIVES = ("sister", "brother", "uncle", "aunt", "grandmother", "grandfather", "cousin", "son", "daughter")
PEOPLE_ADJ = ("old", "young", "tired", "cheerful", "quiet", "busy", "new", "patient", "careful", "friendly")
OWNERS = ("the", "the", "the", "a", "a", "our", "their")  # for people by trade
POSSESSIVES = ("my", "our", "his", "her", "their", "your")  # for relatives
THINGS = (  # (singular, plural)
    ("basket", "baskets"), ("chair", "chairs"), ("letter", "letters"), ("box", "boxes"), ("lamp", "lamps"),
    ("bicycle", "bicycles"), ("blanket", "blankets"), ("book", "books"), ("bottle", "bottles"),
    ("map", "maps"), ("ladder", "ladders"), ("bucket", "buckets"), ("jacket", "jackets"),
    ("window", "windows"), ("table", "tables"), ("umbrella", "umbrellas"), ("clock", "clocks"),
    ("suitcase", "suitcases"), ("painting", "paintings"), ("rope", "ropes"), ("envelope", "envelopes"),
    ("apple", "apples"), ("candle", "candles"), ("key", "keys"), ("boat", "boats"), ("radio", "radios"),
)
THING_ADJ = (
    "wooden", "heavy", "small", "broken", "blue", "green", "old", "empty", "large", "yellow", "bright",
    "dusty", "soft", "round", "expensive", "little", "red", "clean",
)
MATERIALS = ("fresh bread", "warm soup", "dry wood", "cold water", "ripe cherries", "clean laundry", "old newspapers", "sweet tea")
VERBS = (  # (base, past, present participle); all take a direct object
    ("carry", "carried", "carrying"), ("paint", "painted", "painting"), ("buy", "bought", "buying"),
    ("find", "found", "finding"), ("repair", "repaired", "repairing"), ("clean", "cleaned", "cleaning"),
    ("sell", "sold", "selling"), ("borrow", "borrowed", "borrowing"), ("deliver", "delivered", "delivering"),
    ("wrap", "wrapped", "wrapping"), ("open", "opened", "opening"), ("move", "moved", "moving"),
    ("count", "counted", "counting"), ("pack", "packed", "packing"), ("hide", "hid", "hiding"),
    ("lift", "lifted", "lifting"), ("polish", "polished", "polishing"), ("check", "checked", "checking"),
    ("bring", "brought", "bringing"), ("forget", "forgot", "forgetting"),
)
PLACES = (
    "at the market", "near the river", "in the kitchen", "behind the old station", "on the north road",
    "in the garden", "at the harbor", "next to the library", "in the village square", "under the bridge",
    "at the bus stop", "on the top floor", "outside the bakery", "in the back room", "by the lake",
    "at the train station", "in the school yard", "along the narrow street", "inside the museum",
    "near the small church",
)
DESTINATIONS = (
    "to the market", "to the harbor", "to the school", "to the hospital", "to the farm", "to the village",
    "to the office", "to the station", "to the museum", "to the post office", "across the bridge",
)
TIMES = (
    "on Monday morning", "on Tuesday evening", "on Wednesday afternoon", "on Thursday night",
    "on Friday morning", "on Saturday afternoon", "on Sunday evening", "last winter", "last summer",
    "before lunch", "after dinner", "early in the morning", "late at night", "after the storm",
    "during the holidays", "at sunrise", "at noon", "yesterday afternoon", "in the spring",
    "in the autumn", "two days ago", "last week",
)
CLOCK = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
REASONS = (
    "because the shop was closed", "because it was raining", "because the road was blocked",
    "so that the children could play", "because nobody else had time", "before the guests arrived",
    "while the kettle was boiling", "because the old one was broken", "after the meeting ended",
    "so that nothing would get wet", "because the bus was late", "before the sun went down",
)
ARRIVALS = (
    "the phone rang", "the guests arrived", "the lights went out", "the rain started",
    "the bell rang", "the train came in", "the dog began to bark", "the music stopped",
)
FEELINGS = ("happy", "surprised", "worried", "pleased", "glad", "confused", "relieved")
UNITS = (("minutes", 5, 55), ("hours", 2, 12), ("days", 2, 10), ("weeks", 2, 6))  # (unit, min, max)
SAY = ("said", "explained", "told us", "mentioned", "wrote")

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(n: int) -> str:
    """0..999 in words, without hyphens ('forty two', 'three hundred and five')."""
    if not 0 <= n <= 999:
        raise ValueError(f"number_words covers 0..999, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    hundreds, rest = divmod(n, 100)
    return f"{_ONES[hundreds]} hundred" + (f" and {number_words(rest)}" if rest else "")


class _Draw:
    """Uniform picks from a numpy Generator, a random.Random, or an int seed."""

    def __init__(self, rng: Rng):
        if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
            rng = np.random.default_rng(int(rng))
        if isinstance(rng, np.random.Generator):
            self._index: Callable[[int], int] = lambda k: int(rng.integers(k))
        elif isinstance(rng, random.Random):
            self._index = rng.randrange
        else:
            raise TypeError(f"rng must be a numpy Generator, random.Random or int, got {type(rng).__name__}")

    def pick(self, seq: Sequence):
        return seq[self._index(len(seq))]

    def chance(self, percent: int) -> bool:
        return self._index(100) < percent

    def between(self, lo: int, hi: int) -> int:  # inclusive
        return lo + self._index(hi - lo + 1)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _person(d: _Draw) -> str:
    if d.chance(35):
        return d.pick(NAMES)
    if d.chance(30):
        noun, owner = d.pick(RELATIVES), d.pick(POSSESSIVES)
    else:
        noun, owner = d.pick(PEOPLE)[0], d.pick(OWNERS)
    if d.chance(60):
        adj = d.pick(PEOPLE_ADJ)
        return f"{_article(adj) if owner == 'a' else owner} {adj} {noun}"
    return f"{_article(noun) if owner == 'a' else owner} {noun}"


def _people(d: _Draw) -> str:
    """A plural subject."""
    return f"{number_words(d.between(2, 12))} {d.pick(PEOPLE)[1]}" if d.chance(50) else f"the {d.pick(PEOPLE)[1]}"


def _thing(d: _Draw) -> str:
    roll = d.between(1, 10)
    singular, plural = d.pick(THINGS)
    adj = d.pick(THING_ADJ) if d.chance(55) else ""
    if roll <= 4:  # counted
        n = d.pick((2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 20, 24, 30, 40, 50, 100))
        words = number_words(n)
        core = f"{adj} {plural}" if adj else plural
        if d.chance(30):
            return f"{words} {plural} of {d.pick(MATERIALS)}" if singular in ("basket", "box", "bottle", "bucket") else f"{words} {core}"
        return f"{words} {core}"
    core = f"{adj} {singular}" if adj else singular
    if roll <= 7:
        return f"the {core}"
    if roll <= 9:
        return f"{_article(core)} {core}"
    return f"{d.pick(POSSESSIVES)} {core}"


def _time(d: _Draw) -> str:
    if d.chance(20):
        return f"at {d.pick(CLOCK)} o'clock" + (f" {d.pick(('in the morning', 'in the evening'))}" if d.chance(50) else "")
    return d.pick(TIMES)


def _tail(d: _Draw, place: bool = True) -> str:
    parts = []
    if place and d.chance(70):
        parts.append(d.pick(PLACES))
    if d.chance(60):
        parts.append(_time(d))
    return (" " + " ".join(parts)) if parts else ""


def _t_past(d: _Draw) -> str:
    return f"{_person(d)} {d.pick(VERBS)[1]} {_thing(d)}{_tail(d)}"


def _t_time_first(d: _Draw) -> str:
    return f"{_time(d)}, {_person(d)} {d.pick(VERBS)[1]} {_thing(d)} {d.pick(PLACES)}"


def _t_destination(d: _Draw) -> str:
    verb = d.pick(("carried", "brought", "delivered", "moved", "sent", "took"))
    return f"{_person(d)} {verb} {_thing(d)} {d.pick(DESTINATIONS)}{_tail(d, place=False)}"


def _t_reason(d: _Draw) -> str:
    return f"{_person(d)} {d.pick(VERBS)[1]} {_thing(d)} {d.pick(REASONS)}"


def _t_there_were(d: _Draw) -> str:
    n = d.between(2, 60)
    return f"there were {number_words(n)} {d.pick(THINGS)[1]} {d.pick(PLACES)}{_tail(d, place=False)}"


def _t_said(d: _Draw) -> str:
    return f"{_person(d)} {d.pick(SAY)} that {_person(d)} had {d.pick(VERBS)[1]} {_thing(d)}{_tail(d)}"


def _t_and_then(d: _Draw) -> str:
    first = f"{_person(d)} {d.pick(VERBS)[1]} {_thing(d)}"
    return f"{first}, and then {_person(d)} {d.pick(VERBS)[1]} {_thing(d)}{_tail(d)}"


def _t_future(d: _Draw) -> str:
    when = d.pick(("tomorrow", "next week", "next month", "on Friday", "after lunch", "this evening", "next summer"))
    return f"{_person(d)} will {d.pick(VERBS)[0]} {_thing(d)} {d.pick(PLACES)} {when}"


def _t_progressive(d: _Draw) -> str:
    return f"{_person(d)} was {d.pick(VERBS)[2]} {_thing(d)} {d.pick(PLACES)} when {d.pick(ARRIVALS)}"


def _t_took(d: _Draw) -> str:
    unit, lo, hi = d.pick(UNITS)
    n = d.between(lo, hi)
    return f"it took {_person(d)} {number_words(n)} {unit} to {d.pick(VERBS)[0]} {_thing(d)}{_tail(d, place=False)}"


def _t_question(d: _Draw) -> str:
    return f"did {_person(d)} {d.pick(VERBS)[0]} {_thing(d)}{_tail(d)}?"


def _t_feeling(d: _Draw) -> str:
    return f"{_people(d)} were {d.pick(FEELINGS)} to see {_thing(d)} {d.pick(PLACES)}{_tail(d, place=False)}"


def _t_price(d: _Draw) -> str:
    n = d.between(3, 250)
    return f"{_person(d)} paid {number_words(n)} dollars for {_thing(d)}{_tail(d)}"


TEMPLATES: tuple[Callable[[_Draw], str], ...] = (
    _t_past, _t_time_first, _t_destination, _t_reason, _t_there_were, _t_said, _t_and_then,
    _t_future, _t_progressive, _t_took, _t_question, _t_feeling, _t_price,
)


def _finish(raw: str) -> str:
    text = " ".join(raw.split())
    if not text.endswith("?"):
        text += "."
    return text[0].upper() + text[1:]


def word_count(sentence: str) -> int:
    return len(sentence.split())


def make_sentences(n: int, rng: Rng, min_words: int = 8, max_words: int = 20) -> list[str]:
    """`n` sentences of `min_words`..`max_words` words, deterministic for the given rng/seed.

    The rng (numpy Generator or random.Random) is advanced, so successive calls continue the stream.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}..{max_words}")
    d = _Draw(rng)
    out: list[str] = []
    for _ in range(n):
        for _attempt in range(1000):
            sentence = _finish(d.pick(TEMPLATES)(d))
            if min_words <= word_count(sentence) <= max_words:
                out.append(sentence)
                break
        else:
            raise ValueError(f"no template yields a sentence of {min_words}..{max_words} words")
    return out
