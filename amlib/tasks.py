"""The ten AudioMarathon tasks as declarative entries in one registry.

Prompts are the paper's Appendix F templates. `{audio}` is not part of the user text: model adapters
place the audio in their own chat format, before the text, as the paper's `<audio>` marker does.
Where the paper's figure is cut off in the PDF (MC) the instruction is completed minimally.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import ascii_uppercase

PROMPT_VERSION = "appendix-f.1"

SPEECH_CONTENT = "Speech Content Extraction"
AUDIO_CLASSIFICATION = "Audio Classification"
SPEAKER_INFO = "Speaker Information Modeling"
CATEGORIES = (SPEECH_CONTENT, AUDIO_CLASSIFICATION, SPEAKER_INFO)


@dataclass(frozen=True)
class TaskSpec:
    code: str
    name: str
    category: str
    n_options: int  # 0 for open-ended ASR
    metric: str  # "macro_f1" or "war"
    max_new_tokens: int
    system_prompt: str
    user_template: str  # str.format fields: question, options
    option_style: str = "{letter}: {text}"  # how one option line is rendered
    # Options whose order the prompt itself fixes (SGR: male is 'a'; SAR: the system prompt lists
    # the five age groups as (a)..(e)); None where options are shuffled per item.
    fixed_choices: tuple[str, ...] | None = None
    domain: str = "speech"  # speech / sound / music (the paper's Table 1 columns)
    # What finalisation balances: "label" (closed class set: the true option's text), "answer" (the
    # answer letter, for free-text options such as SCR's and SER's), or "none" (ASR).
    balance_by: str = "label"

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(ascii_uppercase[: self.n_options])

    @property
    def is_choice(self) -> bool:
        return self.n_options > 0

    def format_options(self, choices: list[str]) -> str:
        if len(choices) != self.n_options:
            raise ValueError(f"{self.code} expects {self.n_options} options, got {len(choices)}")
        return "\n".join(
            self.option_style.format(letter=letter, text=text)
            for letter, text in zip(self.letters, choices)
        )

    def user_prompt(self, question: str, choices: list[str]) -> str:
        options = self.format_options(choices) if self.is_choice else ""
        return self.user_template.format(question=question, options=options).strip()


_LETTER_COLON = "{letter}: {text}"
_LETTER_PAREN = "{letter}) {text}"

AGE_GROUPS = (
    "Young Adult (18-30)", "Early Career (31-40)", "Mid Career (41-50)", "Senior (51-70)",
    "Elderly (71+)",
)

TASKS: dict[str, TaskSpec] = {
    t.code: t
    for t in [
        TaskSpec(
            "ASR", "Automatic Speech Recognition", SPEECH_CONTENT, 0, "war", 1100,
            "You are a helpful assistant that transcribes speech audio. Please listen carefully and "
            "provide the exact transcription of what is spoken in the audio.",
            "Transcribe this audio accurately. Remove hesitation words like 'um', 'uh'. Your "
            "response should be formatted as follows: Spoken Content:",
            balance_by="none",
        ),
        TaskSpec(
            "SCR", "Speech Content Reasoning", SPEECH_CONTENT, 4, "macro_f1", 5,
            "Listen to this audio of a passage being read aloud, then answer the multiple-choice "
            "question based solely on the information from the audio.",
            "Question: {question}\nOptions:\n{options}\nRespond with only the letter of the "
            "correct option (A, B, C, or D).",
            _LETTER_COLON,
            balance_by="answer",
        ),
        TaskSpec(
            "SER", "Speech Entity Recognition", SPEECH_CONTENT, 4, "macro_f1", 5,
            "You are a helpful assistant that analyzes audio to answer questions about named "
            "entities. Please listen to the audio and select the correct answer. Reply with only "
            "the letter (A, B, C, or D).",
            "{question}\n{options}",
            _LETTER_COLON,
            balance_by="answer",
        ),
        TaskSpec(
            "SED", "Sound Event Detection", AUDIO_CLASSIFICATION, 4, "macro_f1", 5,
            "You are a helpful assistant that analyzes audio to detect and classify sound events. "
            "Please listen carefully and select the most appropriate answer from the given choices.",
            "Please listen to the audio and select the correct answer. Reply with only the letter "
            "(A, B, C, or D). {question}\n{options}",
            _LETTER_COLON,
            domain="sound",
        ),
        TaskSpec(
            "MC", "Music Classification", AUDIO_CLASSIFICATION, 4, "macro_f1", 5,
            "You are a helpful assistant that analyzes music audio to identify genres. Please "
            "listen to the audio carefully and classify the music genre.",
            "Listen to this audio segment and identify the music genre based on what you hear.\n"
            "{options}\nRespond with only the letter of your answer (A, B, C, or D).",
            _LETTER_COLON,
            domain="music",
        ),
        TaskSpec(
            "ASC", "Acoustic Scene Classification", AUDIO_CLASSIFICATION, 4, "macro_f1", 5,
            "You are a helpful assistant that analyzes urban soundscape audio to identify acoustic "
            "scenes. Please listen to the audio carefully and classify the scene type.",
            "Listen to this audio and identify the acoustic scene. Choose the most appropriate "
            "option.\n{options}\nRespond with only the letter of your answer (A, B, C, or D).",
            _LETTER_COLON,
            domain="sound",
        ),
        TaskSpec(
            "SD", "Speech Deepfake Detection", SPEAKER_INFO, 2, "macro_f1", 5,
            "You are a helpful assistant that analyzes audio to detect authenticity. Please listen "
            "to the audio carefully and determine if it is real or contains synthetic/fake content.",
            "{question}\n{options}\nRespond with only the letter of your answer (A or B).",
            _LETTER_COLON,
        ),
        TaskSpec(
            "ER", "Emotion Recognition", SPEAKER_INFO, 4, "macro_f1", 10,
            "You are a helpful assistant that analyzes audio to answer questions about emotions. "
            "Please listen to the audio carefully and select the correct answer.",
            "{question}\n\n{options}\n\nPlease select the correct answer (A, B, C, or D).",
            _LETTER_PAREN,
        ),
        TaskSpec(
            "SAR", "Speaker Age Recognition", SPEAKER_INFO, 5, "macro_f1", 5,
            "You are a helpful assistant that analyzes speaker demographics. Please listen to this "
            "audio and identify the speaker's age group. Choose the most appropriate option: (a) "
            "Young Adult (18-30), (b) Early Career (31-40), (c) Mid Career (41-50), (d) Senior "
            "(51-70), (e) Elderly (71+). Answer with only the letter (a, b, c, d, or e).",
            "{question}\n\n{options}\n\nPlease select the correct answer (A, B, C, D, or E).",
            _LETTER_PAREN,
            fixed_choices=AGE_GROUPS,
        ),
        TaskSpec(
            "SGR", "Speaker Gender Recognition", SPEAKER_INFO, 2, "macro_f1", 5,
            "You are a helpful assistant that analyzes audio to identify speaker characteristics. "
            "Please listen to this audio and identify the speaker's gender.",
            # The paper's template names the options itself and asks for 'a'/'b'; the options are
            # still listed so that the answer letter maps onto the manifest's choices.
            "Is this a male or female voice? If it is a male, answer 'a'. If it is a female, "
            "answer 'b'. Answer with only 'a' or 'b'.",
            _LETTER_COLON,
            fixed_choices=("male", "female"),
        ),
    ]
}

TASK_ORDER = ("SER", "SCR", "ASR", "SED", "MC", "ASC", "SD", "ER", "SAR", "SGR")  # paper's tables

# The paper's three task groups (Table 3's header, Figure 8) as task lists, derived from each
# TaskSpec's `category`, which stays the single statement of the grouping.
CATEGORY_TASKS: dict[str, tuple[str, ...]] = {
    category: tuple(t for t in TASK_ORDER if TASKS[t].category == category) for category in CATEGORIES
}


def get_task(code: str) -> TaskSpec:
    try:
        return TASKS[code.upper()]
    except KeyError:
        raise KeyError(f"unknown task {code!r}; known: {', '.join(TASK_ORDER)}") from None
