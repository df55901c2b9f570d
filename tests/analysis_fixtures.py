"""Results tables for the analysis tests, made from real runs (no mocks).

`cpu_sweep_table()` runs the trainer (`slmray.train.loop.run`, the loop the sweep uses) on the CPU
for a small grid, plus one real out-of-memory trial, in seconds: for the report's unit tests.
The notebook test uses the table the real CPU sweep writes (conftest's `smoke_sweep`).  The
committed GPU tables: `H100_SWEEP`, a `python -m slmray.tune` sweep on one H100 with the
estimate's predictions recorded, and `H100_BENCHMARK`, the trainer benchmark's CSV as a results
table (`python benchmarks/trainer_throughput.py --from-csv ...`).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from slmray.catalog.prices import PriceBook
from slmray.core.row import make_row
from slmray.results.table import to_table
from slmray.train.config import TrainConfig
from slmray.train.loop import TrainResult, run
from slmray.train.presets import get_model

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
H100_CSV = RESULTS / "trainer" / "trainer_throughput_h100.csv"
H100_BENCHMARK = RESULTS / "trainer" / "trainer_throughput_h100.parquet"
H100_SWEEP = RESULTS / "sweeps" / "sweep_h100x1.parquet"
H200_SWEEP = RESULTS / "sweeps" / "sweep_h200x1.parquet"
OOM_MODEL = get_model("tiny", vocab_size=4_000_000, d_model=8, n_head=2).replace(name="tiny-4m-vocab")
"""A 4,000,000-token vocabulary at batch 64 x seq 256: logits the CPU allocator refuses."""


def trial_row(cfg: TrainConfig, r: TrainResult, sweep_id: str, trial_id: str, started: float, ended: float) -> dict[str, Any]:
    """One row of the results schema for a trainer run priced as the local machine."""
    return make_row({"sweep_id": sweep_id, "trial_id": trial_id}, cfg.flat(), r.to_dict(), started=started,
                    ended=ended, prices=PriceBook.load("local"))


@functools.cache
def cpu_sweep_table() -> pa.Table:
    """tiny and tiny-neox x eager/sdpa x batch 2/4 on the CPU (2 measured steps), and one OOM."""
    configs = [
        TrainConfig(model=get_model(m), seq_len=32, steps=2, warmup_steps=1, per_device_batch=b, attention=a, device="cpu")
        for m in ("tiny", "tiny-neox") for a in ("eager", "sdpa") for b in (2, 4)
    ]
    configs.append(TrainConfig(model=OOM_MODEL, seq_len=256, steps=2, warmup_steps=1, per_device_batch=64, device="cpu"))
    rows = []
    for i, cfg in enumerate(configs):
        started = time.time()
        result = run(cfg)
        rows.append(trial_row(cfg, result, "cpu-test-sweep", f"t{i:02d}", started, time.time()))
    assert rows[-1]["status"] == "oom", rows[-1]["error"]
    return to_table(rows)
