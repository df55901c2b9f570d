"""The twelve configurations that fit `Calibration.parallel_compiled_fused_rate`: compiled SDPA steps
inside DDP on one H100 of more than `interval.SMALL_TOKENS` tokens, the device-bound rows of
`h100x1_small_batch_compiled.py`, measured again with the mended q/k/v split (the grid ran with the
split that made these steps 6-8% slower; `benchmarks/results/trainer/README.md`):
    bash benchmarks/timed_sweeps.sh $OUT search_spaces/h100x1_fused_ddp.py:320
Its rows (`benchmarks/results/small_batch/h100x1_fused_ddp.parquet`) alone fit the rate
(`benchmarks/calibrate_estimate.py`, `PARALLEL_RATE_ROWS`); the grid's small steps keep fitting
`compiled_block_host_s`."""

import dataclasses
import runpy
from pathlib import Path

SPACE = dataclasses.replace(
    runpy.run_path(str(Path(__file__).with_name("h100x1_small_batch.py")))["SPACE"],
    model=["llama-100m", "llama-1b", "pythia-410m", "llama-500m", "llama-2b"],
    per_device_batch={"llama-100m": [64, 32, 16], "llama-1b": [32, 16], "pythia-410m": [64, 32, 16],
                      "llama-500m": [64, 32, 16], "llama-2b": [16]},
    attention=["sdpa"],
    compile=[True],
)
