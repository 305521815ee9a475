"""Where an item's segments sit in its final audio: `meta["timeline"]`, what short cuts are made from.

A long item is assembled from segments (sentences read aloud, real prompts or utterances, music
pieces, sound events). Builders record them so that a short (< 30 s) counterpart can be cut from the
item's own audio (amlib.data.short, paper Table 8):

    meta["timeline"] = {
        "layout": "sequence",   # segments one after another (pauses between): cut only at their bounds
                                # "overlay": events over a continuous bed: a cut may start anywhere
        "segments": [{"start_s": 0.0, "end_s": 3.2125, "text": "..."}, ...],  # in the FINAL audio
        "answer": [2],          # the segments that carry the answer (SCR, SER, SED; SD: the fake ones),
                                # [] where the answer is global
    }

Seconds are rounded to 6 decimals, so `round(start_s * 16000)` gives the sample back exactly.
"text" (the words a segment says) is given where known (always for ASR); other per-segment keys
(e.g. "fake" for SD) may be added. Loudness normalisation and limiting change no sample position;
where a builder changes the tempo afterwards (sox tempo), the bounds are scaled by the length ratio
(`scale_timeline`) and are exact only to WSOLA's few milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from amlib.data.audio import SAMPLE_RATE

KEY = "timeline"
LAYOUTS = ("sequence", "overlay")
DECIMALS = 6


def spans_of_pieces(pieces: Sequence[np.ndarray], segment_at: Sequence[int]) -> list[tuple[int, int]]:
    """Sample spans of `pieces[i]` for i in `segment_at`, in the concatenation of all pieces."""
    starts = np.concatenate([[0], np.cumsum([p.size for p in pieces])]).astype(int)
    return [(int(starts[i]), int(starts[i + 1])) for i in segment_at]


def concat_spans(lengths: Sequence[int], gap_n: int = 0) -> list[tuple[int, int]]:
    """Sample spans of clips of `lengths` played one after another with `gap_n` samples between them
    (amlib.data.concat.concat_audio's layout)."""
    spans, at = [], 0
    for n in lengths:
        spans.append((at, at + int(n)))
        at += int(n) + gap_n
    return spans


def timeline(spans: Sequence[tuple[int, int]], layout: str = "sequence", texts: Sequence[str] | None = None,
             answer: Sequence[int] = (), sample_rate: int = SAMPLE_RATE, **per_segment: Sequence) -> dict:
    """The `meta["timeline"]` dict of sample `spans`; `texts` and each `per_segment` list give one
    value per segment."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown timeline layout {layout!r} (known: {', '.join(LAYOUTS)})")
    extra = {"text": texts, **per_segment} if texts is not None else dict(per_segment)
    for name, values in extra.items():
        if len(values) != len(spans):
            raise ValueError(f"timeline: {len(values)} {name!r} values for {len(spans)} segments")
    segments = []
    for k, (start, end) in enumerate(spans):
        segment = {"start_s": round(start / sample_rate, DECIMALS), "end_s": round(end / sample_rate, DECIMALS)}
        segment.update({name: values[k] for name, values in extra.items()})
        segments.append(segment)
    return {"layout": layout, "segments": segments, "answer": [int(a) for a in answer]}


def scale_timeline(line: dict, factor: float) -> dict:
    """The timeline of the same audio stretched in time by `factor` (output length / input length)."""
    scaled = [{**s, "start_s": round(s["start_s"] * factor, DECIMALS), "end_s": round(s["end_s"] * factor, DECIMALS)}
              for s in line["segments"]]
    return {**line, "segments": scaled, "time_scaled": round(float(factor), DECIMALS)}


def clips_timeline(waves: Sequence[np.ndarray], gap_s: float = 0.0, sample_rate: int = SAMPLE_RATE, **kwargs) -> dict:
    """The timeline of `concat_audio(waves, gap_s)`: one segment per clip (`timeline`'s keyword
    arguments give texts, answer and per-clip values)."""
    gap_n = int(round(gap_s * sample_rate))  # concat_audio's gap
    return timeline(concat_spans([len(w) for w in waves], gap_n), sample_rate=sample_rate, **kwargs)
