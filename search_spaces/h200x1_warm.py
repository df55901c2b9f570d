"""A subset of `h200x1.py` that fits twice into one device call: warm against isolated trials
(`benchmarks/warm_trials.py --space search_spaces/h200x1_warm.py --no-prune`).  llama-100m and
llama-1b at both batches, eager and fused attention: six ok trials and two out of memory."""

import dataclasses
import runpy
from pathlib import Path

SPACE = dataclasses.replace(runpy.run_path(str(Path(__file__).with_name("h200x1.py")))["SPACE"],
                            model=["llama-100m", "llama-1b"])
