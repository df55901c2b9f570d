#!/usr/bin/env bash
# One H200 call (issue #23): the GPU profile, then the uncompiled small-batch grid for its budget,
# then the compiled-floor check (llama-100m batch 4, compiled single and DDP, `python -m
# slmray.train`).  Everything goes to OUT.
#   bash benchmarks/h200_session.sh $OUT 230
set -uo pipefail
out=$1 budget=$2
export PYTHONUNBUFFERED=1
PROFILE=1 bash benchmarks/small_batch.sh h200x1 "$out" "$budget" 0
run() { echo "== $*"; timeout 100 python3 -m slmray.train --model llama-100m --per-device-batch 4 --steps 20 --warmup-steps 3 "$@" 2>&1 | grep -v "^W1\|torchao"; }
{
  TORCH_LOGS=recompiles,graph_breaks run --compile --strategy single
  TORCH_LOGS=recompiles,graph_breaks run --compile --strategy ddp
} > "$out/floor.log" 2>&1
