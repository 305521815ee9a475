"""Pack train-split data folders for the GPU machine: Opus copies (amlib.reference.train.pack), cut into
shards of at most --shard-mib each, one folder per shard under --out (carried one or more per call and
collected by scripts/gpu_train_reference.sh). Validation folders keep their `val-` prefix.

    python scripts/pack_training_data.py --data DIR [DIR ...] --work /tmp/packed --out .gpu/data --shard-mib 40
"""

from __future__ import annotations

import argparse
from pathlib import Path

from amlib.reference.train.pack import compress_dataset, shard_dataset


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, nargs="+", required=True)
    ap.add_argument("--work", type=Path, required=True, help="where the Opus copies go")
    ap.add_argument("--out", type=Path, required=True, help="where the shard folders go")
    ap.add_argument("--shard-mib", type=float, default=40.0)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    for folder in args.data:
        packed = args.work / folder.name
        compress_dataset(folder, packed, workers=args.workers)  # encodes only clips not packed before
        for shard in shard_dataset(packed, args.out, int(args.shard_mib * 2**20)):
            size = sum(f.stat().st_size for f in shard.rglob("*") if f.is_file())
            print(f"{shard}: {size / 2**20:.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
