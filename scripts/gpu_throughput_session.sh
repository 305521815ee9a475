#!/usr/bin/env bash
# The throughput measurements of one lent GPU call (no package registry there; the wheels the machine
# lacks travel in .whl/, the SmolLM2 tokenizer in .gpu_cache/, both ignored by git and named in `carry`):
#   1. where a 195 s prefill's time goes (scripts/profile_prefill.py: encoder, LM, top kernels; vanilla,
#      the four methods at 0.6 and Frame at 0.9; the prefill while loading threads, then processes,
#      prepare inputs);
#   2. the AudioMarathon-shaped throughput benchmark (scripts/bench_throughput.py: HF batch 1, fast
#      batch 1, batched and pipelined with the modules' and with the fused decode step; the pruning and
#      eviction grids; batched decode, modules and fused);
#   3. per-token decode of the fused step beside HF generate and the CUDA-graph decoders, 3B and 7B
#      (scripts/bench_fused_decode.py).
# Usage (the device tool's command, from the repository root):
#   bash scripts/gpu_throughput_session.sh [profile|throughput|both|fused|fused+profile]
# Results go to $OUT (the device tool brings them back): prefill_profile_gpu.json, throughput_gpu.json,
# fused_decode_gpu_3b.json and fused_decode_gpu_7b.json (one file: bench_fused_decode.py --merge A B --out C).
set -euo pipefail
what=${1:-both}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 AMLIB_CACHE=$PWD/.gpu_cache
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv
fused() {  # fused() MODEL OUT-FILE: one model per process (a 7B that runs out of time leaves the 3B's file)
  timeout "${FUSED_TIMEOUT:-240}" python3 scripts/bench_fused_decode.py --models "$1" --out "$OUT/$2" 2>&1 \
    | grep -v "Loading weights" || echo "bench_fused_decode $1 stopped: $?"
}
if [[ $what == fused || $what == fused+profile ]]; then
  fused random-qwen2.5-omni-3b fused_decode_gpu_3b.json
fi
if [[ $what == profile || $what == both || $what == fused+profile ]]; then
  timeout "${PROFILE_TIMEOUT:-180}" python3 scripts/profile_prefill.py --device cuda --seconds 195 --configs vanilla frame:0.6 fastv:0.6 dart:0.6 random:0.6 frame:0.9 \
    --contention-workers 4 --top 30 --out "$OUT/prefill_profile_gpu.json" 2>&1 | grep -v "Loading weights" \
    || echo "profile_prefill stopped: $?"
fi
if [[ $what == throughput || $what == both ]]; then
  python3 scripts/bench_throughput.py --device cuda --out "$OUT/throughput_gpu.json" 2>&1 | grep -v "Loading weights"
fi
if [[ ($what == fused || $what == fused+profile) && -z ${SKIP_7B:-} ]]; then
  fused random-qwen2.5-omni-7b fused_decode_gpu_7b.json
fi
