#!/usr/bin/env bash
# On a one-GPU machine: the small-batch grids (issue #23 item 5) through `python -m slmray.tune`,
# the uncompiled grid first, then as much of the compiled one as the time left allows, each stopped
# by SIGINT at its budget (the rows so far are kept; `--resume` continues a grid later; 0 skips it).  With
# PROFILE=1 the GPU profile is measured first.  Everything goes to OUT: the logs, each grid's rows
# and a tarball of the sweep state for a later --resume.
#   PROFILE=1 bash benchmarks/small_batch.sh h200x1 $OUT 300 200
#   bash benchmarks/small_batch.sh h100x1 $OUT 330 230
set -uo pipefail
gpu=$1 out=$2 uncompiled_s=$3 compiled_s=$4
storage=/tmp/slmray-sweeps
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/device.txt"
python3 -c "import torch, ray; print('torch', torch.__version__, 'ray', ray.__version__)" >> "$out/device.txt"
date -u +%FT%TZ >> "$out/device.txt"
if [ "${PROFILE:-0}" = 1 ]; then
  timeout 120 python3 -m slmray.predict.profile --out "$out/profile.csv" > "$out/profile.log" 2>&1
fi
for part in small_batch:$uncompiled_s small_batch_compiled:$compiled_s; do
  space=${gpu}_${part%%:*} budget=${part##*:}
  [ "$budget" -gt 0 ] || continue  # a budget of 0 skips that grid (timeout 0 would not stop it)
  timeout -s INT "$budget" python3 -m slmray.tune "search_spaces/$space.py" --storage $storage \
    --name "$space" --no-prune > "$out/$space.log" 2>&1
  cp "$storage/$space/results.parquet" "$out/$space.parquet" 2>/dev/null || true
done
tar -czf "$out/state.tgz" -C / "${storage#/}"
