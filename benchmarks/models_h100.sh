#!/usr/bin/env bash
# On one H100 (#25): the GQA kernel choice, the loss kernels, then a search space of today's small
# models through `python -m slmray.tune` (benchmarks/sweep_one_gpu.sh).  At most 8 files under OUT:
# the consoles go into OUT/logs.tgz.
#   bash benchmarks/models_h100.sh OUT SPACE [benches]
set -uo pipefail
out=$1 space=$2 benches=${3:-}
if [ "$benches" = benches ]; then
  timeout 90 python3 benchmarks/gqa_attention.py --out "$out/gqa" > gqa.log 2>&1
  timeout 150 python3 benchmarks/loss_kernels.py --out "$out/loss_kernels_h100.md" \
    --variants standard standard+compile chunked chunked+compile liger > loss.log 2>&1
fi
BUDGET=${BUDGET:-330} bash benchmarks/sweep_one_gpu.sh "$space" "$out" sweep --no-prune > /dev/null
mv "$out/device.txt" .
tar -czf "$out/logs.tgz" device.txt $( [ "$benches" = benches ] && echo gqa.log loss.log )
