"""Turn a model's free-text answer into the option letter it chose.

`parse_choice(text, n_options, choices, parser="ours")` returns an upper-case letter among the first
`n_options` letters (A, B, ...), or None when the answer cannot be read as exactly one option.
Three parsers (`PARSERS`):

- "paper": the paper's specified rules (`parse_choice_paper`), for tables shown beside the paper's
  numbers. The answer is stripped and upper-cased, then, first match wins: (1) the whole answer is
  an in-range letter; (2) the leftmost in-range letter written "X." or "X)" (not preceded by a
  letter or digit); (3) "OPTION X"; (4) the leftmost standalone in-range letter (a word of its
  own). Otherwise None. Option texts are never matched. Where the specification does not say which
  of several candidates wins, the leftmost is taken (our reading). Its known failure modes (the
  article "A" read as a letter, hedges read as a choice) are documented in tests/test_parsing.py.
- "released": what the paper's released per-task scripts do, which is where the paper's numbers
  come from (`amlib.metrics.released`, each task's quirks in its docstring; `task=` required).
- "ours" (default, the one the runner records): the rules below, stricter about English words and
  hedges, and able to read an answer given as option text.

Rules of "ours", tried in this order (`RULES`); the first rule that reaches a decision ends the
search, and "None (stop)" means the answer is reported as unparsed without trying later rules:

1. empty        -- None or blank text: None (stop).
2. bare_letter  -- the whole answer is one letter, in any case, optionally in quotes, markdown
                   stars or brackets and followed by `.`, `)`, `:`, `!` or `,`: "B", "b", "B.",
                   "(B)", "'b'", "b.", "**C**". Out of range (e.g. "E" with 4 options): None (stop).
3. hedge        -- two different in-range letters joined by "or", "and", "/" or "&" ("A or B",
                   "(a) and (c)", "A/B", "A) or B)", "A. or C."): None (stop), the model did not
                   choose.
4. leading_marker -- the answer starts with a letter marked as an option label: "B) Cat", "B. Cat",
                   "B: Cat", "(b) female", "[C] dog". Out of range: None (stop). Skipped (no
                   decision) when the answer echoes the option list, i.e. two or more lines start
                   with different letter markers ("A: cat\nB: dog\n...\nAnswer: B"): the first
                   line is then a listed option, not the choice, and later rules decide.
5. answer_phrase -- explicit phrases anywhere: "answer is X", "answer: X", "correct option is X",
                   "option X", "choice X", "letter X", "it is X", "it's X" (X may be bracketed or
                   quoted). All such letters must agree, else None (stop); out of range:
                   None (stop).
6. bracketed    -- a bracketed letter anywhere ("... (B) ...", "... [b] ...") or an upper-case
                   "X)" anywhere; in-range letters only, exactly one distinct letter, else None
                   (stop) when several differ.
7. option_text  -- only when `choices` is given, compared case-insensitively with whitespace and
                   surrounding punctuation ignored: the answer equals exactly one option text; else
                   exactly one option text occurs in the answer as whole words (an option found only
                   inside a longer matching option, such as "male" in "a female voice", is not
                   counted). Several option texts: None (stop).

A letter that stands alone inside a sentence is NOT a choice: in "A cat barks" or "I think so" the
words "A" and "I" are English. Outside rules 2 and 4, a lower-case letter counts only when it is
bracketed/quoted or ends the answer or a clause ("the answer is b." counts, "the answer is a cat"
does not). This is stricter than the paper's released parser, which upper-cases the text and takes
any standalone letter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from string import ascii_uppercase

# "2": option-list echoes no longer parse as their first line; "A) or B)" is a hedge.
PARSER_VERSION = "2"
PARSERS = ("paper", "ours", "released")


class _Stop(Exception):
    """Internal: a rule decided the answer is unparsed; later rules must not run."""


# A rule gets (text, valid letters, option texts or None); returns a letter, None (no decision) or
# raises _Stop (decided: unparsed).
Rule = Callable[[str, tuple[str, ...], list[str] | None], str | None]

_EDGE_CHARS = " \t\r\n\"'`*_"
# A letter token: bracketed "(x)"/"[x]", quoted "'x'", or bare. Groups: bracketed, quoted, bare.
_TOKEN = r"(?:[(\[]\s*([A-Za-z])\s*[)\]]|[\"'`*]+([A-Za-z])[\"'`*]+|([A-Za-z]))(?![A-Za-z0-9])"
# What may follow a bare lower-case letter for it to count as a letter: end of text or a clause end.
_CLAUSE_END = re.compile(r"\s*(?:$|[.,;:!?)\]](?:\s|$))")


def _letter_from_token(match: re.Match[str], text: str, start_group: int = 1) -> str | None:
    """The letter of a `_TOKEN` match if it reads as a letter (see module docstring), else None."""
    bracketed, quoted, bare = (match.group(start_group + i) for i in range(3))
    if bracketed or quoted:
        return (bracketed or quoted).upper()
    if bare.isupper() or _CLAUSE_END.match(text, match.end(start_group + 2)):
        return bare.upper()
    return None


def _decide(letters: set[str], valid: tuple[str, ...]) -> str:
    """One distinct in-range letter -> it; anything else (several, out of range) -> stop."""
    if len(letters) == 1:
        (letter,) = letters
        if letter in valid:
            return letter
    raise _Stop


def _empty(text: str, valid: tuple[str, ...], choices: list[str] | None) -> str | None:
    if not text.strip():
        raise _Stop
    return None


_BARE = re.compile(r"[(\[]?\s*([A-Za-z])\s*[)\]]?")


def _bare_letter(text: str, valid: tuple[str, ...], choices: list[str] | None) -> str | None:
    core = text.strip(_EDGE_CHARS + ".:!,;").strip(_EDGE_CHARS)
    match = _BARE.fullmatch(core)
    if match is None:
        return None
    return _decide({match.group(1).upper()}, valid)


# The left letter may carry an option marker ("A) or B)", "A. or C.").
_HEDGE = re.compile(r"(?<![A-Za-z0-9])" + _TOKEN + r"[.)]?\s*(?:or|and|/|&)\s*" + _TOKEN, re.IGNORECASE)


def _hedge(text: str, valid: tuple[str, ...], choices: list[str] | None) -> str | None:
    for match in _HEDGE.finditer(text):
        # The right-hand token decides whether the pair reads as letters ("a or b." does,
        # "I and a friend" does not); the left one only has to be a single letter.
        right = _letter_from_token(match, text, start_group=4)
        left = (match.group(1) or match.group(2) or match.group(3)).upper()
        if right is not None and left != right and {left, right} <= set(valid):
            raise _Stop
    return None


_LEADING = re.compile(r"(?:[(\[]\s*([A-Za-z])\s*[)\]]|([A-Za-z])[.):])(?=\s|$)")


# A line that starts with a letter marker ("A: cat", "(b) dog"); several of them = an option list.
_LINE_MARKER = re.compile(r"^[ \t\"'`*_]*(?:[(\[]\s*([A-Za-z])\s*[)\]]|([A-Za-z])[.):])(?=\s|$)", re.MULTILINE)


def _leading_marker(text: str, valid: tuple[str, ...], choices: list[str] | None) -> str | None:
    listed = {(m.group(1) or m.group(2)).upper() for m in _LINE_MARKER.finditer(text)}
    if len(listed) >= 2:  # the answer repeats the option list: its first line is no choice
        return None
    match = _LEADING.match(text.lstrip(_EDGE_CHARS))
    if match is None:
        return None
    return _decide({(match.group(1) or match.group(2)).upper()}, valid)


_PHRASE = re.compile(
    r"\b(?:(?:(?:correct|final|right|best)\s+)?(?:answer|option|choice|letter)\b"
    r"(?:\s+(?:is|would\s+be|should\s+be|will\s+be)\b)?|it\s+is\b|it[’']s\b)"
    r"\s*[:=\-]?\s*" + _TOKEN,
    re.IGNORECASE,
)


def _answer_phrase(text: str, valid: tuple[str, ...], choices: list[str] | None) -> str | None:
    letters = set()
    for match in _PHRASE.finditer(text):
        letter = _letter_from_token(match, text)
        if letter is not None:
            letters.add(letter)
    return _decide(letters, valid) if letters else None


_BRACKETED = re.compile(r"[(\[]\s*([A-Za-z])\s*[)\]]|(?<![A-Za-z0-9])([A-Z])\)")


def _bracketed(text: str, valid: tuple[str, ...], choices: list[str] | None) -> str | None:
    letters = {(m.group(1) or m.group(2)).upper() for m in _BRACKETED.finditer(text)}
    letters &= set(valid)
    return _decide(letters, valid) if letters else None


def _normalize_option(text: str) -> str:
    return " ".join(text.lower().split()).strip(".,;:!?\"'`*_ ")


def _option_text(text: str, valid: tuple[str, ...], choices: list[str] | None) -> str | None:
    if not choices:
        return None
    answer = _normalize_option(text)
    options = [_normalize_option(c) for c in choices[: len(valid)]]
    exact = {valid[i] for i, option in enumerate(options) if option and option == answer}
    if exact:
        return _decide(exact, valid)
    spans: dict[int, list[tuple[int, int]]] = {}
    for i, option in enumerate(options):
        if option:
            pattern = r"(?<!\w)" + re.escape(option) + r"(?!\w)"
            found = [m.span() for m in re.finditer(pattern, answer)]
            if found:
                spans[i] = found
    # Drop an option whose every occurrence lies inside an occurrence of a longer matched option.
    kept = set()
    for i, found in spans.items():
        inside_other = all(
            any(j != i and s0 <= a and b <= s1 and (s1 - s0) > (b - a) for j in spans
                for s0, s1 in spans[j])
            for a, b in found
        )
        if not inside_other:
            kept.add(valid[i])
    return _decide(kept, valid) if kept else None


RULES: list[tuple[str, Rule]] = [
    ("empty", _empty),
    ("bare_letter", _bare_letter),
    ("hedge", _hedge),
    ("leading_marker", _leading_marker),
    ("answer_phrase", _answer_phrase),
    ("bracketed", _bracketed),
    ("option_text", _option_text),
]


_PAPER_MARKED = re.compile(r"(?<![A-Z0-9])([A-Z])[.)]")
_PAPER_OPTION = re.compile(r"\bOPTION\s+([A-Z])\b")
_PAPER_STANDALONE = re.compile(r"\b([A-Z])\b")


def parse_choice_paper(text: str | None, n_options: int) -> str | None:
    """The paper's specified parser (rules in the module docstring); None when nothing matches."""
    if not 1 <= n_options <= len(ascii_uppercase):
        raise ValueError(f"n_options must be in 1..26, got {n_options}")
    if text is None:
        return None
    valid = ascii_uppercase[:n_options]
    upper = text.strip().upper()
    if len(upper) == 1 and upper in valid:
        return upper
    for pattern in (_PAPER_MARKED, _PAPER_OPTION, _PAPER_STANDALONE):
        for match in pattern.finditer(upper):
            if match.group(1) in valid:
                return match.group(1)
    return None


def parse_choice(text: str | None, n_options: int, choices: list[str] | None = None,
                 parser: str = "ours", task: str | None = None) -> str | None:
    """The upper-case letter the answer chose among the first `n_options` letters, or None.

    `parser` is "ours" (default), "paper" or "released" (see the module docstring). `choices` are
    the option texts in letter order; "ours" uses them in rule 7 (answer given as option text),
    "paper" ignores them. "released" needs `task` (the paper's released script of that task is
    followed, each with its own quirks, `amlib.metrics.released`: e.g. SCR takes the first A-D
    character anywhere in the upper-cased answer, so "The answer is D." reads as A; ASC, ER, SD,
    SGR and SAR also match option text) and, for ASC, ER, SD, SGR and SAR, `choices`.
    """
    if parser not in PARSERS:
        raise ValueError(f"unknown parser {parser!r}; known: {', '.join(PARSERS)}")
    if not 1 <= n_options <= len(ascii_uppercase):
        raise ValueError(f"n_options must be in 1..26, got {n_options}")
    if choices is not None and len(choices) != n_options:
        raise ValueError(f"{n_options} options but {len(choices)} choice texts")
    if parser == "released":
        if task is None:
            raise ValueError("parser='released' follows one task's released script: pass task (e.g. task='SCR')")
        from amlib.metrics.released import parse_choice_released

        return parse_choice_released(text, n_options, choices, task)
    if parser == "paper":
        return parse_choice_paper(text, n_options)
    if text is None:
        return None
    valid = tuple(ascii_uppercase[:n_options])
    for _name, rule in RULES:
        try:
            letter = rule(text, valid, choices)
        except _Stop:
            return None
        if letter is not None:
            return letter
    return None
