"""The held-out set of `h100x1_heldout_b.py` on one H200: the same 24 configurations, chosen by
that set's rule before either ran on an H200 (its dry-run plan committed before it ran)."""

import dataclasses
import runpy
from pathlib import Path

SPACE = dataclasses.replace(runpy.run_path(str(Path(__file__).with_name("h100x1_heldout_b.py")))["SPACE"], gpu_type=["H200"])
