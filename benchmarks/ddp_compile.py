"""Why compiled fused attention runs slower inside DDP on one GPU than the same step alone.

A sweep's trial wraps the model in DDP even on one GPU, and its compiled SDPA steps ran 6-8% slower
than the trainer alone (`results/small_batch/README.md`; `Calibration.parallel_compiled_fused_rate`,
then 0.894, carried it with no cause; most of it was the trainer's slow q/k/v split, mended since,
`results/trainer/README.md`).  The suspect: Dynamo's DDPOptimizer (`slmray.private_apis.ddp_graph_splitting`,
on by default) splits every graph compiled under a DDP module at DDP's gradient-bucket boundaries
(25 MiB) so that a bucket's all-reduce can start early.  The trainer compiles each block on its own,
so the blocks are already the units of overlap; splitting one further (llama-1b: about 170 MiB of fp32
parameters a block, so about seven pieces) can only cut Inductor's fusion and add launches.  This
times the same compiled step three ways in one process, one GPU:

    single       no wrapper (the trainer alone)
    ddp          DDP, as a sweep's trial ran it (each block split by DDPOptimizer)
    ddp-unsplit  DDP with that splitting off (each block one graph)

    python benchmarks/ddp_compile.py --out ddp_compile.csv [--models llama-100m:64,llama-1b:32]

Results: benchmarks/results/trainer/README.md (`ddp_compile_h100.csv`): DDP costs 0.6-3.8% there, the
split 3.0 points of it on llama-1b; most of the 6-8% was the trainer's own slowdown (`trainer_ab.py`),
its q/k/v split, mended after 7cca42b (`results/trainer/qkv_split_h100.txt`).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import gc
import sys

import torch

from slmray.private_apis import ddp_graph_splitting
from slmray.train.config import TrainConfig
from slmray.train.loop import run
from slmray.train.presets import get_model

VARIANTS = ("single", "ddp", "ddp-unsplit")
COLUMNS = ["model", "per_device_batch", "seq_len", "attention", "variant", "status", "tokens_per_s", "tokens_per_s_std",
           "step_time_median_s", "step_time_iqr_s", "peak_mem_gb", "startup_s", "device", "torch", "date"]


def measure(model: str, batch: int, variant: str, seq_len: int, attention: str) -> dict:
    torch.compiler.reset()  # every variant compiles afresh
    cfg = TrainConfig(
        model=get_model(model), attention=attention, per_device_batch=batch, seq_len=seq_len, steps=10, repeats=3,
        warmup_steps=3, compile=True, data="synthetic", device="cuda",
        strategy="single" if variant == "single" else "ddp",
    )
    unsplit = ddp_graph_splitting(False) if variant == "ddp-unsplit" else contextlib.nullcontext()
    with unsplit:
        r = run(cfg)
    gc.collect()
    torch.cuda.empty_cache()
    return {
        "model": model, "per_device_batch": batch, "seq_len": seq_len, "attention": attention, "variant": variant,
        "status": r.status, "tokens_per_s": r.tokens_per_s, "tokens_per_s_std": r.tokens_per_s_std,
        "step_time_median_s": r.step_time_median_s, "step_time_iqr_s": r.step_time_iqr_s, "peak_mem_gb": r.peak_mem_gb,
        "startup_s": r.startup_s, "device": r.device_name, "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="CSV to write, a row as each run ends")
    p.add_argument("--models", default="llama-100m:64,llama-1b:32", help="MODEL:BATCH,... (default: %(default)s)")
    p.add_argument("--attention", default="sdpa", choices=["sdpa", "eager"])
    p.add_argument("--seq-len", type=int, default=1024)
    args = p.parse_args()
    try:
        runs = [(m, int(b)) for m, b in (item.split(":") for item in args.models.split(","))]
    except ValueError:
        p.error(f"--models: give MODEL:BATCH,..., not {args.models!r}")
    if not torch.cuda.is_available():
        print("ddp_compile.py: needs a GPU", file=sys.stderr)
        return 2
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        for model, batch in runs:
            for variant in VARIANTS:
                row = measure(model, batch, variant, args.seq_len, args.attention)
                writer.writerow(row)
                f.flush()
                tps = f"{row['tokens_per_s']:,.0f} tokens/s" if row["tokens_per_s"] else row["status"]
                print(f"{model} b{batch} {args.attention} {variant:<12} {tps}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
