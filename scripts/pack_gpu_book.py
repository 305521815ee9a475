"""Pack what the book needs on a lent GPU machine into one folder per call (.gpu/book-NN/: the staging
script takes the folders right under .gpu/), each small enough to travel beside the repository in one 64 MiB call (scripts/gpu_book.sh stages them there):

- the book's test split as Opus (amlib.reference.train.pack.compress_dataset), with its build record, so
  the pages find the offline suite built with the book's settings;
- the stand-in's base weights: the packaged SmolLM2 GGUF in parts and the Whisper tiny.en encoder
  (amlib.reference.model.export_encoder), and the SmolLM2 tokenizer (also the random Qwen2.5-Omni's);
- the wheels the machine lacks (--wheels: folders of py3.12 wheels, e.g. .whl/ and the papermill stack).

    python scripts/pack_gpu_book.py --data data/built/offline-test --wheels .whl .gpu/wheels --out .gpu

It prints each folder's size and the `carry` list of each call, in order.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

from amlib.models.assets import cache_dir, smollm2_gguf
from amlib.reference.model import export_encoder
from amlib.reference.train.pack import compress_dataset, split_file

CALL_BYTES = 64 * 2**20
# What the book needs that the GPU image lacks (its package list, read 2026-11-17) or holds in another
# version (transformers: kvpress caps it below 5.3): each must come as a py3.12 wheel
NEEDED_WHEELS = ("transformers", "tokenizers", "kvpress", "gguf", "soundfile", "cffi", "pycparser", "jiwer",
                 "rapidfuzz", "datasets", "papermill", "nbclient", "nbformat", "jupyter_client", "jupyter_core",
                 "ipykernel", "ipython", "traitlets", "pyzmq", "tornado", "comm", "debugpy", "jedi", "parso",
                 "pexpect", "ptyprocess", "prompt_toolkit", "wcwidth", "stack_data", "executing", "asttokens",
                 "pure_eval", "decorator", "matplotlib_inline", "ipython_pygments_lexers", "fastjsonschema",
                 "jsonschema", "jsonschema_specifications", "referencing", "rpds_py", "entrypoints", "tenacity",
                 "platformdirs", "nest_asyncio2", "myst_nb", "docutils")
GGUF_PART_BYTES = 25 * 2**20  # the staging script wants at least 4 parts (a whole GGUF)
TOKENIZER = "smollm2-135m-instruct-tokenizer-v1"


def repository_bytes(repo: Path) -> int:
    """What every call carries anyway: the tracked files and the untracked files git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                            capture_output=True, check=True).stdout.split(b"\0")
    return sum((repo / name.decode()).stat().st_size for name in listed if name and (repo / name.decode()).is_file())


def size_of(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def assets(args, work: Path) -> list[Path]:
    """Every file or folder to carry (each travels whole, in one call)."""
    data = compress_dataset(args.data, work / args.data.name, workers=args.workers)  # encodes only what is new
    for record in ("build.json", "stats.json"):
        if (args.data / record).is_file():
            shutil.copyfile(args.data / record, data / record)
    parts = split_file(smollm2_gguf(), GGUF_PART_BYTES, work / "gguf")
    encoder = work / "encoder.safetensors"
    if not encoder.is_file():
        export_encoder(encoder)
    tokenizer = work / "tokenizer"
    if not tokenizer.is_dir():
        shutil.copytree(cache_dir() / TOKENIZER, tokenizer)
    wheels = sorted({w.name: w for folder in args.wheels for w in folder.glob("*.whl")}.values(), key=lambda w: w.name)
    check_wheels(wheels)
    return [data, *parts, encoder, tokenizer, *wheels]


def check_wheels(wheels: list[Path]) -> None:
    """One wheel of every needed distribution, and one version of each (two stop the whole install)."""
    names = [w.name.split("-")[0].lower() for w in wheels]
    missing = [n for n in NEEDED_WHEELS if n.lower() not in names]
    twice = sorted({n for n in names if names.count(n) > 1})
    if missing or twice:
        raise SystemExit(f"wheels: missing {', '.join(missing) or 'none'}; more than one version of "
                         f"{', '.join(twice) or 'none'} (pip download them for Python 3.12, see the device README)")


def pack(items: list[Path], budget: int, out: Path) -> list[Path]:
    """First fit, largest first, into as few folders `out/book-NN` of at most `budget` bytes as it takes
    (earlier book-NN folders there are replaced; other folders are left alone)."""
    folders: list[tuple[int, list[Path]]] = []
    for item in sorted(items, key=size_of, reverse=True):
        size = size_of(item)
        if size > budget:
            raise ValueError(f"{item}: {size / 2**20:.1f} MiB, more than one call's {budget / 2**20:.1f} MiB")
        for i, (used, held) in enumerate(folders):
            if used + size <= budget:
                folders[i] = (used + size, held + [item])
                break
        else:
            folders.append((size, [item]))
    for old in out.glob("book-[0-9][0-9]"):
        shutil.rmtree(old)
    paths = []
    for i, (_, held) in enumerate(folders):
        folder = out / f"book-{i + 1:02d}"
        folder.mkdir(parents=True)
        for item in held:
            (shutil.copytree if item.is_dir() else shutil.copyfile)(item, folder / item.name)
        paths.append(folder)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True, help="the built test split the book reads")
    ap.add_argument("--wheels", type=Path, nargs="*", default=[])
    ap.add_argument("--work", type=Path, default=Path("/tmp/amlib-gpu-book"), help="packed copies, kept for re-runs")
    ap.add_argument("--out", type=Path, default=Path(".gpu"),
                    help="where the book-NN folders go (replaced); the staging script reads .gpu/<folder>/")
    ap.add_argument("--margin-mib", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    repo = Path(__file__).resolve().parents[1]
    budget = CALL_BYTES - repository_bytes(repo) - int(args.margin_mib * 2**20)
    folders = pack(assets(args, args.work), budget, args.out)
    for folder in folders:
        rel = folder.resolve().relative_to(repo) if folder.resolve().is_relative_to(repo) else folder
        print(f"{rel}: {size_of(folder) / 2**20:.1f} MiB  carry [\"{rel}\"]", flush=True)
    print(f"{len(folders)} calls; each may carry {budget / 2**20:.1f} MiB beside the repository", flush=True)


if __name__ == "__main__":
    main()
