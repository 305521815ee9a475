"""Training examples: the evaluation prompt of a sample followed by its target answer.

The prompt is built by the same adapter code as at evaluation (`build_inputs`), so training and
evaluation see identical inputs; only the target tokens (and the closing <|im_end|>) carry loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from amlib.data import Sample, load_audio
from amlib.tasks import get_task

IGNORE = -100  # label of positions without loss


def target_text(sample: Sample, tokenizer) -> str:
    """What the model should answer.

    - ASR: the transcript in the format the prompt asks for.
    - Options that move between items (all choice tasks but SAR and SGR): the TEXT of the right
      option, when every option of the item fits the task's answer budget (`max_new_tokens`) in
      `tokenizer`'s tokens; the parser reads it back as that option's letter (`parse_choice`, rule
      option_text). Why: with a letter target a small model must hear the class AND find which
      letter the prompt gave it; trained so (run 3) it learnt neither on any task whose letters move.
    - Otherwise the letter (lower case where the prompt asks for 'a'/'b'); for SAR and SGR the letter
      always names the same class, so it is the class.
    """
    spec = get_task(sample.task)
    if not spec.is_choice:
        return f"Spoken Content: {sample.answer}"
    if spec.fixed_choices is None and all(
            len(tokenizer(c, add_special_tokens=False)["input_ids"]) <= spec.max_new_tokens for c in sample.choices):
        return sample.choices[spec.letters.index(sample.answer)]
    return sample.answer.lower() if spec.code == "SGR" else sample.answer


@dataclass
class Encoded:
    input_ids: torch.Tensor  # (L,)
    labels: torch.Tensor  # (L,), IGNORE on the prompt
    input_features: torch.Tensor  # (windows, mel, frames)
    feature_attention_mask: torch.Tensor  # (windows, frames)


def encode(adapter, sample: Sample, audio=None) -> Encoded:
    spec = get_task(sample.task)
    audio = load_audio(sample.audio_path) if audio is None else audio
    prepared = adapter.build_inputs(audio, spec, sample.question, sample.choices)
    tok = adapter.processor.tokenizer
    target = tok(target_text(sample, tok) + "<|im_end|>", add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    prompt = prepared.tensors["input_ids"][0]
    return Encoded(
        input_ids=torch.cat([prompt, target]),
        labels=torch.cat([torch.full_like(prompt, IGNORE), target]),
        input_features=prepared.tensors["input_features"],
        feature_attention_mask=prepared.tensors["feature_attention_mask"],
    )


def collate(batch: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded text; every sample's audio windows stacked in order (the model fills the audio
    placeholders of the batch in that order)."""
    length = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), length), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e.input_ids)
        ids[i, :n], labels[i, :n], mask[i, :n] = e.input_ids, e.labels, 1
    return {
        "input_ids": ids, "attention_mask": mask, "labels": labels,
        "input_features": torch.cat([e.input_features for e in batch]),
        "feature_attention_mask": torch.cat([e.feature_attention_mask for e in batch]),
    }
