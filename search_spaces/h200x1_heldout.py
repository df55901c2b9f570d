"""The held-out set of `h100x1_heldout.py` on one H200."""

import dataclasses
import runpy
from pathlib import Path

SPACE = dataclasses.replace(runpy.run_path(str(Path(__file__).with_name("h100x1_heldout.py")))["SPACE"], gpu_type=["H200"])
