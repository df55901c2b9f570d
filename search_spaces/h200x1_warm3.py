"""`h200x1_warm.py` measured over three windows of ten steps instead of one (tokens/s their
mean): the warm-against-isolated side-by-side (`benchmarks/warm_trials.py --space
search_spaces/h200x1_warm3.py --no-prune`) with less noise on the short llama-100m steps."""

import dataclasses
import runpy
from pathlib import Path

SPACE = dataclasses.replace(runpy.run_path(str(Path(__file__).with_name("h200x1_warm.py")))["SPACE"], repeats=3)
