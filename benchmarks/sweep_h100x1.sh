#!/usr/bin/env bash
# On the one-GPU machine: search_spaces/h100x1.py through `python -m slmray.tune` (OOMs
# measured, not pruned), and one of its configurations run directly with `python -m slmray.train`
# for the in-Tune vs direct comparison.  The sweep may span two calls of the device tool: the
# first leaves its state in OUT/sweep.tgz, the second (`--resume`, with that file carried in
# .sweepstate/) continues it.
#   bash benchmarks/sweep_h100x1.sh OUT [--resume]
set -uo pipefail
out=$1
storage=/tmp/slmray-sweeps
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/device.txt"
python3 -c "import torch, ray; print('torch', torch.__version__, 'ray', ray.__version__)" >> "$out/device.txt"
if [ "${2:-}" != "--resume" ]; then
  python3 -m slmray.train --model llama-1b --attention sdpa --strategy ddp --per-device-batch 16 \
    --seq-len 1024 --steps 10 --warmup-steps 3 --data stdlib --json > "$out/direct_llama-1b_sdpa_b16.json"
  timeout -s INT "${BUDGET:-480}" python3 -m slmray.tune search_spaces/h100x1.py --storage $storage \
    --name h100x1 --no-prune 2>&1 | tee "$out/sweep.log"
else
  tar -xzf .sweepstate/sweep.tgz -C /
  timeout -s INT "${BUDGET:-540}" python3 -m slmray.tune search_spaces/h100x1.py --storage $storage \
    --name h100x1 --no-prune --resume 2>&1 | tee "$out/sweep_resume.log"
fi
tar -czf "$out/sweep.tgz" $storage
cp $storage/h100x1/results.parquet "$out/" 2>/dev/null || true
