"""Trainer throughput on one GPU: eager vs sdpa attention, compile off and on, at the best
per-device batch that fits, for the paper's LLaMA models (seq 1024) and Pythia (seq 2048).

    python benchmarks/trainer_throughput.py --out benchmarks/results/trainer/trainer_throughput_h100.csv

For each model, the batch is searched without compile on sdpa (the paper's batch sizes
64, 32, ... 4, largest first; the first that fits and the next smaller one are timed, and
the faster is kept); then the four variants run at that batch, 3 repeats of 10 measured
steps after 3 warm-up steps, eager stepping down a batch size where it runs out of memory.
Every run goes through `slmray.train.loop.run`, the loop the sweep uses.

    python benchmarks/trainer_throughput.py --from-csv benchmarks/results/trainer/trainer_throughput_h100.csv

rewrites a CSV of this benchmark as a results table (`slmray.results.table.SCHEMA`) beside it, the
same name ending `.parquet`, so `python -m slmray.analysis` can read it.  No prices are
recorded (the benchmark ran on a lent machine): re-price with `--prices PROFILE`.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import gc
import os
import sys
import time

import pyarrow as pa
import torch

from slmray.catalog.gpus import canonical_gpu
from slmray.core.row import make_row
from slmray.results.table import to_table, write_table
from slmray.train.config import TrainConfig
from slmray.train.loop import run
from slmray.train.presets import get_model

MODELS = {"llama-100m": 1024, "llama-500m": 1024, "llama-1b": 1024, "llama-2b": 1024, "pythia-160m": 2048, "pythia-1b": 2048}
BATCHES = (64, 32, 16, 8, 4)
COLUMNS = [
    "model", "attention", "compile", "strategy", "num_gpus", "per_device_batch", "seq_len", "status", "tokens_per_s",
    "tokens_per_s_std", "mfu", "mfu_non_embedding", "step_time_median_s", "step_time_iqr_s", "peak_mem_gb",
    "final_loss", "startup_s", "phase", "best", "device", "torch", "slmray", "date",
]


def measure(model: str, seq_len: int, batch: int, attention: str, compile: bool, steps: int, repeats: int) -> dict:
    torch.compiler.reset()  # fresh compile caches: no run inherits another's graphs or recompile budget
    cfg = TrainConfig(
        model=get_model(model), attention=attention, per_device_batch=batch, seq_len=seq_len, steps=steps,
        repeats=repeats, warmup_steps=3, compile=compile, data="synthetic", device="cuda",
    )
    r = run(cfg)
    gc.collect()
    torch.cuda.empty_cache()
    row = {
        "model": model, "attention": attention, "compile": compile, "strategy": cfg.strategy, "num_gpus": r.num_gpus,
        "per_device_batch": batch, "seq_len": seq_len, "status": r.status, "tokens_per_s": r.tokens_per_s,
        "tokens_per_s_std": r.tokens_per_s_std, "mfu": r.mfu, "mfu_non_embedding": r.mfu_non_embedding,
        "step_time_median_s": r.step_time_median_s, "step_time_iqr_s": r.step_time_iqr_s, "peak_mem_gb": r.peak_mem_gb,
        "final_loss": r.final_loss, "startup_s": r.startup_s, "device": r.device_name, "torch": torch.__version__,
        "slmray": r.slmray_version, "date": datetime.date.today().isoformat(),
    }
    mfu = f"MFU {100 * r.mfu:5.1f}%" if r.mfu else ""
    tps = f"{r.tokens_per_s:>10,.0f} tok/s" if r.tokens_per_s else ""
    print(f"{model:<12} {attention:<6} compile={compile!s:<5} b={batch:<3} {r.status:<4} {tps} {mfu}", flush=True)
    return row


def bench_model(model: str, seq_len: int, deadline: float) -> list[dict]:
    rows = []

    def timed(phase: str, *args) -> dict:
        row = measure(model, seq_len, *args)
        row["phase"] = phase
        rows.append(row)
        return row

    fits = []
    for batch in BATCHES:
        if time.time() > deadline:
            return rows
        row = timed("search", batch, "sdpa", False, 5, 1)
        if row["status"] == "ok":
            fits.append(row)
            if len(fits) == 2:
                break
    if not fits:
        return rows
    best_batch = max(fits, key=lambda r: r["tokens_per_s"])["per_device_batch"]
    for compile in (False, True):
        for attention in ("sdpa", "eager"):
            for batch in [b for b in BATCHES if b <= best_batch]:
                if time.time() > deadline:
                    return rows
                row = timed("final", batch, attention, compile, 10, 3)
                if row["status"] == "ok":
                    row["best"] = True
                    break
    return rows


def _number(text: str) -> float | None:
    return float(text) if text else None


def results_table(csv_path: str) -> pa.Table:
    """The rows of a CSV this benchmark wrote, as a results table (one trial a row, no prices).

    Steps and repeats follow the protocol above: `final` rows are 3 repeats of 10 measured
    steps, `search` rows 1 of 5, all after 3 warm-up steps on synthetic tokens.
    """
    sweep_id = os.path.splitext(os.path.basename(csv_path))[0]
    rows = []
    with open(csv_path, newline="") as f:
        for i, r in enumerate(csv.DictReader(f)):
            model = get_model(r["model"])
            final = r["phase"] == "final"
            gpus = int(r["num_gpus"])
            tps = _number(r["tokens_per_s"])
            rows.append(make_row({
                "sweep_id": sweep_id, "trial_id": f"{r['phase']}-{i:03d}", "model": model.name, "family": model.family,
                "n_params": model.num_params, "per_device_batch": int(r["per_device_batch"]),
                "seq_len": int(r["seq_len"]), "num_gpus": gpus, "attention": r["attention"], "strategy": r["strategy"],
                "compile": r["compile"] == "True", "activation_checkpointing": False, "grad_accum": 1,
                "steps": 10 if final else 5, "warmup_steps": 3, "repeats": 3 if final else 1, "data": "synthetic",
                "gpu_type": canonical_gpu(r["device"]), "device_name": r["device"], "num_nodes": 1,
                "tokens_per_s": tps, "tokens_per_s_per_gpu": tps / gpus if tps else None,
                "tokens_per_s_std": _number(r["tokens_per_s_std"]), "mfu": _number(r["mfu"]),
                "mfu_non_embedding": _number(r["mfu_non_embedding"]),
                "step_time_median_s": _number(r["step_time_median_s"]), "step_time_iqr_s": _number(r["step_time_iqr_s"]),
                "peak_mem_gb": _number(r["peak_mem_gb"]), "final_loss": _number(r["final_loss"]),
                "startup_s": _number(r["startup_s"]), "status": r["status"], "torch_version": r["torch"],
                "slmray_version": r["slmray"],
            }))
    return to_table(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--out", help="CSV to write (rows are appended to an existing file)")
    p.add_argument("--time-budget-s", type=float, default=540, help="start no new run after this long")
    p.add_argument("--from-csv", metavar="CSV", help="write CSV (of this benchmark) as a results table beside it, and exit")
    args = p.parse_args()
    if args.from_csv:
        out = os.path.splitext(args.from_csv)[0] + ".parquet"
        write_table(results_table(args.from_csv), out)
        print(f"wrote {out}")
        return 0
    if not args.out:
        p.error("--out is required to run the benchmark")
    if not torch.cuda.is_available():
        print("error: this benchmark needs a CUDA GPU", file=sys.stderr)
        return 2
    deadline = time.time() + args.time_budget_s
    new = not os.path.exists(args.out)
    with open(args.out, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        for model in args.models:
            for row in bench_model(model, MODELS[model], deadline):
                writer.writerow({k: row.get(k, "") for k in COLUMNS})
            f.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
