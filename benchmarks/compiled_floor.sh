#!/usr/bin/env bash
# On a one-GPU machine: the GPU profile (with its compiled-block row), then llama-100m at batch 4
# trained alone (`python -m slmray.train`, no Ray) compiled as a single process and under DDP (one
# process), and uncompiled: whether a compiled small step is bound by the host's per-block cost,
# by the DDP wrapper, or by recompiles (TORCH_LOGS names any).  Everything goes to OUT.
#   bash benchmarks/compiled_floor.sh $OUT
set -uo pipefail
out=$1
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/device.txt"
date -u +%FT%TZ >> "$out/device.txt"
timeout 120 python3 -m slmray.predict.profile --out "$out/profile.csv" > "$out/profile.log" 2>&1
run() { echo "== $*"; timeout 100 python3 -m slmray.train --model llama-100m --per-device-batch 4 --steps 20 --warmup-steps 3 "$@" 2>&1 | grep -v "^W1\|torchao"; }
{
  TORCH_LOGS=recompiles,graph_breaks run --compile --strategy single
  TORCH_LOGS=recompiles,graph_breaks run --compile --strategy ddp
  run --strategy single
  run --strategy ddp
} > "$out/floor.log" 2>&1
