"""The uncompiled small-batch grid of `h100x1_small_batch.py` on one H200 (the `nvidia-h200` machine)."""

import dataclasses
import runpy
from pathlib import Path

SPACE = dataclasses.replace(runpy.run_path(str(Path(__file__).with_name("h100x1_small_batch.py")))["SPACE"],
                            gpu_type=["H200"])
