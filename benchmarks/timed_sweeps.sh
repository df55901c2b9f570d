#!/usr/bin/env bash
# On a GPU machine: sweeps through `python -m slmray.tune`, each stopped by SIGINT at its budget in
# seconds (the rows so far are kept; a budget of 0 skips it).  Everything goes to OUT: the device,
# each sweep's log and rows, and a tarball of the sweep state.  With STATE=state.tgz (an earlier
# run's tarball) that state is restored first and a sweep it holds is continued with --resume.
# With PROFILE=1 the GPU profile is measured first.
#   bash benchmarks/timed_sweeps.sh $OUT search_spaces/h100x1_heldout.py:300
#   STATE=.devdeps/state.tgz bash benchmarks/timed_sweeps.sh $OUT search_spaces/h100x1_small_batch_compiled.py:250
set -uo pipefail
[ $# -ge 2 ] && [ -d "$1" ] || { echo "usage: timed_sweeps.sh OUT_DIR SPACE.py:SECONDS ..." >&2; exit 2; }
out=$1; shift
for part in "$@"; do
  [[ "$part" =~ ^[^:]+\.py:[0-9]+$ ]] || { echo "timed_sweeps.sh: $part: give SPACE.py:SECONDS" >&2; exit 2; }
done
if [ -n "${STATE:-}" ]; then
  tar -xzf "$STATE" -C / || { echo "timed_sweeps.sh: STATE=$STATE: not a sweep-state tarball" >&2; exit 2; }
fi
storage=/tmp/slmray-sweeps
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/device.txt"
python3 -c "import torch, ray; print('torch', torch.__version__, 'ray', ray.__version__)" >> "$out/device.txt"
date -u +%FT%TZ >> "$out/device.txt"
if [ "${PROFILE:-0}" = 1 ]; then
  timeout 120 python3 -m slmray.predict.profile --out "$out/profile.csv" > "$out/profile.log" 2>&1
fi
for part in "$@"; do
  space=${part%%:*} budget=${part##*:} name=$(basename "${part%%:*}" .py)
  [ "$budget" -gt 0 ] || continue  # timeout 0 would not stop it
  resume=(); [ -f "$storage/$name/space.json" ] && resume=(--resume)
  timeout -s INT "$budget" python3 -m slmray.tune "$space" --storage $storage --name "$name" --no-prune \
    "${resume[@]}" > "$out/$name.log" 2>&1
  cp "$storage/$name/results.parquet" "$out/$name.parquet" 2>/dev/null || true
done
tar -czf "$out/state.tgz" -C / "${storage#/}"
