"""The paper's RELEASED answer extraction and scoring, task by task, for tables beside its numbers.

The paper's numbers come from its released per-task evaluation scripts (repository
DabDans/AudioMarathon, `src/Qwen_2.5_Omni/Others/*`), not from the rules its text states
(`parser="paper"`). Each task's extraction below is re-implemented from what those scripts do,
read in the released code (no code copied); the scripts of the other model folders (Phi4MM,
Aero-1, Voxtral) differ in places and are not followed. A letter below means the option letter
in upper case; "u" the answer stripped and upper-cased, "l" stripped and lower-cased; "X in text"
a plain substring test. The first rule that gives an answer wins; none gives None (unparsed).

SED, MC, ASC, ER, SD first keep only the text after the last "assistant\\n" (the scripts decode
the prompt with the answer and cut there; on an answer alone it changes nothing).

- SCR (RACE): the first character of u that is A, B, C or D, wherever it stands: "The answer is
  D." reads as A (the A of "ANSWER"); "Correct: B" reads as C.
- SED (DESED): u is a letter; else the leftmost standalone A-D word of u ("I THINK B" -> B, but
  also "A DOG" -> A); else the first A-D character anywhere ("BARKING" -> B).
- SER (SLUE): u is a letter; else u has at most 3 characters and starts with a letter, tried A
  to D ("B." -> B, "AB" -> A); else as SED's second and third rules. (A fourth rule, "option X",
  can never fire: the third rule matches any text it would.)
- MC (GTZAN): u is a letter; else, tried A then B, C, D: u starts with "X." or "X)" or ends
  with " X" (so "B. or A" -> A: the letter order decides, not the position); else, tried A to D,
  l contains "option x", "choice x" or "x)"; else as SED's second and third rules.
- ASC (TAU): l is a letter; else, tried A to D, l starts with "x.", "x)" or "x:"; else, tried A
  to D, l contains "option x", "choice x" or "x)"; else the first option (in option order) whose
  lower-cased text l contains; else the option sharing the most words (of its text before any
  " - ", each word tested as a substring of l) with l, if more than one word, the first on ties.
- ER (VESUS): tried A to D, l is "x" or starts with "x." or "x)"; else, tried A to D, l
  contains "option x", "choice x", "x)" or "(x)"; else, for each option in order and each
  emotion in the order angry, happy, sad, fearful, monotone: the option whose text and l both
  contain one of that emotion's keywords (angry: anger, frustrated, mad, furious; happy: joy,
  cheerful, pleased, delighted; sad: sadness, melancholy, depressed, sorrow; fearful: fear,
  anxiety, scared, afraid; monotone: flat, emotionless, neutral, bland). The emotion names
  themselves are no keywords, so this rule needs an option whose TEXT holds a keyword: with the
  options angry, happy, sad, fearful the answers "Sad" and "happy" are unparsed, while "fearful"
  and "afraid" read as the fearful option (its text contains "fear").
- SD (HAD), options a and b: l is "a" or starts with "a." or "a)" or ends with " a" -> a, then
  the same for b; else "option a", "choice a", "a)" or " a " in l -> a, then the same for b
  ("this is a fake" -> a, the article); else one option's text in l and not the other's; else,
  when the options are real and fake, exactly one of the word groups real/authentic/genuine and
  fake/artificial/synthetic/synthesized (or "contains ... fake") found as words. The script
  returns the label (real/fake), here the letter of the option with that label. (The script
  hard-codes a = real, b = fake, as its prompt does; here a and b are the item's first and second
  options, as this project's prompt lists them. Its re-reading of answers longer than 10 tokens
  cannot fire under its 5-token budget and is left out.)
- SGR (VoxCeleb gender), options a and b: l is "a" or starts with "a." or "a)" -> a, then b;
  else "option a", "choice a" or "a)" in l -> a, then b; else one option's text in l and not the
  other's ("female" contains "male": both are found, so this rule gives nothing for "female");
  else, for the options male and female, exactly one of the words "male", "female". Returns the
  label; here its letter.
- SAR (VoxCeleb age), options a to e: tried a to e, l is "x", starts with "x." or "x)" or ends
  with " x"; else, tried a to e, x stands alone as a word of l and no other of a-e does ("it is a
  senior" -> a, the article); else, tried a to e, "option x", "choice x" or "answer x" in l;
  else exactly one option's text contained in l. Returns the label; here its letter.

`released_score` scores as those scripts do (all values 0-100; 0 where nothing is left to score):
- SCR, MC: macro-F1 over the PARSED items only, over the fixed labels A-D (a letter no parsed item
  has, true or predicted, counts as F1 0).
- SED, SER: macro-F1 over the parsed items, over the labels they have. (SLUE's summary field
  "macro_f1" holds the weighted F1; its "f1_score" is the macro-F1 used here.)
- ASC, ER: macro-F1 over the parsed items whose answer is one of the true answers of the run
  (letters), over the labels they have.
- SAR: macro-F1 over the parsed items whose label is one of the run's true labels, over all of
  those labels (a label absent there counts as F1 0).
- SGR: WEIGHTED F1 over the parsed items (labels male/female).
- SD: the binary F1 of "fake" over ALL items, from the script's own counts: true positives =
  fake items answered fake; false positives = real items NOT answered real (unparsed ones too);
  false negatives = fake items not answered fake.
- ASR: 100 - mean per-utterance WER (`amlib.metrics.war`) over the items whose answer is not
  empty after `clean_asr_released` (empty ones leave the score; the others follow our WER rules).
Unparsed answers leave the denominator everywhere but in SD: the inflation the paper's text does
not state. Our scoring (all items, macro-F1, `amlib.metrics.classification`) stays the headline.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import f1_score

OPTION_COUNTS = {"SCR": 4, "SED": 4, "SER": 4, "MC": 4, "ASC": 4, "ER": 4, "SD": 2, "SGR": 2, "SAR": 5}
RELEASED_TASKS = tuple(OPTION_COUNTS)
_NEEDS_CHOICES = ("ASC", "ER", "SD", "SGR", "SAR")
_LETTERS = "ABCDE"


def _after_assistant(text: str) -> str:
    marker = "assistant\n"
    return text[text.rfind(marker) + len(marker):].strip() if marker in text else text


def _standalone_or_any(u: str, letters: str) -> str | None:
    """SED's, SER's and MC's last two rules: a standalone letter word, else any letter character."""
    word = re.search(rf"\b([{letters}])\b", u)
    if word:
        return word.group(1)
    anywhere = re.search(f"[{letters}]", u)
    return anywhere.group(0) if anywhere else None


def _scr(text: str, choices) -> str | None:
    return next((ch for ch in text.strip().upper() if ch in "ABCD"), None)


def _sed(text: str, choices) -> str | None:
    u = _after_assistant(text).strip().upper()
    return u if u in ("A", "B", "C", "D") else _standalone_or_any(u, "ABCD")


def _ser(text: str, choices) -> str | None:
    u = text.strip().upper()
    if u in ("A", "B", "C", "D"):
        return u
    short = next((x for x in "ABCD" if u.startswith(x) and len(u) <= 3), None)
    return short or _standalone_or_any(u, "ABCD")


def _first_letter(l: str, letters: str, test: Callable[[str, str], bool]) -> str | None:
    """The first of `letters` (lower case) for which test(l, x) holds, as an upper-case letter."""
    return next((x.upper() for x in letters if test(l, x)), None)


def _mc(text: str, choices) -> str | None:
    u = _after_assistant(text).strip().upper()
    if u in ("A", "B", "C", "D"):
        return u
    marked = next((x for x in "ABCD" if u.startswith((f"{x}.", f"{x})")) or u.endswith(f" {x}")), None)
    if marked:
        return marked
    named = _first_letter(u.lower(), "abcd", lambda l, x: any(p in l for p in (f"option {x}", f"choice {x}", f"{x})")))
    return named or _standalone_or_any(u, "ABCD")


def _asc(text: str, choices) -> str | None:
    l = _after_assistant(text).lower().strip()
    if l in ("a", "b", "c", "d"):
        return l.upper()
    found = (_first_letter(l, "abcd", lambda l, x: l.startswith((f"{x}.", f"{x})", f"{x}:")))
             or _first_letter(l, "abcd", lambda l, x: any(p in l for p in (f"option {x}", f"choice {x}", f"{x})"))))
    if found:
        return found
    options = [c.lower() for c in choices]
    contained = next((i for i, option in enumerate(options) if option in l), None)
    if contained is not None:
        return _LETTERS[contained]
    overlaps = [sum(word in l for word in option.split(" - ")[0].split()) for option in options]
    best = int(np.argmax(overlaps))  # the first of the largest
    return _LETTERS[best] if overlaps[best] > 1 else None


EMOTION_KEYWORDS = {  # the ER script's synonyms; the emotion names themselves are not among them
    "angry": ("anger", "frustrated", "mad", "furious"), "happy": ("joy", "cheerful", "pleased", "delighted"),
    "sad": ("sadness", "melancholy", "depressed", "sorrow"), "fearful": ("fear", "anxiety", "scared", "afraid"),
    "monotone": ("flat", "emotionless", "neutral", "bland"),
}


def _er(text: str, choices) -> str | None:
    l = _after_assistant(text).lower().strip()
    found = (_first_letter(l, "abcd", lambda l, x: l == x or l.startswith((f"{x}.", f"{x})")))
             or _first_letter(l, "abcd", lambda l, x: any(p in l for p in (f"option {x}", f"choice {x}", f"{x})",
                                                                          f"({x})"))))
    if found:
        return found
    for i, option in enumerate(c.lower() for c in choices):
        for keywords in EMOTION_KEYWORDS.values():
            if any(k in l for k in keywords) and any(k in option for k in keywords):
                return _LETTERS[i]
    return None


def _one_option_text(l: str, a: str, b: str) -> str | None:
    """SD's and SGR's rule: exactly one of the two option texts is a substring of l."""
    if a in l and b not in l:
        return "A"
    if b in l and a not in l:
        return "B"
    return None


def _exclusive(l: str, patterns: dict[str, str]) -> str | None:
    """The one label whose pattern is found in l when the other's is not."""
    hits = [label for label, pattern in patterns.items() if re.search(pattern, l)]
    return hits[0] if len(hits) == 1 else None


def _two_labels(text: str, choices, ends_with: bool, spaced: bool, synonyms: dict[str, str]) -> str | None:
    """SD's and SGR's extraction (they differ in two rules: " a" at the end and " a " inside)."""
    l = text.lower().strip()
    a, b = (c.lower().strip() for c in choices)
    for x in "ab":
        if l == x or l.startswith((f"{x}.", f"{x})")) or (ends_with and l.endswith(f" {x}")):
            return x.upper()
    for x in "ab":
        if any(p in l for p in (f"option {x}", f"choice {x}", f"{x})")) or (spaced and f" {x} " in l):
            return x.upper()
    found = _one_option_text(l, a, b)
    if found is None and {a, b} == set(synonyms):
        label = _exclusive(l, synonyms)
        found = None if label is None else "AB"[[a, b].index(label)]
    return found


_SD_SYNONYMS = {"real": r"\breal\b|\bauthentic\b|\bgenuine\b",
                "fake": r"\bfake\b|\bartificial\b|\bsynthetic\b|\bsynthesized\b|\bcontains.*fake\b"}
_SGR_SYNONYMS = {"male": r"\bmale\b", "female": r"\bfemale\b"}


def _sd(text: str, choices) -> str | None:
    return _two_labels(_after_assistant(text), choices, ends_with=True, spaced=True, synonyms=_SD_SYNONYMS)


def _sgr(text: str, choices) -> str | None:
    return _two_labels(text, choices, ends_with=False, spaced=False, synonyms=_SGR_SYNONYMS)


def _sar(text: str, choices) -> str | None:
    l = text.lower().strip()
    letters = "abcde"
    found = (_first_letter(l, letters, lambda l, x: l == x or l.startswith((f"{x}.", f"{x})")) or l.endswith(f" {x}"))
             or _first_letter(l, letters, lambda l, x: re.search(rf"\b{x}\b", l) is not None and not any(
                 re.search(rf"\b{y}\b", l) for y in letters if y != x))
             or _first_letter(l, letters, lambda l, x: any(p in l for p in (f"option {x}", f"choice {x}",
                                                                           f"answer {x}"))))
    if found:
        return found
    contained = [i for i, option in enumerate(choices) if option.lower() in l]
    return _LETTERS[contained[0]] if len(contained) == 1 else None


_EXTRACTORS = {"SCR": _scr, "SED": _sed, "SER": _ser, "MC": _mc, "ASC": _asc, "ER": _er, "SD": _sd, "SGR": _sgr,
               "SAR": _sar}


def parse_choice_released(text: str | None, n_options: int, choices: Sequence[str] | None, task: str) -> str | None:
    """The letter the paper's released script of `task` extracts from `text` (rules in the module
    docstring), or None. `choices` (option texts in letter order) are needed for ASC, ER, SD, SGR
    and SAR; `n_options` must be the count the script knows (4; SD and SGR 2; SAR 5)."""
    if task not in _EXTRACTORS:
        raise ValueError(f"no released parser for task {task!r}; released tasks: {', '.join(RELEASED_TASKS)}")
    if n_options != OPTION_COUNTS[task]:
        raise ValueError(f"the released {task} script reads {OPTION_COUNTS[task]} options, got n_options={n_options}")
    if task in _NEEDS_CHOICES and choices is None:
        raise ValueError(f"the released {task} parser matches option texts: pass choices")
    if not text:
        return None
    return _EXTRACTORS[task](text, choices)


# ------------------------------------------------------------------------------------------------
# scoring


def _f1(truth: list, pred: list, average: str, labels: Sequence | None = None) -> float:
    if not truth:
        return 0.0
    return 100.0 * float(f1_score(truth, pred, labels=labels, average=average, zero_division=0))


def binary_f1_of_fake(truth: Sequence[str], pred: Sequence[str | None]) -> float:
    """SD's released F1 (0-100) over all items: positives are "fake"; an unparsed answer on a real
    item is a false positive, on a fake item a false negative."""
    tp = sum(t == "fake" and p == "fake" for t, p in zip(truth, pred))
    fp = sum(t == "real" and p != "real" for t, p in zip(truth, pred))
    fn = sum(t == "fake" and p != "fake" for t, p in zip(truth, pred))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 100.0 * 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def released_score(task: str, truth: Sequence[str], pred: Sequence[str | None]) -> tuple[float, int]:
    """(score 0-100, items it used) as the released script of `task` computes it (module docstring).
    `truth` and `pred` are letters, or label text for SD, SGR and SAR; None = unparsed."""
    if len(truth) != len(pred):
        raise ValueError(f"truth has {len(truth)} items but pred has {len(pred)}")
    if task == "SD":
        return binary_f1_of_fake(truth, pred), len(truth)
    keep = [(t, p) for t, p in zip(truth, pred) if p is not None]
    if task in ("ASC", "ER", "SAR"):
        keep = [(t, p) for t, p in keep if p in set(truth)]
    t, p = [k[0] for k in keep], [k[1] for k in keep]
    if task in ("SCR", "MC"):
        return _f1(t, p, "macro", labels=["A", "B", "C", "D"]), len(keep)
    if task == "SAR":
        return _f1(t, p, "macro", labels=sorted(set(truth))), len(keep)
    if task == "SGR":
        return _f1(t, p, "weighted"), len(keep)
    if task in ("SED", "SER", "ASC", "ER"):
        return _f1(t, p, "macro"), len(keep)
    raise ValueError(f"no released scoring for task {task!r}")


_ASR_MARKERS = ("spoken content:", "content:", "transcription:", "transcript:")
_ASR_LABEL = re.compile(r"(?i)^(spoken\s+(?:text|content)|content|transcript|transcription):\s*")


def clean_asr_released(text: str | None) -> str:
    """The ASR script's answer cleaning: keep what follows the first of its markers ("spoken content:",
    "content:", "transcription:", "transcript:", tried in that order, any case) up to the marker's
    next occurrence; drop "<transcribed text here>" and any "<sep>" tail (up to the next "<"); strip
    a leading label such as "Transcript:"."""
    if not text or not text.strip():
        return ""
    for marker in _ASR_MARKERS:
        parts = re.split(re.escape(marker), text, flags=re.IGNORECASE)
        if len(parts) > 1:
            text = parts[1].strip()
            break
    text = text.replace("<transcribed text here>", "")
    text = re.sub(r"<sep>.*?($|<)", "", text)
    return _ASR_LABEL.sub("", text.strip()).strip()


def released_war(references: Sequence[str], hypotheses: Sequence[str | None]) -> tuple[float, int]:
    """(WAR 0-100, items used) as the released ASR script computes it: items whose cleaned answer is
    empty leave the score; 0 when none is left."""
    from amlib.metrics.war import utterance_wers, war_from_wers

    kept = [(r, clean_asr_released(h)) for r, h in zip(references, hypotheses)]
    kept = [(r, h) for r, h in kept if r and h]
    if not kept:
        return 0.0, 0
    return war_from_wers(utterance_wers([r for r, _ in kept], [h for _, h in kept])), len(kept)
