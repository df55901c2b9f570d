"""The compiled small-batch grid of `h100x1_small_batch_compiled.py` on one H200."""

import dataclasses
import runpy
from pathlib import Path

SPACE = dataclasses.replace(
    runpy.run_path(str(Path(__file__).with_name("h100x1_small_batch_compiled.py")))["SPACE"], gpu_type=["H200"])
