#!/usr/bin/env bash
# The reference model's training and validation data (amlib/reference/weights/README.md, runs 10-13),
# built into DIR (default data/built/reference): the offline suite's train split, the ASR corpus, the
# validation sets, and the long validation items joined from held-out clips. Every step is skipped when
# its folder is already built with the same settings (the corpus also keeps the clips it rendered), so
# an interrupted run is resumed by running it again. Then pack them for the GPU machine with
# scripts/pack_training_data.py.
set -euo pipefail
DIR=${1:-data/built/reference}
PY=${PY:-.venv/bin/python}
mkdir -p "$DIR"
corpus() { $PY -m amlib build-asr-corpus --out "$DIR/$1" --clips "$2" --holdout "$3" --seed "$4"; }
suite() { local out=$1; shift; [ -f "$DIR/$out/manifest.jsonl" ] || $PY -m amlib build-data --source offline --split train --out "$DIR/$out" "$@"; }
corpus val-asrc 225 val 6001  # as many as the held-out texts allow
[ -f "$DIR/val-long/manifest.jsonl" ] || $PY -m amlib join-asr --data "$DIR/val-asrc" --out "$DIR/val-long" --n 16 --min-s 90 --max-s 300 --seed 6101
suite val-suite --per-task 6 --min-seconds 90 --max-seconds 300 --seed 5004
suite suite-asr --tasks ASR --per-task 40 --min-seconds 90 --max-seconds 300 --seed 5003
suite suite-long --tasks SCR SER SED MC ASC SD ER SAR SGR --per-task 20 --min-seconds 90 --max-seconds 300 --seed 5001
suite suite-short --tasks SCR SER SED MC ASC SD ER SAR SGR --per-task 20 --min-seconds 20 --max-seconds 60 --seed 5002
suite suite-short2 --tasks SCR SER SED MC ASC SD ER SAR SGR --per-task 40 --min-seconds 20 --max-seconds 60 --seed 5005
corpus asrc 6000 train 6000
echo "built: $(ls "$DIR")"
