"""The second bar set of issue #23 on one H100-80GB, measured after the constants were refitted on
the whole compiled small-batch grid (the first, `h100x1_heldout.py`, was looked at before that fit,
so it no longer counts as held out): 24 one-GPU configurations of three models no H100 row has at
these settings (SmolLM2-360M: 32 thin blocks, grouped-query attention, tied embeddings; Llama 3.2 1B:
a 128,256-token tied vocabulary; pythia-1b at sequence 1024), two per-device batches each (the
smaller in the small-step regime, the larger one that fits uncompiled with eager attention), eager and
SDPA attention, compile off and on.  Its dry-run plan (`--dry-run --out`) was committed before it ran."""

import dataclasses
import runpy
from pathlib import Path

SPACE = dataclasses.replace(
    runpy.run_path(str(Path(__file__).with_name("h100x1_heldout.py")))["SPACE"],
    model=["smollm2-360m", "llama-3.2-1b", "pythia-1b"],
    per_device_batch={"smollm2-360m": [5, 12], "llama-3.2-1b": [5, 8], "pythia-1b": [5, 16]},
)
