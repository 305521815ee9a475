"""Step 5: a review sheet for a person to check a sample of every built subset.

For each task, 10 % of its items (at least 20, or all if fewer) are drawn with a seed and written to
one HTML page: an audio player, the question, the options (the correct one marked) and the answer.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from amlib.data.manifest import Sample, read_manifest


def review_sample(samples: list[Sample], fraction: float = 0.1, minimum: int = 20, seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    picked: list[Sample] = []
    for task in sorted({s.task for s in samples}):
        items = [s for s in samples if s.task == task]
        n = min(len(items), max(minimum, int(np.ceil(fraction * len(items)))))
        picked += [items[i] for i in sorted(rng.choice(len(items), size=n, replace=False))]
    return picked


def _item_html(s: Sample) -> str:
    esc = html.escape
    if s.choices:
        letters = "ABCDEFGHIJ"
        options = "".join(
            f"<li{' class=answer' if letters[i] == s.answer else ''}>{letters[i]}: {esc(c)}</li>"
            for i, c in enumerate(s.choices)
        )
        answer = f"<ol type=A>{options}</ol><p>answer: <b>{esc(s.answer)}</b></p>"
    else:
        answer = f"<p>reference:</p><blockquote>{esc(s.answer)}</blockquote>"
    return (
        f"<section><h3>{esc(s.id)} <small>{esc(s.task)} · {s.duration_s:.1f} s · {esc(s.source)}</small></h3>"
        f"<audio controls preload=none src='{esc(s.audio)}'></audio>"
        f"<p>{esc(s.question)}</p>{answer}"
        f"<details><summary>meta</summary><pre>{esc(json.dumps(s.meta, indent=1))}</pre></details>"
        "<p>check: <label><input type=checkbox> label audible and correct</label></p></section>"
    )


def write_review_sheet(dataset_dir: str | Path, fraction: float = 0.1, minimum: int = 20, seed: int = 0) -> Path:
    """Write `review.html` next to the manifest (audio paths stay relative, so it plays in place)."""
    dataset_dir = Path(dataset_dir)
    picked = review_sample(read_manifest(dataset_dir), fraction, minimum, seed)
    body = "\n".join(_item_html(s) for s in picked)
    page = (
        "<!doctype html><meta charset=utf-8><title>Review sheet</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}section{border-bottom:1px solid #ccc;"
        "padding:.5em 0}.answer{font-weight:bold;color:#060}audio{width:100%}</style>"
        f"<h1>Review sheet: {html.escape(dataset_dir.name)}</h1>"
        f"<p>{len(picked)} items drawn with seed {seed} ({fraction:.0%} of each task, at least {minimum}).</p>"
        f"{body}"
    )
    out = dataset_dir / "review.html"
    out.write_text(page, encoding="utf-8")
    return out
