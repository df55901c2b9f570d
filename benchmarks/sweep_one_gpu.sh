#!/usr/bin/env bash
# On a one-GPU machine: a search space through `python -m slmray.tune`.  A sweep may span
# several calls of the device tool: each leaves its state in OUT/sweep.tgz; the next
# (`resume`, with that file carried in .sweepstate/) continues it.  Mode `start` also runs
# llama-1b sdpa batch 16 directly with `python -m slmray.train`, for the in-Tune vs direct
# comparison; `sweep` starts the sweep alone.  Arguments after the mode go to slmray.tune.
#   bash benchmarks/sweep_one_gpu.sh h100x1 OUT start --no-prune
#   bash benchmarks/sweep_one_gpu.sh h200x1 OUT sweep --no-prune
#   bash benchmarks/sweep_one_gpu.sh h200x1 OUT resume --no-prune
set -uo pipefail
space=$1 out=$2 mode=$3
shift 3
storage=/tmp/slmray-sweeps
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/device.txt"
python3 -c "import torch, ray; print('torch', torch.__version__, 'ray', ray.__version__)" >> "$out/device.txt"
log=sweep.log
case $mode in
  start)
    python3 -m slmray.train --model llama-1b --attention sdpa --strategy ddp --per-device-batch 16 \
      --seq-len 1024 --steps 10 --warmup-steps 3 --data stdlib --json > "$out/direct_llama-1b_sdpa_b16.json" ;;
  sweep) ;;
  resume)
    tar -xzf .sweepstate/sweep.tgz -C /
    set -- --resume "$@"
    log=sweep_resume.log ;;
  *) echo "mode must be start, sweep or resume, not '$mode'" >&2; exit 2 ;;
esac
timeout -s INT "${BUDGET:-480}" python3 -m slmray.tune "search_spaces/$space.py" --storage $storage \
  --name "$space" "$@" 2>&1 | tee "$out/$log"
tar -czf "$out/sweep.tgz" $storage
cp "$storage/$space/results.parquet" "$out/" 2>/dev/null || true
