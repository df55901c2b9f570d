"""The bar of issue #23 on one H100-80GB: 24 one-GPU configurations no committed table holds and no
fit has seen, for the dry run's predictions (`--dry-run --out`, committed before the sweep ran) to
be judged against.  Three models never measured (pythia-160m at sequence 1024, Qwen2.5-0.5B with its
151,936-token tied vocabulary, TinyLlama-1.1B with grouped-query attention), two per-device batches each
(6, which no grid uses, and the largest that fits uncompiled with eager attention on an H100: most of
the set is in the small-step regime the issue found worst), eager and SDPA attention, compile off and
on.  The same set on an H200: `h200x1_heldout.py`."""

import dataclasses
import runpy
from pathlib import Path

SPACE = dataclasses.replace(
    runpy.run_path(str(Path(__file__).with_name("h100x1_small_batch.py")))["SPACE"],
    model=["pythia-160m", "qwen2.5-0.5b", "tinyllama-1.1b"],
    per_device_batch={"pythia-160m": [6, 24], "qwen2.5-0.5b": [6, 12], "tinyllama-1.1b": [6, 8]},
    compile=[False, True],
)
