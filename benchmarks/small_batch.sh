#!/usr/bin/env bash
# On a one-GPU machine: the small-batch grids (issue #23 item 5), the uncompiled grid first, then as
# much of the compiled one as the time left allows (`benchmarks/timed_sweeps.sh`: rows so far kept;
# STATE=state.tgz continues an earlier run's grids; 0 skips a grid; PROFILE=1 profiles first).
#   PROFILE=1 bash benchmarks/small_batch.sh h200x1 $OUT 300 200
#   bash benchmarks/small_batch.sh h100x1 $OUT 330 230
[ $# -eq 4 ] || { echo "usage: small_batch.sh GPU OUT_DIR UNCOMPILED_S COMPILED_S" >&2; exit 2; }
exec bash "$(dirname "$0")/timed_sweeps.sh" "$2" "search_spaces/$1_small_batch.py:$3" "search_spaces/$1_small_batch_compiled.py:$4"
