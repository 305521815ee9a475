#!/usr/bin/env bash
# The book's pages executed on a lent GPU machine (no package registry there; 64 MiB per call, the
# repository included). What the pages need travels first, over back-to-back calls, as the folders
# .gpu/book-NN/ that scripts/pack_gpu_book.py makes here (the test split as Opus with its build
# record, the stand-in's base weights, the tokenizer, the wheels); scripts/gpu_train_reference.sh
# collects them in $STAGE, which survives between calls while the machine stays warm.
# Usage (the device tool's command, from the repository root; each call names its folder in `carry`):
#   bash scripts/gpu_book.sh stage                  (collect what this call carried)
#   bash scripts/gpu_book.sh pages [ARGS]           (stage, then python3 -m amlib book-pages ARGS, e.g.
#                                                    --settings benchmarks/gpu_book/settings.yaml)
# The whole sequence: here, `python scripts/pack_gpu_book.py --data data/built/offline-test --wheels .whl
# .gpu/wheels` (it prints one folder per call); there, back to back (the machine stays warm 30 s),
# `stage` carrying book-01, book-02, book-03, then `pages --settings benchmarks/gpu_book/settings.yaml`
# carrying book-04. A `pages` call that runs out of time is resumed by another `pages` call.
# The pages write into book/executed/ and results/ (ignored by git, so they too survive between warm
# calls: a second `pages` call resumes). Each `pages` call copies book/executed/ (the executed pages,
# timing.json, timing.md) and the predictions (results.tar) to $OUT, whether or not every page ran.
set -euo pipefail
STAGE=${STAGE:-/tmp/amlib-stage}
export STAGE
mode=${1:-stage}
shift || true
bash scripts/gpu_train_reference.sh stage > /dev/null
[ "$mode" = stage ] && { ls "$STAGE" "$STAGE/data"; exit 0; }
[ "$mode" = pages ] || { echo "usage: gpu_book.sh stage|pages [book-pages ARGS]"; exit 2; }
mkdir -p data/built
for d in "$STAGE"/data/*/; do  # the packed split where the pages look for the built offline suite
  name=$(basename "$d")
  [ -e "data/built/$name" ] || cp -r "$d" "data/built/$name"
done
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
rc=0
bash scripts/gpu_train_reference.sh python -m amlib book-pages --notebooks notebooks --executed book/executed "$@" \
  || rc=$?
mkdir -p "$OUT/executed"
cp -r book/executed/. "$OUT/executed/"
tar -cf "$OUT/results.tar" results 2> /dev/null || true
exit $rc
