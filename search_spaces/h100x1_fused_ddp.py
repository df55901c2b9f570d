"""The twelve configurations that fit `Calibration.parallel_compiled_fused_rate`: compiled SDPA steps
inside DDP on one H100 of more than `interval.SMALL_TOKENS` tokens (the rows of
`h100x1_small_batch_compiled.py` the fit takes), measured again once the trainer's q/k/v split
was mended (it had made these steps 6-8% slower; `benchmarks/results/trainer/README.md`)."""

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
