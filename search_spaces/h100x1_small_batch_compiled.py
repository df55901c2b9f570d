"""The compiled half of `h100x1_small_batch.py`: the same models and batches with torch.compile.
Each trial compiles (about 20 s), so the order puts first what a device session's few minutes should
cover: llama-1b (the size most asked about), then the smallest model, batches from the ends of the
range inwards; the rest follows when the grid is resumed (`python -m slmray.tune ... --resume`)."""

import dataclasses
import runpy
from pathlib import Path

SPACE = dataclasses.replace(
    runpy.run_path(str(Path(__file__).with_name("h100x1_small_batch.py")))["SPACE"],
    model=["llama-1b", "llama-100m", "pythia-410m", "llama-2b", "llama-500m"],
    per_device_batch=[4, 16, 64, 8, 32],
    compile=[True],
)
