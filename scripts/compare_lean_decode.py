"""Does the lean CPU decode step (amlib.fastpath.lean_step: eager with the model's own weights, and
compiled) change the book's answers? Each item of the book's test split (page 02's items: every task,
ASR limited to 3) is prefilled once; the batched decoder then decodes a copy of it through
transformers' modules and through each lean format (--formats), and the generated tokens are compared
with the modules'. One row at a time (the compiled step's streamed products run there).

    python scripts/compare_lean_decode.py --out benchmarks/lean_decode_agreement.json
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import time
from pathlib import Path

from amlib.data import read_manifest
from amlib.efficiency import device_name
from amlib.fastpath.batched_decode import deferred_decoding
from amlib.runner import answer_budget, prepare_inputs, select
from amlib.tasks import get_task


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="amlib-reference-whisper-tiny-smollm2")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--data", default="data/built/offline-test")
    ap.add_argument("--formats", nargs="+", default=["model", "compiled"], help="lean_decode formats to compare")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from amlib.models import load_model

    adapter = load_model(args.model, device="cpu", dtype=args.dtype)
    adapter.set_fast_paths(True)
    samples = select(read_manifest(args.data), None, {"ASR": 3})
    same, rows = {fmt: collections.defaultdict(lambda: [0, 0]) for fmt in args.formats}, []
    for sample in samples:
        prepared = prepare_inputs(adapter, sample)
        with deferred_decoding(adapter):
            row = adapter.generate(prepared, answer_budget(adapter, get_task(sample.task))).pending
        tokens = {}
        for fmt in (None, *args.formats):
            adapter.lean_decode = fmt
            tokens[fmt] = adapter.batched_decoder(4).run([copy.deepcopy(row)], adapter.stop_token_ids())[0].tokens
        rows.append({"id": sample.id, "tokens": len(tokens[None])})
        for fmt in args.formats:
            equal = tokens[None] == tokens[fmt]
            same[fmt][sample.task][0] += equal
            same[fmt][sample.task][1] += 1
            rows[-1][f"same_tokens_{fmt}"] = equal
        print(rows[-1], flush=True)
    result = {"model": args.model, "dtype": args.dtype, "device": device_name("cpu"),
              "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "data": args.data,
              "same_tokens_by_format_and_task": {fmt: {t: {"same": s, "of": n} for t, (s, n) in by_task.items()}
                                                  for fmt, by_task in same.items()}, "items": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
