#!/usr/bin/env bash
# On a one-GPU machine: several search spaces through `python -m slmray.tune`, one after another,
# within one time budget (BUDGET seconds, default 480).  A sweep may span several calls of the
# device tool: each leaves the state of all of them in OUT/sweep.tgz; the next call (`resume`, with
# that file carried in .sweepstate/) skips the finished spaces and resumes the interrupted one.
# Arguments after `--` go to slmray.tune.
#   bash benchmarks/sweep_precision.sh OUT start h200x1_precision h200x1_checkpointing h200x1_seq_len -- --no-prune
#   bash benchmarks/sweep_precision.sh OUT resume h200x1_precision h200x1_checkpointing h200x1_seq_len -- --no-prune
set -uo pipefail
out=$1 mode=$2
shift 2
spaces=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do spaces+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
storage=/tmp/slmray-sweeps
export PYTHONUNBUFFERED=1
deadline=$(( $(date +%s) + ${BUDGET:-480} ))
{
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch, ray, torchao; print('torch', torch.__version__, 'ray', ray.__version__, 'torchao', torchao.__version__)" 2>/dev/null
  date -u
} >> "$out/device.txt"
case $mode in
  start) ;;
  resume) tar -xzf .sweepstate/sweep.tgz -C / ;;
  *) echo "mode must be start or resume, not '$mode'" >&2; exit 2 ;;
esac
for space in "${spaces[@]}"; do
  [ -e "$storage/$space.done" ] && continue
  left=$(( deadline - $(date +%s) ))
  [ "$left" -lt 60 ] && break  # not worth a Ray start and a compiled trial
  resume=()
  [ -e "$storage/$space/tuner.pkl" ] && resume=(--resume)
  # SIGINT lets Tune stop cleanly and keep its state; timeout exits 124 then, whatever Tune returns
  timeout -k 30 -s INT "$left" python3 -m slmray.tune "search_spaces/$space.py" --storage $storage \
    --name "$space" "${resume[@]}" "$@" 2>&1 | tee -a "$out/sweep.log"
  [ "${PIPESTATUS[0]}" = 0 ] && touch "$storage/$space.done"
done
tar -czf "$out/sweep.tgz" -C / "${storage#/}"
for space in "${spaces[@]}"; do
  cp "$storage/$space/results.parquet" "$out/$space.parquet" 2>/dev/null || true
done
