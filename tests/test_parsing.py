"""Tests for amlib.metrics.parsing.parse_choice."""

import pytest

from amlib.metrics import parsing
from amlib.metrics.parsing import PARSER_VERSION, RULES, parse_choice

ANIMALS = ["Dog", "Cat", "Bird", "Car"]
GENDERS = ["male", "female"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("B", "B"),
        ("b", "B"),
        ("B.", "B"),
        ("(B)", "B"),
        (" [c] ", "C"),
        ("**C**", "C"),
        ("B\n", "B"),
        ("B) Cat", "B"),
        ("B. Cat", "B"),
        ("D: Car", "D"),
        ("(a) Dog", "A"),
        ("Answer: B", "B"),
        ("The answer is B", "B"),
        ("The answer is B because it meows", "B"),
        ("answer: (b)", "B"),
        ("the answer is c.", "C"),
        ("The correct answer is option C", "C"),
        ("Option D", "D"),
        ("I think it is B", "B"),
        ("I'd say (C) here", "C"),
    ],
)
def test_letter_forms(text, expected):
    assert parse_choice(text, 4) == expected


@pytest.mark.parametrize("text, expected", [("a", "A"), ("'b'", "B"), ("b.", "B"), ('"a"', "A"),
                                            ("it's b", "B")])
def test_sd_sgr_lowercase_forms(text, expected):
    assert parse_choice(text, 2) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Cat", "B"),
        ("cat.", "B"),
        ("  CAR ", "D"),
        ("It sounds like a cat meowing", "B"),
        ("the answer is a cat", "B"),  # lower-case "a" followed by a word is the article
    ],
)
def test_option_text(text, expected):
    assert parse_choice(text, 4, ANIMALS) == expected


def test_option_text_inside_longer_option_is_not_counted():
    assert parse_choice("female", 2, GENDERS) == "B"
    assert parse_choice("male", 2, GENDERS) == "A"
    assert parse_choice("It is a female voice", 2, GENDERS) == "B"
    assert parse_choice("Hot dog", 4, ["Dog", "Hot dog", "Cat", "Car"]) == "B"
    assert parse_choice("a hot dog stand", 4, ["Dog", "Hot dog", "Cat", "Car"]) == "B"


@pytest.mark.parametrize(
    "text",
    ["A or B", "A and C", "a or b", "(A) or (D)", "A/B", "The answer is A or B",
     "Answer: A. Option C is also possible"],
)
def test_ambiguous_letters_are_unparsed(text):
    assert parse_choice(text, 4) is None


def test_two_option_texts_are_unparsed():
    assert parse_choice("Dog or cat", 4, ANIMALS) is None
    assert parse_choice("a dog chasing a cat", 4, ANIMALS) is None


@pytest.mark.parametrize("text", ["E", "(E)", "E) Dog", "Option E", "The answer is F"])
def test_out_of_range_letters_are_unparsed(text):
    assert parse_choice(text, 4) is None


def test_letter_e_is_in_range_with_five_options():
    assert parse_choice("E", 5) == "E"
    assert parse_choice("(e) Elderly (71+)", 5) == "E"


@pytest.mark.parametrize(
    "text",
    ["a cat", "A cat barks", "I", "I don't know", "Sorry, I can't tell", "", "   ", None,
     "Options: A"],
)
def test_english_words_and_empty_are_not_letters(text):
    assert parse_choice(text, 4) is None


def test_whole_answer_I_is_a_letter_only_when_in_range():
    assert parse_choice("I", 4) is None
    assert parse_choice("I", 10) == "I"
    assert parse_choice("I and a friend", 10) is None


# Cases where the paper's released parser (upper-case, then exact letter, "X."/"X)", "option x",
# then any standalone letter) gives a wrong or no letter. `official` is what that specification
# yields when the first standalone letter is taken; it documents the defect and is not run.
@pytest.mark.parametrize(
    "text, n, choices, expected, official",
    [
        ("A cat barks", 4, ANIMALS, "B", "A"),  # article "A" taken as a letter
        ("a cat", 4, None, None, "A"),
        ("I think it is B", 10, None, "B", "I"),  # pronoun "I" taken first with >= 9 options
        ("Cat", 4, ANIMALS, "B", None),  # answer given as option text is not matched
        ("female", 2, GENDERS, "B", None),
        ("A or B", 4, None, None, "A"),  # a hedge is not a choice
    ],
)
def test_cases_the_official_parser_gets_wrong(text, n, choices, expected, official):
    assert expected != official
    assert parse_choice(text, n, choices) == expected


def test_rule_order_matches_docstring():
    names = [name for name, _ in RULES]
    assert names == ["empty", "bare_letter", "hedge", "leading_marker", "answer_phrase",
                     "bracketed", "option_text"]
    doc = parsing.__doc__
    positions = [doc.index(f"{i}. {name}") for i, name in enumerate(names, start=1)]
    assert positions == sorted(positions)


def test_earlier_rule_wins():
    # leading marker (rule 4) beats option text (rule 7): the model's letter is taken, not "Cat".
    assert parse_choice("A) Cat", 4, ANIMALS) == "A"
    # explicit answer phrase (rule 5) beats option text (rule 7).
    assert parse_choice("Answer: D, not a dog", 4, ANIMALS) == "D"


def test_bad_arguments():
    with pytest.raises(ValueError, match="choice texts"):
        parse_choice("A", 4, ["x", "y"])
    with pytest.raises(ValueError, match="n_options"):
        parse_choice("A", 0)


def test_parser_version_is_a_string():
    assert PARSER_VERSION == "2"


OPTION_ECHO = [
    "A: Dog\nB: Cat\nC: Bird\nD: Car\nAnswer: B",
    "A) Dog\nB) Cat\nC) Bird\nD) Car\n\nThe answer is B.",
    "(a) Dog\n(b) Cat\n(c) Bird\n(d) Car\nanswer: (b)",
]


@pytest.mark.parametrize("text", OPTION_ECHO)
def test_repeated_option_list_before_the_answer_is_not_read_as_its_first_line(text):
    assert parse_choice(text, 4, ANIMALS) == "B"
    assert parse_choice(text, 4) == "B"


def test_repeated_option_list_without_an_answer_is_unparsed():
    assert parse_choice("A: Dog\nB: Cat\nC: Bird\nD: Car", 4, ANIMALS) is None
    # one marked line is still a leading marker
    assert parse_choice("B: Cat\nbecause it meows", 4, ANIMALS) == "B"


@pytest.mark.parametrize("text", ["A) or B)", "a) or b)", "A. or C.", "(A) or (D)", "B) and C)"])
def test_marked_letters_joined_by_or_are_a_hedge(text):
    assert parse_choice(text, 4) is None


# The paper's rules: upper-case; exact letter, then "X."/"X)", then "option x", then a standalone
# letter (leftmost where several).
@pytest.mark.parametrize(
    "text, n, expected",
    [
        ("B", 4, "B"), ("b", 2, "B"), (" 'a' ", 2, "A"), ("B.", 4, "B"), ("the answer is c.", 4, "C"),
        ("(D) Car", 4, "D"), ("Option d", 4, "D"), ("I think it is B", 4, "B"),
        ("A cat barks", 4, "A"),  # the article: the paper's rule reads it as a letter
        ("A or B", 4, "A"),  # a hedge: the paper's rule takes the first
        ("Cat", 4, None), ("female", 2, None), ("", 4, None), (None, 4, None), ("E", 4, None),
        ("I think it is B", 10, "I"),  # the pronoun wins with >= 9 options
        ("Dog. Answer: B)", 4, "B"),  # "X)" beats a standalone letter
        ("A: Dog\nB: Cat\nAnswer: B", 4, "A"),
    ],
)
def test_paper_parser(text, n, expected):
    assert parse_choice(text, n, parser="paper") == expected
    assert parsing.parse_choice_paper(text, n) == expected


def test_paper_parser_ignores_option_text_and_unknown_parser_raises():
    assert parse_choice("Cat", 4, ANIMALS, parser="paper") is None
    assert parse_choice("Cat", 4, ANIMALS, parser="ours") == "B"
    with pytest.raises(ValueError, match="unknown parser"):
        parse_choice("A", 4, parser="official")
