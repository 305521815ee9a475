"""Shortcut probes over a train and a test split of the offline suite; writes one JSON file.

    # build both splits (if missing) with the working copy's generators, probe, write the JSON
    .venv/bin/python scripts/probe_shortcuts.py --name after --out amlib/data/probe_results/after.json

    # the same with the generators of another checkout (e.g. a worktree of an older commit): the
    # builds run with PYTHONPATH=<that checkout>; features and probes always use this working copy
    git worktree add /tmp/before 6311dfd
    .venv/bin/python scripts/probe_shortcuts.py --name before --generators /tmp/before \\
        --data /tmp/probe/before --out amlib/data/probe_results/before.json

Splits: <data>-train and <data>-test, built with `python -m amlib build-data --source offline` at
the settings below (train seed 1, test seed 0; both splits at the same duration window, so that the duration probe is
meaningful); an existing folder whose build.json matches is reused. Audio features are cached by
audio hash in --cache. What the probes are: amlib/data/probes.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the probes of this working copy, whatever PYTHONPATH says

from amlib.data.probes import FeatureCache, flags, probe_items, read_split, run_probes  # noqa: E402


def build(split: str, out: Path, generators: Path, args) -> float:
    """Build one split with the amlib of `generators` unless `out` holds the same build; seconds taken."""
    wanted = {"source": "offline", "root": None, "tasks": None, "per_task": args.per_task[split],
              "min_seconds": args.min_seconds, "max_seconds": args.max_seconds, "seed": args.seed[split], "split": split}
    record = out / "build.json"
    if record.is_file() and json.loads(record.read_text()) == wanted and (out / "manifest.jsonl").is_file():
        return 0.0
    start = time.time()
    cmd = [sys.executable, "-m", "amlib", "build-data", "--source", "offline", "--split", split,
           "--seed", str(args.seed[split]), "--per-task", str(args.per_task[split]), "--min-seconds", str(args.min_seconds),
           "--max-seconds", str(args.max_seconds), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(generators)}
    subprocess.run(cmd, cwd=generators, env=env, check=True, stdout=subprocess.DEVNULL)
    record.write_text(json.dumps(wanted, indent=1))
    return time.time() - start


def shared_audio(train, test) -> dict[str, int]:
    """Per task: test items whose audio file is byte-identical to a train item's (a leak, not a probe)."""
    def digest(sample):
        return hashlib.sha1(Path(sample.audio_path).read_bytes()).hexdigest()
    seen = {digest(s) for s in train}
    counts: dict[str, int] = {}
    for s in test:
        counts[s.task] = counts.get(s.task, 0) + (digest(s) in seen)
    return counts


def commit_of(path: Path) -> str:
    def git(*a):
        return subprocess.run(["git", *a], cwd=path, capture_output=True, text=True).stdout.strip()
    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "amlib/data")
    return rev + ("+uncommitted changes in amlib/data" if dirty else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="label stored in the JSON (before / after)")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--generators", type=Path, default=REPO, help="checkout whose amlib builds the data")
    ap.add_argument("--data", type=Path, default=REPO / "data/built/probe",
                    help="folder prefix: <data>-train and <data>-test")
    ap.add_argument("--train-per-task", type=int, default=40)
    ap.add_argument("--test-per-task", type=int, default=40)
    ap.add_argument("--min-seconds", type=float, default=30.0)
    ap.add_argument("--max-seconds", type=float, default=90.0)
    # different seeds: at one seed and per_task the two splits share their label, letter and duration
    # order item by item (the builder's random streams are not salted by the split), which the
    # position probe would find although no model can see an item's index
    ap.add_argument("--train-seed", type=int, default=1)
    ap.add_argument("--test-seed", type=int, default=0)
    ap.add_argument("--timings", type=Path, default=None,
                    help="JSON of build timings measured by an earlier run (kept where this run reused a build)")
    ap.add_argument("--cache", type=Path, default=REPO / "results/probe_feature_cache.json")
    args = ap.parse_args(argv)
    args.per_task = {"train": args.train_per_task, "test": args.test_per_task}
    args.seed = {"train": args.train_seed, "test": args.test_seed}

    timings, splits = {}, {}
    for split in ("train", "test"):
        folder = Path(f"{args.data}-{split}")
        timings[f"build_{split}_s"] = round(build(split, folder, args.generators.resolve(), args), 1)
        splits[split] = read_split(folder)  # no generator-version check: may be older code's build
    if args.timings and args.timings.is_file():  # builds reused here: keep the seconds they took when built
        earlier = json.loads(args.timings.read_text()).get("timings", {})
        for key in ("build_train_s", "build_test_s"):
            if timings[key] == 0.0 and earlier.get(key):
                timings[key] = earlier[key]
    cache = FeatureCache(args.cache)
    start = time.time()
    train = probe_items(splits["train"], cache)
    test = probe_items(splits["test"], cache)
    cache.save()
    timings["features_s"] = round(time.time() - start, 1)
    timings["features_computed"] = cache.misses
    timings["features_from_cache"] = cache.hits
    start = time.time()
    shared = shared_audio(splits["train"], splits["test"])
    rows = run_probes(train, test)
    timings["probes_s"] = round(time.time() - start, 1)
    result = {
        "name": args.name,
        "generators_commit": commit_of(args.generators),
        "probes_commit": commit_of(REPO),
        "settings": {"source": "offline", "train_per_task": args.train_per_task,
                     "test_per_task": args.test_per_task, "min_seconds": args.min_seconds,
                     "max_seconds": args.max_seconds, "train_seed": args.train_seed,
                     "test_seed": args.test_seed},
        "timings": timings,
        "shared_audio": shared,
        "rows": rows,
        "flags": flags(rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{args.out}: {len(rows)} probes, {len(result['flags'])} flagged; {timings}")
    if any(shared.values()):
        print("  test items with a train item's exact audio:", {t: n for t, n in shared.items() if n})
    for line in result["flags"]:
        print("  FLAG", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
